"""The market's own scale: per-minute rolling ranges and flow, and their typical values."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fabio.data.synthetic import SyntheticConfig, iter_sessions
from fabio.data.synthetic_msv import MsvConfig, iter_msv_sessions
from fabio.features.engine import (
    SCALE_MIN_SESSION_SAMPLES,
    FeatureEngine,
    minute_scale_samples,
    typical_scale,
)
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
    assert np.allclose(got, want, equal_nan=True)


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
