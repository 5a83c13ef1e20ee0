"""The simulated account: orders, matching against the tape, positions, fills, balance.

Synchronous and pure of I/O: the server feeds it trades and requests; everything it does is
reported through `emit(target, key, payload)` for the hubs, and kept in `orders` for
`GET /sim/orders`. Prices are floats on the wire, matched in integer ticks.

Every order records where it came from (`origin`): `api` (Order/place), `close_contract`
(Position/closeContract) or `manual` (a trader's hand in the platform, `POST /sim/close`); a
trader's cancellation (`POST /sim/cancel`) is told apart by its reason. The matching runs on the
tape whether or not any client is connected: brackets fill while the agent is away.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fabio.brokers.projectx.models import PxOrderStatus, PxOrderType
from fabio.brokers.projectx.parsing import format_ts

FEES_PER_SIDE = {"EP": 1.40, "ENQ": 1.40, "MES": 0.37, "MNQ": 0.37}
Emit = Callable[[str, Any, dict[str, Any]], None]  # (target, account id or contract id, payload)


@dataclass(slots=True)
class SimContract:
    id: str
    name: str
    description: str
    tick_size: float
    tick_value: float
    symbol_id: str
    bid: int | None = None  # ticks
    ask: int | None = None
    last: int | None = None
    ts_ns: int = 0
    volume: int = 0

    @property
    def product(self) -> str:
        return self.id.split(".")[3]

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "tickSize": self.tick_size,
            "tickValue": self.tick_value,
            "activeContract": True,
            "symbolId": self.symbol_id,
        }


@dataclass(slots=True)
class SimOrder:
    id: int
    account_id: int
    contract_id: str
    type: int
    side: int  # 0 buy, 1 sell
    size: int
    limit_ticks: int | None
    stop_ticks: int | None
    custom_tag: str | None
    created_ns: int
    status: int = PxOrderStatus.OPEN
    fill_volume: int = 0
    fill_value: int = 0  # sum of qty * price ticks
    updated_ns: int = 0
    parent_id: int | None = None
    bracket: dict[str, Any] | None = None
    children: list[int] = field(default_factory=list)
    oco_peer: int | None = None
    reason: str = ""
    fills: list[dict[str, Any]] = field(default_factory=list)
    response_lost: bool = False
    origin: str = "api"  # api | close_contract | manual (see the module's docstring)

    @property
    def remaining(self) -> int:
        return self.size - self.fill_volume

    @property
    def sign(self) -> int:
        return 1 if self.side == 0 else -1


@dataclass(slots=True)
class SimPosition:
    qty: int = 0
    avg_ticks: float = 0.0
    created_ns: int = 0


@dataclass(slots=True)
class SimAccount:
    id: int
    name: str
    balance: float
    can_trade: bool = True

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "balance": round(self.balance, 2),
            "canTrade": self.can_trade,
            "isVisible": True,
            "simulated": True,
        }


class PlaceRefused(Exception):
    def __init__(self, code: int, message: str, order_id: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.order_id = order_id


class SimVenue:
    """One account's orders and positions, matched against the replayed tape."""

    def __init__(
        self,
        contracts: list[SimContract],
        account: SimAccount,
        emit: Emit,
        *,
        auto_oco: bool = True,
        limit_fill_per_print: int | None = None,
    ) -> None:
        self.contracts = {c.id: c for c in contracts}
        self.limit_fill_per_print = limit_fill_per_print
        self.account = account
        self.emit = emit
        self.auto_oco = auto_oco
        self.orders: dict[int, SimOrder] = {}
        self.positions: dict[str, SimPosition] = {}
        self.trades: list[dict[str, Any]] = []
        self._next_order = 9_000_001
        self._next_trade = 70_000_001
        self.now_ns = 0

    # ------------------------------------------------------------------ requests
    def place(self, body: dict[str, Any], origin: str = "api") -> SimOrder:
        """Validate and accept an order; raises PlaceRefused with the gateway's errorCode."""
        if body.get("accountId") != self.account.id:
            raise PlaceRefused(1, "Account not found")
        contract = self.contracts.get(str(body.get("contractId")))
        if contract is None:
            raise PlaceRefused(8, "Contract not found")
        kind, side, size = body.get("type"), body.get("side"), body.get("size")
        if kind not in (1, 2, 4) or side not in (0, 1):
            raise PlaceRefused(2, f"Unsupported order type {kind!r} or side {side!r}")
        if not isinstance(size, int) or size <= 0:
            raise PlaceRefused(2, "Invalid order size")
        tag = body.get("customTag")
        if tag and any(o.custom_tag == tag for o in self.orders.values()):
            raise PlaceRefused(2, "customTag must be unique across the account")
        limit = self._ticks(contract, body.get("limitPrice"))
        stop = self._ticks(contract, body.get("stopPrice"))
        if kind == 1 and limit is None:
            raise PlaceRefused(2, "A limit order needs limitPrice")
        if kind == 4 and stop is None:
            raise PlaceRefused(2, "A stop order needs stopPrice")
        brackets = {k: body.get(k) for k in ("stopLossBracket", "takeProfitBracket")}
        order = self._new(contract, kind, side, size, limit, stop, tag)
        order.origin = origin
        if any(v is not None for v in brackets.values()):
            self._attach_brackets(order, contract, brackets)
        self._publish(order)
        for cid in order.children:
            self._publish(self.orders[cid])
        if kind == 2 and (contract.bid is not None and contract.ask is not None):
            self._fill(order, order.size, contract.ask if side == 0 else contract.bid)
        return order

    def _attach_brackets(
        self, order: SimOrder, contract: SimContract, brackets: dict[str, Any]
    ) -> None:
        """Auto-OCO children, held until the entry fills; refused in Position-Brackets mode."""
        if not self.auto_oco:
            order.status = PxOrderStatus.REJECTED
            order.reason = "Brackets cannot be used with Position Brackets"
            self._publish(order)
            raise PlaceRefused(
                2,
                "Brackets cannot be used with Position Brackets. You must enable Auto OCO Brackets",
                order.id,
            )
        sign = 1 if order.side == 0 else -1
        for key, want in (("stopLossBracket", -1), ("takeProfitBracket", 1)):
            leg = brackets[key]
            if leg is None:
                continue
            ticks = leg.get("ticks") if isinstance(leg, dict) else None
            if not isinstance(ticks, int) or ticks == 0 or (ticks > 0) != (want * sign > 0):
                order.status = PxOrderStatus.REJECTED
                order.reason = f"{key}: ticks have the wrong sign for this side"
                self._publish(order)
                what = "less" if want * sign < 0 else "greater"
                raise PlaceRefused(2, f"Ticks should be {what} than zero ({key})", order.id)
        order.bracket = brackets
        for key in ("stopLossBracket", "takeProfitBracket"):
            if brackets[key] is not None:
                child = self._new(
                    contract,
                    int(brackets[key]["type"]),
                    1 - order.side,
                    order.size,
                    None,
                    None,
                    None,
                )
                child.status = PxOrderStatus.SUSPENDED
                child.parent_id = order.id
                child.bracket = {"leg": key, "ticks": brackets[key]["ticks"]}
                order.children.append(child.id)
        if len(order.children) == 2:
            a, b = order.children
            self.orders[a].oco_peer = b
            self.orders[b].oco_peer = a

    def modify(self, body: dict[str, Any]) -> None:
        order = self._own(body)
        if not PxOrderStatus(order.status).is_working:
            raise PlaceRefused(3, "Order is not working")
        contract = self.contracts[order.contract_id]
        size = body.get("size")
        if isinstance(size, int) and size > order.fill_volume:
            order.size = size
        if body.get("limitPrice") is not None:
            order.limit_ticks = self._ticks(contract, body["limitPrice"])
        if body.get("stopPrice") is not None:
            order.stop_ticks = self._ticks(contract, body["stopPrice"])
        order.updated_ns = self.now_ns
        self._publish(order)

    def cancel(self, body: dict[str, Any]) -> None:
        order = self._own(body)
        if not PxOrderStatus(order.status).is_working:
            raise PlaceRefused(3, "Order is not working")
        self._cancel(order, "cancelled by request")

    def close_contract(self, body: dict[str, Any], origin: str = "close_contract") -> SimOrder:
        if body.get("accountId") != self.account.id:
            raise PlaceRefused(1, "Account not found")
        cid = str(body.get("contractId"))
        pos = self.positions.get(cid)
        if pos is None or pos.qty == 0:
            raise PlaceRefused(2, "Position not found")
        return self.place(
            {
                "accountId": self.account.id,
                "contractId": cid,
                "type": 2,
                "side": 1 if pos.qty > 0 else 0,
                "size": abs(pos.qty),
            },
            origin,
        )

    def manual_close(self, contract_id: str) -> SimOrder:
        """A trader closes the contract's position at market in the platform: an untagged order
        that is none of the agent's (`POST /sim/close`)."""
        if contract_id not in self.contracts:
            raise PlaceRefused(8, "Contract not found")
        return self.close_contract(
            {"accountId": self.account.id, "contractId": contract_id}, origin="manual"
        )

    def manual_cancel(
        self, order_id: int | None = None, contract_id: str | None = None
    ) -> list[int]:
        """A trader (or the venue) cancels an order, or every working stop order of a contract
        (`POST /sim/cancel`); the ids cancelled."""
        if order_id is not None:
            order = self.orders.get(order_id)
            if order is None:
                raise PlaceRefused(2, "Order not found")
            targets = [order]
        elif contract_id is not None:
            if contract_id not in self.contracts:
                raise PlaceRefused(8, "Contract not found")
            targets = [
                o
                for o in self.orders.values()
                if o.contract_id == contract_id and o.type == PxOrderType.STOP
            ]
        else:
            raise PlaceRefused(2, "give an orderId or a contractId")
        done = []
        for order in targets:
            if PxOrderStatus(order.status).is_working:
                self._cancel(order, "cancelled at the venue (by hand)")
                done.append(order.id)
        return done

    def _own(self, body: dict[str, Any]) -> SimOrder:
        if body.get("accountId") != self.account.id:
            raise PlaceRefused(1, "Account not found")
        order = self.orders.get(body.get("orderId"))  # type: ignore[arg-type]
        if order is None:
            raise PlaceRefused(2, "Order not found")
        return order

    @staticmethod
    def _ticks(contract: SimContract, price: Any) -> int | None:
        if price is None or isinstance(price, bool):
            return None
        try:
            return round(float(price) / contract.tick_size)
        except (TypeError, ValueError):
            return None

    def _new(
        self,
        contract: SimContract,
        kind: int,
        side: int,
        size: int,
        limit: int | None,
        stop: int | None,
        tag: str | None,
    ) -> SimOrder:
        order = SimOrder(
            self._next_order,
            self.account.id,
            contract.id,
            kind,
            side,
            size,
            limit,
            stop,
            tag,
            self.now_ns,
            updated_ns=self.now_ns,
        )
        self._next_order += 1
        self.orders[order.id] = order
        return order

    # ------------------------------------------------------------------ market
    def on_quote(self, contract_id: str, bid: int | None, ask: int | None, ts_ns: int) -> None:
        c = self.contracts[contract_id]
        c.bid, c.ask, c.ts_ns = bid, ask, ts_ns
        self.now_ns = max(self.now_ns, ts_ns)

    def on_trade(self, contract_id: str, price: int, volume: int, ts_ns: int) -> None:
        """Match working orders of this contract against one print."""
        c = self.contracts[contract_id]
        c.last, c.ts_ns = price, ts_ns
        c.volume += volume
        self.now_ns = max(self.now_ns, ts_ns)
        left = volume
        for order in [
            o
            for o in self.orders.values()
            if o.contract_id == contract_id and o.status == PxOrderStatus.OPEN
        ]:
            if order.status != PxOrderStatus.OPEN:
                continue  # cancelled by an OCO fill earlier in this loop
            if order.type == PxOrderType.MARKET:
                self._fill(order, order.remaining, price)
            elif order.type == PxOrderType.LIMIT and order.limit_ticks is not None:
                through = (
                    price <= order.limit_ticks if order.side == 0 else (price >= order.limit_ticks)
                )
                if through and left > 0:
                    qty = min(order.remaining, left, self.limit_fill_per_print or left)
                    left -= qty
                    self._fill(order, qty, order.limit_ticks)
            elif order.type == PxOrderType.STOP and order.stop_ticks is not None:
                hit = price >= order.stop_ticks if order.side == 0 else price <= order.stop_ticks
                if hit:
                    self._fill(order, order.remaining, price)

    # ------------------------------------------------------------------ fills
    def _fill(self, order: SimOrder, qty: int, price: int) -> None:
        if qty <= 0:
            return
        contract = self.contracts[order.contract_id]
        order.fill_volume += qty
        order.fill_value += qty * price
        order.updated_ns = self.now_ns
        order.status = PxOrderStatus.FILLED if order.remaining == 0 else PxOrderStatus.OPEN
        pnl = self._apply_position(contract, order.sign * qty, price)
        fees = FEES_PER_SIDE.get(contract.product, 1.40) * qty
        self.account.balance += (pnl or 0.0) - fees
        trade = {
            "id": self._next_trade,
            "accountId": self.account.id,
            "contractId": contract.id,
            "creationTimestamp": format_ts(self.now_ns),
            "price": price * contract.tick_size,
            "profitAndLoss": None if pnl is None else round(pnl, 2),
            "fees": round(fees, 2),
            "side": order.side,
            "size": qty,
            "voided": False,
            "orderId": order.id,
        }
        self._next_trade += 1
        self.trades.append(trade)
        order.fills.append(
            {"ts": format_ts(self.now_ns), "qty": qty, "price": price * contract.tick_size}
        )
        self._publish(order)
        self.emit("GatewayUserTrade", self.account.id, trade)
        self._publish_position(contract)
        self.emit("GatewayUserAccount", self.account.id, self.account.to_wire())
        if order.children:
            self._activate_children(order, contract)
        if order.oco_peer is not None:
            peer = self.orders[order.oco_peer]
            if PxOrderStatus(peer.status).is_working:
                if order.remaining == 0:
                    self._cancel(peer, "OCO: the other leg filled")
                else:
                    peer.size = peer.fill_volume + order.remaining
                    self._publish(peer)

    def _activate_children(self, parent: SimOrder, contract: SimContract) -> None:
        avg = round(parent.fill_value / parent.fill_volume)
        for cid in parent.children:
            child = self.orders[cid]
            if child.status not in (PxOrderStatus.SUSPENDED, PxOrderStatus.OPEN):
                continue
            assert child.bracket is not None
            level = avg + int(child.bracket["ticks"])
            if child.type == PxOrderType.STOP:
                child.stop_ticks = level
            else:
                child.limit_ticks = level
            child.size = parent.fill_volume
            child.status = PxOrderStatus.OPEN
            child.updated_ns = self.now_ns
            self._publish(child)

    def _apply_position(self, contract: SimContract, signed: int, price: int) -> float | None:
        pos = self.positions.setdefault(contract.id, SimPosition(created_ns=self.now_ns))
        pnl: float | None = None
        if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
            total = pos.qty + signed
            pos.avg_ticks = (pos.avg_ticks * abs(pos.qty) + price * abs(signed)) / abs(total)
            if pos.qty == 0:
                pos.created_ns = self.now_ns
            pos.qty = total
        else:
            closing = min(abs(pos.qty), abs(signed))
            direction = 1 if pos.qty > 0 else -1
            pnl = (price - pos.avg_ticks) * direction * closing * contract.tick_value
            pos.qty += signed
            if pos.qty == 0:
                pos.avg_ticks = 0.0
            elif (pos.qty > 0) != (direction > 0):  # reversed through flat
                pos.avg_ticks = float(price)
                pos.created_ns = self.now_ns
        return pnl

    def _cancel(self, order: SimOrder, reason: str) -> None:
        order.status = PxOrderStatus.CANCELLED
        order.reason = reason
        order.updated_ns = self.now_ns
        self._publish(order)
        for cid in order.children:
            child = self.orders[cid]
            if child.status == PxOrderStatus.SUSPENDED:
                self._cancel(child, "parent cancelled")

    # ------------------------------------------------------------------ wire
    def order_wire(self, order: SimOrder) -> dict[str, Any]:
        c = self.contracts[order.contract_id]
        return {
            "id": order.id,
            "accountId": order.account_id,
            "contractId": order.contract_id,
            "symbolId": c.symbol_id,
            "creationTimestamp": format_ts(order.created_ns),
            "updateTimestamp": format_ts(order.updated_ns),
            "status": int(order.status),
            "type": order.type,
            "side": order.side,
            "size": order.size,
            "limitPrice": None if order.limit_ticks is None else order.limit_ticks * c.tick_size,
            "stopPrice": None if order.stop_ticks is None else order.stop_ticks * c.tick_size,
            "fillVolume": order.fill_volume,
            "filledPrice": (
                order.fill_value / order.fill_volume * c.tick_size if order.fill_volume else None
            ),
            "customTag": order.custom_tag,
        }

    def position_wire(self, contract: SimContract) -> dict[str, Any]:
        pos = self.positions.get(contract.id, SimPosition())
        return {
            "id": abs(hash(contract.id)) % 1_000_000,
            "accountId": self.account.id,
            "contractId": contract.id,
            "contractDisplayName": contract.name,
            "creationTimestamp": format_ts(pos.created_ns),
            "type": 1 if pos.qty > 0 else (2 if pos.qty < 0 else 0),
            "size": abs(pos.qty),
            "averagePrice": pos.avg_ticks * contract.tick_size,
        }

    def _publish(self, order: SimOrder) -> None:
        self.emit("GatewayUserOrder", self.account.id, self.order_wire(order))

    def _publish_position(self, contract: SimContract) -> None:
        self.emit("GatewayUserPosition", self.account.id, self.position_wire(contract))

    def open_positions(self) -> list[dict[str, Any]]:
        return [
            self.position_wire(self.contracts[cid])
            for cid, p in self.positions.items()
            if p.qty != 0
        ]

    def order_log(self) -> list[dict[str, Any]]:
        """Every order received, with its tag, status and fills (`GET /sim/orders`)."""
        out = []
        for o in self.orders.values():
            rec = self.order_wire(o)
            rec.update(
                statusName=PxOrderStatus(o.status).name,
                parentId=o.parent_id,
                fills=list(o.fills),
                reason=o.reason,
                responseLost=o.response_lost,
                bracket=o.bracket,
                origin=o.origin,
            )
            out.append(rec)
        return out
