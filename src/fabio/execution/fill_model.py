"""The simulated venue's fill model: when and at what price the tape fills a working order.

Conservative on purpose: a resting limit fills only when a trade prints through it (by
default; `touch` fills at the limit), a stop fills at the triggering trade worsened by a
slippage, a market order at the next trade (plus an optional slippage). The search for each
order's first fillable trade is vectorised: growing windows of the price array, so a near event
costs a small scan and a batch with a resting bracket costs a few array scans.

The order book side (brackets, OCO, ids, events) is `SimulatedBroker`'s; this module knows
nothing of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fabio.orders import Order, OrderType

_SCAN_FIRST_CHUNK = 512  # most fills are near: look close first, then widen the window
_SCAN_MAX_CHUNK = 1 << 18


@dataclass(frozen=True, slots=True)
class Tape:
    """The batch being filled against, as plain arrays."""

    ts: NDArray[np.int64]
    price: NDArray[np.int64]
    size: NDArray[np.int64]

    @property
    def n(self) -> int:
        return len(self.ts)


def first_crossing(price: NDArray[np.int64], start: int, at_most: bool, level: int) -> int:
    """Index of the first price at or below (`at_most`) / at or above `level` from `start`.

    Searches growing windows so that a near event costs a small scan; `len(price)` if none.
    """
    n = len(price)
    i = start
    chunk = _SCAN_FIRST_CHUNK
    while i < n:
        j = min(n, i + chunk)
        window = price[i:j]
        hits = window <= level if at_most else window >= level
        k = int(hits.argmax())
        if hits[k]:
            return i + k
        i = j
        chunk = min(chunk * 4, _SCAN_MAX_CHUNK)
    return n


@dataclass(frozen=True, slots=True)
class FillModel:
    """Fill rules of the simulated venue (see the module docstring)."""

    limit_fill: str = "through"  # or "touch"
    stop_slippage_ticks: int = 1
    market_slippage_ticks: int = 0

    def first_fillable(self, order: Order, tape: Tape, cursor: int) -> int:
        """First trade (at or after `cursor`, not before the order existed) that can fill it."""
        start = max(cursor, int(np.searchsorted(tape.ts, order.created_ns, side="left")))
        if start >= tape.n or order.type is OrderType.MARKET:
            return start
        at_most, level = self.trigger(order)
        return first_crossing(tape.price, start, at_most, level)

    def trigger(self, order: Order) -> tuple[bool, int]:
        """(fills when price <= level?, level) for a stop or a limit."""
        buy = order.side > 0
        if order.type is OrderType.STOP:
            assert order.stop_ticks is not None
            return (not buy, order.stop_ticks)  # a buy stop triggers at or above
        assert order.limit_ticks is not None
        through = 1 if self.limit_fill == "through" else 0
        if buy:
            return (True, order.limit_ticks - through)
        return (False, order.limit_ticks + through)

    def execution(self, order: Order, tape: Tape, idx: int) -> tuple[int, int] | None:
        """(quantity, price) filled at trade `idx` by the order's type rule, or None."""
        price = int(tape.price[idx])
        remaining = order.qty - order.filled_qty
        if order.type is OrderType.MARKET:
            qty, fill_price = remaining, price + order.side * self.market_slippage_ticks
        elif order.type is OrderType.STOP:
            qty, fill_price = remaining, price + order.side * self.stop_slippage_ticks
        else:
            assert order.limit_ticks is not None
            qty, fill_price = min(remaining, int(tape.size[idx])), order.limit_ticks
        if qty <= 0:
            return None
        return qty, fill_price
