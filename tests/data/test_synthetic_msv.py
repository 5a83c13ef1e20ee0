"""Generator 2 (Markov-switching volatility): determinism, format, labels and mechanics."""

from __future__ import annotations

import numpy as np
import pytest

from fabio.data import open_feed
from fabio.data.synthetic import SyntheticConfig, generate_session
from fabio.data.synthetic_msv import (
    GENERATOR_NAME,
    MsvConfig,
    MsvFeed,
    MsvParams,
    iter_msv_sessions,
    write_msv,
)
from fabio.timeutil import NS_PER_MIN


@pytest.fixture(scope="module")
def sessions() -> list:  # type: ignore[type-arg]
    return list(iter_msv_sessions(MsvConfig(days=4, seed=5)))


def test_same_seed_same_market_and_prefix_stable(sessions: list) -> None:  # type: ignore[type-arg]
    again = list(iter_msv_sessions(MsvConfig(days=2, seed=5)))
    for a, b in zip(sessions[:2], again, strict=True):
        assert np.array_equal(a.trades.ts, b.trades.ts)
        assert np.array_equal(a.trades.price, b.trades.price)
        assert np.array_equal(a.labels.regime, b.labels.regime)
    other = next(iter_msv_sessions(MsvConfig(days=1, seed=6)))
    assert not np.array_equal(other.trades.price[:100], sessions[0].trades.price[:100])


def test_rth_only_nq_scale_and_a_different_market_from_generator_1(
    sessions: list,  # type: ignore[type-arg]
) -> None:
    for s in sessions:
        tr = s.trades
        assert tr.ts[0] >= s.session.rth_open_ns and tr.ts[-1] < s.session.rth_close_ns
        assert np.all(np.diff(tr.ts) >= 0)
        # NQ-like: ~18,000 index points in 0.25 ticks, hundreds of ticks of range a day
        assert 60_000 < tr.price.mean() < 90_000  # ticks of 0.25: 15,000-22,500 points
        assert tr.price.max() - tr.price.min() > 150
        assert 150_000 < len(tr) < 300_000
    es = generate_session(SyntheticConfig(eth=False, days=1))
    assert len(es.trades) > 2 * len(sessions[0].trades)  # different trades per minute


def test_prints_at_the_touch_and_sizes(sessions: list) -> None:  # type: ignore[type-arg]
    s = sessions[0]
    buy = s.trades.side > 0
    assert np.all(s.trades.price[buy] == s.quotes.ask[buy])
    assert np.all(s.trades.price[~buy] == s.quotes.bid[~buy])
    assert np.all(s.quotes.ask - s.quotes.bid >= 1)
    assert np.all(s.trades.size >= 1)
    assert 1.8 < s.trades.size.mean() < 3.2


def test_labels_every_minute_with_trades_and_all_regimes(
    sessions: list,  # type: ignore[type-arg]
) -> None:
    codes = np.concatenate([s.labels.regime for s in sessions])
    assert set(np.unique(codes).tolist()) == {0, 1, 2}
    for s in sessions:
        minutes = np.unique(s.trades.ts // NS_PER_MIN) * NS_PER_MIN
        assert np.array_equal(s.labels.minute_ts, minutes)
        # spells last at least the minimum dwell (except at a session's edges)
        change = np.flatnonzero(np.diff(s.labels.regime)) + 1
        spells = np.diff(np.concatenate(([0], change, [len(s.labels)])))
        assert (spells[1:-1] >= MsvParams().min_dwell_min).all()


def test_flow_follows_price_in_trends(sessions: list) -> None:  # type: ignore[type-arg]
    """Trend minutes: the 15-minute net aggressor volume has the sign of the price change."""
    agree = total = 0
    for s in sessions:
        tr = s.trades
        minute = (tr.ts - s.session.rth_open_ns) // NS_PER_MIN
        n = int(minute.max()) + 1
        delta = np.bincount(minute, weights=tr.size * tr.side, minlength=n)
        last = np.full(n, np.nan)
        last[minute] = tr.price
        for m in range(15, n):
            trend = s.labels.regime[min(m, len(s.labels) - 1)] == 0
            if not trend or np.isnan(last[m - 15 : m + 1]).any():
                continue
            move = last[m] - last[m - 15]
            if move == 0:
                continue
            total += 1
            agree += np.sign(delta[m - 14 : m + 1].sum()) == np.sign(move)
    assert total > 100 and agree / total > 0.8


def test_random_draws_are_valid_and_varied() -> None:
    draws = [MsvParams.draw(np.random.default_rng(i)) for i in range(20)]
    assert len({round(d.sigma_min_ticks, 3) for d in draws}) == 20
    assert min(d.rth_trades for d in draws) < 100_000 < max(d.rth_trades for d in draws)
    es = MsvParams.draw(np.random.default_rng(1), symbol="ES")
    assert es.price_level < 7_000
    s = next(iter_msv_sessions(MsvConfig(symbol="ES", days=1, seed=2, params=es)))
    assert len(s.trades) > 0


def test_feed_and_files_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    feed = MsvFeed(MsvConfig(days=2, seed=3))
    n = sum(len(b.trades) for b in feed.batches())
    assert feed.report.trades == n and len(feed.labels) > 700
    assert feed.contract.symbol.startswith("NQ")
    out = tmp_path / "m.csv.gz"
    summary = write_msv(out, "NQ", 2, 3)
    assert summary["generator"] == GENERATOR_NAME and summary["trades"] == n
    assert (tmp_path / "m.labels.csv").read_text().startswith("minute_start_ts,")
    again = tmp_path / "n.csv.gz"
    write_msv(again, "NQ", 2, 3)
    assert out.read_bytes() == again.read_bytes()
    read = open_feed(out, symbol="NQH4")
    assert sum(len(b.trades) for b in read.batches()) == n
