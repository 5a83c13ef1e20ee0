from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fabio.config import FeatureConfig
from fabio.domain import TradeBatch
from fabio.features.engine import FeatureEngine
from fabio.features.profile import levels_of
from fabio.instruments import parse_symbol
from fabio.sessions import SessionKind
from fabio.timeutil import CHICAGO, datetime_to_ns
from tests.features.reference import ref_session_stats

ES = parse_symbol("ESH4", 2024)
SEC = 1_000_000_000
BASE_TICK = 4 * 5000


def at_ct(day: int, hh: int, mm: int, ss: int = 0) -> int:
    return datetime_to_ns(datetime(2024, 3, day, hh, mm, ss, tzinfo=CHICAGO))


OPEN = at_ct(5, 8, 30)

trade_lists = st.lists(
    st.tuples(
        st.integers(0, 3 * SEC),  # gap to the previous trade
        st.integers(-3, 3),  # price step in ticks
        st.integers(1, 20),  # size
        st.sampled_from([-1, 0, 1]),  # aggressor side
    ),
    min_size=1,
    max_size=120,
)


def build(rows: list[tuple[int, int, int, int]], start: int = OPEN) -> TradeBatch:
    ts, price, size, side = [], [], [], []
    t, p = start, BASE_TICK
    for gap, step, q, s in rows:
        t += gap
        p += step
        ts.append(t)
        price.append(p)
        size.append(q)
        side.append(s)
    return TradeBatch.from_arrays(ts, price, size, side)


def feed(engine: FeatureEngine, batch: TradeBatch, cuts: list[int]) -> None:
    prev = 0
    for c in [*sorted(set(cuts)), len(batch)]:
        engine.update(batch.slice(prev, c))
        prev = c


@given(trade_lists, st.lists(st.integers(0, 120), max_size=6), st.integers(0, 200))
@settings(max_examples=120, deadline=None)
def test_matches_reference_and_is_batch_independent(rows, cuts, extra_sec) -> None:
    batch = build(rows)
    cuts = [c for c in cuts if c <= len(batch)]
    at = int(batch.ts[-1]) + extra_sec * SEC // 10
    cfg = FeatureConfig()
    one = FeatureEngine(ES, cfg)
    one.update(batch)
    snap = one.snapshot(at)
    many = FeatureEngine(ES, cfg)
    feed(many, batch, cuts)
    assert many.snapshot(at).to_dict() == snap.to_dict()

    trades = list(
        zip(
            batch.ts.tolist(),
            batch.price.tolist(),
            batch.size.tolist(),
            batch.side.tolist(),
            strict=True,
        )
    )
    ref = ref_session_stats(trades, OPEN, SEC, 0.70, 2, cfg.poc_cross_tolerance_ticks, at)
    ms, pcs = snap.market_stats, snap.poc_cross_stats
    assert ms is not None and pcs is not None and snap.profile is not None
    assert pcs.count_last_30min == len([c for c in ref["crosses"] if c > at - 30 * 60 * SEC])
    assert ms.time_above_value_sec == round(ref["time"]["above"] / 1e9, 1)
    assert ms.time_below_value_sec == round(ref["time"]["below"] / 1e9, 1)
    assert ms.time_in_value_sec == round(ref["time"]["in"] / 1e9, 1)
    # CVD equals buys minus sells; the profile equals a histogram of the trades.
    buys = int(batch.size[batch.side > 0].sum())
    sells = int(batch.size[batch.side < 0].sum())
    assert ms.cvd == buys - sells == snap.profile.buy_volume - snap.profile.sell_volume
    assert snap.profile.volume == int(batch.size.sum())
    hist = np.bincount(batch.price - batch.price.min(), weights=batch.size).astype(np.int64)
    _, _, poc, val, vah = levels_of(hist, 0.70, 2)
    tick = ES.spec.tick_size
    low = int(batch.price.min())
    assert snap.profile.poc == (low + poc) * tick
    assert (snap.profile.val, snap.profile.vah) == ((low + val) * tick, (low + vah) * tick)


def test_poc_sitting_on_price_does_not_count_crosses() -> None:
    # Bid/ask bounce between the POC and one tick above, for ten minutes.
    n = 6000
    ts = OPEN + np.arange(n, dtype=np.int64) * (SEC // 10)
    price = BASE_TICK + (np.arange(n) % 2)
    batch = TradeBatch.from_arrays(ts, price, np.ones(n), np.where(price > BASE_TICK, 1, -1))
    engine = FeatureEngine(ES)
    engine.update(batch)
    snap = engine.snapshot()
    assert snap.poc_cross_stats is not None
    assert snap.poc_cross_stats.count_last_30min == 0


def test_rotation_through_poc_counts_each_cross() -> None:
    # Price builds a POC at 0, then swings ±4 ticks around it once a minute.
    ts, price = [], []
    for k in range(60):
        ts.append(OPEN + k * SEC)
        price.append(BASE_TICK)
    for m in range(1, 11):
        ts.append(OPEN + m * 60 * SEC)
        price.append(BASE_TICK + (4 if m % 2 else -4))
    batch = TradeBatch.from_arrays(ts, price, np.ones(len(ts)), np.ones(len(ts)))
    engine = FeatureEngine(ES)
    engine.update(batch)
    pcs = engine.snapshot().poc_cross_stats
    assert pcs is not None
    assert pcs.count_last_30min == 9  # the first swing sets the side, each later one crosses
    assert pcs.count_last_5min == 5
    assert pcs.time_since_last_cross_sec == 0.0


def test_cvd_slope_is_net_aggressor_share_of_window_volume() -> None:
    n = 900
    ts = OPEN + np.arange(n, dtype=np.int64) * SEC  # one trade a second for 15 minutes
    side = np.where(np.arange(n) < 600, -1, 1)  # 10 minutes of selling, then 5 of buying
    side[-300:][::4] = -1  # in the last 5 minutes one trade in four sells
    batch = TradeBatch.from_arrays(ts, np.full(n, BASE_TICK), np.full(n, 2), side)
    engine = FeatureEngine(ES)
    engine.update(batch)
    ms = engine.snapshot().market_stats
    assert ms is not None
    assert ms.cvd_slope_5min == pytest.approx((225 - 75) / 300)
    last15 = side[-900:]
    assert ms.cvd_slope_15min == pytest.approx(float(last15.sum()) / 900, abs=1e-4)
    assert ms.volume_last_5min == 600


def _session_trades(day: int, low: int, high: int, n: int = 200) -> TradeBatch:
    start = at_ct(day, 8, 30)
    ts = start + np.arange(n, dtype=np.int64) * 60 * SEC // 2  # every 30 s for 100 minutes
    price = np.linspace(low, high, n).round().astype(np.int64)
    return TradeBatch.from_arrays(ts, price, np.full(n, 3), np.where(np.arange(n) % 3, 1, -1))


def test_sessions_roll_and_prior_levels_and_range_percentile() -> None:
    cfg = FeatureConfig(range_percentile_sessions=5, range_percentile_min_sessions=5)
    engine = FeatureEngine(ES, cfg)
    ranges = [40, 10, 30, 20, 50]
    days = [4, 5, 6, 7, 8]  # Mon–Fri, March 2024
    for day, r in zip(days, ranges, strict=True):
        engine.update(_session_trades(day, BASE_TICK, BASE_TICK + r))
    snap = engine.snapshot(at_ct(8, 10, 0))
    assert snap.session is not None and snap.session.trade_date == "2024-03-08"
    assert snap.market_stats is not None
    assert snap.market_stats.sessions_in_percentile == 4  # needs 5: not yet
    assert snap.market_stats.session_range_percentile is None
    engine.update(_session_trades(11, BASE_TICK, BASE_TICK + 35))
    snap = engine.snapshot(at_ct(11, 11, 0))  # after the last trade (10:10)
    ms = snap.market_stats
    assert ms is not None and ms.sessions_in_percentile == 5
    # Final ranges 40, 10, 30, 20, 50 → 35 beats 3 of 5.
    assert ms.session_range_percentile_final == pytest.approx(0.6)
    # At the same time of session the earlier sessions were also at their full range.
    assert ms.session_range_percentile == pytest.approx(0.6)
    prior = snap.prior_session
    assert prior is not None and prior["trade_date"] == "2024-03-08"
    assert prior["high"] == (BASE_TICK + 50) * 0.25 and prior["low"] == BASE_TICK * 0.25


def test_rth_ignores_overnight_trades_and_eth_keeps_them() -> None:
    overnight = TradeBatch.from_arrays([at_ct(5, 3, 0)], [BASE_TICK + 100], [7], [1])
    day = _session_trades(5, BASE_TICK, BASE_TICK + 8)
    rth = FeatureEngine(ES, FeatureConfig(session=SessionKind.RTH))
    eth = FeatureEngine(ES, FeatureConfig(session=SessionKind.ETH))
    for engine in (rth, eth):
        engine.update(overnight)
        engine.update(day)
    assert rth.outside_session_trades == 1
    rs, es_ = rth.snapshot().profile, eth.snapshot().profile
    assert rs is not None and es_ is not None
    assert rs.volume == int(day.size.sum())
    assert es_.volume == int(day.size.sum()) + 7
    assert es_.high == (BASE_TICK + 100) * 0.25


def test_snapshot_after_close_keeps_the_closed_session() -> None:
    engine = FeatureEngine(ES)
    engine.update(_session_trades(5, BASE_TICK, BASE_TICK + 8))
    snap = engine.snapshot(at_ct(5, 16, 30))
    assert snap.session is not None
    assert snap.session.is_open is False
    assert snap.session.minutes_into_session == 390.0
    assert snap.profile is not None and snap.profile.volume == 600


def test_time_in_value_last_30min_window() -> None:
    # 40 minutes inside value, then price jumps far above and stays for 20 minutes.
    ts = list(OPEN + np.arange(0, 2400, 5, dtype=np.int64) * SEC)
    price = [BASE_TICK + (i % 3) for i in range(len(ts))]
    ts.append(OPEN + 2400 * SEC)
    price.append(BASE_TICK + 80)
    batch = TradeBatch.from_arrays(ts, price, np.full(len(ts), 5), np.ones(len(ts)))
    engine = FeatureEngine(ES)
    engine.update(batch)
    ms = engine.snapshot(OPEN + 3600 * SEC).market_stats
    assert ms is not None
    assert ms.time_above_value_last_30min_sec == pytest.approx(1200.0, abs=1.0)
    assert ms.time_in_value_last_30min_sec == pytest.approx(600.0, abs=1.0)
    assert ms.time_above_value_sec + ms.time_in_value_sec + ms.time_below_value_sec == (
        pytest.approx(3599.0, abs=1.0)
    )


def test_big_prints_and_absorption_at_the_bid() -> None:
    # Two minutes of heavy selling into a bid at one price that holds, a few buys above.
    n = 240
    ts = OPEN + np.arange(n, dtype=np.int64) * SEC // 2
    price = np.where(np.arange(n) % 6 == 0, BASE_TICK + 3, BASE_TICK)
    side = np.where(price == BASE_TICK, -1, 1)
    size = np.where(np.arange(n) == n - 1, 80, 5)
    engine = FeatureEngine(ES)
    engine.update(TradeBatch.from_arrays(ts, price, size, side))
    flow = engine.snapshot().orderflow
    assert flow is not None
    assert flow.big_prints_count == 1 and flow.big_prints_sell_volume == 80
    assert flow.absorption is not None
    assert flow.absorption["side"] == "bid"
    assert flow.absorption["price"] == BASE_TICK * 0.25


def test_exhaustion_up_on_fading_buying() -> None:
    ts, price, size = [], [], []
    for k in range(60):  # a one-minute push higher; buying fades in its last third
        ts.append(OPEN + k * SEC)
        price.append(BASE_TICK + k // 5)
        size.append(10 if k < 40 else 2)
    engine = FeatureEngine(ES)
    engine.update(TradeBatch.from_arrays(ts, price, size, np.ones(60)))
    flow = engine.snapshot().orderflow
    assert flow is not None and flow.exhaustion is not None
    assert flow.exhaustion["direction"] == "up"
    assert flow.exhaustion["price"] == (BASE_TICK + 11) * 0.25
    # Same push with steady buying: no exhaustion.
    steady = FeatureEngine(ES)
    steady.update(TradeBatch.from_arrays(ts, price, np.full(60, 10), np.ones(60)))
    flow2 = steady.snapshot().orderflow
    assert flow2 is not None and flow2.exhaustion is None


def test_empty_engine_snapshot() -> None:
    snap = FeatureEngine(ES).snapshot()
    assert snap.session is None and snap.market_stats is None


def test_profile_arrays_grow_for_wide_sessions() -> None:
    n = 10_000
    ts = OPEN + np.arange(n, dtype=np.int64) * SEC
    price = BASE_TICK + (np.arange(n) - 5000) * 3  # 30,000 ticks wide
    engine = FeatureEngine(ES)
    for a in range(0, n, 1000):
        engine.update(
            TradeBatch.from_arrays(
                ts[a : a + 1000], price[a : a + 1000], np.ones(1000), np.ones(1000)
            )
        )
    prof = engine.snapshot().profile
    assert prof is not None
    assert prof.low == price.min() * 0.25 and prof.high == price.max() * 0.25
    assert prof.volume == n


# ---------------------------------------------------------------- rolling price statistics


def _ref_moves(
    trades: list[tuple[int, int]], open_ns: int, now: int, width: int
) -> tuple[int, int]:
    """(range, net change) over the `width` whole seconds ending with now's second."""
    sec_now = (now - open_ns) // SEC
    first_sec = sec_now - width + 1
    inside = [p for t, p in trades if first_sec <= (t - open_ns) // SEC <= sec_now]
    before = [p for t, p in trades if (t - open_ns) // SEC < first_sec]
    last = trades[-1][1]
    rng = max(inside) - min(inside) if inside else 0
    ref = before[-1] if before else (inside[0] if inside else last)
    return rng, last - ref


gappy_trades = st.lists(
    st.tuples(
        st.integers(0, 90 * SEC),  # gaps up to 90 s: windows of 5 and 15 minutes both matter
        st.integers(-4, 4),
        st.integers(1, 5),
        st.sampled_from([-1, 1]),
    ),
    min_size=1,
    max_size=80,
)


@given(gappy_trades, st.lists(st.integers(0, 80), max_size=4), st.integers(0, 1200))
@settings(max_examples=80, deadline=None)
def test_rolling_range_and_change_match_definition(rows, cuts, extra_sec) -> None:
    batch = build(rows)
    at = int(batch.ts[-1]) + extra_sec * SEC
    one = FeatureEngine(ES)
    one.update(batch)
    ms = one.snapshot(at).market_stats
    many = FeatureEngine(ES)
    feed(many, batch, [c for c in cuts if c <= len(batch)])
    assert many.snapshot(at).market_stats == ms
    assert ms is not None
    trades = list(zip(batch.ts.tolist(), batch.price.tolist(), strict=True))
    assert (ms.range_last_5min_ticks, ms.price_change_last_5min_ticks) == _ref_moves(
        trades, OPEN, at, 300
    )
    assert (ms.range_last_15min_ticks, ms.price_change_last_15min_ticks) == _ref_moves(
        trades, OPEN, at, 900
    )
    sec_now = (at - OPEN) // SEC
    inside = [p for t, p in trades if (t - OPEN) // SEC > sec_now - 900]
    assert ms.high_last_15min == (max(inside) * 0.25 if inside else None)
    assert ms.low_last_15min == (min(inside) * 0.25 if inside else None)


def test_rolling_stats_of_a_climb_then_a_flat_market() -> None:
    # 20 minutes climbing one tick a minute, then 10 minutes flat at the top.
    ts = OPEN + np.arange(0, 1800, 10, dtype=np.int64) * SEC
    price = BASE_TICK + np.minimum(np.arange(len(ts)) // 6, 20)
    engine = FeatureEngine(ES)
    engine.update(TradeBatch.from_arrays(ts, price, np.ones(len(ts)), np.ones(len(ts))))
    at_climb = OPEN + 1199 * SEC  # minute 20: the climb just ended
    engine2 = FeatureEngine(ES)
    engine2.update(TradeBatch.from_arrays(ts[:120], price[:120], np.ones(120), np.ones(120)))
    ms = engine2.snapshot(at_climb).market_stats
    assert ms is not None
    # Window 05:00-19:59 holds prices 5..19; the last price before it was 4.
    assert ms.range_last_15min_ticks == 14 and ms.price_change_last_15min_ticks == 15
    assert ms.range_last_5min_ticks == 4 and ms.price_change_last_5min_ticks == 5
    flat = engine.snapshot(int(ts[-1])).market_stats
    assert flat is not None
    assert flat.range_last_5min_ticks == 0 and flat.price_change_last_5min_ticks == 0
    assert flat.range_last_15min_ticks == 5  # the end of the climb, 15..20
