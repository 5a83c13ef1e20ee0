"""Ports: the interfaces between the agent and the outside world (ARCHITECTURE.md §2).

Domain layer, no I/O. Three ports:

- `Broker`: a trading venue. Calls are synchronous and return at once (the order as the venue
  has it so far, usually SUBMITTED or ACCEPTED); what happens next (accepted, rejected, partially
  filled, filled, cancelled, position changed) arrives later as typed `BrokerEvent`s that the
  execution engine takes with `drain_events()`. The simulated broker produces them while it is
  fed the tape; a live adapter does its network I/O in background tasks and queues the events
  its hub delivers. Every order carries a client order id (`Order.id`) unique per account; a
  live venue sends it as its own tag (ProjectX `customTag`). A bracket is an entry with an OCO
  stop and target; `protect` puts an OCO stop and target on a position that already exists
  (re-protection after a restart goes through it).
- `MarketFeed`: time-ordered batches of market data (file replay, synthetic, a live hub).
- `Clock`: the time the agent acts in: event time in a replay, the wall clock live.

A venue driven by our own tape (the simulated broker) is a `MarketDrivenBroker`; that is not
part of `Broker`, so nothing above the execution engine knows how fills are made.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from fabio.domain import LoadReport, MarketBatch, TradeBatch
from fabio.instruments import Contract
from fabio.orders import BracketRequest, Fill, Order, OrderRole, OrderStatus, OrderType


# ---------------------------------------------------------------------- broker events
@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """One status change of one order: accepted, rejected, partially filled, filled, cancelled.

    `fill` is set on (partially) filled updates: the quantity and price of this execution.
    The prices and links (`limit_ticks`, `parent_id`...) are reported on SUBMITTED updates.
    """

    ts_ns: int
    order_id: str
    symbol: str
    status: OrderStatus
    reason: str
    role: OrderRole
    order_type: OrderType
    side: int
    qty: int
    filled_qty: int
    strategy: str
    limit_ticks: int | None = None
    stop_ticks: int | None = None
    parent_id: str | None = None
    oco_group: str | None = None
    fill: Fill | None = None
    avg_fill_ticks: float | None = None

    @classmethod
    def of(
        cls, order: Order, ts_ns: int, reason: str = "", fill: Fill | None = None
    ) -> OrderUpdate:
        """The update reporting `order` as it is now (prices and links only while SUBMITTED)."""
        submitted = order.status is OrderStatus.SUBMITTED
        return cls(
            ts_ns=int(ts_ns),
            order_id=order.id,
            symbol=order.symbol,
            status=order.status,
            reason=reason,
            role=order.role,
            order_type=order.type,
            side=order.side,
            qty=order.qty,
            filled_qty=order.filled_qty,
            strategy=order.strategy,
            limit_ticks=order.limit_ticks if submitted else None,
            stop_ticks=order.stop_ticks if submitted else None,
            parent_id=order.parent_id if submitted else None,
            oco_group=order.oco_group if submitted else None,
            fill=fill,
            avg_fill_ticks=order.avg_fill_ticks if fill is not None else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields a journal record carries (`fill` flattened)."""
        out: dict[str, Any] = {
            "ts_ns": self.ts_ns,
            "order_id": self.order_id,
            "status": str(self.status),
            "reason": self.reason,
            "symbol": self.symbol,
            "role": str(self.role),
            "order_type": str(self.order_type),
            "side": self.side,
            "qty": self.qty,
            "filled_qty": self.filled_qty,
            "strategy": self.strategy,
        }
        if self.status is OrderStatus.SUBMITTED:
            out.update(
                limit_ticks=self.limit_ticks,
                stop_ticks=self.stop_ticks,
                parent_id=self.parent_id,
                oco_group=self.oco_group,
            )
        if self.fill is not None:
            out.update(
                fill_price_ticks=self.fill.price_ticks,
                fill_qty=self.fill.qty,
                commission_usd=self.fill.commission_usd,
                avg_fill_ticks=self.avg_fill_ticks,
            )
        return out


@dataclass(frozen=True, slots=True)
class PositionChanged:
    """The venue's position in one contract after a fill (signed quantity, average price)."""

    ts_ns: int
    symbol: str
    qty: int
    avg_price_ticks: float


@dataclass(frozen=True, slots=True)
class VenueRecovery:
    """A step a live venue adapter took on its own to keep the account safe or in step
    (a lost stop re-placed, leftover legs of a flat position cancelled): journaled as a
    `recovery` record."""

    ts_ns: int
    symbol: str
    what: str
    why: str
    order_id: str | None = None


BrokerEvent = OrderUpdate | PositionChanged | VenueRecovery


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    symbol: str
    qty: int  # signed: > 0 long
    avg_price_ticks: float


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """What the venue says about the account (a simulated venue: what it can know)."""

    account_id: str
    balance_usd: float | None
    can_trade: bool
    simulated: bool


# ---------------------------------------------------------------------- the broker port
@runtime_checkable
class Broker(Protocol):
    """A trading venue for one contract of one account (see the module docstring)."""

    symbol: str

    def submit_bracket(self, request: BracketRequest, now_ns: int) -> list[Order]:
        """Entry plus held OCO stop and target: [entry, stop, target], REJECTED if invalid."""
        ...

    def protect(
        self,
        *,
        side: int,
        qty: int,
        stop_ticks: int,
        target_ticks: int,
        strategy: str,
        now_ns: int,
    ) -> list[Order]:
        """A working OCO stop and target on an existing position of `side` (+1 long)."""
        ...

    def submit_exit(self, side: int, qty: int, strategy: str, now_ns: int, reason: str) -> Order:
        """Close at market (`side` is the exit order's side); the position's OCO is cancelled."""
        ...

    def modify(
        self, order_id: str, stop_ticks: int | None = None, limit_ticks: int | None = None
    ) -> Order:
        """Move an open stop's trigger or an open limit's price."""
        ...

    def cancel(self, order_id: str, reason: str, *, now_ns: int | None = None) -> Order:
        """Cancel an open order (no-op on a closed one)."""
        ...

    def cancel_all(self, reason: str, *, now_ns: int | None = None) -> list[Order]:
        """Cancel every open order of this contract."""
        ...

    def drain_events(self) -> list[BrokerEvent]:
        """Every event since the last drain, in the order the venue reported them."""
        ...

    def open_orders(self) -> list[Order]:
        """Orders that can fill now, oldest first."""
        ...

    def get_order(self, order_id: str) -> Order | None:
        """An order this session placed or learnt about, by client order id."""
        ...

    def positions(self) -> list[PositionSnapshot]:
        """Open positions as the venue has them."""
        ...

    def account(self) -> AccountSnapshot: ...


@runtime_checkable
class MarketDrivenBroker(Broker, Protocol):
    """A venue whose fills come from the tape we feed it (the simulated broker)."""

    def on_trades(self, trades: TradeBatch) -> list[Fill]:
        """Fill working orders against a time-ordered batch (events queue for `drain_events`)."""
        ...

    def settle_exits(self, price_ticks: int, ts_ns: int) -> list[Fill]:
        """Fill working market exits at the session's last print (no later trade will come)."""
        ...


# ---------------------------------------------------------------------- market data and time
@runtime_checkable
class MarketFeed(Protocol):
    """A source of time-ordered market data for one contract."""

    contract: Contract
    report: LoadReport

    def batches(self) -> Iterator[MarketBatch]:
        """Yield batches in time order; trades within a batch are time-ordered too."""
        ...


@runtime_checkable
class Clock(Protocol):
    """The agent's notion of now, in UTC nanoseconds."""

    def now_ns(self) -> int: ...
