"""The simulated broker: the venue of backtests and paper sessions.

It implements the `Broker` port (fabio.ports) for one symbol: brackets (an entry with an OCO stop
and target), OCO, partial fills, commissions, ids and typed events. When and at what price the
tape fills an order is the `FillModel`'s (fill_model.py). Fill rules are
conservative on purpose: a resting limit fills only when a trade prints through it (by default),
a stop fills at the triggering trade worsened by a slippage, a market order at the next trade.
It follows the position (a venue does) but no P&L: the execution engine derives that from fills.

Speed: the tape arrives in numpy batches; the broker searches each working order's first
fillable trade with vectorised comparisons and jumps from event to event, so a batch with a
resting bracket costs a few array scans, not a Python loop over its trades.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fabio.domain import TradeBatch
from fabio.errors import FabioError
from fabio.execution.fill_model import FillModel, Tape
from fabio.instruments import InstrumentSpec
from fabio.orders import (
    BracketRequest,
    Fill,
    Order,
    OrderRole,
    OrderStatus,
    OrderType,
    bracket_orders,
    protection_orders,
)
from fabio.ports import (
    AccountSnapshot,
    BrokerEvent,
    OrderUpdate,
    PositionChanged,
    PositionSnapshot,
)

# Per side, per contract, exchange and clearing fees included (TopstepX-like round turns of
# about $2.80 for ES/NQ and $0.74 for MES/MNQ). Estimates: check them against the live fee
# schedule before trusting a backtest's net P&L to the cent.
DEFAULT_COMMISSION_PER_CONTRACT_USD: dict[str, float] = {
    "ES": 1.40,
    "NQ": 1.40,
    "MES": 0.37,
    "MNQ": 0.37,
}


class BrokerError(FabioError):
    """An order operation that cannot be done (unknown id, closed order, wrong field)."""


class SimBrokerConfig(BaseModel):
    """Fees and fill assumptions of the simulated venue."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    # root -> USD per side per contract; roots given here override the defaults, others keep them.
    commission_per_contract_usd: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_COMMISSION_PER_CONTRACT_USD)
    )
    # The slippage model: market and stop orders fill one tick against us by default (a stop
    # that gaps fills at the gap, then the slippage); limits fill only when traded through.
    limit_fill: Literal["through", "touch"] = "through"
    stop_slippage_ticks: int = Field(1, ge=0, le=1000)
    market_slippage_ticks: int = Field(1, ge=0, le=1000)

    @field_validator("commission_per_contract_usd")
    @classmethod
    def _merge_fees(cls, value: dict[str, float]) -> dict[str, float]:
        merged = dict(DEFAULT_COMMISSION_PER_CONTRACT_USD)
        for root, fee in value.items():
            if not math.isfinite(fee) or fee < 0:
                raise ValueError(f"commission for {root} must be a finite amount >= 0, got {fee}")
            merged[root.upper()] = float(fee)
        return merged

    def commission_for(self, root: str) -> float:
        """USD per side per contract for a product root."""
        try:
            return self.commission_per_contract_usd[root.upper()]
        except KeyError as exc:
            raise BrokerError(
                f"no commission configured for {root}: set commission_per_contract_usd"
            ) from exc


@dataclass(slots=True)
class _OcoGroup:
    """A stop and a target protecting the same contracts."""

    stop_id: str
    target_id: str
    entry_id: str | None  # None: protection put on an existing position (`protect`)
    base_qty: int = 0  # the protected quantity when there is no entry


class SimulatedBroker:
    """Backtest and paper venue for one symbol: brackets, OCO, partial fills, commissions.

    Order ids are `f"{symbol}-{n}"` with n counting from `id_prefix`: a restarted process passes
    the next unused number (see `next_id`) so that ids never repeat in its journal.
    """

    def __init__(
        self,
        spec: InstrumentSpec,
        symbol: str,
        config: SimBrokerConfig | None = None,
        *,
        id_prefix: int = 1,
    ) -> None:
        if id_prefix < 1:
            raise BrokerError(f"id_prefix (the next order number) must be >= 1, got {id_prefix}")
        self.spec = spec
        self.symbol = symbol
        self.config = config or SimBrokerConfig()
        self.fee_per_contract_usd = self.config.commission_for(spec.root)
        self.orders: dict[str, Order] = {}
        self._next_number = int(id_prefix)
        self._seq: dict[str, int] = {}
        self._active: dict[str, Order] = {}  # working orders (accepted or partially filled)
        self._groups: dict[str, _OcoGroup] = {}  # oco group -> its stop and target
        self._group_of_entry: dict[str, str] = {}
        self.fill_model = FillModel(
            self.config.limit_fill,
            self.config.stop_slippage_ticks,
            self.config.market_slippage_ticks,
        )
        self._events: list[BrokerEvent] = []
        self._position = 0  # signed contracts held, from the fills
        self._position_value = 0.0  # signed qty * price of the open position
        self._clock_ns = 0

    # ------------------------------------------------------------------ public API

    @property
    def next_id(self) -> int:
        """The number the next order id will carry (persist it to continue after a restart)."""
        return self._next_number

    def working(self) -> list[Order]:
        """Orders that can fill now, oldest first (held bracket children are not working)."""
        return sorted(self._active.values(), key=lambda o: self._seq[o.id])

    def open_orders(self) -> list[Order]:
        """The port's name for `working()`."""
        return self.working()

    def get_order(self, order_id: str) -> Order | None:
        return self.orders.get(order_id)

    def positions(self) -> list[PositionSnapshot]:
        if self._position == 0:
            return []
        return [
            PositionSnapshot(self.symbol, self._position, self._position_value / self._position)
        ]

    def account(self) -> AccountSnapshot:
        """A simulated venue keeps no money: the risk engine's ledger does."""
        return AccountSnapshot(
            account_id=f"sim-{self.symbol}", balance_usd=None, can_trade=True, simulated=True
        )

    def drain_events(self) -> list[BrokerEvent]:
        """Every status change since the last drain, in the order they happened."""
        events, self._events = self._events, []
        return events

    def submit_bracket(self, req: BracketRequest, now_ns: int) -> list[Order]:
        """Place an entry with a held OCO stop and target; all three REJECTED if invalid."""
        self._tick(now_ns)
        entry, stop, target = bracket_orders(self._new_order, req, now_ns)
        group = f"{entry.id}-oco"
        bracket = [entry, stop, target]
        error = self._bracket_error(req)
        if error is not None:
            for order in bracket:
                self._set_status(order, OrderStatus.REJECTED, now_ns, error)
            return bracket
        self._groups[group] = _OcoGroup(stop.id, target.id, entry.id)
        self._group_of_entry[entry.id] = group
        self._accept(entry, now_ns)
        return bracket

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
        """Put a working OCO stop and target on an existing position (e.g. after a restart).

        `side` is the position's side (+1 long); both orders are REJECTED if invalid.
        """
        self._tick(now_ns)
        group = f"{self.symbol}-{self._next_number}-oco"  # after its stop (a bracket: its entry)
        stop, target = protection_orders(
            self._new_order,
            side=side,
            qty=qty,
            stop_ticks=stop_ticks,
            target_ticks=target_ticks,
            strategy=strategy,
            now_ns=now_ns,
            oco_group=group,
        )
        req = BracketRequest(
            self.symbol, side, qty, strategy, OrderType.MARKET, stop_ticks, target_ticks
        )
        error = self._bracket_error(req)
        if error is not None:
            for order in (stop, target):
                self._set_status(order, OrderStatus.REJECTED, now_ns, error)
            return [stop, target]
        self._groups[group] = _OcoGroup(stop.id, target.id, None, base_qty=qty)
        self._accept(stop, now_ns)
        self._accept(target, now_ns)
        return [stop, target]

    def submit_exit(self, side: int, qty: int, strategy: str, now_ns: int, reason: str) -> Order:
        """Close at market: cancel the position's bracket children, then send the exit order.

        `side` is the exit order's side (-1 sells to close a long, +1 buys to close a short).
        """
        self._tick(now_ns)
        for group in self._position_groups(side):
            self._close_group(group, now_ns, f"exit: {reason}", exit_remaining=False)
        order = self._new_order(side, qty, OrderType.MARKET, OrderRole.EXIT, strategy, now_ns)
        order.reason = reason
        if side not in (1, -1) or qty < 1:
            why = f"exit needs side +1/-1 and qty >= 1, got side {side} qty {qty}"
            self._set_status(order, OrderStatus.REJECTED, now_ns, why)
            return order
        self._accept(order, now_ns)
        return order

    def cancel_children(
        self, parent_id: str, reason: str, *, now_ns: int | None = None
    ) -> list[Order]:
        """Cancel the open stop and target of an entry (held or working)."""
        ts = self._tick(now_ns)
        group = self._groups.get(self._group_of_entry.get(parent_id, ""))
        if group is None:
            return []
        cancelled = []
        for child in self._pair(group):
            if child.status.is_open:
                self._cancel(child, ts, reason)
                cancelled.append(child)
        return cancelled

    def modify(
        self, order_id: str, stop_ticks: int | None = None, limit_ticks: int | None = None
    ) -> Order:
        """Move an open stop's trigger or an open limit's price (the caller checks the sense)."""
        order = self._open_order(order_id)
        if stop_ticks is not None:
            if order.type is not OrderType.STOP:
                raise BrokerError(f"{order_id} is a {order.type} order: it has no stop price")
            order.stop_ticks = int(stop_ticks)
        if limit_ticks is not None:
            if order.type is not OrderType.LIMIT:
                raise BrokerError(f"{order_id} is a {order.type} order: it has no limit price")
            order.limit_ticks = int(limit_ticks)
        return order

    def cancel(self, order_id: str, reason: str, *, now_ns: int | None = None) -> Order:
        """Cancel an open order (a no-op on a closed one); an unfilled entry takes its children."""
        order = self.orders.get(order_id)
        if order is None:
            raise BrokerError(f"unknown order {order_id}")
        if not order.status.is_open:
            return order
        ts = self._tick(now_ns)
        self._cancel(order, ts, reason)
        if order.role is OrderRole.ENTRY and order.filled_qty == 0:
            self.cancel_children(order.id, f"entry {order.id} cancelled", now_ns=ts)
        return order

    def cancel_all(self, reason: str, *, now_ns: int | None = None) -> list[Order]:
        """Cancel every open order, held children included."""
        ts = self._tick(now_ns)
        cancelled = [o for o in self.orders.values() if o.status.is_open]
        for order in cancelled:
            self._cancel(order, ts, reason)
        return cancelled

    def settle_exits(self, price_ticks: int, ts_ns: int) -> list[Fill]:
        """Fill the working market exits at `price_ticks`, the session's last print.

        At a session's end no later trade will come to fill them, and the account must be flat.
        """
        self._tick(ts_ns)
        return [
            self._fill(order, order.qty - order.filled_qty, price_ticks, ts_ns)
            for order in self.working()
            if order.role is OrderRole.EXIT and order.type is OrderType.MARKET
        ]

    def on_trades(self, trades: TradeBatch) -> list[Fill]:
        """Fill working orders against a time-ordered batch of trades."""
        if len(trades) == 0:
            return []
        if not self._active:
            self._tick(int(trades.ts[-1]))
            return []
        tape = Tape(trades.ts, trades.price, trades.size)
        fills: list[Fill] = []
        next_index: dict[str, int] = {}
        cursor = 0
        while self._active and cursor < tape.n:
            idx, due = self._next_event(tape, cursor, next_index)
            if idx >= tape.n:
                break
            for order in due:
                next_index.pop(order.id, None)
                if order.id in self._active:  # an OCO sibling may have closed it at this trade
                    done = self.fill_model.execution(order, tape, idx)
                    if done is not None:
                        fills.append(self._fill(order, done[0], done[1], int(tape.ts[idx])))
            cursor = idx + 1
        self._tick(int(tape.ts[-1]))
        return fills

    # ------------------------------------------------------------------ validation

    def _bracket_error(self, req: BracketRequest) -> str | None:
        """Why a bracket request cannot be accepted, or None."""
        if req.symbol != self.symbol:
            return f"symbol {req.symbol} is not this broker's {self.symbol}"
        if req.side not in (1, -1):
            return f"side must be +1 (long) or -1 (short), got {req.side}"
        if req.qty < 1:
            return f"qty must be >= 1, got {req.qty}"
        if req.entry_type is OrderType.LIMIT:
            if req.limit_ticks is None:
                return "a limit entry needs limit_ticks"
            return self._price_order_error(req, req.limit_ticks, "limit entry")
        if req.entry_type is OrderType.MARKET:
            return self._price_order_error(req, None, "market entry")
        return f"entry_type must be market or limit, got {req.entry_type}"

    @staticmethod
    def _price_order_error(req: BracketRequest, reference: int | None, what: str) -> str | None:
        """Check stop < reference < target for a long (reversed for a short)."""
        levels = [req.stop_ticks, req.target_ticks]
        if reference is not None:
            levels.insert(1, reference)
        ordered = levels if req.side == 1 else levels[::-1]
        if all(a < b for a, b in pairwise(ordered)):
            return None
        side = "long" if req.side == 1 else "short"
        ref = f" {what} {reference}" if reference is not None else ""
        relation = "stop < entry < target" if req.side == 1 else "target < entry < stop"
        return (
            f"{side} bracket prices out of order: stop {req.stop_ticks}{ref} "
            f"target {req.target_ticks} (need {relation})"
        )

    # ------------------------------------------------------------------ fill engine

    def _next_event(
        self, tape: Tape, cursor: int, next_index: dict[str, int]
    ) -> tuple[int, list[Order]]:
        """The first trade index at or after `cursor` that fills some order, and those orders."""
        best = tape.n
        due: list[Order] = []
        for order in self._active.values():
            idx = next_index.get(order.id, -1)
            if idx < cursor:
                idx = self.fill_model.first_fillable(order, tape, cursor)
                next_index[order.id] = idx
            if idx < best:
                best, due = idx, [order]
            elif idx == best and idx < tape.n:
                due.append(order)
        due.sort(key=lambda o: self._seq[o.id])
        return best, due

    def _fill(self, order: Order, qty: int, price: int, ts: int) -> Fill:
        """Book a fill on the order, log it, and run the bracket consequences."""
        prior = order.filled_qty
        order.filled_qty = prior + qty
        prior_avg = order.avg_fill_ticks if order.avg_fill_ticks is not None else 0.0
        order.avg_fill_ticks = (prior_avg * prior + price * qty) / order.filled_qty
        commission = round(self.fee_per_contract_usd * qty, 6)
        done = order.filled_qty >= order.qty
        status = OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED
        if done:
            self._active.pop(order.id, None)
        fill = Fill(
            order.id,
            self.symbol,
            ts,
            order.side,
            qty,
            price,
            commission,
            order.role,
            order.strategy,
        )
        self._set_status(order, status, ts, "", fill)
        self._move_position(order.side * qty, price, ts)
        if order.role is OrderRole.ENTRY:
            self._on_entry_fill(order, price, ts)
        elif order.role in (OrderRole.STOP, OrderRole.TARGET):
            self._on_child_fill(order, ts)
        return fill

    # ------------------------------------------------------------------ brackets

    def _pair(self, group: _OcoGroup) -> tuple[Order, Order]:
        return self.orders[group.stop_id], self.orders[group.target_id]

    def _exposure(self, group: _OcoGroup) -> int:
        """Contracts the group still protects: entry fills (or the base) minus exit fills."""
        held = self.orders[group.entry_id].filled_qty if group.entry_id else group.base_qty
        stop, target = self._pair(group)
        return held - stop.filled_qty - target.filled_qty

    def _on_entry_fill(self, entry: Order, price: int, ts: int) -> None:
        """Arm (or resize) the children; exit at once if the fill is already past one of them."""
        group = self._groups.get(self._group_of_entry.get(entry.id, ""))
        if group is None:
            return
        if self._beyond_bracket(group, entry.side, price):
            reason = f"entry filled at {price}, at or beyond its stop or target"
            self._close_group(group, ts, reason, exit_remaining=True)
            return
        self._resize_children(group, ts)

    def _beyond_bracket(self, group: _OcoGroup, side: int, price: int) -> bool:
        """Is an entry fill price at or past its open stop or target (zero or negative room)?"""
        stop, target = self._pair(group)
        # Measured in the trade's direction, where profit is positive.
        past_stop = (
            stop.status.is_open
            and stop.stop_ticks is not None
            and side * (price - stop.stop_ticks) <= 0
        )
        past_target = (
            target.status.is_open
            and target.limit_ticks is not None
            and side * (target.limit_ticks - price) <= 0
        )
        return past_stop or past_target

    def _on_child_fill(self, child: Order, ts: int) -> None:
        """Shrink the sibling by the fill; a child that closes the position cancels the rest."""
        assert child.oco_group is not None
        group = self._groups[child.oco_group]
        if self._exposure(group) <= 0:
            self._close_group(group, ts, f"oco: {child.id} filled", exit_remaining=False)
        else:
            self._resize_children(group, ts)

    def _resize_children(self, group: _OcoGroup, ts: int) -> None:
        """Make each open child work for the group's open quantity; arm held children."""
        exposure = self._exposure(group)
        for child in self._pair(group):
            if not child.status.is_open:
                continue
            child.qty = child.filled_qty + exposure
            if child.status is OrderStatus.SUBMITTED:
                self._accept(child, ts)

    def _close_group(self, group: _OcoGroup, ts: int, reason: str, *, exit_remaining: bool) -> None:
        """Cancel the open children and the entry's remainder; optionally exit at market."""
        for child in self._pair(group):
            if child.status.is_open:
                self._cancel(child, ts, reason)
        entry = self.orders[group.entry_id] if group.entry_id else None
        if entry is not None and entry.status.is_open:
            self._cancel(entry, ts, reason)
        exposure = self._exposure(group)
        if exit_remaining and exposure > 0:
            stop = self.orders[group.stop_id]
            # The venue's own exit belongs to the bracket's trade: `parent_id` links it to the
            # entry, so the engine books its fill on that trade (and the position closes).
            exit_order = self._new_order(
                stop.side,
                exposure,
                OrderType.MARKET,
                OrderRole.EXIT,
                stop.strategy,
                ts,
                parent_id=group.entry_id or stop.parent_id,
            )
            exit_order.reason = reason
            self._accept(exit_order, ts)

    def _position_groups(self, exit_side: int) -> list[_OcoGroup]:
        """Groups protecting filled contracts that an exit on `exit_side` closes."""
        found = []
        for name, group in list(self._groups.items()):
            stop, target = self._pair(group)
            if not (stop.status.is_open or target.status.is_open):
                self._forget(name, group)  # keeps this scan short over a long backtest
                continue
            if stop.side != exit_side:
                continue
            if group.entry_id is None or self.orders[group.entry_id].filled_qty > 0:
                found.append(group)
        return found

    def _forget(self, name: str, group: _OcoGroup) -> None:
        """Drop a finished group (both children closed); its orders stay in `orders`."""
        del self._groups[name]
        if group.entry_id is not None:
            self._group_of_entry.pop(group.entry_id, None)

    # ------------------------------------------------------------------ bookkeeping

    def _tick(self, now_ns: int | None) -> int:
        """Advance the venue clock (never backwards) and return the time to stamp events."""
        if now_ns is not None and now_ns > self._clock_ns:
            self._clock_ns = int(now_ns)
        return self._clock_ns if now_ns is None else int(now_ns)

    def _open_order(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise BrokerError(f"unknown order {order_id}")
        if not order.status.is_open:
            raise BrokerError(f"order {order_id} is {order.status}, not open")
        return order

    def _new_order(
        self,
        side: int,
        qty: int,
        type_: OrderType,
        role: OrderRole,
        strategy: str,
        now_ns: int,
        **prices: Any,
    ) -> Order:
        order_id = f"{self.symbol}-{self._next_number}"
        self._seq[order_id] = self._next_number
        self._next_number += 1
        order = Order(order_id, self.symbol, side, qty, type_, role, strategy, now_ns, **prices)
        self.orders[order_id] = order
        self._log(order, now_ns)
        return order

    def _accept(self, order: Order, ts: int) -> None:
        self._active[order.id] = order
        self._set_status(order, OrderStatus.ACCEPTED, ts, order.reason)

    def _cancel(self, order: Order, ts: int, reason: str) -> None:
        self._active.pop(order.id, None)
        self._set_status(order, OrderStatus.CANCELLED, ts, reason)

    def _set_status(
        self, order: Order, status: OrderStatus, ts: int, reason: str, fill: Fill | None = None
    ) -> None:
        order.status = status
        if status in (OrderStatus.CANCELLED, OrderStatus.REJECTED):
            order.reason = reason
        self._log(order, ts, reason, fill)

    def _move_position(self, signed_qty: int, price: int, ts: int) -> None:
        """Follow the venue position through a fill and report it."""
        before = self._position
        after = before + signed_qty
        if before == 0 or (before > 0) == (signed_qty > 0):
            self._position_value += signed_qty * price  # opening or adding
        elif after == 0 or (after > 0) == (before > 0):
            self._position_value = after * (self._position_value / before)  # reducing
        else:
            self._position_value = after * price  # reversed through flat
        self._position = after
        avg = self._position_value / after if after else 0.0
        self._events.append(PositionChanged(int(ts), self.symbol, after, avg))

    def _log(self, order: Order, ts: int, reason: str = "", fill: Fill | None = None) -> None:
        self._events.append(OrderUpdate.of(order, ts, reason, fill))
