"""The regime read does not depend on the market's scale (ticks, price level, volatility)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fabio.brain.rules import MarketScale, market_state, score_regimes
from fabio.brain.thresholds import RegimeThresholds

T = RegimeThresholds()
TICK_KEYS = ("distance_to_poc_ticks", "range_last_5min_ticks", "range_last_15min_ticks",
             "price_change_last_15min_ticks", "typical_range_5min_ticks",
             "typical_range_15min_ticks", "close_change_last_15min_ticks",
             "close_range_last_15min_ticks", "close_change_last_30min_ticks",
             "close_range_last_30min_ticks")  # fmt: skip
SLOPE_KEYS = ("cvd_slope_5min", "cvd_slope_15min", "typical_cvd_slope_15min")


def _ms(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "session_range_percentile": 0.5,
        "distance_to_poc_ticks": 10,
        "distance_to_vah_ticks": 4,
        "distance_to_val_ticks": 20,
        "time_above_value_last_30min_sec": 900.0,
        "time_below_value_last_30min_sec": 0.0,
        "time_in_value_last_30min_sec": 900.0,
        "cvd_slope_5min": 0.05,
        "cvd_slope_15min": 0.04,
        "range_last_5min_ticks": 6,
        "range_last_15min_ticks": 12,
        "price_change_last_15min_ticks": 5,
        "typical_range_5min_ticks": 6.0,
        "typical_range_15min_ticks": 13.0,
        "typical_cvd_slope_15min": 0.028,
        "close_change_last_15min_ticks": 4,
        "close_range_last_15min_ticks": 10,
        "close_change_last_30min_ticks": 6,
        "close_range_last_30min_ticks": 14,
        "variance_ratio_15min": 0.8,
    }
    base.update(kw)
    return base


def _scaled(ms: dict[str, Any], k: float, f: float) -> dict[str, Any]:
    out = dict(ms)
    for key in TICK_KEYS:
        out[key] = ms[key] * k
    for key in SLOPE_KEYS:
        out[key] = ms[key] * f
    return out


def _scores(ms: dict[str, Any]) -> tuple[float, float, float]:
    sc = score_regimes(ms, {"count_last_30min": 2}, T, MarketScale.of(ms, T))
    return sc.trend, sc.range, sc.chop


@settings(max_examples=200, deadline=None)
@given(
    dist=st.integers(-60, 60),
    r5=st.integers(0, 30),
    r15=st.integers(0, 60),
    move=st.integers(-60, 60),
    s5=st.floats(-0.3, 0.3).map(lambda x: round(x, 4)),
    s15=st.floats(-0.3, 0.3).map(lambda x: round(x, 4)),
    c15=st.integers(-20, 20),
    c30=st.integers(-40, 40),
    vr=st.floats(0.0, 3.0),
    k=st.sampled_from([0.25, 0.5, 2.0, 4.0, 16.0]),
    f=st.sampled_from([0.5, 2.0, 4.0]),  # powers of two: exact in binary
)
def test_scores_are_invariant_to_tick_and_flow_scale(
    dist: int,
    r5: int,
    r15: int,
    move: int,
    s5: float,
    s15: float,
    c15: int,
    c30: int,
    vr: float,
    k: float,
    f: float,
) -> None:
    """The same market measured in k times as many ticks, with f times the flow imbalance,
    reads the same regime: every threshold moves with the market's own typical values."""
    ms = _ms(distance_to_poc_ticks=dist, range_last_5min_ticks=r5, range_last_15min_ticks=r15,
             price_change_last_15min_ticks=max(-r15, min(r15, move)), cvd_slope_5min=s5,
             cvd_slope_15min=s15, close_change_last_15min_ticks=c15,
             close_range_last_15min_ticks=abs(c15) + 3, close_change_last_30min_ticks=c30,
             close_range_last_30min_ticks=max(abs(c30), abs(c15) + 3) + 2,
             variance_ratio_15min=vr)  # fmt: skip
    assert _scores(_scaled(ms, k, f)) == _scores(ms)
    assert market_state(
        _scaled(ms, k, f), "above_value", T, MarketScale.of(_scaled(ms, k, f), T)
    ) == market_state(ms, "above_value", T, MarketScale.of(ms, T))


def test_without_a_scale_the_product_tick_scale_applies() -> None:
    ms = _ms()
    none = {k: None for k in ms if k.startswith("typical_")}
    sc = MarketScale.of(ms | none, T, fallback=4.0)
    assert (sc.range15, sc.range5, sc.flow) == (4.0, 4.0, 1.0)
    nq = _scaled(ms, 4.0, 1.0) | none
    a = score_regimes(ms | none, {"count_last_30min": 2}, T, MarketScale())
    b = score_regimes(nq, {"count_last_30min": 2}, T, MarketScale.of(nq, T, fallback=4.0))
    assert (a.trend, a.range, a.chop) == (b.trend, b.range, b.chop)


def test_a_narrow_market_is_chop_only_relative_to_its_own_scale() -> None:
    """12 ticks in 15 minutes is a normal range on ES-like scale and chop on a wide market."""
    quiet = _ms(range_last_15min_ticks=12, range_last_5min_ticks=7, price_change_last_15min_ticks=1,
                cvd_slope_5min=0.0, cvd_slope_15min=0.0, distance_to_poc_ticks=6)  # fmt: skip
    wide = quiet | {"typical_range_15min_ticks": 80.0, "typical_range_5min_ticks": 40.0}
    _, r1, c1 = _scores(quiet)
    _, r2, c2 = _scores(wide)
    assert r1 > c1 and c2 > r2


def test_an_efficient_move_with_flow_is_trend() -> None:
    ms = _ms(range_last_15min_ticks=90, price_change_last_15min_ticks=80, range_last_5min_ticks=30,
             cvd_slope_5min=0.12, cvd_slope_15min=0.1, distance_to_poc_ticks=150,
             typical_range_15min_ticks=70.0, typical_range_5min_ticks=35.0,
             typical_cvd_slope_15min=0.04)  # fmt: skip
    t, r, c = _scores(ms)
    assert t > max(r, c)


def _readings(ms: dict[str, Any]) -> dict[str, bool | None]:
    sc = score_regimes(ms, {"count_last_30min": 0}, T, MarketScale.of(ms, T))
    return {f"{r.regime}:{r.name}": r.holds for r in sc.readings}


def test_ground_kept_over_30_minutes_is_trend_even_with_weak_flow() -> None:
    """A slow trend: the flow nets out and the 15-minute window looks like rotation, but the
    minute closes kept 30 ticks of a 34-tick 30-minute range, still leaning up over 15."""
    ms = _ms(cvd_slope_5min=0.01, cvd_slope_15min=0.005, range_last_15min_ticks=16,
             price_change_last_15min_ticks=7, range_last_5min_ticks=6,
             price_change_last_5min_ticks=4,
             close_change_last_15min_ticks=7, close_range_last_15min_ticks=14,
             close_change_last_30min_ticks=30, close_range_last_30min_ticks=34)  # fmt: skip
    held = _readings(ms)
    assert held["trend:efficient_move_30min"] is True
    assert held["range:contained_30min"] is False
    t, r, c = _scores(ms)
    assert t > max(r, c)
    # the same statistics without the 30-minute ground (back where it began) read range
    back = ms | {"close_change_last_30min_ticks": 2, "close_range_last_30min_ticks": 16}
    assert _readings(back)["trend:efficient_move_30min"] is False
    assert _readings(back)["range:contained_30min"] is True
    t2, r2, _ = _scores(back)
    assert r2 > t2


def test_moves_taken_straight_back_are_chop() -> None:
    """A rotation-wide 15-minute range gone quiet: with every minute taken back (variance
    ratio 0.15) it reads chop; the same windows with persistent minutes (1.4) read range."""
    ms = _ms(cvd_slope_5min=0.0, cvd_slope_15min=0.0, range_last_15min_ticks=7,
             price_change_last_15min_ticks=1, range_last_5min_ticks=3,
             price_change_last_5min_ticks=1,
             close_change_last_15min_ticks=1, close_range_last_15min_ticks=6,
             close_change_last_30min_ticks=0, close_range_last_30min_ticks=7,
             variance_ratio_15min=0.15)  # fmt: skip
    assert _readings(ms)["chop:mean_reverting_15min"] is True
    t, r, c = _scores(ms)
    assert c > max(t, r)
    persistent = ms | {"variance_ratio_15min": 1.4}
    assert _readings(persistent)["chop:mean_reverting_15min"] is False
    t2, r2, c2 = _scores(persistent)
    assert r2 > max(t2, c2)


def test_minute_close_readings_are_unknown_early_in_the_session() -> None:
    none = {k: None for k in _ms() if k.startswith("close_") or k == "variance_ratio_15min"}
    held = _readings(_ms() | none)
    assert held["trend:efficient_move_30min"] is None
    assert held["range:contained_30min"] is None
    assert held["chop:mean_reverting_15min"] is None
