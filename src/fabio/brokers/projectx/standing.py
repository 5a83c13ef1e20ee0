"""What a live session leaves standing at the venue when it stops: positions and their orders.

Read from the venue itself (`Position/searchOpen`, `Order/searchOpen`) when it answers within a
few seconds, else from what the hubs last reported. A stopped agent leaves a position with its
stop and target working at the venue (SIGTERM, the end of `--duration`); the trader must know.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from fabio.brokers.projectx.models import (
    PxOrder,
    PxOrderSide,
    PxOrderType,
    PxPosition,
)
from fabio.errors import FabioError

STOP_TYPES = frozenset({PxOrderType.STOP, PxOrderType.STOP_LIMIT, PxOrderType.TRAILING_STOP})


@dataclass(frozen=True, slots=True)
class Standing:
    """One contract's position at the venue and the orders working on it."""

    symbol: str
    contract_id: str
    qty: int  # signed: > 0 long
    average_price: float
    stops: list[PxOrder] = field(default_factory=list)  # protective, opposite side
    targets: list[PxOrder] = field(default_factory=list)  # protective limits, opposite side
    others: list[PxOrder] = field(default_factory=list)  # e.g. a working entry

    @property
    def stop_qty(self) -> int:
        return sum(o.size - o.fill_volume for o in self.stops)

    def line(self) -> str:
        """One line for the trader, e.g. `ES long 1 @ 4750.25: stop 4748 (1) and target
        4753 (1) working at the venue`, with `; NO working stop for N` when not covered."""
        parts: list[str] = []
        warning = ""
        if self.qty:
            side = "long" if self.qty > 0 else "short"
            head = f"{self.symbol} {side} {abs(self.qty)} @ {self.average_price:g}"
            if self.stops:
                parts.append("stop " + _prices(self.stops, stop=True))
            if self.targets:
                parts.append("target " + _prices(self.targets, stop=False))
            if self.stop_qty < abs(self.qty):
                warning = f"; NO working stop for {abs(self.qty) - self.stop_qty}"
        else:
            head = f"{self.symbol} flat"
        if self.others:
            parts.append(
                f"{len(self.others)} other order(s) " + ", ".join(_describe(o) for o in self.others)
            )
        working = f": {' and '.join(parts)} working at the venue" if parts else ""
        return head + working + warning

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "qty": self.qty,
            "average_price": self.average_price,
            "stops": [o.stop_price for o in self.stops],
            "targets": [o.limit_price for o in self.targets],
            "other_orders": [_describe(o) for o in self.others],
        }


async def standing_at_venue(
    account_id: int,
    symbols: dict[str, str],
    http: Any,
    cached_positions: dict[str, PxPosition],
    cached_orders: dict[int, PxOrder],
    *,
    timeout: float = 5.0,
) -> tuple[list[Standing], bool]:
    """Every contract of `symbols` (contract id -> symbol) with a position or a working order;
    and whether the venue answered (False: from the hubs' last reports)."""
    try:
        positions, orders = await asyncio.wait_for(
            asyncio.gather(http.positions(account_id), http.open_orders(account_id)), timeout
        )
        fresh = True
    except (FabioError, TimeoutError):  # a refusal, an unreadable answer, no answer
        positions = list(cached_positions.values())
        orders = [o for o in cached_orders.values() if o.status.is_working]
        fresh = False
    return describe(symbols, positions, orders), fresh


def describe(
    symbols: dict[str, str], positions: list[PxPosition], orders: list[PxOrder]
) -> list[Standing]:
    """What stands on each contract of `symbols` (contract id -> symbol)."""
    qty = {p.contract_id: p for p in positions if p.qty != 0}
    out: list[Standing] = []
    for cid, symbol in symbols.items():
        pos = qty.get(cid)
        working = [o for o in orders if o.contract_id == cid and o.status.is_working]
        if pos is None and not working:
            continue
        signed = pos.qty if pos is not None else 0
        closing = PxOrderSide.ASK if signed > 0 else PxOrderSide.BID
        stops, targets, others = [], [], []
        for o in sorted(working, key=lambda o: o.id):
            if signed != 0 and o.side == closing and o.type in STOP_TYPES:
                stops.append(o)
            elif signed != 0 and o.side == closing and o.type is PxOrderType.LIMIT:
                targets.append(o)
            else:
                others.append(o)
        out.append(
            Standing(
                symbol,
                cid,
                signed,
                pos.average_price if pos is not None else 0.0,
                stops,
                targets,
                others,
            )
        )
    return out


def _prices(orders: list[PxOrder], *, stop: bool) -> str:
    return ", ".join(
        f"{(o.stop_price if stop else o.limit_price) or 0:g} ({o.size - o.fill_volume})"
        for o in orders
    )


def _describe(o: PxOrder) -> str:
    side = (
        {PxOrderSide.BID: "buy", PxOrderSide.ASK: "sell"}.get(o.side, "?")
        if o.side is not None
        else "?"
    )
    price = o.stop_price if o.type in STOP_TYPES else o.limit_price
    at = f" @ {price:g}" if price is not None else ""
    return f"{side} {o.type.name.lower()} {o.size - o.fill_volume}{at}"
