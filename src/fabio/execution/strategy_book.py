"""The strategy book: `strategy_state` that really governs trading, changed only through guardrails.

`apply_strategy_updates` passes every change a brain proposes through the guardrails below and
returns one `StrategyChange` record per change, accepted or refused, with the reason (the caller
journals them; a restart replays the accepted ones). `can_trade` answers yes, or why not.

Guardrails (`GuardrailConfig`, docs/execution.md):
- bounds: risk_fraction ≤ `risk_fraction_cap` (0.01), stop and target ticks within sane ranges,
  max_trades_per_session and min_rr within ranges; a value beyond a bound is clamped to it;
- step: risk_fraction moves at most `max_risk_step` (0.002) and stop/target at most
  `max_ticks_step_share` (50 %) of their current value per update; a bigger move is clamped;
- judgement: raising a strategy's risk_fraction, or re-enabling a strategy the brain disabled, needs
  at least `min_trades_to_judge` (30) closed trades of it, its shadow trades included; disabling
  or cutting risk is always allowed (safety first);
- cooldown: one strategy changes at most once per `cooldown_sec` (15 min), except disabling and
  cutting risk;
- never a wider stop while the strategy has an open trade.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fabio.decision import StrategyTweak, StrategyUpdates
from fabio.strategies import STRATEGY_BOUNDS as _B
from fabio.strategies import StrategyParams, StrategyPerformance

NS = 1_000_000_000


class GuardrailConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    # Defaults are STRATEGY_BOUNDS (the one source of truth); a config may only tighten them.
    risk_fraction_cap: float = Field(_B["risk_fraction"][1], gt=0, le=_B["risk_fraction"][1])
    risk_fraction_floor: float = Field(_B["risk_fraction"][0], gt=0, le=_B["risk_fraction"][1])
    max_risk_step: float = Field(0.002, gt=0, le=0.05)
    stop_ticks_range: tuple[int, int] = (int(_B["stop_ticks"][0]), int(_B["stop_ticks"][1]))
    target_ticks_range: tuple[int, int] = (int(_B["target_ticks"][0]), int(_B["target_ticks"][1]))
    max_ticks_step_share: float = Field(0.5, gt=0, le=5)
    max_trades_range: tuple[int, int] = (
        int(_B["max_trades_per_session"][0]),
        int(_B["max_trades_per_session"][1]),
    )
    min_rr_range: tuple[float, float] = _B["min_rr"]
    min_trades_to_judge: int = Field(30, ge=0)
    cooldown_sec: float = Field(900.0, ge=0)


@dataclass(frozen=True, slots=True)
class StrategyChange:
    """One proposed change of one parameter, and what the book did with it."""

    ts_ns: int
    strategy: str
    field: str
    old: Any
    proposed: Any
    new: Any
    accepted: bool
    reason: str
    source: str

    def to_record(self) -> dict[str, Any]:
        return {"type": "strategy_change", **asdict(self)}


@dataclass(frozen=True, slots=True)
class TradePermission:
    ok: bool
    reason: str


class StrategyBook:
    """Per-strategy parameters and per-session counters."""

    def __init__(
        self, defaults: dict[str, StrategyParams], guardrails: GuardrailConfig | None = None
    ) -> None:
        self.strategy_state: dict[str, StrategyParams] = dict(defaults)
        # The parameters the strategies started from (the playbook or STRATEGIES_FILE): a
        # sized-out strategy that earns its way back returns to its initial risk_fraction.
        self.defaults: dict[str, StrategyParams] = dict(defaults)
        self.guardrails = guardrails or GuardrailConfig()
        self.trades_this_session: dict[str, int] = {}
        self.last_change_ns: dict[str, int] = {}
        self.disabled_by_brain: set[str] = set()
        self.active: set[str] | None = None  # None: every enabled strategy may trade

    # ---------------------------------------------------------------- trading permission
    def can_trade(self, strategy: str) -> TradePermission:
        params = self.strategy_state.get(strategy)
        if params is None:
            return TradePermission(False, f"unknown strategy {strategy}")
        if not params.enabled:
            return TradePermission(False, f"{strategy} is disabled")
        if self.active is not None and strategy not in self.active:
            return TradePermission(False, f"{strategy} is not among the active strategies")
        used = self.trades_this_session.get(strategy, 0)
        if used >= params.max_trades_per_session:
            return TradePermission(
                False, f"{strategy} used its {params.max_trades_per_session} trades this session"
            )
        return TradePermission(True, "ok")

    def record_entry(self, strategy: str) -> None:
        self.trades_this_session[strategy] = self.trades_this_session.get(strategy, 0) + 1

    def new_session(self) -> None:
        self.trades_this_session.clear()

    # ---------------------------------------------------------------- updates
    def apply_strategy_updates(
        self,
        updates: StrategyUpdates,
        now_ns: int,
        performance: dict[str, StrategyPerformance] | None = None,
        open_strategies: set[str] | None = None,
        source: str = "brain",
    ) -> list[StrategyChange]:
        """Pass each proposed change through the guardrails; apply the accepted ones."""
        known = [s for s in updates.active_strategies if s in self.strategy_state]
        if updates.active_strategies or known:
            self.active = set(known)
        records: list[StrategyChange] = []
        for tweak in updates.strategy_tweaks:
            records.extend(
                self._apply_tweak(
                    tweak, now_ns, performance or {}, open_strategies or set(), source
                )
            )
        return records

    def apply_change(self, change: StrategyChange) -> None:
        """Apply an accepted change (also used to replay the journal on restart)."""
        if not change.accepted or change.strategy not in self.strategy_state:
            return
        params = self.strategy_state[change.strategy]
        self.strategy_state[change.strategy] = params.model_copy(update={change.field: change.new})
        self.last_change_ns[change.strategy] = change.ts_ns
        if change.field == "enabled":
            if change.new is False:
                self.disabled_by_brain.add(change.strategy)
            else:
                self.disabled_by_brain.discard(change.strategy)

    def _apply_tweak(
        self,
        tweak: StrategyTweak,
        now_ns: int,
        performance: dict[str, StrategyPerformance],
        open_strategies: set[str],
        source: str,
    ) -> list[StrategyChange]:
        name = tweak.name
        out: list[StrategyChange] = []
        params = self.strategy_state.get(name)
        for fld, proposed in tweak.changes.as_dict().items():
            if params is None:
                out.append(
                    StrategyChange(
                        now_ns, name, fld, None, proposed, None, False, "unknown strategy", source
                    )
                )
                continue
            old = getattr(params, fld)
            new, accepted, reason = self._judge(
                name, fld, old, proposed, now_ns, performance.get(name), name in open_strategies
            )
            change = StrategyChange(
                now_ns,
                name,
                fld,
                old,
                proposed,
                new,
                accepted,
                reason + (f" ({tweak.reason})" if tweak.reason else ""),
                source,
            )
            self.apply_change(change)
            params = self.strategy_state[name]
            out.append(change)
        return out

    def _judge(
        self,
        name: str,
        fld: str,
        old: Any,
        proposed: Any,
        now_ns: int,
        perf: StrategyPerformance | None,
        has_open_trade: bool,
    ) -> tuple[Any, bool, str]:
        """(value to apply, accepted, reason)."""
        g = self.guardrails
        # The evidence to judge by: closed trades, and the shadow trades learning judges a
        # disabled or sized-out strategy on (they are what it earns its way back with).
        trades = perf.trades + int(perf.shadow.get("trades", 0)) if perf is not None else 0
        safer = (fld == "enabled" and proposed is False) or (
            fld == "risk_fraction" and proposed < old
        )
        if proposed == old:
            return old, False, "no change"
        last = self.last_change_ns.get(name)
        if not safer and last is not None and now_ns - last < g.cooldown_sec * NS:
            wait = (g.cooldown_sec * NS - (now_ns - last)) / NS
            return (
                old,
                False,
                f"cooldown: {name} changed {((now_ns - last) / NS):.0f} s ago, "
                f"wait {wait:.0f} s more",
            )
        if fld == "enabled":
            if proposed and name in self.disabled_by_brain and trades < g.min_trades_to_judge:
                return (
                    old,
                    False,
                    (
                        f"re-enabling needs {g.min_trades_to_judge} closed or shadow "
                        f"trades to judge {name} (has {trades})"
                    ),
                )
            return proposed, True, "accepted"
        if fld == "risk_fraction":
            return self._judge_risk(old, float(proposed), trades)
        if fld in ("stop_ticks", "target_ticks"):
            return self._judge_ticks(fld, int(old), int(proposed), has_open_trade)
        if fld == "max_trades_per_session":
            return self._clamp(int(proposed), g.max_trades_range)
        if fld == "min_rr":
            return self._clamp(float(proposed), g.min_rr_range)
        return old, False, f"unknown parameter {fld}"

    def _judge_risk(self, old: float, proposed: float, trades: int) -> tuple[Any, bool, str]:
        g = self.guardrails
        if proposed > old and trades < g.min_trades_to_judge:
            return (
                old,
                False,
                (
                    f"raising risk needs {g.min_trades_to_judge} closed or shadow trades "
                    f"to judge (has {trades})"
                ),
            )
        new = min(max(proposed, old - g.max_risk_step), old + g.max_risk_step)
        new = min(max(new, g.risk_fraction_floor), g.risk_fraction_cap)
        new = round(new, 6)
        if new == old:
            return old, False, f"clamped to the current value by the cap {g.risk_fraction_cap}"
        note = (
            "accepted"
            if new == proposed
            else (f"clamped from {proposed} (step ≤ {g.max_risk_step}, cap {g.risk_fraction_cap})")
        )
        return new, True, note

    def _judge_ticks(
        self, fld: str, old: int, proposed: int, has_open_trade: bool
    ) -> tuple[Any, bool, str]:
        g = self.guardrails
        if fld == "stop_ticks" and proposed > old and has_open_trade:
            return old, False, "never a wider stop while the strategy has an open trade"
        step = max(1, int(old * g.max_ticks_step_share))
        new = min(max(proposed, old - step), old + step)
        bounds = g.stop_ticks_range if fld == "stop_ticks" else g.target_ticks_range
        new, _, _ = self._clamp(new, bounds)
        if new == old:
            return old, False, "clamped to the current value"
        return (
            new,
            True,
            "accepted"
            if new == proposed
            else (f"clamped from {proposed} (step ≤ {step} ticks, range {bounds})"),
        )

    @staticmethod
    def _clamp(value: Any, bounds: tuple[Any, Any]) -> tuple[Any, bool, str]:
        lo, hi = bounds
        new = min(max(value, lo), hi)
        return new, True, "accepted" if new == value else f"clamped from {value} to {bounds}"
