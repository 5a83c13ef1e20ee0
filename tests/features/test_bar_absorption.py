"""Absorption read from bars: heavy one-sided aggression in a bar that closed the other way,
and real ES 5-minute bars in which the AbsorptionFade setup triggers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fabio.features.orderflow import bar_absorption

NS = 1_000_000_000
BAR = 300 * NS


def bars(spec: list[tuple[list[int], list[int], list[int]]]) -> tuple[np.ndarray, ...]:
    """Trades from bars: (prices in path order, sizes, sides), each bar 300 s long."""
    ts, price, size, side = [], [], [], []
    for b, (ps, ss, ds) in enumerate(spec):
        for i, (p, s, d) in enumerate(zip(ps, ss, ds, strict=True)):
            ts.append(b * BAR + i * BAR // (len(ps) + 1))
            price.append(p)
            size.append(s)
            side.append(d)
    return (
        np.array(ts, dtype=np.int64),
        np.array(price, dtype=np.int64),
        np.array(size, dtype=np.int64),
        np.array(side, dtype=np.int8),
    )


QUIET = ([100, 101, 100], [10, 10, 10], [1, -1, 1])


def test_heavy_selling_that_closed_off_the_low_is_bid_absorption() -> None:
    # the last bar: 3x the volume, sellers dominate, price went down 6 ticks and closed at the top
    last = ([100, 97, 94, 97, 100], [20, 40, 40, 20, 10], [-1, -1, -1, 1, -1])
    ts, price, size, side = bars([QUIET, QUIET, QUIET, last])
    got = bar_absorption(ts, price, size, side, 4 * BAR, BAR)
    assert got is not None and got["side"] == "bid" and got["price_ticks"] == 94
    assert got["imbalance"] >= 0.1


def test_the_mirror_is_ask_absorption() -> None:
    last = ([100, 103, 106, 103, 100], [20, 40, 40, 20, 10], [1, 1, 1, -1, 1])
    ts, price, size, side = bars([QUIET, QUIET, QUIET, last])
    got = bar_absorption(ts, price, size, side, 4 * BAR, BAR)
    assert got is not None and got["side"] == "ask" and got["price_ticks"] == 106


@pytest.mark.parametrize(
    "last",
    [
        ([100, 97, 94, 95, 94], [20, 40, 40, 20, 10], [-1, -1, -1, 1, -1]),  # closed at the low
        ([100, 97, 94, 97, 100], [2, 4, 4, 2, 1], [-1, -1, -1, 1, -1]),  # no volume surge
        (
            [100, 97, 94, 97, 100],
            [20, 40, 40, 20, 10],
            [-1, 1, -1, 1, 1],
        ),  # no one-sided aggression
    ],
)
def test_no_absorption_without_all_three(last: tuple[list[int], list[int], list[int]]) -> None:
    ts, price, size, side = bars([QUIET, QUIET, QUIET, last])
    assert bar_absorption(ts, price, size, side, 4 * BAR, BAR) is None


def test_needs_earlier_bars_to_compare_with() -> None:
    last = ([100, 97, 94, 97, 100], [20, 40, 40, 20, 10], [-1, -1, -1, 1, -1])
    ts, price, size, side = bars([last])
    assert bar_absorption(ts, price, size, side, BAR, BAR) is None


def test_absorption_fade_triggers_on_real_es_bars(shared_data: Path) -> None:
    from fabio.config import FeatureConfig
    from fabio.data import open_feed
    from fabio.features.engine import FeatureEngine
    from fabio.playbook.setups import detect_setups
    from fabio.strategies import ABSORPTION_FADE, initialize_default_strategies

    feed = open_feed(shared_data / "es-5m-sierra" / "ESH19-CME.scid_BarData__5m.txt.gz")
    engine = FeatureEngine(
        feed.contract, FeatureConfig(bar_absorption_sec=300, signal_window_sec=1200)
    )
    state = {ABSORPTION_FADE: initialize_default_strategies()[ABSORPTION_FADE]}
    found = 0
    for batch in feed.batches():
        t = batch.trades
        if len(t) == 0:
            continue
        edges = np.arange(int(t.ts[0]) // BAR * BAR + BAR, int(t.ts[-1]) + BAR, BAR)
        cuts = np.searchsorted(t.ts, edges)
        start = 0
        for edge, cut in zip(edges.tolist(), cuts.tolist(), strict=True):
            if cut == start:
                continue
            engine.update(t.slice(start, cut))
            start = cut
            snap = engine.snapshot(edge)
            if snap.market_stats is not None and snap.price is not None:
                found += len(detect_setups(snap, state, 0.25))
        if found >= 3:
            break
    assert found >= 3
