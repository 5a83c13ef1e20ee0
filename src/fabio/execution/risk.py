"""The risk engine: TopStep account limits the agent enforces itself, below the brain.

The brain proposes, the engine disposes (ARCHITECTURE.md §7). Every entry passes `check_entry`;
every closed trade goes through `on_trade_closed`; open P&L goes through `mark`; the execution
engine asks `must_flatten` on every tick. Rules, defaults and the trailing floor are described in
docs/execution.md ("Risk engine"). Nothing here reads the wall clock: every method takes `now_ns`.

Trading states follow NautilusTrader's risk engine: ACTIVE (anything allowed), REDUCING (exits
only), HALTED (flatten, nothing new).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fabio.execution.types import AccountState, ClosedTrade
from fabio.instruments import InstrumentSpec
from fabio.sessions import CmeCalendar, Session, SessionKind, cme_calendar
from fabio.timeutil import CHICAGO, NS_PER_MIN, datetime_to_ns, ns_to_datetime

PresetName = Literal["50K", "100K", "150K"]
EARLY_CLOSE_MARGIN_NS = 2 * NS_PER_MIN  # flat this long before an early RTH close
TOPSTEP_AUTO_FLATTEN = time(15, 8)  # FACTS.md §2: TopStep flattens at 15:08 CT (flat by 15:10)
_EPS_USD = 1e-9


class AccountPreset(BaseModel):
    """One TopStep account size and its hard limits."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    name: PresetName
    size_usd: float
    max_loss_usd: float  # Maximum Loss Limit: trails the EOD balance high, stops at the start
    daily_loss_usd: float  # Daily Loss Limit (historical on TopstepX; enforced here anyway)
    max_minis: float  # maximum position in minis; a micro counts 0.1 (10:1)
    profit_target_usd: float  # Combine profit target (reported, not a limit)


# FACTS.md §2 (TopStep account rules). Re-check against TopStep's live pages before money
# depends on them.
PRESETS: dict[str, AccountPreset] = {
    "50K": AccountPreset(
        name="50K",
        size_usd=50_000.0,
        max_loss_usd=2_000.0,
        daily_loss_usd=1_000.0,
        max_minis=5.0,
        profit_target_usd=3_000.0,
    ),
    "100K": AccountPreset(
        name="100K",
        size_usd=100_000.0,
        max_loss_usd=3_000.0,
        daily_loss_usd=2_000.0,
        max_minis=10.0,
        profit_target_usd=6_000.0,
    ),
    "150K": AccountPreset(
        name="150K",
        size_usd=150_000.0,
        max_loss_usd=4_500.0,
        daily_loss_usd=3_000.0,
        max_minis=15.0,
        profit_target_usd=9_000.0,
    ),
}


class RiskConfig(BaseModel):
    """Risk limits. `account_balance` and `daily_loss_limit_usd` default to the preset's."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    preset: PresetName = "50K"
    account_balance: float = Field(50_000.0, gt=0)  # the starting balance (filled from preset)
    daily_loss_limit_usd: float = Field(1_000.0, gt=0)  # filled from the preset when absent
    max_trades_per_day: int = Field(10, ge=1, le=1000)
    flat_time: time = TOPSTEP_AUTO_FLATTEN  # CT; an early close moves it to RTH close − 2 min
    no_new_entries_minutes: int = Field(10, ge=0, le=600)
    loss_buffer_usd: float = Field(100.0, ge=0)
    # Round-trip fee estimates per contract when the caller passes none (conservative: TopstepX
    # charges less than this for ES/NQ and MES/MNQ).
    round_trip_fee_mini_usd: float = Field(5.0, ge=0)
    round_trip_fee_micro_usd: float = Field(1.5, ge=0)
    # The trading window: RTH (the default: 08:30 CT to the RTH close), or ETH (`fabio run
    # --eth`: from the Globex open at 17:00 CT the evening before the trade date). The flat time
    # and the no-new-entries minutes before it bound both.
    trading_session: SessionKind = SessionKind.RTH

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, data: Any) -> Any:
        """Default the balance and the daily limit to the chosen preset's values."""
        if not isinstance(data, dict):
            return data
        preset = PRESETS.get(str(data.get("preset", "50K")))
        if preset is None:
            return data  # the Literal check reports the bad preset
        filled = dict(data)
        if filled.get("account_balance") is None:
            filled["account_balance"] = preset.size_usd
        if filled.get("daily_loss_limit_usd") is None:
            filled["daily_loss_limit_usd"] = preset.daily_loss_usd
        return filled

    @model_validator(mode="after")
    def _check(self) -> RiskConfig:
        p = self.limits
        if self.daily_loss_limit_usd > p.daily_loss_usd:
            raise ValueError(
                f"daily_loss_limit_usd {self.daily_loss_limit_usd:,.2f} exceeds the {p.name} "
                f"account's {p.daily_loss_usd:,.2f}: a personal limit may only be stricter"
            )
        if self.loss_buffer_usd >= min(self.daily_loss_limit_usd, p.max_loss_usd):
            raise ValueError("loss_buffer_usd must be smaller than the daily and maximum loss")
        if self.account_balance <= p.max_loss_usd:
            raise ValueError("account_balance must exceed the maximum loss limit")
        if self.flat_time > TOPSTEP_AUTO_FLATTEN:
            raise ValueError("flat_time must be at or before 15:08 CT (TopStep auto-flattens)")
        return self

    @property
    def limits(self) -> AccountPreset:
        return PRESETS[self.preset]


class TradingState(StrEnum):
    """NautilusTrader's trading states."""

    ACTIVE = "active"
    REDUCING = "reducing"  # exits only
    HALTED = "halted"  # flatten, nothing new


class HaltKind(StrEnum):
    """Why HALTED, which decides what lifts it."""

    DAILY = "daily"  # daily loss limit: lifted by the next trade date
    KILL = "kill"  # operator or a corrupt input: lifted by `resume`
    BREACH = "breach"  # maximum loss reached: never lifted


_SEVERITY = {None: 0, HaltKind.DAILY: 1, HaltKind.KILL: 2, HaltKind.BREACH: 3}


@dataclass(frozen=True, slots=True)
class SizeResult:
    qty: int
    risk_usd: float
    reason: str


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str
    qty: int


def _usd(x: float) -> str:
    return f"${x:,.2f}"


def _hm(ns: int) -> str:
    return ns_to_datetime(ns).strftime("%H:%M") + " CT"


def _hms(ns: int) -> str:
    return ns_to_datetime(ns).strftime("%Y-%m-%d %H:%M:%S") + " CT"


def _as_date(d: date | str) -> date:
    if isinstance(d, datetime):
        return d.date()
    return d if isinstance(d, date) else date.fromisoformat(str(d))


def _finite_positive(x: float) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def _milli(minis: float) -> int:
    """Minis in thousandths, so that 10 micros are exactly one mini."""
    return round(minis * 1000)


@dataclass(frozen=True, slots=True)
class KillSwitch:
    """The engaged kill switch: why, who (cli, dashboard, risk), and when (UTC ns)."""

    reason: str
    source: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class _Window:
    session: Session
    flat_ns: int
    cutoff_ns: int  # no new entries from here


@dataclass(slots=True)
class SymbolExposure:
    """One symbol's share of the account: what it holds and what it has in flight."""

    milli_per_contract: int  # one contract in thousandths of a mini (a micro: 100)
    contracts: int = 0  # the open position, unsigned
    working: int = 0  # contracts of an entry order at the venue, not filled yet
    reserved: int = 0  # contracts of entries checked and not yet journaled (being sent)
    reservations: int = 0  # how many such entries
    reserved_risk_usd: float = 0.0  # their worst case to the stop
    open_trades: int = 0  # trades entered and not closed (a pending entry counts)
    unrealized_usd: float = 0.0  # open P&L of the position, net of the fees paid
    open_risk_usd: float = 0.0  # what the position and its working entry still lose to the stop

    @property
    def milli(self) -> int:
        """Every contract this symbol holds or may hold, in thousandths of a mini."""
        return (self.contracts + self.working + self.reserved) * self.milli_per_contract


@dataclass(frozen=True, slots=True)
class ExposureTotals:
    """The account's exposure summed over every symbol (what the account-level checks use)."""

    minis: float
    open_trades: int
    unrealized_usd: float  # net over the symbols
    open_losses_usd: float  # the symbols' open losses only (<= 0): one's gain offsets nothing
    open_risk_usd: float


class AccountExposure:
    """Every symbol's open position and entries in flight, for the account-level limits.

    Each symbol's execution engine reports its position (`update`, after every record it folds)
    and its open P&L (`mark`); an entry is reserved by the check that allows it
    (`RiskEngine.reserve_entry`, check and reservation under one lock) and stays reserved until
    its entry record turns it into a working order (`update(..., release=True)`) or the venue
    refuses it (`release`). So two symbols deciding in the same instant can never together take
    the account past its limits.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._symbols: dict[str, SymbolExposure] = {}

    def _of(self, symbol: str, spec: InstrumentSpec) -> SymbolExposure:
        exp = self._symbols.get(symbol)
        if exp is None:
            exp = self._symbols[symbol] = SymbolExposure(_milli(spec.mini_equivalent))
        return exp

    def get(self, symbol: str) -> SymbolExposure | None:
        return self._symbols.get(symbol)

    def update(
        self,
        symbol: str,
        spec: InstrumentSpec,
        *,
        contracts: int,
        working: int,
        open_trades: int,
        unrealized_usd: float,
        open_risk_usd: float,
        release: bool = False,
    ) -> None:
        """The symbol's position as its journal now says; `release`: its reserved entry is now
        journaled (counted as `working` or `contracts`), so the reservation ends."""
        with self.lock:
            exp = self._of(symbol, spec)
            exp.contracts, exp.working = abs(contracts), max(working, 0)
            exp.open_trades = open_trades
            exp.unrealized_usd, exp.open_risk_usd = unrealized_usd, open_risk_usd
            if release:
                exp.reserved, exp.reservations, exp.reserved_risk_usd = 0, 0, 0.0

    def mark(
        self, symbol: str, spec: InstrumentSpec, unrealized_usd: float, risk_usd: float
    ) -> float:
        """Record the symbol's open P&L and risk to its stop; the account's open P&L."""
        with self.lock:
            exp = self._of(symbol, spec)
            exp.unrealized_usd, exp.open_risk_usd = unrealized_usd, risk_usd
            total = 0.0
            for e in self._symbols.values():
                total += e.unrealized_usd
            return total

    def reserve(self, symbol: str, spec: InstrumentSpec, qty: int, risk_usd: float) -> None:
        with self.lock:
            exp = self._of(symbol, spec)
            exp.reserved += qty
            exp.reservations += 1
            exp.reserved_risk_usd += risk_usd

    def release(self, symbol: str) -> None:
        """Drop the symbol's reserved entries (the venue refused, or it was never sent)."""
        with self.lock:
            exp = self._symbols.get(symbol)
            if exp is not None:
                exp.reserved, exp.reservations, exp.reserved_risk_usd = 0, 0, 0.0

    def totals(self) -> ExposureTotals:
        with self.lock:
            milli = trades = 0
            unrealized = losses = risk = 0.0
            for e in self._symbols.values():
                milli += e.milli
                trades += e.open_trades + e.reservations
                unrealized += e.unrealized_usd
                losses += min(e.unrealized_usd, 0.0)
                risk += e.open_risk_usd + e.reserved_risk_usd
            return ExposureTotals(milli / 1000, trades, unrealized, losses, risk)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per symbol, as JSON-ready values (for views and tests)."""
        with self.lock:
            return {s: asdict(e) for s, e in self._symbols.items()}


class RiskEngine:
    """Sizes and checks entries against the account limits; tracks balance, floor and state."""

    def __init__(self, config: RiskConfig | None = None, calendar: CmeCalendar | None = None):
        self.config = config or RiskConfig()
        self.calendar = calendar or cme_calendar()
        start = self.config.account_balance
        self.account = AccountState(
            starting_balance=start, balance=start, eod_high=start, day_start_balance=start
        )
        self.state = TradingState.ACTIVE
        self.halt_kind: HaltKind | None = None
        self.reducing_reason: str | None = None
        self.day_ended = False
        self.day_started_ns: int | None = None
        # Set by the journaled kill-switch events (the ledger folds them); no file I/O here.
        self.kill_switch: KillSwitch | None = None
        # The trading window of the last trade date asked about (every step asks).
        self._window_cache: tuple[tuple[object, ...], _Window] | None = None
        # Every symbol's position and entries in flight (one account, one limit).
        self.exposure = AccountExposure()

    # ----------------------------------------------------------------- derived values
    @property
    def limits(self) -> AccountPreset:
        return self.config.limits

    @property
    def floor(self) -> float:
        """The Maximum Loss Limit level: trails the EOD high, never above the starting balance."""
        a = self.account
        return min(a.eod_high - self.limits.max_loss_usd, a.starting_balance)

    @property
    def day_pnl(self) -> float:
        return self.account.day_realised

    @property
    def profit_target_reached(self) -> bool:
        a = self.account
        return a.balance - a.starting_balance >= self.limits.profit_target_usd

    @property
    def state_reason(self) -> str | None:
        if self.state is TradingState.HALTED:
            return self.account.halted_reason
        if self.state is TradingState.REDUCING:
            return self.reducing_reason
        return None

    def flat_time_ns(self, session: Session) -> int:
        """The flat time of a session: `flat_time` CT, or RTH close − 2 min on early closes."""
        flat = datetime_to_ns(datetime.combine(session.trade_date, self.config.flat_time, CHICAGO))
        if session.early_close:
            flat = min(flat, session.rth_close_ns - EARLY_CLOSE_MARGIN_NS)
        return flat

    def fee_estimate(self, spec: InstrumentSpec, qty: int) -> float:
        per = (
            self.config.round_trip_fee_micro_usd
            if spec.mini_equivalent < 1
            else self.config.round_trip_fee_mini_usd
        )
        return per * qty

    def contract_cap(self, spec: InstrumentSpec, open_minis: float = 0.0) -> int:
        """How many more contracts of `spec` fit under the position limit."""
        room = _milli(self.limits.max_minis) - _milli(open_minis)
        return max(0, room // _milli(spec.mini_equivalent))

    # ----------------------------------------------------------------- state changes
    def _halt(self, kind: HaltKind, reason: str) -> None:
        """HALTED, unless already halted for a graver cause (which keeps its reason)."""
        if self.state is TradingState.HALTED and _SEVERITY[self.halt_kind] >= _SEVERITY[kind]:
            return
        self.state = TradingState.HALTED
        self.halt_kind = kind
        self.account.halted_reason = reason

    def _reduce(self, reason: str) -> None:
        if self.state is TradingState.ACTIVE:
            self.state = TradingState.REDUCING
            self.reducing_reason = reason

    def kill(self, reason: str) -> None:
        """HALTED at once (operator); lasts until `resume`."""
        self._halt(HaltKind.KILL, f"killed: {reason}")

    def resume(self) -> bool:
        """Lift a `kill` or REDUCING; never a breach, nor a daily halt (the next day lifts it)."""
        if self.state is TradingState.HALTED and self.halt_kind is not HaltKind.KILL:
            return False
        self._set_active()
        return True

    def _set_active(self) -> None:
        self.state = TradingState.ACTIVE
        self.halt_kind = None
        self.reducing_reason = None
        self.account.halted_reason = None

    def engage_kill_switch(self, reason: str, source: str, ts_ns: int) -> None:
        """Flatten and halt until released (the execution engine journals the event)."""
        self.kill_switch = KillSwitch(reason, source, ts_ns)

    def release_kill_switch(self) -> None:
        self.kill_switch = None

    @property
    def kill_switch_engaged(self) -> bool:
        return self.kill_switch is not None

    def kill_switch_active(self) -> bool:
        return self.kill_switch is not None

    def kill_switch_status(self) -> dict[str, Any]:
        k = self.kill_switch
        if k is None:
            return {"engaged": False, "reason": "", "source": "", "ts_ns": None}
        return {"engaged": True, "reason": k.reason, "source": k.source, "ts_ns": k.ts_ns}

    # ----------------------------------------------------------------- days
    def start_day(self, trade_date: date | str, now_ns: int) -> bool:
        """Open a trade date: reset the day's P&L and trade count, lift a daily halt.

        The open day is ended first. An earlier or the same date changes nothing (returns False),
        so replaying a journal that also rolled days by time is harmless.
        """
        d = _as_date(trade_date)
        a = self.account
        current = None if a.trade_date is None else date.fromisoformat(a.trade_date)
        if current is not None and d <= current:
            return False
        if current is not None and not self.day_ended:
            self.end_day(current)
        a.trade_date = d.isoformat()
        a.day_start_balance = a.balance
        a.day_realised = 0.0
        a.trades_today = 0
        self.day_ended = False
        self.day_started_ns = now_ns
        if self.state is TradingState.REDUCING or self.halt_kind is HaltKind.DAILY:
            self._set_active()
        return True

    def end_day(self, trade_date: date | str) -> bool:
        """Close a trade date: the EOD high (and with it the trailing floor) may rise.

        Ending an earlier day, or the open day twice, changes nothing (returns False); a later
        day is started first (its trades are then already booked to the open day).
        """
        d = _as_date(trade_date)
        a = self.account
        current = None if a.trade_date is None else date.fromisoformat(a.trade_date)
        if current is not None and d < current:
            return False
        if current is None or d > current:
            self.start_day(d, _day_start_ns(self.calendar, d))
        if self.day_ended:
            return False
        a.eod_high = max(a.eod_high, a.balance)
        a.history.append(a.balance)
        self.day_ended = True
        return True

    def _roll(self, now_ns: int) -> None:
        """Move to the trade date of `now_ns` when it is later than the open one."""
        idx = self.calendar.latest_index_at(now_ns, SessionKind.ETH)
        if idx < 0:
            return
        d = self.calendar.trade_dates[idx]
        current = self.account.trade_date
        if current is None or d > date.fromisoformat(current):
            self.start_day(d, now_ns)

    # ----------------------------------------------------------------- trades and marks
    def on_trade_closed(self, net_pnl_usd: float, now_ns: int) -> None:
        """Book a closed trade (net of fees); halt on the daily limit or a breach."""
        self._roll(now_ns)
        self._apply_close(net_pnl_usd, now_ns)

    def _apply_close(self, net_pnl_usd: float, now_ns: int) -> None:
        a = self.account
        a.trades_today += 1
        if not (isinstance(net_pnl_usd, int | float) and math.isfinite(net_pnl_usd)):
            self._halt(HaltKind.KILL, f"non-finite trade P&L {net_pnl_usd!r} at {_hms(now_ns)}")
            return
        a.balance += net_pnl_usd
        a.day_realised += net_pnl_usd
        floor = self.floor
        if a.balance <= floor + _EPS_USD:
            self._halt(
                HaltKind.BREACH,
                f"account breached: balance {_usd(a.balance)} at or below the maximum-loss "
                f"floor {_usd(floor)} at {_hms(now_ns)}",
            )
        elif -a.day_realised >= self.config.daily_loss_limit_usd - _EPS_USD:
            self._halt(
                HaltKind.DAILY,
                f"daily loss limit: day loss {_usd(-a.day_realised)} reached "
                f"{_usd(self.config.daily_loss_limit_usd)} on {a.trade_date}; halted for the day",
            )

    def mark(self, unrealized_usd: float, now_ns: int) -> str | None:
        """Check the limits with open P&L; return a reason to flatten now, else None."""
        self._roll(now_ns)
        a = self.account
        if not (isinstance(unrealized_usd, int | float) and math.isfinite(unrealized_usd)):
            reason = f"open P&L unknown ({unrealized_usd!r}) at {_hms(now_ns)}: flatten"
            self._reduce(reason)
            return reason
        equity = a.balance + unrealized_usd
        day_loss = -(a.day_realised + unrealized_usd)
        floor, buf = self.floor, self.config.loss_buffer_usd
        limit = self.config.daily_loss_limit_usd
        if equity <= floor + _EPS_USD:
            reason = (
                f"account breached intraday: balance + open P&L {_usd(equity)} at or below the "
                f"maximum-loss floor {_usd(floor)} at {_hms(now_ns)}"
            )
            self._halt(HaltKind.BREACH, reason)
            return reason
        if day_loss >= limit - _EPS_USD:
            reason = (
                f"daily loss limit: realised + open loss {_usd(day_loss)} reached "
                f"{_usd(limit)} at {_hms(now_ns)}; halted for the day"
            )
            self._halt(HaltKind.DAILY, reason)
            return reason
        if equity <= floor + buf + _EPS_USD:
            reason = (
                f"near the maximum loss: balance + open P&L {_usd(equity)} within the buffer "
                f"{_usd(buf)} of the floor {_usd(floor)} at {_hms(now_ns)}: flatten, exits only"
            )
        elif day_loss >= limit - buf - _EPS_USD:
            reason = (
                f"near the daily loss limit: realised + open loss {_usd(day_loss)} within the "
                f"buffer {_usd(buf)} of {_usd(limit)} at {_hms(now_ns)}: flatten, exits only"
            )
        else:
            return None
        self._reduce(reason)
        return reason

    # ----------------------------------------------------------------- time
    def _window(self, now_ns: int) -> _Window | str:
        """The trading window of the trade date containing `now_ns`, or why there is none."""
        s = self.calendar.session_at(now_ns, SessionKind.ETH)
        if s is None:
            return f"market closed at {_hms(now_ns)} (daily break, weekend or holiday)"
        eth = self.config.trading_session is SessionKind.ETH
        key = (s.trade_date, self.config.flat_time, self.config.no_new_entries_minutes, eth)
        cached = self._window_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        flat = self.flat_time_ns(s)
        cutoff = flat - self.config.no_new_entries_minutes * NS_PER_MIN
        if not eth:
            cutoff = min(cutoff, s.rth_close_ns)
        window = _Window(s, flat, cutoff)
        self._window_cache = (key, window)
        return window

    def must_flatten(self, now_ns: int) -> str | None:
        """Why every position must be closed now (HALTED, kill switch, flat time), else None."""
        self._roll(now_ns)
        if self.state is TradingState.HALTED:
            return f"state HALTED: {self.account.halted_reason}"
        if self.kill_switch_active():
            return self._kill_switch_refusal()
        w = self._window(now_ns)
        if isinstance(w, str):
            return w
        if now_ns >= w.flat_ns:
            return f"flat time {_hm(w.flat_ns)} reached (now {_hms(now_ns)})"
        if self.config.trading_session is SessionKind.RTH and now_ns < w.session.rth_open_ns:
            return f"before the RTH open {_hm(w.session.rth_open_ns)}: no positions overnight"
        return None

    def flat_time_of(self, trade_date: date | str) -> int | None:
        """The flat time (UTC ns) of a trade date, or None when the calendar has no such date."""
        idx = self.calendar.index_on(_as_date(trade_date))
        return None if idx is None else self.flat_time_ns(self.calendar.session(idx))

    def trade_date_at(self, now_ns: int) -> date | None:
        """The CME trade date of `now_ns`: the one in progress, else the last one that opened
        (the daily break and a weekend belong to the trade date before them)."""
        idx = self.calendar.latest_index_at(now_ns, SessionKind.ETH)
        return None if idx < 0 else self.calendar.trade_dates[idx]

    def stale_position(self, position_date: date | str, now_ns: int) -> str | None:
        """Why a position of trade date `position_date` found open at `now_ns` (a restart) must
        be flattened, else None (it may be kept). TopStep's rule: flat by the flat time of its
        trade date, so a position from an earlier trade date, or held past the flat time, goes;
        one of the trade date in progress before its flat time stays, overnight (ETH) or not.
        The trade date is the CME one (from 17:00 CT the evening before), whatever the session
        the feed or the agent starts from."""
        held = _as_date(position_date)
        today = self.trade_date_at(now_ns)
        if today is not None and held < today:
            return (
                f"from trade date {held.isoformat()}, now {_hms(now_ns)} is in trade date "
                f"{today.isoformat()}: flat by the flat time of its own trade date"
            )
        flat = self.flat_time_of(held)
        if flat is not None and now_ns >= flat:
            return f"held past the flat time {_hm(flat)} of {held.isoformat()} (now {_hms(now_ns)})"
        return None

    def _kill_switch_refusal(self) -> str:
        k = self.kill_switch
        assert k is not None
        return f"kill switch engaged ({k.source}): {k.reason}"

    # ----------------------------------------------------------------- sizing
    def size(
        self,
        spec: InstrumentSpec,
        risk_fraction: float,
        stop_distance_ticks: float,
        open_minis: float = 0.0,
    ) -> SizeResult:
        """Contracts risking at most `risk_fraction` of the balance, capped by the position cap."""
        if not _finite_positive(risk_fraction) or risk_fraction > 1:
            return SizeResult(0, 0.0, f"risk_fraction {risk_fraction!r} must be in (0, 1]")
        if not _finite_positive(stop_distance_ticks):
            return SizeResult(0, 0.0, f"stop distance {stop_distance_ticks!r} ticks must be > 0")
        if not (math.isfinite(open_minis) and open_minis >= 0):
            return SizeResult(0, 0.0, f"open position {open_minis!r} minis must be >= 0")
        balance = self.account.balance
        budget = balance * risk_fraction
        per_contract = stop_distance_ticks * spec.tick_value
        raw = self.contracts_in_budget(spec, risk_fraction, stop_distance_ticks)
        if raw < 1:
            return SizeResult(
                0,
                0.0,
                f"one {spec.root} contract risks {_usd(per_contract)} "
                f"({stop_distance_ticks:g} ticks × {_usd(spec.tick_value)}), more than the budget "
                f"{_usd(budget)} (risk_fraction {risk_fraction:g} of balance {_usd(balance)})",
            )
        cap = self.contract_cap(spec, open_minis)
        qty = min(raw, cap)
        if qty < 1:
            return SizeResult(0, 0.0, self._contract_reason(spec, 1, open_minis))
        note = f"budget {_usd(budget)} allows {raw}"
        if qty < raw:
            note += f", capped at {qty} by the {self.limits.max_minis:g}-mini position limit"
        return SizeResult(qty, qty * per_contract, f"{qty} {spec.root}: {note}")

    def contracts_in_budget(
        self, spec: InstrumentSpec, risk_fraction: float, stop_distance_ticks: float
    ) -> int:
        """Contracts whose risk to the stop fits `risk_fraction` of the balance, before any
        account limit (position cap, daily loss, kill switch): 0 means the strategy's own risk
        fraction is too small for one contract ("sized out")."""
        budget = self.account.balance * risk_fraction
        per_contract = stop_distance_ticks * spec.tick_value
        if not (per_contract > 0 and math.isfinite(budget)):
            return 0
        return max(0, math.floor(budget / per_contract + 1e-9))

    # ----------------------------------------------------------------- entry check
    def check_entry(
        self,
        spec: InstrumentSpec,
        qty: int,
        stop_distance_ticks: float,
        now_ns: int,
        open_minis: float = 0.0,
        *,
        unrealized_usd: float = 0.0,
        open_risk_usd: float = 0.0,
        fees_usd: float | None = None,
        open_trades: int = 0,
    ) -> Verdict:
        """Allow or refuse one entry; a refusal names the rule and the numbers.

        `open_risk_usd` is what open positions would still lose to their stops; `open_trades`
        counts entries not yet closed (they count against the daily trade limit). Open gains
        are ignored: only open losses count against the limits.
        """
        bad = self._bad_inputs(qty, stop_distance_ticks, open_minis, unrealized_usd, open_risk_usd)
        if bad is None and fees_usd is not None and not (math.isfinite(fees_usd) and fees_usd >= 0):
            bad = f"fees {fees_usd!r} must be finite and >= 0"
        if bad is not None:
            return Verdict(False, f"invalid input: {bad}", 0)
        self._roll(now_ns)
        fees = self.fee_estimate(spec, qty) if fees_usd is None else fees_usd
        worst = qty * stop_distance_ticks * spec.tick_value + fees
        how = f"{qty} × {stop_distance_ticks:g} ticks × {_usd(spec.tick_value)} + fees {_usd(fees)}"
        loss_so_far = open_risk_usd - min(unrealized_usd, 0.0)
        checks: list[Callable[[], str | None]] = [
            self._check_state,
            lambda: self._check_time(now_ns),
            lambda: self._check_trades(open_trades),
            lambda: self._check_contracts(spec, qty, open_minis),
            lambda: self._check_max_loss(worst, how, loss_so_far),
            lambda: self._check_daily(worst, how, loss_so_far),
        ]
        for check in checks:
            refusal = check()
            if refusal is not None:
                return Verdict(False, refusal, 0)
        return Verdict(
            True,
            f"ok: {qty} {spec.root}, worst case {_usd(worst)} (fees {_usd(fees)}); floor "
            f"{_usd(self.floor)}, balance {_usd(self.account.balance)}, day P&L "
            f"{_usd(self.account.day_realised)}",
            qty,
        )

    def reserve_entry(
        self,
        symbol: str,
        spec: InstrumentSpec,
        qty: int,
        stop_distance_ticks: float,
        now_ns: int,
        *,
        fees_usd: float | None = None,
    ) -> Verdict:
        """`check_entry` against everything the account holds and has in flight over all its
        symbols (contracts in minis, open losses and risk to the stops, open trades), and when
        allowed, reserve the entry for `symbol` in the same step: until its entry record is
        folded (or `exposure.release`), the next check of any symbol counts it."""
        with self.exposure.lock:
            t = self.exposure.totals()
            verdict = self.check_entry(
                spec,
                qty,
                stop_distance_ticks,
                now_ns,
                t.minis,
                unrealized_usd=t.open_losses_usd,
                open_risk_usd=t.open_risk_usd,
                fees_usd=fees_usd,
                open_trades=t.open_trades,
            )
            if verdict.ok:
                fees = self.fee_estimate(spec, qty) if fees_usd is None else fees_usd
                worst = qty * stop_distance_ticks * spec.tick_value + fees
                self.exposure.reserve(symbol, spec, qty, worst)
            return verdict

    def open_minis(self) -> float:
        """Minis the account holds or has in flight, over every symbol."""
        return self.exposure.totals().minis

    @staticmethod
    def _bad_inputs(
        qty: int, stop: float, open_minis: float, unrealized: float, open_risk: float
    ) -> str | None:
        if not isinstance(qty, int) or isinstance(qty, bool) or qty < 1:
            return f"qty {qty!r} must be a whole number >= 1"
        if not _finite_positive(stop):
            return f"stop distance {stop!r} ticks must be finite and > 0"
        values = {"open_minis": open_minis, "open_risk_usd": open_risk}
        for name, value in values.items():
            if not (math.isfinite(value) and value >= 0):
                return f"{name} {value!r} must be finite and >= 0"
        if not math.isfinite(unrealized):
            return f"unrealized_usd {unrealized!r} must be finite"
        return None

    def _check_state(self) -> str | None:
        if self.state is TradingState.HALTED:
            return f"state HALTED (nothing new): {self.account.halted_reason}"
        if self.state is TradingState.REDUCING:
            return f"state REDUCING (exits only): {self.reducing_reason}"
        if self.kill_switch_active():
            return self._kill_switch_refusal()
        return None

    def _check_time(self, now_ns: int) -> str | None:
        w = self._window(now_ns)
        if isinstance(w, str):
            return w
        s, n = w.session, self.config.no_new_entries_minutes
        if now_ns >= w.flat_ns:
            return f"after the flat time {_hm(w.flat_ns)} (now {_hms(now_ns)})"
        if self.config.trading_session is SessionKind.ETH:
            # Globex: from the open at 17:00 CT the evening before to the entry cut-off.
            if now_ns >= w.cutoff_ns:
                return (
                    f"within {n} min of the flat time {_hm(w.flat_ns)}: no new entries from "
                    f"{_hm(w.cutoff_ns)} (now {_hms(now_ns)})"
                )
            return None
        if now_ns < s.rth_open_ns:
            return f"outside RTH: before the open {_hm(s.rth_open_ns)} (now {_hms(now_ns)})"
        if now_ns >= w.cutoff_ns and w.cutoff_ns < s.rth_close_ns:
            return (
                f"within {n} min of the flat time {_hm(w.flat_ns)}: no new entries from "
                f"{_hm(w.cutoff_ns)} (now {_hms(now_ns)})"
            )
        if now_ns >= s.rth_close_ns:
            return f"outside RTH: after the close {_hm(s.rth_close_ns)} (now {_hms(now_ns)})"
        return None

    def _check_trades(self, open_trades: int) -> str | None:
        a, limit = self.account, self.config.max_trades_per_day
        if a.trades_today + max(open_trades, 0) >= limit:
            return (
                f"max trades per day: {a.trades_today} closed + {open_trades} open today, "
                f"limit {limit}"
            )
        return None

    def _contract_reason(self, spec: InstrumentSpec, qty: int, open_minis: float) -> str:
        after = open_minis + qty * spec.mini_equivalent
        return (
            f"contract limit: {open_minis:g} minis open + {qty} {spec.root} × "
            f"{spec.mini_equivalent:g} = {after:g} minis > {self.limits.max_minis:g} max "
            f"({self.limits.name} account; micros count 10:1)"
        )

    def _check_contracts(self, spec: InstrumentSpec, qty: int, open_minis: float) -> str | None:
        if qty > self.contract_cap(spec, open_minis):
            return self._contract_reason(spec, qty, open_minis)
        return None

    def _check_max_loss(self, worst: float, how: str, loss_so_far: float) -> str | None:
        a, buf = self.account, self.config.loss_buffer_usd
        equity = a.balance - loss_so_far
        line = self.floor + buf
        if equity - worst < line - _EPS_USD:
            return (
                f"maximum loss: worst case {_usd(worst)} ({how}) would take "
                f"balance + open losses {_usd(equity)} to {_usd(equity - worst)}, below the floor "
                f"{_usd(self.floor)} + buffer {_usd(buf)} = {_usd(line)}"
            )
        return None

    def _check_daily(self, worst: float, how: str, loss_so_far: float) -> str | None:
        buf, limit = self.config.loss_buffer_usd, self.config.daily_loss_limit_usd
        day_loss = loss_so_far - self.account.day_realised
        if day_loss + worst > limit - buf + _EPS_USD:
            return (
                f"daily loss: day loss {_usd(day_loss)} + worst case {_usd(worst)} ({how}) = "
                f"{_usd(day_loss + worst)} exceeds the daily limit {_usd(limit)} "
                f"− buffer {_usd(buf)} = {_usd(limit - buf)}"
            )
        return None

    # ----------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        """Everything needed to restore the engine, as JSON-ready values."""
        return {
            "config": self.config.model_dump(mode="json"),
            "account": asdict(self.account),
            "state": self.state.value,
            "halt_kind": None if self.halt_kind is None else self.halt_kind.value,
            "reducing_reason": self.reducing_reason,
            "day_ended": self.day_ended,
            "day_started_ns": self.day_started_ns,
            "kill_switch": None if self.kill_switch is None else asdict(self.kill_switch),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], calendar: CmeCalendar | None = None) -> RiskEngine:
        engine = cls(RiskConfig.model_validate(data["config"]), calendar)
        acc = dict(data["account"])
        acc["history"] = [float(x) for x in acc.get("history", [])]
        engine.account = AccountState(**acc)
        engine.state = TradingState(data["state"])
        kind = data.get("halt_kind")
        engine.halt_kind = None if kind is None else HaltKind(kind)
        engine.reducing_reason = data.get("reducing_reason")
        engine.day_ended = bool(data.get("day_ended", False))
        engine.day_started_ns = data.get("day_started_ns")
        kill = data.get("kill_switch")
        engine.kill_switch = None if not kill else KillSwitch(**kill)
        return engine


def pnls_by_day(trades: Iterable[ClosedTrade]) -> dict[date, list[float]]:
    """Net P&L of closed trades grouped by trade date, in exit order (the input to `replay`)."""
    out: dict[date, list[tuple[int, float]]] = {}
    for t in trades:
        out.setdefault(date.fromisoformat(t.trade_date), []).append((t.exit_ns, t.net_pnl_usd))
    return {d: [p for _, p in sorted(v, key=lambda x: x[0])] for d, v in sorted(out.items())}


def replay(
    config: RiskConfig,
    closed_pnls_by_day: Mapping[date, Sequence[float]],
    *,
    open_day: date | None = None,
    calendar: CmeCalendar | None = None,
) -> RiskEngine:
    """Rebuild the engine from closed trades alone: every day is ended except `open_day`.

    Days without trades leave the balance, the EOD high and the floor unchanged, so skipping
    them is exact. Not rebuilt: a `kill` (operator state), the kill switch (journaled, folded by the
    ledger) and an intraday REDUCING from `mark` (the next `mark` re-evaluates it).
    """
    engine = RiskEngine(config, calendar)
    days = sorted(set(closed_pnls_by_day) | ({open_day} if open_day else set()))
    for d in days:
        start_ns = _day_start_ns(engine.calendar, d)
        engine.start_day(d, start_ns)
        for pnl in closed_pnls_by_day.get(d, ()):
            engine._apply_close(pnl, start_ns)
        if d != open_day:
            engine.end_day(d)
    return engine


def _day_start_ns(calendar: CmeCalendar, d: date) -> int:
    idx = calendar.index_on(d)
    if idx is not None:
        return int(calendar.eth_open[idx])
    prev = datetime.combine(d - timedelta(days=1), time(17, 0), CHICAGO)
    return datetime_to_ns(prev)
