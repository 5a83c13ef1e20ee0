"""The path of one-minute closes: 15/30-minute change and range, and the variance ratio."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fabio.data.synthetic import SyntheticConfig, iter_sessions
from fabio.features.engine import FeatureEngine, minute_close_stats
from fabio.instruments import SPECS


def _sec_px(closes: list[int | None], seconds: int | None = None) -> np.ndarray:
    """One trade at second 30 of each minute whose close is given (None: no trade)."""
    n = seconds if seconds is not None else 60 * len(closes)
    px = np.full((n, 4), -1, dtype=np.int64)
    for m, c in enumerate(closes):
        if c is not None and 60 * m + 30 < n:
            px[60 * m + 30] = c
    return px


def _brute(closes: list[int | None], k: int, last: int) -> tuple:  # type: ignore[type-arg]
    filled: list[int | None] = []
    carry: int | None = None
    for c in [*closes[:k], last]:
        carry = c if c is not None else carry
        filled.append(carry)

    def win(w: int) -> list[int] | None:
        part = filled[k - w : k + 1] if k >= w else None
        return part if part is not None and all(x is not None for x in part) else None  # type: ignore[return-value]

    c15, c30 = win(15), win(30)
    out: list[object] = [None] * 5
    if c15:
        out[0], out[1] = c15[-1] - c15[0], max(c15) - min(c15)
        p = np.array(c15, dtype=float)
        v1 = np.mean(np.diff(p) ** 2)
        out[4] = round(float(np.mean((p[5:] - p[:-5]) ** 2) / (5 * v1)), 4) if v1 > 0 else None
    if c30:
        out[2], out[3] = c30[-1] - c30[0], max(c30) - min(c30)
    return tuple(out)


def test_a_steady_climb_keeps_all_its_ground() -> None:
    closes = [100 + 2 * m for m in range(40)]
    k = 39
    ch15, rg15, ch30, rg30, vr = minute_close_stats(_sec_px(closes), 60 * k + 45, closes[k])
    assert (ch15, rg15, ch30, rg30) == (30, 30, 60, 60)
    # every minute the same step: 5-minute changes are 5 steps, variance ratio 5
    assert vr == pytest.approx(5.0)


def test_a_market_that_takes_each_move_back_has_a_low_variance_ratio() -> None:
    closes = [100 + (m % 2) * 4 for m in range(40)]  # 100, 104, 100, 104 ...
    k = 39
    ch15, rg15, _, rg30, vr = minute_close_stats(_sec_px(closes), 60 * k + 45, closes[k])
    assert rg15 == 4 and rg30 == 4 and abs(ch15 or 0) <= 4
    assert vr is not None and vr < 0.3


def test_early_in_the_session_the_windows_are_unknown() -> None:
    closes = [100 + m for m in range(20)]
    assert minute_close_stats(_sec_px(closes), 60 * 10 + 5, 110) == (None,) * 5
    ch15, _, ch30, rg30, vr = minute_close_stats(_sec_px(closes), 60 * 19 + 5, 119)
    assert ch15 == 15 and vr is not None and ch30 is None and rg30 is None


def test_minutes_without_trades_carry_the_last_close() -> None:
    closes: list[int | None] = [100 + m for m in range(40)]
    for m in (20, 21, 22, 33):
        closes[m] = None
    k = 39
    got = minute_close_stats(_sec_px(closes), 60 * k + 45, 139)
    assert got == _brute(closes, k, 139)
    assert got[2] == 30  # 139 - 109 over 30 minutes: the gaps changed nothing at the ends


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 70),
    st.floats(0.0, 0.7),
    st.integers(0, 59),
)
def test_minute_close_stats_match_a_brute_force(seed: int, k: int, empty: float, sec: int) -> None:
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.integers(-3, 4, k + 1)) + 500
    closes: list[int | None] = [None if rng.random() < empty else int(c) for c in walk[:k]]
    last = int(walk[k])
    got = minute_close_stats(_sec_px(closes, 60 * k + sec + 1), 60 * k + sec, last)
    assert got == _brute(closes, k, last)
    ch15, rg15, ch30, rg30, vr = got
    if rg15 is not None:
        assert abs(ch15 or 0) <= rg15
    if rg30 is not None and rg15 is not None:
        assert rg30 >= rg15 and abs(ch30 or 0) <= rg30
    if vr is not None:
        # Cauchy-Schwarz: each of the 11 five-minute changes squared is at most 5 times the sum
        # of its 5 one-minute changes squared, and each one-minute change is in at most 5 of them
        assert 0 <= vr <= 25 * 15 / (11 * 5) + 1e-9


def test_engine_reports_the_minute_close_statistics() -> None:
    eng = FeatureEngine(SPECS["ES"])
    for session in iter_sessions(SyntheticConfig(days=1, seed=5, eth=False)):
        eng.update(session.trades)
        mid = int(session.trades.ts[len(session.trades) // 2])
        ms = eng.snapshot(mid).market_stats
        assert ms is not None
        assert ms.close_range_last_30min_ticks is not None
        assert ms.close_range_last_15min_ticks is not None
        assert ms.close_range_last_30min_ticks >= ms.close_range_last_15min_ticks
        assert ms.variance_ratio_15min is not None and ms.variance_ratio_15min >= 0
