"""`AgentStatus`: the read model every view shows (CLI live view, dashboard, `fabio state`).

Built only from typed events (`fabio.events`): a view subscribes to the event bus and folds
what it receives into an `AgentStatus`; it never reads the agent's objects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fabio.events import (
    ConnectionState,
    Event,
    FeatureSummary,
    FillEvent,
    Heartbeat,
    KillSwitchEvent,
    RiskStateEvent,
    TradeUpdate,
)


@dataclass(slots=True)
class KillSwitchStatus:
    engaged: bool = False
    reason: str = ""
    source: str = ""
    ts_ns: int | None = None


@dataclass(slots=True)
class AgentStatus:
    """What is known of one symbol's agent, from its events."""

    symbol: str | None = None
    market_ts_ns: int | None = None
    last_price: float | None = None
    poc: float | None = None
    vah: float | None = None
    val: float | None = None
    regime: str | None = None
    market_state: str | None = None
    position: dict[str, Any] = field(default_factory=dict)
    pnl: dict[str, float] = field(default_factory=dict)
    trading_state: str | None = None
    trading_state_reason: str | None = None
    kill_switch: KillSwitchStatus = field(default_factory=KillSwitchStatus)
    strategy_state: dict[str, Any] = field(default_factory=dict)
    strategy_performance: dict[str, Any] = field(default_factory=dict)
    sized_out: dict[str, str] = field(default_factory=dict)  # enabled, but no contract fits
    active_strategies: list[str] = field(default_factory=list)
    brain: dict[str, Any] = field(default_factory=dict)
    connections: dict[str, str] = field(default_factory=dict)
    fills: int = 0
    events: int = 0

    @property
    def risk_label(self) -> str:
        """One word for the risk line: `killed` wins over the engine's state."""
        if self.kill_switch.engaged:
            return "killed"
        return self.trading_state or "unknown"

    def apply(self, event: Event) -> None:
        """Fold one event (unknown kinds only count)."""
        self.events += 1
        if event.symbol is not None:
            self.symbol = self.symbol or event.symbol
        if isinstance(event, TradeUpdate):
            self._trade_update(event)
        elif isinstance(event, FeatureSummary):
            self.market_ts_ns = event.ts_ns
            self.last_price = event.price
            self.poc, self.vah, self.val = event.poc, event.vah, event.val
        elif isinstance(event, Heartbeat):
            self.market_ts_ns = event.market_ts_ns
            if event.last_price is not None:
                self.last_price = event.last_price
        elif isinstance(event, KillSwitchEvent):
            self.kill_switch = KillSwitchStatus(
                event.engaged, event.reason, event.source, event.ts_ns
            )
        elif isinstance(event, RiskStateEvent):
            self.trading_state = event.state
            self.trading_state_reason = event.reason
        elif isinstance(event, ConnectionState):
            self.connections[event.component] = event.status
        elif isinstance(event, FillEvent):
            self.fills += 1

    def _trade_update(self, event: TradeUpdate) -> None:
        if event.price is not None:
            self.last_price = event.price
            self.market_ts_ns = event.ts_ns
        if event.market_assessment:
            self.regime = event.market_assessment.get("regime")
            self.market_state = event.market_assessment.get("market_state")
        self.position = dict(event.position)
        self.pnl = dict(event.pnl)
        self.strategy_state = dict(event.strategy_state)
        self.strategy_performance = dict(event.strategy_performance)
        self.sized_out = dict(event.sized_out)
        self.active_strategies = list(event.active_strategies)
        if event.trading_state is not None:
            self.trading_state = event.trading_state
        if event.kill_switch is not None:
            self.kill_switch = KillSwitchStatus(**event.kill_switch)
        if event.brain:
            self.brain = dict(event.brain)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["risk_label"] = self.risk_label
        return out
