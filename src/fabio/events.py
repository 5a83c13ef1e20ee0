"""Typed, versioned events: what the journals record and the event bus publishes.

Domain layer, no I/O. Every event is a frozen dataclass with a `type` tag; `to_record()` gives
the journal line (with `schema_version`) and `parse_record()` reads one back, so a restart and
`fabio state` read the journal through the same types the agent wrote it with.

Versions: records written before versioning have no `schema_version`; they carry the same
field names and read as version 0. A record with a version newer than `SCHEMA_VERSION` (written
by a newer Fabio) is refused with a `JournalVersionError` naming the version, never misread.
Records of a type this module does not know are returned as `None` and skipped by the folds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from fabio.errors import FabioError

SCHEMA_VERSION = 1

KillSource = Literal["cli", "dashboard", "risk", "restart"]
ShadowCause = Literal["disabled", "sized_out"]
ConnectionStatus = Literal["connecting", "connected", "reconnecting", "disconnected"]


class JournalVersionError(FabioError):
    """A journal record written by a newer version of Fabio."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event: its time and (when it concerns one) the contract."""

    type: ClassVar[str] = "event"
    journaled: ClassVar[bool] = True  # False: published on the bus only
    ts_ns: int
    symbol: str | None = None

    def to_record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "schema_version": SCHEMA_VERSION}
        for name in _field_names(type(self)):
            out[name] = getattr(self, name)
        return out


# ---------------------------------------------------------------------- execution journal
@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEvent(Event):
    """A trade date starts or ends."""

    type: ClassVar[str] = "session"
    event: Literal["start", "end"]
    trade_date: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyChangeEvent(Event):
    """A proposed strategy change, accepted or refused by the guardrails."""

    type: ClassVar[str] = "strategy_change"
    strategy: str
    field: str
    old: Any = None
    proposed: Any = None
    new: Any = None
    accepted: bool = False
    reason: str = ""
    source: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryEvent(Event):
    """An accepted entry: its bracket, initial risk and orders."""

    type: ClassVar[str] = "entry"
    trade_id: str
    strategy: str
    regime: str | None
    side: int
    qty: int
    entry_type: str
    entry_ref_ticks: int
    stop_ticks: int
    target_ticks: int
    risk_ticks: int
    risk_usd: float
    trade_date: str | None
    orders: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class FillEvent(Event):
    """One execution of one order of a trade."""

    type: ClassVar[str] = "fill"
    trade_id: str
    order_id: str
    side: int
    qty: int
    price_ticks: int
    commission_usd: float
    role: str
    strategy: str
    reason: str = ""
    venue_fill_id: str | None = None  # the venue's id of the execution: journaled once


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderEvent(Event):
    """An order's status change as the venue reported it, or a lifecycle step of ours.

    `event` is None for a venue status change, else e.g. `reprotected` (new protective orders
    after a restart, listed in `orders`).
    """

    type: ClassVar[str] = "order_event"
    trade_id: str | None = None
    order_id: str | None = None
    status: str | None = None
    reason: str = ""
    role: str | None = None
    order_type: str | None = None
    side: int | None = None
    qty: int | None = None
    filled_qty: int | None = None
    strategy: str | None = None
    limit_ticks: int | None = None
    stop_ticks: int | None = None
    parent_id: str | None = None
    oco_group: str | None = None
    fill_price_ticks: int | None = None
    fill_qty: int | None = None
    commission_usd: float | None = None
    avg_fill_ticks: float | None = None
    event: str | None = None
    orders: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryCancelledEvent(Event):
    type: ClassVar[str] = "entry_cancelled"
    trade_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BracketModifiedEvent(Event):
    type: ClassVar[str] = "bracket_modified"
    trade_id: str
    stop_ticks: int | None = None
    target_ticks: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionEvent(Event):
    """What the execution engine did with one trade decision of the brain."""

    type: ClassVar[str] = "decision"
    action: str
    strategy: str | None
    side: str | None
    accepted: bool
    reason: str
    trade_id: str | None = None
    qty: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class KillSwitchEvent(Event):
    """The kill switch engaged (flatten and halt) or released; who did it and why."""

    type: ClassVar[str] = "kill_switch"
    engaged: bool
    reason: str
    source: KillSource
    request_id: str | None = None  # set when another process (`fabio kill`) asked for it


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskStateEvent(Event):
    """The risk engine's trading state changed (active / reducing / halted)."""

    type: ClassVar[str] = "risk_state"
    state: str
    previous: str
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StalePositionEvent(Event):
    """A position found open from an earlier session (a crash) or past the flat time: it is
    flattened at once, and this says why."""

    type: ClassVar[str] = "stale_position"
    trade_id: str
    trade_date: str | None
    qty: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryEvent(Event):
    """A step that made the journal (or the venue) agree with the other (docs/live.md).

    `what`: `caught_up` (a fill made while no process ran), `manual_exit` (a position closed
    by a trade that is not ours), `closed_unexplained` (the venue is flat and no record says
    why), `adopted` (a position kept with its working stop and target), `stop_replaced`,
    `stop_lost_flatten`, `legs_cancelled`.
    """

    type: ClassVar[str] = "recovery"
    what: str
    why: str
    trade_id: str | None = None
    order_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class KillEvent(Event):
    """Legacy record (`kill`): an operator halt, read from old journals."""

    type: ClassVar[str] = "kill"
    reason: str = "kill switch"


@dataclass(frozen=True, slots=True, kw_only=True)
class ShadowTradeEvent(Event):
    """A paper trade of a strategy learning disabled, or of an enabled strategy whose own
    `risk_fraction` sizes the setup to zero contracts: what it would have made (R).

    `cause`: "disabled" or "sized_out" (records written before it read as "disabled")."""

    type: ClassVar[str] = "shadow_trade"
    strategy: str
    regime: str | None
    side: int
    trade_date: str
    entry_ns: int
    entry_ticks: int
    stop_ticks: int
    target_ticks: int
    exit_ticks: int
    exit_reason: str
    r_multiple: float
    cause: ShadowCause = "disabled"


@dataclass(frozen=True, slots=True, kw_only=True)
class LearningCarryEvent(Event):
    """What earlier accounts learned, inherited by a new account: their closed trades (for
    strategy statistics only), strategy state, shadow trades, re-/disable and risk-change times,
    and the notes to future self (`fabio new-account`; the backtest passes them beside).
    `archive`: where `fabio new-account` moved the previous account's journals."""

    type: ClassVar[str] = "learning_carry"
    trades: list[dict[str, Any]] = field(default_factory=list)
    shadow: list[dict[str, Any]] = field(default_factory=list)
    disabled_at: dict[str, int] = field(default_factory=dict)
    enabled_at: dict[str, int] = field(default_factory=dict)
    strategy_state: dict[str, dict[str, Any]] = field(default_factory=dict)
    disabled_by_brain: list[str] = field(default_factory=list)
    risk_changed_at: dict[str, int] = field(default_factory=dict)
    notes: list[dict[str, Any]] = field(default_factory=list)
    archive: str | None = None


def learning_carry_event(
    symbol: str | None, state: dict[str, Any], archive: str | None = None
) -> LearningCarryEvent:
    """The `learning_carry` record of a `Ledger.learning_state()` (with its `notes`, if any)."""
    names = set(_field_names(LearningCarryEvent)) - {"ts_ns", "symbol", "archive"}
    return LearningCarryEvent(
        ts_ns=0,
        symbol=symbol,
        archive=archive,
        **{k: v for k, v in state.items() if k in names},
    )


# ---------------------------------------------------------------------- agent events
@dataclass(frozen=True, slots=True, kw_only=True)
class TradeUpdate(Event):
    """The spec's `trade_update`: what a view shows after each decision (and at start)."""

    type: ClassVar[str] = "trade_update"
    journaled: ClassVar[bool] = False
    price: float | None = None
    position: dict[str, Any] = field(default_factory=dict)
    pnl: dict[str, float] = field(default_factory=dict)
    strategy_performance: dict[str, Any] = field(default_factory=dict)
    active_strategies: list[str] = field(default_factory=list)
    market_assessment: dict[str, Any] | None = None
    strategy_state: dict[str, Any] = field(default_factory=dict)
    sized_out: dict[str, str] = field(default_factory=dict)  # enabled, but no contract fits
    executions: list[dict[str, Any]] = field(default_factory=list)
    strategy_changes: list[dict[str, Any]] = field(default_factory=list)
    trading_state: str | None = None
    kill_switch: dict[str, Any] | None = None
    brain: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureSummary(Event):
    """A feature snapshot in a few numbers (for views; the full snapshot goes to the brain)."""

    type: ClassVar[str] = "feature_summary"
    journaled: ClassVar[bool] = False
    price: float
    poc: float | None = None
    vah: float | None = None
    val: float | None = None
    cvd: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat(Event):
    """The agent is alive; `market_ts_ns` is the last market time it processed."""

    type: ClassVar[str] = "heartbeat"
    journaled: ClassVar[bool] = False
    market_ts_ns: int
    last_price: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ShutdownEvent(Event):
    """The process stopped on a signal without flattening: `open_trade` keeps its stops."""

    type: ClassVar[str] = "shutdown"
    reason: str
    open_trade: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionState(Event):
    """A venue or feed connection changed state."""

    type: ClassVar[str] = "connection_state"
    journaled: ClassVar[bool] = False
    component: str
    status: ConnectionStatus
    detail: str = ""


EVENT_TYPES: tuple[type[Event], ...] = (
    ShutdownEvent,
    SessionEvent,
    StrategyChangeEvent,
    EntryEvent,
    FillEvent,
    OrderEvent,
    EntryCancelledEvent,
    BracketModifiedEvent,
    DecisionEvent,
    KillSwitchEvent,
    RiskStateEvent,
    StalePositionEvent,
    RecoveryEvent,
    KillEvent,
    ShadowTradeEvent,
    LearningCarryEvent,
    TradeUpdate,
    FeatureSummary,
    Heartbeat,
    ConnectionState,
)
_BY_TYPE: dict[str, type[Event]] = {cls.type: cls for cls in EVENT_TYPES}
_FIELDS: dict[type[Event], tuple[str, ...]] = {}


def _field_names(cls: type[Event]) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(cls))
        _FIELDS[cls] = names
    return names


def parse_record(record: dict[str, Any]) -> Event | None:
    """The typed event of a journal record; None for a type this version does not know.

    Unknown fields are ignored (a newer minor addition); a missing required field or a newer
    `schema_version` raises, with the record's type in the message.
    """
    version = record.get("schema_version", 0)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise JournalVersionError(
            f"a {record.get('type')!r} record has schema_version {version!r}; this Fabio reads "
            f"up to {SCHEMA_VERSION}: upgrade Fabio to read this journal"
        )
    cls = _BY_TYPE.get(str(record.get("type")))
    if cls is None:
        return None
    names = _field_names(cls)
    try:
        return cls(**{k: record[k] for k in names if k in record})
    except TypeError as exc:
        raise FabioError(f"a {cls.type!r} journal record is incomplete: {exc}") from None


Subscriber = Callable[[Event], None]


class EventBus:
    """Synchronous publish/subscribe of typed events (views, the dashboard, tests)."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> None:
        self._subscribers.append(callback)

    def publish(self, event: Event) -> None:
        for callback in self._subscribers:
            callback(event)
