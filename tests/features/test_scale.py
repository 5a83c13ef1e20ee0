"""The market's own scale: per-minute rolling ranges and flow, and their typical values."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fabio.data.synthetic import SyntheticConfig, iter_sessions
from fabio.data.synthetic_msv import MsvConfig, iter_msv_sessions
from fabio.domain import TradeBatch
from fabio.features.engine import (
    SCALE_MIN_SESSION_SAMPLES,
    FeatureEngine,
    minute_scale_samples,
    scale_medians,
    typical_scale,
)
from fabio.features.kernels import scale_rows
from fabio.instruments import SPECS


def _brute(sec_px, sec_vol, sec_delta, minutes):  # type: ignore[no-untyped-def]
    out = np.full((minutes, 3), np.nan)
    for m in range(minutes):
        for col, w in ((0, 5), (1, 15)):
            if m < w - 1:
                continue
            sl = sec_px[(m - w + 1) * 60 : (m + 1) * 60]
            ok = sl[:, 0] >= 0
            if ok.any():
                out[m, col] = sl[ok, 0].max() - sl[ok, 1].min()
        if m >= 14:
            v = sec_vol[(m - 14) * 60 : (m + 1) * 60].sum()
            d = sec_delta[(m - 14) * 60 : (m + 1) * 60].sum()
            out[m, 2] = abs(d) / v if v > 0 else np.nan
    return out


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(0, 2**32 - 1), st.floats(0.0, 0.9))
def test_minute_samples_match_a_brute_force(minutes: int, seed: int, empty: float) -> None:
    rng = np.random.default_rng(seed)
    n = minutes * 60 + 7  # the session's seconds need not be whole minutes
    low = rng.integers(0, 50, n)
    high = low + rng.integers(0, 5, n)
    gone = rng.random(n) < empty
    sec_px = np.stack([high, low, low, high], axis=1).astype(np.int64)
    sec_px[gone] = -1
    sec_vol = np.where(gone, 0, rng.integers(1, 30, n)).astype(np.int64)
    sec_delta = np.where(gone, 0, rng.integers(-30, 31, n)).astype(np.int64)
    sec_delta = np.clip(sec_delta, -sec_vol, sec_vol)
    got = minute_scale_samples(sec_px, sec_vol, sec_delta, minutes)
    want = _brute(sec_px, sec_vol, sec_delta, minutes)
    assert np.array_equal(got, want, equal_nan=True)
    # the engine adds rows as minutes complete: any tail of rows alone gives the same rows
    first = int(rng.integers(0, minutes + 1))
    tail = scale_rows(sec_px, sec_vol, sec_delta, first, minutes)
    assert np.array_equal(tail, want[first:], equal_nan=True)


def test_typical_scale_blends_history_and_session() -> None:
    hist = np.tile([[4.0, 10.0, 0.02]], (200, 1))
    assert typical_scale(hist, None) == [4.0, 10.0, 0.02]
    few = np.tile([[40.0, 100.0, 0.2]], (SCALE_MIN_SESSION_SAMPLES - 1, 1))
    assert typical_scale(hist, few) == [4.0, 10.0, 0.02]  # too few minutes: history only
    long = np.tile([[40.0, 100.0, 0.2]], (300, 1))
    blended = typical_scale(hist, long)
    assert all(h < b < s for h, b, s in zip([4, 10, 0.02], blended, [40, 100, 0.2], strict=True))
    assert typical_scale(None, long) == [40.0, 100.0, 0.2]  # no history: the session alone
    assert typical_scale(None, None) == [None, None, None]


def _typical_after(feed_sessions, spec) -> dict:  # type: ignore[no-untyped-def]
    from fabio.data.synthetic import front_contract

    sessions = list(feed_sessions)
    engine = FeatureEngine(front_contract(spec.root, sessions[0].session.trade_date))
    for s in sessions:
        engine.update(s.trades)
    last = sessions[-1].session
    snap = engine.snapshot(last.rth_open_ns + 120 * 60 * 10**9)
    assert snap.market_stats is not None
    keys = ("typical_range_5min_ticks", "typical_range_15min_ticks", "typical_cvd_slope_15min")
    return {k: getattr(snap.market_stats, k) for k in keys}


def test_engine_reports_the_scale_of_each_market() -> None:
    es = _typical_after(iter_sessions(SyntheticConfig(days=4, seed=3, eth=False)), SPECS["ES"])
    nq = _typical_after(iter_msv_sessions(MsvConfig(days=4, seed=3)), SPECS["NQ"])
    assert es["typical_range_15min_ticks"] is not None and nq["typical_range_15min_ticks"]
    # generator 2's NQ moves many more ticks than generator 1's ES
    assert nq["typical_range_15min_ticks"] > 3 * es["typical_range_15min_ticks"]
    assert es["typical_range_5min_ticks"] < es["typical_range_15min_ticks"]
    assert 0 < es["typical_cvd_slope_15min"] < 0.3


def _scale_from_scratch(engine: FeatureEngine, now: int) -> list[float | None]:
    cur = engine.current
    assert cur is not None
    minutes = int((now - cur.open_ns) // (60 * 10**9))
    parts = [r.scale_samples for r in engine.history if r.scale_samples is not None]
    pooled = np.concatenate(parts) if parts else None
    own = minute_scale_samples(cur.sec_px, cur.sec_vol, cur.sec_delta, minutes)
    return typical_scale(pooled, own)


def test_the_incremental_scale_equals_a_recomputation_also_after_late_trades() -> None:
    """The engine adds only the new minutes' samples; a late trade (stamped before the clock,
    into a minute already summed up) makes it start over. Either way: exactly the full sums."""
    sessions = list(iter_sessions(SyntheticConfig(days=3, seed=11, eth=False)))
    engine = FeatureEngine(SPECS["ES"])
    for s in sessions[:2]:
        engine.update(s.trades)
    trades = sessions[2].trades
    rng = np.random.default_rng(4)
    cuts = np.sort(rng.choice(np.arange(1, len(trades)), 120, replace=False))
    late_done = False
    skip = 0
    for a, b in zip([0, *cuts[:-1]], cuts, strict=True):
        engine.update(trades.slice(int(a), int(b)))
        snap = engine.snapshot(int(trades.ts[b - 1]) + int(rng.integers(0, 90)) * 10**9 + skip)
        skip = 0
        ms = snap.market_stats
        assert ms is not None and engine.current is not None
        want = _scale_from_scratch(engine, min(snap.ts_ns, engine.current.close_ns))
        got = [
            ms.typical_range_5min_ticks,
            ms.typical_range_15min_ticks,
            ms.typical_cvd_slope_15min,
        ]
        for g, w, digits in zip(got, want, (2, 2, 4), strict=True):
            assert g == (None if w is None else round(w, digits))
        if not late_done and b > len(trades) // 2:
            # a trade stamped three minutes ago, far from the range so far: it changes the
            # samples of minutes already summed up
            last = trades.slice(int(b) - 1, int(b))
            late = TradeBatch(
                last.ts - 180 * 10**9,
                last.price + 400,
                last.size * 0 + 500,
                last.side,
                last.inferred,
            )
            engine.update(late)
            late_done = True
            skip = 60 * 10**9  # the next snapshot in a later minute (the scale is per minute)
    assert engine.late_trades >= 1


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 400), st.floats(0.0, 0.5))
def test_scale_medians_are_numpys_medians(seed: int, n: int, nan_share: float) -> None:
    rng = np.random.default_rng(seed)
    samples = rng.gamma(2.0, 3.0, (n, 3))
    samples[rng.random((n, 3)) < nan_share] = np.nan
    for col, (median, count) in enumerate(scale_medians(samples)):
        finite = samples[np.isfinite(samples[:, col]), col]
        assert count == len(finite)
        if count < SCALE_MIN_SESSION_SAMPLES:
            assert median is None
        else:
            assert median == float(np.median(finite))  # bit for bit
