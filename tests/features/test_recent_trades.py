"""The engine's buffer of the last signal window's trades against a plain concatenation."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fabio.domain import TradeBatch
from fabio.features.engine import RecentTrades


def _batch(rng: np.random.Generator, start_ns: int, n: int) -> TradeBatch:
    ts = start_ns + np.cumsum(rng.integers(0, 3 * 10**8, n)).astype(np.int64)
    return TradeBatch(
        ts,
        rng.integers(19_000, 19_100, n).astype(np.int64),
        rng.integers(1, 40, n).astype(np.int64),
        rng.choice(np.array([-1, 0, 1], dtype=np.int8), n),
        rng.random(n) < 0.3,
    )


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.lists(st.integers(1, 300), min_size=1, max_size=60),
    st.integers(1, 64),
    st.integers(1, 120),
)
def test_recent_trades_hold_exactly_the_window(
    seed: int, sizes: list[int], capacity: int, window_sec: int
) -> None:
    rng = np.random.default_rng(seed)
    window = window_sec * 10**9
    recent = RecentTrades(capacity)
    everything: list[TradeBatch] = []
    clock = 1_700_000_000 * 10**9
    for n in sizes:
        batch = _batch(rng, clock, n)
        clock = int(batch.ts[-1])
        everything.append(batch)
        recent.append(batch, clock - window)
        joined = TradeBatch.concat(everything)
        keep = joined.ts > clock - window
        got = recent.view()
        for name in ("ts", "price", "size", "side", "inferred"):
            assert np.array_equal(getattr(got, name), getattr(joined, name)[keep]), name
