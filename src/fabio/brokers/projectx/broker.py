"""The `Broker` port on a ProjectX account: synchronous calls, network I/O in background tasks.

Each call returns at once with the order as we know it (SUBMITTED); what the venue does arrives
on the user hub and is queued as `OrderUpdate`s for `drain_events()`. Client order ids are the
engine's (`ES-12`); the venue sees them as `customTag` `ES-12@<run>` (a tag must be unique for
the account forever, a run id keeps a reused journal number from colliding).

Protection lives at the venue. With Auto-OCO brackets (the default) the entry carries signed
`stopLossBracket` / `takeProfitBracket` ticks and the venue creates the children, held
(Suspended) until the entry fills; they are matched to our stop and target ids by type. When
the account refuses brackets (Position-Brackets mode), the broker switches to its own orders: a
stop and a limit (each with its own tag) placed as soon as the entry fills, sized to the fills,
and cancelled one by the other (OCO) by us.

Money-moving calls are never retried blindly: after a timeout, 5xx, 429 or lost answer the
order is looked up by its tag; only a definite "not there" (several lookups) makes it rejected.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fabio.brokers.projectx.errors import GatewayError, OrderUncertain
from fabio.brokers.projectx.models import (
    PxFill,
    PxOrder,
    PxOrderSide,
    PxOrderStatus,
    PxOrderType,
    PxPosition,
)
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
    VenueRecovery,
)

if TYPE_CHECKING:
    from fabio.brokers.projectx.session import ProjectXSession

log = logging.getLogger("fabio.projectx.broker")

LOOKUPS = 4  # Order/search lookups of an uncertain placement before calling it not placed
LOOKUP_PAUSE_SEC = 0.5
NOT_AT_VENUE = "restart: not found at the venue"
STOP_RESTORES = 2  # a stop lost at the venue is re-placed at most this often, then flattened
CANCEL_TRIES = 10  # a cancel that failed is sent again when the venue says the order works


@dataclass(slots=True)
class _Link:
    """What ties one of our orders to the venue."""

    tag: str | None
    venue_id: int | None = None
    placing: bool = False
    cancel_wanted: str | None = None  # a cancel asked for before the venue id was known
    cancel_sent: bool = False
    cancel_tries: int = 0  # cancels sent; one that failed is sent again while the order works
    modify_wanted: dict[str, float | int] = field(default_factory=dict)
    standalone: bool = False  # a re-placed leg: no venue OCO, we cancel it ourselves
    restores: int = 0  # times this stop was re-placed after the venue ended it
    restoring: bool = False


def tag_client_id(tag: str | None) -> str | None:
    """`ES-12@k3f9` (or a re-placement `ES-12@k3f9/r`) → `ES-12`."""
    if not tag or "@" not in tag:
        return None
    return tag.split("@", 1)[0]


class ProjectXBroker:
    """One contract of one ProjectX account behind the `Broker` port."""

    def __init__(
        self,
        session: ProjectXSession,
        symbol: str,
        contract_id: str,
        tick_size: float,
        first_number: int,
    ) -> None:
        self.session = session
        self.symbol = symbol
        self.contract_id = contract_id
        self.tick_size = tick_size
        self._next = max(1, first_number)
        self.orders: dict[str, Order] = {}
        self.links: dict[str, _Link] = {}
        self.by_venue: dict[int, str] = {}
        self._events: list[BrokerEvent] = []
        self._children: dict[str, tuple[str, str]] = {}  # entry id -> (stop id, target id)
        self._awaiting_children: list[str] = []  # auto-OCO entries whose children are unseen
        self._orphan_fills: dict[int, dict[int, PxFill]] = {}
        self._seeded_children: list[str] = []
        self._fills_done: set[int] = set()  # venue fill ids journaled (this run or before)
        self._superseded: set[int] = set()  # venue ids of our stops re-placed under a new tag
        self.problems: list[str] = []
        self.sent: list[dict[str, Any]] = []  # every placement body sent (tests, benchmark)
        self.last_send_ns: int | None = None

    def seed(self, submitted: list[dict[str, Any]], journaled_fills: Iterable[str] = ()) -> None:
        """Orders a previous process journaled as submitted and left open (a restart), with
        the entries of their brackets; `journaled_fills`: the venue fill ids the journal has.

        They are matched to the venue's orders by their tag's client id (any run), bracket
        children (which carry no tag) by type and side among the venue's orders that follow
        their entry's. A record's `filled_qty` is what the journal already holds of it; a venue
        fill already journaled is never journaled again.
        """
        self._fills_done.update(int(f) for f in journaled_fills if str(f).isdigit())
        for rec in submitted:
            oid = str(rec["order_id"])
            order = Order(
                oid,
                self.symbol,
                int(rec.get("side") or 0),
                int(rec.get("qty") or 0),
                OrderType(rec.get("order_type") or "market"),
                OrderRole(rec.get("role") or "entry"),
                str(rec.get("strategy") or ""),
                int(rec.get("ts_ns") or 0),
                limit_ticks=rec.get("limit_ticks"),
                stop_ticks=rec.get("stop_ticks"),
                parent_id=rec.get("parent_id"),
                oco_group=rec.get("oco_group"),
            )
            filled = min(int(rec.get("filled_qty") or 0), order.qty)
            if filled:
                order.filled_qty = filled
                order.status = (
                    OrderStatus.FILLED if filled >= order.qty else OrderStatus.PARTIALLY_FILLED
                )
            self.orders[oid] = order
            self.links[oid] = _Link(tag=None)
            if order.parent_id is not None and order.status.is_open:
                self._seeded_children.append(oid)
            tail = oid.rsplit("-", 1)[-1]
            if tail.isdigit():
                self._next = max(self._next, int(tail) + 1)

    def match_tagged(self, venue_orders: Iterable[PxOrder]) -> None:
        """Seeded orders get the last venue order tagged with their client id (any run), before
        the venue's orders are replayed: a re-placed stop (`ES-2@run/r1`) wins over the bracket
        child or the tag it replaced, which the venue had cancelled."""
        last: dict[str, PxOrder] = {}
        for px in venue_orders:
            cid = tag_client_id(px.custom_tag)
            if px.contract_id != self.contract_id or cid is None:
                continue
            if cid not in last or px.id > last[cid].id:
                last[cid] = px
        for cid, px in last.items():
            link = self.links.get(cid)
            if link is None or link.tag is not None or link.venue_id is not None:
                continue
            self._adopt(cid, px.id)
            if cid in self._seeded_children:
                self._seeded_children.remove(cid)

    def settle_seeded(self) -> None:
        """After the venue's orders were matched: a left-open order the venue has no record of
        never reached it (or ended long ago): it is not working, whatever the journal says."""
        for oid, order in self.orders.items():
            link = self.links[oid]
            if link.tag is None and link.venue_id is None and order.status.is_open:
                self._status(order, OrderStatus.CANCELLED, self._now(), NOT_AT_VENUE)
        self._seeded_children.clear()

    # ------------------------------------------------------------------ port: queries
    def drain_events(self) -> list[BrokerEvent]:
        out, self._events = self._events, []
        return out

    def open_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if o.status.is_open]

    def get_order(self, order_id: str) -> Order | None:
        return self.orders.get(order_id)

    def positions(self) -> list[PositionSnapshot]:
        pos = self.session.venue_positions.get(self.contract_id)
        if pos is None or pos.qty == 0:
            return []
        return [PositionSnapshot(self.symbol, pos.qty, pos.average_price / self.tick_size)]

    def account(self) -> AccountSnapshot:
        acct = self.session.account
        return AccountSnapshot(str(acct.id), acct.balance, acct.can_trade, acct.simulated)

    # ------------------------------------------------------------------ port: orders
    def submit_bracket(self, request: BracketRequest, now_ns: int) -> list[Order]:
        entry, stop, target = bracket_orders(self._new, request, now_ns)
        self._children[entry.id] = (stop.id, target.id)
        error = self._refusal(request)
        if error is not None:
            for order in (entry, stop, target):
                self._status(order, OrderStatus.REJECTED, now_ns, error)
            return [entry, stop, target]
        self._spawn(self._place_entry(entry, stop, target))
        return [entry, stop, target]

    def protect(
        self, *, side: int, qty: int, stop_ticks: int, target_ticks: int, strategy: str, now_ns: int
    ) -> list[Order]:
        stop, target = protection_orders(
            self._new,
            side=side,
            qty=qty,
            stop_ticks=stop_ticks,
            target_ticks=target_ticks,
            strategy=strategy,
            now_ns=now_ns,
            oco_group=f"{self.symbol}-{self._next}-oco",
        )
        error = self._shadow_refusal()
        if error is None and (stop_ticks - target_ticks) * side >= 0:
            error = "stop and target are on the wrong sides"
        if error is not None:
            self._status(stop, OrderStatus.REJECTED, now_ns, error)
            self._status(target, OrderStatus.REJECTED, now_ns, error)
            return [stop, target]
        self._spawn(self._place_single(stop))
        self._spawn(self._place_single(target))
        return [stop, target]

    def submit_exit(self, side: int, qty: int, strategy: str, now_ns: int, reason: str) -> Order:
        order = self._new(side, qty, OrderType.MARKET, OrderRole.EXIT, strategy, now_ns)
        order.reason = reason
        error = self._shadow_refusal()
        if error is not None:
            self._status(order, OrderStatus.REJECTED, now_ns, error)
            return order
        self._spawn(self._place_single(order))
        return order

    def modify(
        self, order_id: str, stop_ticks: int | None = None, limit_ticks: int | None = None
    ) -> Order:
        order = self.orders[order_id]
        if not order.status.is_open:
            return order
        fields: dict[str, float | int] = {}
        if stop_ticks is not None and order.type is OrderType.STOP:
            order.stop_ticks = stop_ticks
            fields["stopPrice"] = stop_ticks * self.tick_size
        if limit_ticks is not None and order.type is OrderType.LIMIT:
            order.limit_ticks = limit_ticks
            fields["limitPrice"] = limit_ticks * self.tick_size
        link = self.links.get(order_id)
        if fields and link is not None:
            if link.venue_id is None:
                link.modify_wanted.update(fields)
            else:
                self._spawn(self._modify(order_id, link.venue_id, fields))
        return order

    def cancel(self, order_id: str, reason: str, *, now_ns: int | None = None) -> Order:
        order = self.orders[order_id]
        if not order.status.is_open:
            return order
        link = self.links.get(order_id)
        if link is None or self.session.shadow:
            self._status(order, OrderStatus.CANCELLED, now_ns or self._now(), reason)
            return order
        if link.venue_id is None:
            if link.placing:
                link.cancel_wanted = reason
            else:  # a held child we have not placed (own-OCO mode, entry unfilled)
                self._status(order, OrderStatus.CANCELLED, now_ns or self._now(), reason)
            return order
        order.reason = reason
        if not link.cancel_sent:
            link.cancel_sent = True
            link.cancel_tries += 1
            self._spawn(self._cancel(order_id, link.venue_id))
        return order

    def cancel_all(self, reason: str, *, now_ns: int | None = None) -> list[Order]:
        return [self.cancel(o.id, reason, now_ns=now_ns) for o in self.open_orders()]

    # ------------------------------------------------------------------ helpers
    def _now(self) -> int:
        return self.session.clock_ns()

    def _new(
        self,
        side: int,
        qty: int,
        type_: OrderType,
        role: OrderRole,
        strategy: str,
        now_ns: int,
        **prices: Any,
    ) -> Order:
        order_id = f"{self.symbol}-{self._next}"
        self._next += 1
        order = Order(order_id, self.symbol, side, qty, type_, role, strategy, now_ns, **prices)
        self.orders[order_id] = order
        self.links[order_id] = _Link(tag=f"{order_id}@{self.session.run_id}")
        self._log(order, now_ns)
        return order

    def _log(self, order: Order, ts: int, reason: str = "", fill: Fill | None = None) -> None:
        self._events.append(OrderUpdate.of(order, ts, reason, fill))
        self.session.notify()

    def _status(self, order: Order, status: OrderStatus, ts: int, reason: str = "") -> None:
        if order.status is status or not order.status.is_open:
            return
        order.status = status
        if reason:
            order.reason = reason
        self._log(order, ts, reason)

    def _shadow_refusal(self) -> str | None:
        if self.session.shadow:
            return "shadow mode: no order sent"
        return None

    def _refusal(self, req: BracketRequest) -> str | None:
        shadow = self._shadow_refusal()
        if shadow:
            return shadow
        if req.qty <= 0:
            return "quantity must be positive"
        if (req.stop_ticks - req.target_ticks) * req.side >= 0:
            return "stop and target are on the wrong sides"
        if req.entry_type is OrderType.LIMIT and req.limit_ticks is None:
            return "a limit entry needs a price"
        ref = self._reference(req)
        if ref is None:
            return "no market price yet to place the bracket from"
        if (req.stop_ticks - ref) * req.side >= 0 or (req.target_ticks - ref) * req.side <= 0:
            return "stop or target on the wrong side of the market"
        return None

    def _reference(self, req: BracketRequest) -> int | None:
        if req.entry_type is OrderType.LIMIT:
            return req.limit_ticks
        return self.session.last_price_ticks(self.contract_id)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.session.spawn(coro)

    # ------------------------------------------------------------------ placement
    def _body(self, order: Order, tag: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "accountId": self.session.account.id,
            "contractId": self.contract_id,
            "type": {
                OrderType.MARKET: PxOrderType.MARKET,
                OrderType.LIMIT: PxOrderType.LIMIT,
                OrderType.STOP: PxOrderType.STOP,
            }[order.type].value,
            "side": (PxOrderSide.BID if order.side > 0 else PxOrderSide.ASK).value,
            "size": order.qty - order.filled_qty,
            "customTag": tag,
        }
        if order.type is OrderType.LIMIT and order.limit_ticks is not None:
            body["limitPrice"] = order.limit_ticks * self.tick_size
        if order.type is OrderType.STOP and order.stop_ticks is not None:
            body["stopPrice"] = order.stop_ticks * self.tick_size
        return body

    async def _place_entry(self, entry: Order, stop: Order, target: Order) -> None:
        link = self.links[entry.id]
        assert link.tag is not None
        body = self._body(entry, link.tag)
        if self.session.brackets == "auto":
            ref = self._reference_for(entry)
            assert ref is not None
            assert stop.stop_ticks is not None and target.limit_ticks is not None
            body["stopLossBracket"] = {
                "ticks": stop.stop_ticks - ref,
                "type": PxOrderType.STOP.value,
            }
            body["takeProfitBracket"] = {
                "ticks": target.limit_ticks - ref,
                "type": PxOrderType.LIMIT.value,
            }
            self._awaiting_children.append(entry.id)
        try:
            await self._send_place(entry, body)
        except GatewayError as exc:
            if self.session.brackets == "auto" and "Position Brackets" in str(exc):
                # The account is in Position-Brackets mode: a definite refusal, nothing was
                # placed that can fill. Protect with our own orders from now on.
                self.session.brackets = "own"
                self.problems.append(
                    "the account refuses bracket orders (Position Brackets "
                    "mode): protecting with our own stop and limit orders"
                )
                log.warning(self.problems[-1])
                if entry.id in self._awaiting_children:
                    self._awaiting_children.remove(entry.id)
                link.tag = f"{entry.id}@{self.session.run_id}/r"
                body = self._body(entry, link.tag)
                try:
                    await self._send_place(entry, body)
                except GatewayError as again:
                    self._reject_bracket(entry, str(again))
                return
            self._reject_bracket(entry, str(exc))

    def _reference_for(self, entry: Order) -> int | None:
        if entry.type is OrderType.LIMIT:
            return entry.limit_ticks
        return self.session.last_price_ticks(self.contract_id)

    def _reject_bracket(self, entry: Order, reason: str) -> None:
        now = self._now()
        if entry.id in self._awaiting_children:
            self._awaiting_children.remove(entry.id)
        self._status(entry, OrderStatus.REJECTED, now, reason)
        for child_id in self._children.get(entry.id, ()):
            self._status(self.orders[child_id], OrderStatus.REJECTED, now, reason)

    async def _place_single(self, order: Order) -> None:
        link = self.links[order.id]
        assert link.tag is not None
        try:
            await self._send_place(order, self._body(order, link.tag))
        except GatewayError as exc:
            self._status(order, OrderStatus.REJECTED, self._now(), str(exc))
            if order.role in (OrderRole.STOP, OrderRole.TARGET):
                self.problems.append(f"protective order {order.id} refused: {exc}")
                self.session.protection_failed(self.symbol, str(exc))

    async def _send_place(self, order: Order, body: dict[str, Any]) -> None:
        """Place once; on an unknown outcome, look the tag up. Raises GatewayError if refused."""
        link = self.links[order.id]
        link.placing = True
        self.sent.append(body)
        self.last_send_ns = time.perf_counter_ns()
        try:
            venue_id = await self.session.http.place_order(body)
        except OrderUncertain as exc:
            log.warning("%s: %s; looking the order up by its tag", order.id, exc)
            found = await self._lookup(body["customTag"])
            if found is None:
                link.placing = False
                raise GatewayError(
                    "Order/place", f"not accepted ({exc}; no order carries its tag)"
                ) from None
            venue_id = found.id
            self._adopt(order.id, venue_id)
            self.on_order(found)
        finally:
            link.placing = False
        self._adopt(order.id, venue_id)
        held_child = (
            order.parent_id is not None
            and order.role is not OrderRole.ENTRY
            and (parent := self.orders.get(order.parent_id)) is not None
            and parent.filled_qty == 0
        )
        if order.status is OrderStatus.SUBMITTED and not held_child:
            self._status(order, OrderStatus.ACCEPTED, self._now())
        want = order.qty - order.filled_qty
        if link.cancel_wanted is not None:
            self._spawn(self._cancel(order.id, venue_id))
        elif (
            order.status.is_open
            and want > 0
            and want != body["size"]
            and (order.role in (OrderRole.STOP, OrderRole.TARGET))
        ):
            # The entry filled further while this protective order was on its way.
            self._spawn(self._resize(order.id, venue_id, want))
        elif link.modify_wanted:
            fields, link.modify_wanted = link.modify_wanted, {}
            self._spawn(self._modify(order.id, venue_id, fields))

    async def _lookup(self, tag: str) -> PxOrder | None:
        since = datetime.now(UTC) - timedelta(hours=1)
        for attempt in range(LOOKUPS):
            if attempt:
                await asyncio.sleep(LOOKUP_PAUSE_SEC * attempt)
            seen = self.session.orders_by_tag.get(tag)
            if seen is not None:
                return seen
            try:
                found = await self.session.http.find_by_tag(self.session.account.id, tag, since)
            except GatewayError as exc:
                log.warning("lookup of %s failed: %s", tag, exc)
                continue
            if found is not None:
                return found
        return None

    def _adopt(self, order_id: str, venue_id: int) -> None:
        self.links[order_id].venue_id = venue_id
        self.orders[order_id].venue_order_id = str(venue_id)
        self.by_venue[venue_id] = order_id
        for fill in self._orphan_fills.pop(venue_id, {}).values():
            self.on_fill(fill)

    async def _cancel(self, order_id: str, venue_id: int) -> None:
        try:
            await self.session.http.cancel_order(self.session.account.id, venue_id)
        except GatewayError as exc:
            # Not retried: the hub or the next reconciliation tells us what the order is.
            if exc.code not in (2, 3):  # not found / not working: it had already ended
                self.problems.append(f"cancel of {order_id} not confirmed: {exc}")
            self.links[order_id].cancel_sent = False
            self.session.request_reconcile()

    async def _modify(self, order_id: str, venue_id: int, fields: dict[str, float | int]) -> None:
        try:
            await self.session.http.modify_order(self.session.account.id, venue_id, **fields)
        except GatewayError as exc:
            self.problems.append(f"modify of {order_id} not confirmed: {exc}")
            self.session.request_reconcile()

    # ------------------------------------------------------------------ venue events
    def knows(self, order: PxOrder) -> str | None:
        """Our client id for a venue order, learning bracket children as they appear."""
        cid = self.by_venue.get(order.id)
        if cid is not None:
            return cid
        tagged = tag_client_id(order.custom_tag)
        if tagged is not None and tagged in self.orders:
            link = self.links[tagged]
            if link.placing and order.status is PxOrderStatus.REJECTED:
                return None  # a refused placement: its HTTP answer decides what happens next
            if link.tag == order.custom_tag or (link.tag is None and link.venue_id is None):
                self._adopt(tagged, order.id)
                return tagged
            return None
        if order.custom_tag is None:
            seeded = self._seeded_child(order)
            if seeded is not None:
                return seeded
        if (
            order.custom_tag is None
            and self._awaiting_children
            and order.type in (PxOrderType.STOP, PxOrderType.LIMIT)
        ):
            for entry_id in list(self._awaiting_children):
                entry = self.orders[entry_id]
                stop_id, target_id = self._children[entry_id]
                want = stop_id if order.type is PxOrderType.STOP else target_id
                side_ok = order.side is None or (order.side is PxOrderSide.BID) == (entry.side < 0)
                if side_ok and self.links[want].venue_id is None:
                    self._adopt(want, order.id)
                    if all(self.links[c].venue_id is not None for c in self._children[entry_id]):
                        self._awaiting_children.remove(entry_id)
                    return want
        return None

    def _seeded_child(self, order: PxOrder) -> str | None:
        """A bracket child left open by a dead process, for an untagged venue order: the first
        of its type and side after its entry's venue order (whatever its state, so a leg that
        filled while no process ran is found), or, with no entry known, a working one."""
        for oid in self._seeded_children:
            mine = self.orders[oid]
            want = PxOrderType.STOP if mine.type is OrderType.STOP else PxOrderType.LIMIT
            if order.type is not want or self.links[oid].venue_id is not None:
                continue
            if order.side is not None and (order.side is PxOrderSide.BID) != (mine.side > 0):
                continue
            parent = self.orders.get(mine.parent_id or "")
            after = self.links[parent.id].venue_id if parent is not None else None
            if (after is not None and order.id <= after) or (
                after is None and not order.status.is_working
            ):
                continue
            self._seeded_children.remove(oid)
            self._adopt(oid, order.id)
            return oid
        return None

    def _foreign(self, order: PxOrder) -> bool:
        """An order that is not ours (a trade by hand, another program), as far as we can tell:
        untagged and not a bracket child we still wait for, or tagged by someone else."""
        cid = tag_client_id(order.custom_tag)
        if cid is not None:
            return not cid.startswith(f"{self.symbol}-")
        if order.custom_tag:
            return True
        # A stop or limit may be a child of ours not matched yet.
        return order.type not in (PxOrderType.STOP, PxOrderType.LIMIT) or not (
            self._awaiting_children or self._seeded_children
        )

    def on_order(self, px: PxOrder) -> None:
        if px.id in self._superseded:
            return  # a stop of ours the venue ended and we re-placed under a new tag
        cid = self.knows(px)
        if cid is None:
            if self._foreign(px):
                for fill in self._orphan_fills.pop(px.id, {}).values():
                    self._external_fill(fill, px)
            return
        self._on_our_order(self.orders[cid], px)

    def _on_our_order(self, order: Order, px: PxOrder) -> None:
        now = px.updated_ns or self._now()
        if px.type is PxOrderType.STOP and px.stop_price is not None:
            order.stop_ticks = round(px.stop_price / self.tick_size)
        if px.type is PxOrderType.LIMIT and px.limit_price is not None:
            order.limit_ticks = round(px.limit_price / self.tick_size)
        if px.status in (PxOrderStatus.OPEN, PxOrderStatus.PENDING):
            if order.status is OrderStatus.SUBMITTED:
                self._status(order, OrderStatus.ACCEPTED, now)
            link = self.links[order.id]
            if 0 < link.cancel_tries < CANCEL_TRIES and not link.cancel_sent:
                # Our cancel failed (5xx, network) and the order still works: a cancel only
                # lowers risk, so it is sent again rather than leaving an orphan.
                self.cancel(order.id, order.reason or "cancel sent again")
        elif px.status in (PxOrderStatus.CANCELLED, PxOrderStatus.EXPIRED):
            if px.fill_volume > order.filled_qty:
                self.session.request_reconcile()  # a fill we have not seen yet
            how = "cancelled" if px.status is PxOrderStatus.CANCELLED else "expired"
            if self._stop_lost(order, px, how):
                return
            self._status(order, OrderStatus.CANCELLED, now, order.reason or "cancelled")
        elif px.status is PxOrderStatus.REJECTED:
            if self._stop_lost(order, px, "rejected"):
                return
            self._status(order, OrderStatus.REJECTED, now, "rejected by the venue")
        elif px.status is PxOrderStatus.FILLED and px.fill_volume > order.filled_qty:
            self.session.request_reconcile()

    def on_fill(self, fill: PxFill) -> None:
        if fill.voided or fill.id in self._fills_done:
            return
        cid = self.by_venue.get(fill.order_id)
        if cid is None:
            px = self.session.venue_orders.get(fill.order_id)
            if px is not None and self._foreign(px):
                self._external_fill(fill, px)
            else:  # an order not (yet) known: adopted later, or found foreign
                self._orphan_fills.setdefault(fill.order_id, {})[fill.id] = fill
            return
        self._fills_done.add(fill.id)
        order = self.orders[cid]
        if order.filled_qty >= order.qty:
            return  # already counted (a journal written before fills carried their venue id)
        price_ticks = round(fill.price / self.tick_size)
        qty = min(fill.size, order.qty - order.filled_qty) or fill.size
        prev = order.filled_qty
        order.filled_qty += qty
        order.avg_fill_ticks = ((order.avg_fill_ticks or 0.0) * prev + price_ticks * qty) / (
            order.filled_qty
        )
        order.status = (
            OrderStatus.FILLED if order.filled_qty >= order.qty else OrderStatus.PARTIALLY_FILLED
        )
        ts = fill.ts_ns or self._now()
        f = Fill(
            cid,
            self.symbol,
            ts,
            order.side,
            qty,
            price_ticks,
            fill.fees,
            order.role,
            order.strategy,
            venue_fill_id=str(fill.id),
        )
        self._log(order, ts, "", fill=f)
        self._after_fill(order, qty, ts)

    def _external_fill(self, fill: PxFill, px: PxOrder) -> None:
        """A fill on our contract of an order that is not ours: reported (once) so the engine
        can close what it explains, as a manual exit at the venue."""
        if fill.voided or fill.id in self._fills_done:
            return
        side_px = fill.side if fill.side is not None else px.side
        if side_px is None:
            self.problems.append(f"a fill without a side on {self.symbol} (venue order {px.id})")
            return
        self._fills_done.add(fill.id)
        side = 1 if side_px is PxOrderSide.BID else -1
        ts = fill.ts_ns or self._now()
        oid = f"{self.symbol}@venue-{px.id}"
        f = Fill(
            oid,
            self.symbol,
            ts,
            side,
            fill.size,
            round(fill.price / self.tick_size),
            fill.fees,
            OrderRole.EXIT,
            "",
            venue_fill_id=str(fill.id),
            external=True,
        )
        ours = self.contract_id in self.session.closing
        self._events.append(
            OrderUpdate(
                ts,
                oid,
                self.symbol,
                OrderStatus.FILLED,
                "kill switch: Position/closeContract" if ours else "manual at venue",
                OrderRole.EXIT,
                OrderType.MARKET,
                side,
                fill.size,
                fill.size,
                "",
                fill=f,
            )
        )
        self.session.notify()

    def _after_fill(self, order: Order, qty: int, ts: int) -> None:
        if order.role is OrderRole.ENTRY:
            self._after_entry_fill(order, ts)
        elif order.role in (OrderRole.STOP, OrderRole.TARGET) and order.oco_group:
            self._after_protective_fill(order, qty, ts)
        elif order.role is OrderRole.EXIT and order.status is OrderStatus.FILLED:
            pos = self.session.venue_positions.get(self.contract_id)
            if pos is None or pos.qty == 0:
                for other in self.open_orders():
                    if other.role in (OrderRole.STOP, OrderRole.TARGET):
                        self.cancel(other.id, "position closed", now_ns=ts)

    def _after_entry_fill(self, entry: Order, ts: int) -> None:
        """Size the protection to the fills; in own-OCO mode place it on the first fill."""
        for child_id in self._children.get(entry.id, ()):
            child = self.orders[child_id]
            if not child.status.is_open:
                continue
            child.qty = entry.filled_qty
            link = self.links[child_id]
            if self.session.brackets == "own":
                if link.venue_id is None and not link.placing:
                    self._spawn(self._place_single(child))
                elif link.venue_id is not None:
                    self._spawn(self._resize(child_id, link.venue_id, child.qty - child.filled_qty))
            if child.status is OrderStatus.SUBMITTED:
                self._status(child, OrderStatus.ACCEPTED, ts)

    def _after_protective_fill(self, order: Order, qty: int, ts: int) -> None:
        """OCO: a filled leg cancels the other (the venue does it for Auto-OCO brackets)."""
        for other in self.orders.values():
            if (
                other.oco_group != order.oco_group
                or other.id == order.id
                or (not other.status.is_open)
            ):
                continue
            if order.status is OrderStatus.FILLED:
                if (
                    self.session.brackets == "own"
                    or other.parent_id is None
                    or self.links[other.id].standalone
                    or self.links[order.id].standalone
                ):
                    self.cancel(other.id, "OCO: the other leg filled", now_ns=ts)
                continue
            other.qty = max(other.filled_qty, other.qty - qty)
            link = self.links[other.id]
            if link.venue_id is not None and self.session.brackets == "own":
                self._spawn(self._resize(other.id, link.venue_id, other.qty - other.filled_qty))

    async def _resize(self, order_id: str, venue_id: int, size: int) -> None:
        if size > 0:
            await self._modify(order_id, venue_id, {"size": size})

    def on_position(self, pos: PxPosition) -> None:
        self._events.append(
            PositionChanged(
                pos.created_ns or self._now(),
                self.symbol,
                pos.qty,
                pos.average_price / self.tick_size,
            )
        )
        if pos.qty == 0:
            self._cancel_leftover_legs("the position is flat")

    def _cancel_leftover_legs(self, why: str) -> None:
        """The position is flat (an exit, a leg, a manual close): no stop or target of ours may
        stay working (a venue that does not cancel them would let them open a position). Legs
        held for an entry still working are kept."""
        cancelled = []
        for other in self.open_orders():
            if other.role not in (OrderRole.STOP, OrderRole.TARGET):
                continue
            parent = self.orders.get(other.parent_id or "")
            if parent is not None and parent.status.is_open:
                continue  # held until its entry fills
            link = self.links[other.id]
            if link.venue_id is None and not link.placing:
                continue  # never reached the venue (own-OCO leg of an unfilled entry)
            # Our own doing (the other leg or an exit of ours filled) is no recovery.
            ours = any(
                o.filled_qty > 0
                and o.id != other.id
                and (
                    (o.oco_group is not None and o.oco_group == other.oco_group)
                    or (o.role is OrderRole.EXIT and o.created_ns >= other.created_ns)
                )
                for o in self.orders.values()
            )
            if not link.cancel_sent and not ours:
                cancelled.append(other.id)
            self.cancel(other.id, "position closed", now_ns=self._now())
        if cancelled:
            self._events.append(
                VenueRecovery(
                    self._now(),
                    self.symbol,
                    "legs_cancelled",
                    f"{why}: cancelled {', '.join(cancelled)}",
                    cancelled[0],
                )
            )
            self.session.notify()

    # ------------------------------------------------------------------ protection restored
    def _stop_lost(self, order: Order, px: PxOrder, how: str) -> bool:
        """Our stop ended at the venue (cancelled, expired, rejected) without our asking: while
        its position is open it is re-placed (at most STOP_RESTORES times), else flattened.
        True when that is under way (the stop stays open in our books meanwhile)."""
        link = self.links[order.id]
        if (
            order.role is not OrderRole.STOP
            or not order.status.is_open
            or link.cancel_sent
            or link.cancel_tries > 0
            or link.cancel_wanted is not None
            or link.placing
            or link.restoring
            or px.id != link.venue_id
            or self.session.shadow
        ):
            return False
        parent = self.orders.get(order.parent_id or "")
        if parent is not None and parent.filled_qty == 0:
            return False  # a held child of an entry that never filled: nothing to protect
        pos = self.session.venue_positions.get(self.contract_id)
        if pos is None or pos.qty == 0 or (pos.qty > 0) == (order.side > 0):
            return False  # nothing of this side to protect: the leg just ends
        link.restoring = True
        # From now on the ended venue order is history: a reconciliation routing it again
        # (Order/search) while the re-placement is on its way must not end our stop.
        self._superseded.add(px.id)
        self._spawn(self._restore_stop(order.id, f"{how} at the venue"))
        return True

    async def _restore_stop(self, order_id: str, why: str) -> None:
        order, link = self.orders[order_id], self.links[order_id]
        try:
            held = await self._held_now()
            if held == 0 or (held > 0) == (order.side > 0):
                self._status(order, OrderStatus.CANCELLED, self._now(), f"{why}; position flat")
                return
            refused = ""
            while link.restores < STOP_RESTORES:
                link.restores += 1
                link.tag = f"{order_id}@{self.session.run_id}/r{link.restores}"
                link.venue_id = None
                link.standalone = True
                order.qty = order.filled_qty + abs(held)
                try:
                    await self._send_place(order, self._body(order, link.tag))
                except GatewayError as exc:
                    refused = str(exc)
                    continue
                self._events.append(
                    VenueRecovery(
                        self._now(),
                        self.symbol,
                        "stop_replaced",
                        f"stop {order_id} {why} while {held:+d} {self.symbol} was open: "
                        f"re-placed as {link.tag}",
                        order_id,
                    )
                )
                self.session.notify()
                return
            self._flatten_unprotected(order, held, f"{why}; re-placing failed: {refused}")
        finally:
            link.restoring = False

    async def _held_now(self) -> int:
        """The venue's position now (Position/searchOpen), or the last one reported."""
        try:
            positions = await self.session.http.positions(self.session.account.id)
        except GatewayError:
            pos = self.session.venue_positions.get(self.contract_id)
            return 0 if pos is None else pos.qty
        return sum(p.qty for p in positions if p.contract_id == self.contract_id)

    def _flatten_unprotected(self, stop: Order, held: int, why: str) -> None:
        now = self._now()
        self._status(stop, OrderStatus.CANCELLED, now, f"stop lost: {why}")
        side = -1 if held > 0 else 1
        exit_ = self._new(
            side,
            abs(held),
            OrderType.MARKET,
            OrderRole.EXIT,
            stop.strategy,
            now,
            parent_id=stop.id,
        )
        exit_.reason = f"stop {stop.id} lost at the venue: flattened"
        self._events.append(
            VenueRecovery(now, self.symbol, "stop_lost_flatten", f"stop {stop.id} {why}", stop.id)
        )
        self._spawn(self._place_single(exit_))
