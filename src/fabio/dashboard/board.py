"""What the dashboard shows for one symbol: a fold over typed events and journal records.

The board never reads an agent's objects. Every typed event (`fabio.events`, read back from a
journal line or received from a running agent's bus) goes into the `AgentStatus` read model
(prices, value area, connections, risk state, kill switch) and into the same `Ledger` a restart
uses (positions, P&L, strategy state, the risk account: exactly what the agent would rebuild).
The brain's exchanges (`llm_exchanges.jsonl`: regime, reasoning, notes, tokens, cost) add the
rest. Each fold returns the Socket.IO events it causes, so a view can forward them as they
happen; prices are batched into the once-a-second `status` event.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fabio.errors import FabioError
from fabio.events import Event, parse_record
from fabio.execution.ledger import Ledger
from fabio.execution.risk import RiskConfig, RiskEngine
from fabio.instruments import InstrumentSpec
from fabio.status import AgentStatus
from fabio.strategies import StrategyParams

CHICAGO = ZoneInfo("America/Chicago")
NS = 1_000_000_000
MAX_DECISIONS = 60  # shown on the page; the journal keeps every one
MAX_POINTS = 1500  # chart points per symbol (one per decision or summary, thinned when full)
MAX_MARKERS = 300

Emitted = list[tuple[str, dict[str, Any]]]


def _wall_seconds(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _chicago_date(epoch_sec: float) -> date:
    return datetime.fromtimestamp(epoch_sec, UTC).astimezone(CHICAGO).date()


@dataclass(slots=True)
class LlmUsage:
    """Brain calls, tokens and cost on one Chicago trade date (wall clock)."""

    day: date | None = None
    decisions: int = 0
    llm_calls: int = 0
    fallbacks: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, rec: dict[str, Any], wall: float | None) -> None:
        day = _chicago_date(wall) if wall is not None else self.day
        if day != self.day:
            self.day = day
            self.decisions = self.llm_calls = self.fallbacks = 0
            self.prompt_tokens = self.completion_tokens = self.cached_tokens = 0
            self.cost_usd = 0.0
        tokens = rec.get("tokens") or {}
        self.decisions += 1
        self.llm_calls += 1 if rec.get("brain") == "llm" else 0
        self.fallbacks += 1 if rec.get("fallback_reason") else 0
        self.prompt_tokens += int(tokens.get("prompt") or 0)
        self.completion_tokens += int(tokens.get("completion") or 0)
        self.cached_tokens += int(tokens.get("cached") or 0)
        self.cost_usd += float(rec.get("cost_usd") or 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat() if self.day else None,
            "decisions": self.decisions,
            "llm_calls": self.llm_calls,
            "fallbacks": self.fallbacks,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "cost_usd": round(self.cost_usd, 6),
        }


@dataclass(slots=True)
class Chart:
    """Price and the value area over market time, thinned to at most MAX_POINTS."""

    t: list[int] = field(default_factory=list)
    price: list[float] = field(default_factory=list)
    poc: list[float | None] = field(default_factory=list)
    vah: list[float | None] = field(default_factory=list)
    val: list[float | None] = field(default_factory=list)

    def add(
        self, ts_ns: int, price: float, poc: float | None, vah: float | None, val: float | None
    ) -> bool:
        if self.t and ts_ns <= self.t[-1]:
            return False
        if len(self.t) >= MAX_POINTS:  # keep the recent half whole, thin the older half
            half = MAX_POINTS // 2
            self.t[:half] = self.t[:half:2]
            self.price[:half] = self.price[:half:2]
            self.poc[:half] = self.poc[:half:2]
            self.vah[:half] = self.vah[:half:2]
            self.val[:half] = self.val[:half:2]
        self.t.append(ts_ns)
        self.price.append(price)
        self.poc.append(poc)
        self.vah.append(vah)
        self.val.append(val)
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"t": self.t, "price": self.price, "poc": self.poc, "vah": self.vah, "val": self.val}


class SymbolBoard:
    """One symbol's dashboard state."""

    def __init__(
        self,
        symbol: str,
        spec: InstrumentSpec,
        risk_config: RiskConfig,
        strategies: dict[str, StrategyParams],
        source: str = "",
    ) -> None:
        self.symbol = symbol
        self.spec = spec
        self.source = source
        self.ledger = Ledger.new(spec, strategies, RiskEngine(risk_config), symbol=symbol)
        self.agent_status = AgentStatus(symbol=symbol)
        self.market_ts_ns: int | None = None
        self.last_price: float | None = None
        self.poc: float | None = None
        self.vah: float | None = None
        self.val: float | None = None
        self.regime: str | None = None
        self.market_state: str | None = None
        self.confidence: float | None = None
        self.active_strategies: list[str] = []
        self.last_tick_wall: float | None = None
        self.decisions: deque[dict[str, Any]] = deque(maxlen=MAX_DECISIONS)
        self.markers: deque[dict[str, Any]] = deque(maxlen=MAX_MARKERS)
        self.chart = Chart()
        self.llm = LlmUsage()
        self.problems: list[str] = []
        self.quiet = False  # catching up on history: fold only, build no events
        self._risk_key: tuple[Any, ...] = ()
        self._new_points: list[dict[str, Any]] = []

    # ---------------------------------------------------------------- folding
    def apply(self, rec: dict[str, Any], wall: float | None = None) -> Emitted:
        """Fold one journal record or bus event (as its record); the Socket.IO events it causes."""
        kind = rec.get("type")
        event: Event | None = None
        if kind != "llm_exchange":
            try:
                event = parse_record(rec)
            except (FabioError, KeyError, TypeError, ValueError) as exc:
                self.problems.append(f"{kind} record skipped: {type(exc).__name__}: {exc}")
                return []
        if event is not None:
            self.agent_status.apply(event)
            self.ledger.apply(event)
        handler = _FOLDS.get(str(kind))
        if handler is None:
            return self._risk_changed()
        return handler(self, rec, wall)

    def _exchange(self, rec: dict[str, Any], wall: float | None) -> Emitted:
        ctx = rec.get("context") or {}
        decision = rec.get("decision") or {}
        ma = decision.get("market_assessment") or {}
        ts = int(rec.get("market_time_ns") or 0)
        wall = _wall_seconds(rec.get("wall_time")) or wall
        self.llm.add(rec, wall)
        self.regime = ma.get("regime")
        self.market_state = ma.get("market_state")
        self.confidence = ma.get("confidence")
        updates = decision.get("strategy_updates") or {}
        self.active_strategies = list(updates.get("active_strategies") or [])
        price = ctx.get("price")
        profile = ctx.get("profile") or {}
        point = None
        if isinstance(price, int | float) and ts:
            self._mark(ts, float(price), wall)
            self.poc, self.vah, self.val = (
                profile.get("poc"),
                profile.get("vah"),
                profile.get("val"),
            )
            if self.chart.add(ts, float(price), self.poc, self.vah, self.val):
                point = self._point()
        item = {
            "ts_ns": ts,
            "time": rec.get("market_time"),
            "brain": rec.get("brain"),
            "trigger": rec.get("trigger"),
            "regime": self.regime,
            "market_state": self.market_state,
            "confidence": self.confidence,
            "reasoning": ma.get("reasoning"),
            "trade_decisions": decision.get("trade_decisions") or [],
            "strategy_tweaks": updates.get("strategy_tweaks") or [],
            "notes_to_future_self": decision.get("notes_to_future_self") or [],
            "rejected": rec.get("rejected") or [],
            "dropped": rec.get("dropped"),
            "fallback_reason": rec.get("fallback_reason"),
            "call_notes": rec.get("call_notes") or [],
            "cost_usd": rec.get("cost_usd"),
        }
        self.decisions.append(item)
        if self.quiet:
            return []
        out: Emitted = [
            (
                "decision",
                {
                    "symbol": self.symbol,
                    "decision": item,
                    "llm": self.llm.to_dict(),
                    "point": point,
                },
            )
        ]
        out.append(("trade_update", self.trade_update()))
        return out + self._risk_changed()

    def _fill(self, rec: dict[str, Any], wall: float | None) -> Emitted:
        price = self.spec.to_price(int(rec["price_ticks"]))
        ts = int(rec.get("ts_ns") or 0)
        self.markers.append(
            {
                "ts_ns": ts,
                "price": price,
                "side": int(rec.get("side") or 0),
                "kind": "entry" if rec.get("role") == "entry" else "exit",
                "qty": rec.get("qty"),
                "reason": rec.get("reason") or rec.get("role"),
                "trade_id": rec.get("trade_id"),
                "strategy": rec.get("strategy"),
            }
        )
        self._mark(ts, price, wall)
        if self.quiet:
            return []
        update = self.trade_update()
        update["fill"] = self.markers[-1]
        return [("trade_update", update), *self._risk_changed()]

    def _session(self, rec: dict[str, Any], wall: float | None) -> Emitted:
        """A trade date starts or ends; its end carries the day's summary."""
        if self.quiet:
            return []
        day = {
            "realized_usd": round(self.ledger.risk.account.day_realised, 2),
            "trades": self.ledger.risk.account.trades_today,
        }
        summary = {
            "symbol": self.symbol,
            "event": rec.get("event"),
            "trade_date": rec.get("trade_date"),
            **day,
            "balance_usd": round(self.ledger.risk.account.balance, 2),
            "trading_state": self.risk()["trading_state"],
        }
        return [("session", summary), *self._risk_changed()]

    def _price(self, rec: dict[str, Any], wall: float | None) -> Emitted:
        """`feature_summary` / `heartbeat` from a running agent's bus: sent with `status`."""
        ts = int(rec.get("market_ts_ns") or rec.get("ts_ns") or 0)
        price = rec.get("price", rec.get("last_price"))
        if not isinstance(price, int | float):
            if ts:
                self._mark(ts, None, wall)
            return []
        self._mark(ts, float(price), wall)
        if rec.get("type") == "feature_summary":
            self.poc, self.vah, self.val = rec.get("poc"), rec.get("vah"), rec.get("val")
        if self.chart.add(ts, float(price), self.poc, self.vah, self.val):
            self._new_points.append(self._point())
        return []

    def _bus_trade_update(self, rec: dict[str, Any], wall: float | None) -> Emitted:
        """A running agent's own `trade_update`: take its price; the journal has the rest."""
        price = rec.get("price")
        if isinstance(price, int | float) and rec.get("ts_ns"):
            self._mark(int(rec["ts_ns"]), float(price), wall)
        return []

    def _kill_switch(self, rec: dict[str, Any], wall: float | None) -> Emitted:
        return self._risk_changed(force=True)

    def _connection(self, rec: dict[str, Any], wall: float | None) -> Emitted:
        return [] if self.quiet else [("status", self.status())]

    def _mark(self, ts_ns: int, price: float | None, wall: float | None) -> None:
        if ts_ns and (self.market_ts_ns is None or ts_ns >= self.market_ts_ns):
            self.market_ts_ns = ts_ns
            if price is not None:
                self.last_price = price
        if wall is not None and (self.last_tick_wall is None or wall > self.last_tick_wall):
            self.last_tick_wall = wall

    def _point(self) -> dict[str, Any]:
        c = self.chart
        return {
            "t": c.t[-1],
            "price": c.price[-1],
            "poc": c.poc[-1],
            "vah": c.vah[-1],
            "val": c.val[-1],
        }

    def _risk_changed(self, force: bool = False) -> Emitted:
        if self.quiet:
            return []
        risk = self.risk()
        key = (
            risk["trading_state"],
            risk["reason"],
            risk["kill_switch"]["engaged"],
            risk["limits"]["room_daily_usd"],
            risk["limits"]["room_trailing_usd"],
            risk["limits"]["contracts_open"],
        )
        if key == self._risk_key and not force:
            return []
        self._risk_key = key
        return [("risk", risk)]

    # ---------------------------------------------------------------- views
    def position(self) -> dict[str, Any]:
        trade = self.ledger.position_of(self.symbol)
        if trade is None or trade.qty == 0:
            return {}
        unrealised = self.unrealised_usd()
        return {
            "side": "long" if trade.side > 0 else "short",
            "qty": abs(trade.qty),
            "entry": round(self.spec.to_price(trade.avg_entry), 6),
            "stop": self.spec.to_price(trade.stop_ticks),
            "target": self.spec.to_price(trade.target_ticks),
            "strategy": trade.strategy,
            "trade_id": trade.trade_id,
            "unrealized_usd": None if unrealised is None else round(unrealised, 2),
        }

    def unrealised_usd(self) -> float | None:
        trade = self.ledger.position_of(self.symbol)
        if trade is None or trade.qty == 0:
            return 0.0
        if self.last_price is None:
            return None
        ticks = self.last_price / self.spec.tick_size - trade.avg_entry
        return ticks * trade.qty * self.spec.tick_value

    def pnl(self) -> dict[str, Any]:
        risk = self.ledger.risk
        unrealised = self.unrealised_usd()
        return {
            "realized_today_usd": round(risk.account.day_realised, 2),
            "unrealized_usd": None if unrealised is None else round(unrealised, 2),
            "realized_total_usd": round(sum(t.net_pnl_usd for t in self.ledger.closed), 2),
            "balance_usd": round(risk.account.balance, 2),
            "closed_trades": len(self.ledger.closed),
        }

    def risk(self) -> dict[str, Any]:
        risk = self.ledger.risk
        unrealised = self.unrealised_usd() or 0.0
        daily = risk.config.daily_loss_limit_usd
        open_contracts = sum(abs(t.qty) for t in self.ledger.open_trades.values())
        open_minis = open_contracts * self.spec.mini_equivalent
        kill = risk.kill_switch_status()
        state = risk.state.value
        if kill["engaged"]:
            state = "kill_switch"
        return {
            "symbol": self.symbol,
            "trading_state": state,
            "engine_state": risk.state.value,
            "reason": kill["reason"] if kill["engaged"] else risk.state_reason,
            "kill_switch": kill,
            "limits": {
                "daily_loss_limit_usd": daily,
                "room_daily_usd": round(daily + risk.account.day_realised + unrealised, 2),
                "max_loss_usd": risk.limits.max_loss_usd,
                "floor_usd": round(risk.floor, 2),
                "room_trailing_usd": round(risk.account.balance + unrealised - risk.floor, 2),
                "max_contracts_minis": risk.limits.max_minis,
                "contracts_open": open_contracts,
                "contracts_room": risk.contract_cap(self.spec, open_minis),
                "trades_today": risk.account.trades_today,
                "max_trades_per_day": risk.config.max_trades_per_day,
            },
        }

    def strategies(self) -> list[dict[str, Any]]:
        perf = self.ledger.performance()
        sized_out = self.ledger.sized_out_strategies()
        rows = []
        for name, params in self.ledger.book.strategy_state.items():
            p = perf.get(name)
            rows.append(
                {
                    "name": name,
                    "enabled": params.enabled,
                    "sized_out": sized_out.get(name),
                    "risk_fraction": params.risk_fraction,
                    "active": name in self.active_strategies,
                    "trades": p.trades if p else 0,
                    "win_rate": p.win_rate if p else None,
                    "expectancy_r": p.avg_r if p else None,
                    "net_pnl": p.net_pnl if p else 0.0,
                }
            )
        return rows

    def trade_update(self) -> dict[str, Any]:
        """The spec's `trade_update` payload (plus what the page shows beside it)."""
        return {
            "symbol": self.symbol,
            "ts_ns": self.market_ts_ns,
            "price": self.last_price,
            "position": self.position(),
            "pnl": self.pnl(),
            "strategy_performance": {
                k: v.model_dump() for k, v in self.ledger.performance().items()
            },
            "active_strategies": list(self.active_strategies),
            "market_assessment": {
                "regime": self.regime,
                "market_state": self.market_state,
                "confidence": self.confidence,
            },
            "strategies": self.strategies(),
        }

    def tick_age_sec(self, now: float | None = None) -> float | None:
        if self.last_tick_wall is None:
            return None
        return max(0.0, (now if now is not None else time.time()) - self.last_tick_wall)

    def status(self, now: float | None = None) -> dict[str, Any]:
        age = self.tick_age_sec(now)
        return {
            "symbol": self.symbol,
            "source": self.source,
            "market_ts_ns": self.market_ts_ns,
            "price": self.last_price,
            "poc": self.poc,
            "vah": self.vah,
            "val": self.val,
            "tick_age_sec": None if age is None else round(age, 1),
            "connections": dict(self.agent_status.connections),
            "llm": self.llm.to_dict(),
        }

    def status_tick(self, now: float | None = None) -> dict[str, Any]:
        """The once-a-second `status` event, with the chart points gained since the last one."""
        points, self._new_points = self._new_points, []
        return {**self.status(now), "points": points}

    def snapshot(self) -> dict[str, Any]:
        """Everything the page needs to draw this symbol from nothing."""
        return {
            "symbol": self.symbol,
            "status": self.status(),
            "trade_update": self.trade_update(),
            "risk": self.risk(),
            "decisions": list(self.decisions),
            "chart": self.chart.to_dict(),
            "markers": list(self.markers),
            "problems": self.problems[-5:],
        }


_FOLDS = {
    "llm_exchange": SymbolBoard._exchange,
    "fill": SymbolBoard._fill,
    "session": SymbolBoard._session,
    "feature_summary": SymbolBoard._price,
    "heartbeat": SymbolBoard._price,
    "trade_update": SymbolBoard._bus_trade_update,
    "kill_switch": SymbolBoard._kill_switch,
    "connection_state": SymbolBoard._connection,
}
