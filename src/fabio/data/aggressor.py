"""Aggressor-side classification for trades whose venue did not report a side (FACTS.md §4).

All rules are vectorised (numpy, no per-trade loop). Results are int8: +1 buy aggressor,
-1 sell aggressor, 0 unknown. Quotes must be the book *before* the trade; missing quotes are
NaN (or any non-finite value) and leave the quote rule undecided.

The tick rule needs the previous trade's price and the previous non-zero classification, so
`TickRule` carries that state from one batch to the next; a feed keeps one per file and feeds
it *every* trade in order (also those whose side the venue reported).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fabio.domain import AggressorSource, TradeBatch

Sides = NDArray[np.int8]


def quote_rule(price: ArrayLike, bid: ArrayLike, ask: ArrayLike) -> Sides:
    """At or above the ask = buy, at or below the bid = sell, inside the spread = 0.

    A locked or crossed book where a price satisfies both tests is left undecided.
    """
    p = np.asarray(price, dtype=np.float64)
    b = np.asarray(bid, dtype=np.float64)
    a = np.asarray(ask, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        buy = p >= a
        sell = p <= b
    out = buy.astype(np.int8) - sell.astype(np.int8)
    return np.asarray(out, dtype=np.int8)


def _forward_fill_signs(signs: Sides, initial: int) -> Sides:
    """Replace zeros by the last non-zero value before them (`initial` before the first)."""
    n = len(signs)
    if n == 0:
        return signs.copy()
    idx = np.where(signs != 0, np.arange(n), -1)
    np.maximum.accumulate(idx, out=idx)
    out = np.where(idx >= 0, signs[np.maximum(idx, 0)], np.int8(initial))
    return np.asarray(out, dtype=np.int8)


def tick_rule(price: ArrayLike, prev_price: float | None = None, prev_side: int = 0) -> Sides:
    """Uptick = buy, downtick = sell, zero tick = the previous non-zero classification.

    `prev_price` / `prev_side` carry the state from an earlier batch; without them the first
    trade is 0. Non-finite prices get 0 and are ignored as "previous" trades.
    """
    p = np.asarray(price, dtype=np.float64)
    out = np.zeros(len(p), dtype=np.int8)
    valid = np.isfinite(p)
    pv = p[valid]
    if len(pv) == 0:
        return out
    prev = np.empty_like(pv)
    prev[1:] = pv[:-1]
    prev[0] = pv[0] if prev_price is None or not np.isfinite(prev_price) else prev_price
    signs = np.sign(pv - prev).astype(np.int8)
    out[valid] = _forward_fill_signs(signs, prev_side)
    return out


class TickRule:
    """The tick rule with its state (last price, last non-zero side) carried across batches."""

    def __init__(self) -> None:
        self.last_price: float | None = None
        self.last_side: int = 0

    def classify(self, price: ArrayLike) -> Sides:
        p = np.asarray(price, dtype=np.float64)
        out = tick_rule(p, self.last_price, self.last_side)
        finite = np.flatnonzero(np.isfinite(p))
        if len(finite):
            self.last_price = float(p[finite[-1]])
            nonzero = np.flatnonzero(out[finite])
            if len(nonzero):
                self.last_side = int(out[finite[nonzero[-1]]])
        return out


def lee_ready(
    price: ArrayLike,
    bid: ArrayLike,
    ask: ArrayLike,
    prev_price: float | None = None,
    prev_side: int = 0,
    tick: Sides | None = None,
) -> Sides:
    """Lee & Ready (1991): above the midpoint = buy, below = sell, at the midpoint the tick rule.

    At or outside the quotes this is the quote rule. Where a quote is missing (non-finite) the
    tick rule decides too. Pass `tick` (the tick rule over the same trades, e.g. from a
    `TickRule`) to carry state across batches; otherwise it is computed from `prev_price` and
    `prev_side`.
    """
    p = np.asarray(price, dtype=np.float64)
    b = np.asarray(bid, dtype=np.float64)
    a = np.asarray(ask, dtype=np.float64)
    ticks = tick_rule(p, prev_price, prev_side) if tick is None else np.asarray(tick, np.int8)
    with np.errstate(invalid="ignore"):
        mid2 = a + b  # twice the midpoint: exact for prices on a binary-friendly grid
        quoted = np.isfinite(mid2) & np.isfinite(p)
        above = quoted & (2.0 * p > mid2)
        below = quoted & (2.0 * p < mid2)
    out = np.where(above, np.int8(1), np.where(below, np.int8(-1), ticks))
    return np.asarray(out, dtype=np.int8)


def count_sources(batch: TradeBatch, method: AggressorSource) -> Counter[str]:
    """Count a batch's trades by where their side came from (for `LoadReport.aggressor`).

    Venue-reported trades are EXCHANGE, classified ones `method`, and any trade still without
    a side is UNKNOWN.
    """
    unknown = batch.side == 0
    inferred = batch.inferred & ~unknown
    counts: Counter[str] = Counter()
    n_unknown = int(unknown.sum())
    n_inferred = int(inferred.sum())
    n_exchange = len(batch) - n_unknown - n_inferred
    if n_exchange:
        counts[AggressorSource.EXCHANGE.value] = n_exchange
    if n_inferred:
        counts[method.value] = n_inferred
    if n_unknown:
        counts[AggressorSource.UNKNOWN.value] = n_unknown
    return counts
