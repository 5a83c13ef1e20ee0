"""Orders, fills, positions and closed trades (domain types). Prices in ticks, times in UTC ns,
money in USD.

An order's `id` is its client order id: unique per account (`f"{symbol}-{n}"`, numbered on from
the journal after a restart). A live venue sends it as its own tag (ProjectX `customTag`) and keeps
the venue's id in `venue_order_id`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"


class OrderStatus(StrEnum):
    """The order state machine (NautilusTrader-like, reduced to what a bracket needs)."""

    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def is_open(self) -> bool:
        return self in (OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)


class OrderRole(StrEnum):
    ENTRY = "entry"
    STOP = "stop"
    TARGET = "target"
    EXIT = "exit"  # a market exit: the brain's exit, the flat time, the kill switch


@dataclass(slots=True)
class Order:
    id: str
    symbol: str
    side: int  # +1 buy, -1 sell
    qty: int
    type: OrderType
    role: OrderRole
    strategy: str
    created_ns: int
    limit_ticks: int | None = None
    stop_ticks: int | None = None  # trigger price of a stop order
    parent_id: str | None = None  # a bracket child's entry order
    oco_group: str | None = None  # children cancelling each other
    status: OrderStatus = OrderStatus.SUBMITTED
    filled_qty: int = 0
    avg_fill_ticks: float | None = None
    reason: str = ""  # why rejected or cancelled
    venue_order_id: str | None = None  # the venue's own id (None on the simulated venue)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Fill:
    order_id: str
    symbol: str
    ts_ns: int
    side: int
    qty: int
    price_ticks: int
    commission_usd: float
    role: OrderRole
    strategy: str
    venue_fill_id: str | None = None  # the venue's id of this execution (deduplication)
    external: bool = False  # an execution of an order that is not ours (a manual trade)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class BracketRequest:
    """What the execution engine asks the broker for: an entry with an OCO stop and target."""

    symbol: str
    side: int
    qty: int
    strategy: str
    entry_type: OrderType  # market or limit
    stop_ticks: int  # absolute stop price (ticks)
    target_ticks: int  # absolute target price (ticks)
    limit_ticks: int | None = None


class OrderFactory(Protocol):
    """A broker's way to create (number, record, report) one new order."""

    def __call__(
        self,
        side: int,
        qty: int,
        type_: OrderType,
        role: OrderRole,
        strategy: str,
        now_ns: int,
        **prices: Any,
    ) -> Order: ...


def protection_orders(
    new: OrderFactory,
    *,
    side: int,
    qty: int,
    stop_ticks: int,
    target_ticks: int,
    strategy: str,
    now_ns: int,
    oco_group: str,
    parent_id: str | None = None,
) -> tuple[Order, Order]:
    """The stop and the target limit protecting a `side` position of `qty` (they trade the other
    side and cancel each other: one `oco_group`), held by `parent_id` when it is their entry."""
    stop = new(
        -side,
        qty,
        OrderType.STOP,
        OrderRole.STOP,
        strategy,
        now_ns,
        stop_ticks=stop_ticks,
        parent_id=parent_id,
        oco_group=oco_group,
    )
    target = new(
        -side,
        qty,
        OrderType.LIMIT,
        OrderRole.TARGET,
        strategy,
        now_ns,
        limit_ticks=target_ticks,
        parent_id=parent_id,
        oco_group=oco_group,
    )
    return stop, target


def bracket_orders(
    new: OrderFactory, req: BracketRequest, now_ns: int
) -> tuple[Order, Order, Order]:
    """The entry, stop and target of a bracket, created in that order (so numbered in sequence);
    the children are held by the entry and form the OCO group `<entry id>-oco`. Whether the
    request is valid is the broker's to say."""
    entry = new(
        req.side,
        req.qty,
        req.entry_type,
        OrderRole.ENTRY,
        req.strategy,
        now_ns,
        limit_ticks=req.limit_ticks if req.entry_type is OrderType.LIMIT else None,
    )
    stop, target = protection_orders(
        new,
        side=req.side,
        qty=req.qty,
        stop_ticks=req.stop_ticks,
        target_ticks=req.target_ticks,
        strategy=req.strategy,
        now_ns=now_ns,
        oco_group=f"{entry.id}-oco",
        parent_id=entry.id,
    )
    return entry, stop, target


@dataclass(slots=True)
class Position:
    symbol: str
    qty: int = 0  # signed: > 0 long, < 0 short
    avg_price_ticks: float = 0.0
    strategy: str | None = None
    regime: str | None = None
    entry_ns: int | None = None
    stop_ticks: int | None = None
    target_ticks: int | None = None
    initial_risk_ticks: int | None = None
    trade_id: str | None = None

    @property
    def side(self) -> str:
        return "long" if self.qty > 0 else ("short" if self.qty < 0 else "flat")


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """One round trip, from the first entry fill to the last exit fill."""

    trade_id: str
    symbol: str
    strategy: str
    regime: str | None
    side: int
    qty: int
    trade_date: str
    entry_ns: int
    exit_ns: int
    entry_price: float
    exit_price: float
    gross_pnl_usd: float
    fees_usd: float
    net_pnl_usd: float
    r_multiple: float | None
    exit_reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class AccountState:
    """Money as the risk engine tracks it."""

    starting_balance: float
    balance: float  # realised, after fees
    eod_high: float  # highest end-of-day balance (trails the maximum loss limit)
    day_start_balance: float
    day_realised: float = 0.0
    trades_today: int = 0
    trade_date: str | None = None
    halted_reason: str | None = None
    history: list[float] = field(default_factory=list)
