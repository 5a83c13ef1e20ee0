"""The rule brain: regime scoring and hysteresis, setups by regime, learning rules, validity."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any, Literal

import numpy as np
import pytest

from fabio.brain.context import DecisionContext, PositionView, build_context
from fabio.brain.rules import (
    RegimeScores,
    RegimeTracker,
    RuleBrain,
    market_state,
    score_regimes,
    tick_scale,
    value_location,
)
from fabio.brain.schema import check_decision
from fabio.brain.thresholds import LearningRules, RegimeThresholds
from fabio.data.synthetic import SyntheticConfig, front_contract, iter_sessions
from fabio.features.engine import FeatureEngine
from fabio.playbook.base import SetupCandidate
from fabio.playbook.setups import detect_setups
from fabio.strategies import (
    ABSORPTION_FADE,
    MEAN_REVERSION,
    TREND_PULLBACK,
    StrategyPerformance,
    initialize_default_strategies,
)
from fabio.timeutil import NS_PER_MIN

T = RegimeThresholds()
PRICE = 5000.0

TREND = {
    "session_range_percentile": 0.8,
    "distance_to_poc_ticks": 30,
    "distance_to_vah_ticks": 12,
    "distance_to_val_ticks": 40,
    "time_above_value_last_30min_sec": 1500.0,
    "time_below_value_last_30min_sec": 0.0,
    "time_in_value_last_30min_sec": 300.0,
    "cvd_slope_5min": 0.15,
    "cvd_slope_15min": 0.12,
    "range_last_5min_ticks": 6,
    "price_change_last_5min_ticks": 5,
    "range_last_15min_ticks": 16,
    "price_change_last_15min_ticks": 14,
}
RANGE = {
    "session_range_percentile": 0.5,
    "distance_to_poc_ticks": 4,
    "distance_to_vah_ticks": -6,
    "distance_to_val_ticks": 10,
    "time_above_value_last_30min_sec": 200.0,
    "time_below_value_last_30min_sec": 300.0,
    "time_in_value_last_30min_sec": 1300.0,
    "cvd_slope_5min": 0.04,
    "cvd_slope_15min": -0.01,
    "range_last_5min_ticks": 9,
    "price_change_last_5min_ticks": -4,
    "range_last_15min_ticks": 14,
    "price_change_last_15min_ticks": 2,
}
CHOP = {
    "session_range_percentile": 0.2,
    "distance_to_poc_ticks": 1,
    "distance_to_vah_ticks": -3,
    "distance_to_val_ticks": 4,
    "time_above_value_last_30min_sec": 0.0,
    "time_below_value_last_30min_sec": 0.0,
    "time_in_value_last_30min_sec": 1800.0,
    "cvd_slope_5min": 0.01,
    "cvd_slope_15min": 0.0,
    "range_last_5min_ticks": 3,
    "price_change_last_5min_ticks": 0,
    "range_last_15min_ticks": 5,
    "price_change_last_15min_ticks": 1,
}
CROSSES = {"trend": 0, "range": 3, "chop": 9}
STATS = {"trend": TREND, "range": RANGE, "chop": CHOP}
PROFILE = {
    "poc": 4996.0,
    "vah": 5002.0,
    "val": 4992.0,
    "high": 5010.0,
    "low": 4985.0,
    "volume": 100_000,
    "cvd": 1200,
    "hvn": [4996.0],
    "lvn": [5004.0, 4990.0],
}


def context(
    regime: str = "range",
    minute: float = 120.0,
    symbol: str = "ESH4",
    stats: dict[str, Any] | None = None,
    **kw: Any,
) -> DecisionContext:
    """A hand-made context with the stats of one regime (and overrides)."""
    return DecisionContext(
        symbol=symbol,
        tick_size=0.25,
        market_time_ns=1_700_000_000_000_000_000 + int(minute * NS_PER_MIN),
        session_minute=minute,
        minutes_to_close=390 - minute,
        price=kw.pop("price", PRICE),
        market_stats={**STATS[regime], **(stats or {})},
        poc_cross_stats={"count_last_30min": CROSSES[regime], "current_side": "above_poc"},
        profile=kw.pop("profile", PROFILE),
        prior_session=kw.pop("prior_session", {"poc": 4980.0, "vah": 4990.0, "val": 4970.0}),
        strategy_state=kw.pop("strategy_state", initialize_default_strategies()),
        **kw,
    )


# ---------------------------------------------------------------- regime


@pytest.mark.parametrize("regime", ["trend", "range", "chop"])
def test_each_regime_wins_on_its_own_indicators(regime: str) -> None:
    ctx = context(regime)
    scores = score_regimes(ctx.market_stats, ctx.poc_cross_stats, T)
    assert scores.best == regime
    assert scores.margin(regime) > 0.3
    assessment, changed = RuleBrain().assess(ctx)
    assert assessment.regime == regime and changed is None
    assert 0.5 < assessment.confidence <= 0.95


def test_missing_statistics_count_for_nothing() -> None:
    ctx = context("chop", stats={"session_range_percentile": None, "cvd_slope_5min": None})
    scores = score_regimes(ctx.market_stats, ctx.poc_cross_stats, T)
    missing = [r for r in scores.readings if r.holds is None]
    assert {r.name for r in missing} >= {"range_percentile", "cvd_slope_5min", "cvd_flat_5min"}
    assert scores.best == "chop" and 0 < scores.chop <= 1


def test_spec_literal_thresholds_would_miss_a_real_trend() -> None:
    # The spec's CVD slope > 0.5 never holds on real ES; the calibrated one does here.
    literal = T.model_copy(update={"trend_cvd_slope_min": 0.5, "trend_cvd_slope_15min_min": 0.5})
    ctx = context("trend")
    assert score_regimes(ctx.market_stats, ctx.poc_cross_stats, T).best == "trend"
    assert score_regimes(ctx.market_stats, ctx.poc_cross_stats, literal).trend < 0.6


def test_hysteresis_one_contrary_reading_does_not_flip_two_do() -> None:
    brain = RuleBrain(
        T.model_copy(update={"hysteresis_switch_margin": 2.0, "hysteresis_confirmations": 2})
    )  # no clear switch; two confirmations
    assert brain.infer_regime(context("range", 100)) == "range"
    assert brain.infer_regime(context("trend", 101)) == "range"  # one reading: held
    assert brain.infer_regime(context("range", 102)) == "range"  # streak broken
    assert brain.infer_regime(context("trend", 103)) == "range"
    decision = brain.decide_now(context("trend", 104))  # second in a row: flips
    assert decision.market_assessment.regime == "trend"
    note = decision.notes_to_future_self[0]
    assert "range -> trend" in note and "cvd_slope_15min" in note


def test_hysteresis_confirmations_are_configurable() -> None:
    tracker = RegimeTracker(confirmations=3)
    ctx_r, ctx_c = context("range"), context("chop")
    range_scores = score_regimes(ctx_r.market_stats, ctx_r.poc_cross_stats, T)
    chop_scores = score_regimes(ctx_c.market_stats, ctx_c.poc_cross_stats, T)
    assert tracker.update(range_scores) == "range"
    assert [tracker.update(chop_scores) for _ in range(3)] == ["range", "range", "chop"]


def test_five_minute_legs_one_way_are_trend_evidence_two_way_are_rotation() -> None:
    def holds(stats: dict[str, Any]) -> dict[str, bool | None]:
        ctx = context("range", stats=stats)
        readings = score_regimes(ctx.market_stats, ctx.poc_cross_stats, T).readings
        return {r.name: r.holds for r in readings if r.name.endswith("5min")}

    two_way = holds({"range_last_5min_ticks": 9, "price_change_last_5min_ticks": -4})
    assert two_way["rotation_5min"] and two_way["directional_move_5min"] is False
    one_way = holds(
        {"range_last_5min_ticks": 9, "price_change_last_5min_ticks": 9, "cvd_slope_5min": 0.08}
    )
    assert one_way["rotation_5min"] is False and one_way["directional_move_5min"]
    against_flow = holds({"price_change_last_5min_ticks": 5, "cvd_slope_5min": -0.08})
    assert against_flow["directional_move_5min"] is False
    assert holds({"price_change_last_5min_ticks": None})["rotation_5min"] is None


def test_hysteresis_takes_a_clear_switch_at_once_and_holds_a_narrow_one() -> None:
    tracker = RegimeTracker(confirmations=2, switch_margin=0.5)
    assert tracker.update(RegimeScores(0.2, 0.8, 0.1, ())) == "range"
    assert tracker.update(RegimeScores(0.6, 0.4, 0.1, ())) == "range"  # leads by 0.2: held
    assert tracker.update(RegimeScores(0.2, 0.8, 0.1, ())) == "range"
    assert tracker.update(RegimeScores(0.9, 0.3, 0.1, ())) == "trend"  # leads by 0.6: at once
    assert RuleBrain().tracker.switch_margin == T.hysteresis_switch_margin


def test_a_quieter_last_five_minutes_is_chop_evidence_before_the_15_minutes_turn() -> None:
    # A trend that went quiet: the 15-minute range still holds its swing (16 ticks), the last
    # 5 minutes span 3 ticks (under half of it and under 4): the first chop evidence.
    def quieter(stats: dict[str, Any]) -> bool | None:
        ctx = context("trend", stats=stats)
        readings = score_regimes(ctx.market_stats, ctx.poc_cross_stats, T).readings
        return next(r.holds for r in readings if r.name == "quieter_5min")

    assert quieter({"range_last_5min_ticks": 3, "price_change_last_5min_ticks": 1})
    assert quieter({"range_last_5min_ticks": 6}) is False  # as wide as a typical 5 minutes
    quiet_all_along = {"range_last_5min_ticks": 3, "range_last_15min_ticks": 5}
    assert quieter(quiet_all_along) is False
    assert quieter({"range_last_15min_ticks": None}) is None


def test_the_five_minute_read_switches_the_label_after_holding_for_its_minutes() -> None:
    # The full scores still favour range (the 15-minute windows hold the old regime) but only
    # narrowly; the 5-minute read names trend outright.
    lag = RegimeScores(0.55, 0.65, 0.1, (), fast=(1.0, 0.0, 0.0))
    for fast_lead, expected in ((None, "range"), (0.7, "trend")):
        tracker = RegimeTracker(2, 0.5, fast_lead=fast_lead, fast_minutes=2)
        assert tracker.update(RegimeScores(0.2, 0.8, 0.1, (), fast=(0.0, 1.0, 0.0)), 10) == "range"
        assert tracker.update(lag, 11) == "range"  # the read starts
        assert tracker.update(lag, 12) == "range"  # one minute: not yet
        assert tracker.update(lag, 13) == expected  # two minutes
    # Not when the full score of the named regime trails by more than the tolerance ...
    tracker = RegimeTracker(2, 0.5, fast_lead=0.7, fast_minutes=2)
    far = RegimeScores(0.3, 0.65, 0.1, (), fast=(1.0, 0.0, 0.0))
    assert [tracker.update(far, m) for m in (10, 11, 12, 13)] == ["range"] * 4
    # ... nor when the read wavers: each break restarts the clock.
    tracker = RegimeTracker(9, 0.9, fast_lead=0.7, fast_minutes=2)
    mixed = RegimeScores(0.55, 0.65, 0.1, (), fast=(0.5, 0.0, 0.0))
    reads = [lag, lag, mixed, lag, lag, lag]
    assert [tracker.update(r, 10 + i) for i, r in enumerate(reads)][-2:] == ["range", "trend"]
    brain = RuleBrain()
    assert brain.tracker.fast_lead == T.fast_read_min_lead
    assert brain.tracker.fast_minutes == T.fast_read_minutes
    assert brain.tracker.fast_tolerance == T.fast_read_tolerance


def test_a_new_session_starts_without_yesterdays_label() -> None:
    brain = RuleBrain()
    brain.infer_regime(context("trend", 380))
    assert brain.infer_regime(context("chop", 1)) == "chop"  # session minute went back


def test_market_state_location_and_poc_side() -> None:
    trend = context("trend")
    assert value_location(trend.market_stats) == "above_value"
    assert market_state(trend.market_stats, "above_value", T) == "out_of_balance_up"
    assessment, _ = RuleBrain().assess(trend)
    assert (assessment.location, assessment.poc_side) == ("above_value", "above_poc")
    # A short probe above value without acceptance or drive is still balanced.
    probe = context("range", stats={"distance_to_vah_ticks": 2, "distance_to_poc_ticks": 8})
    assert value_location(probe.market_stats) == "above_value"
    assert market_state(probe.market_stats, "above_value", T) == "balanced"
    below = {**TREND, "distance_to_vah_ticks": -40, "distance_to_val_ticks": -12,
             "distance_to_poc_ticks": -30, "cvd_slope_15min": -0.12}  # fmt: skip
    assert market_state(below, "below_value", T) == "out_of_balance_down"


def test_tick_thresholds_scale_for_nq() -> None:
    assert tick_scale("NQZ5") == 4.0 and tick_scale("MES") == 1.0 and tick_scale("??") == 1.0
    brain = RuleBrain()
    nq = brain.thresholds_for("NQZ5")
    assert nq.chop_range_15min_max_ticks == 4 * T.chop_range_15min_max_ticks
    assert nq.trend_cvd_slope_min == T.trend_cvd_slope_min  # shares are not ticks
    # ES chop (5 ticks in 15 min) is still chop on NQ; an ES-sized range is chop there.
    assert brain.infer_regime(context("chop", symbol="NQZ5")) == "chop"
    assert RuleBrain().infer_regime(context("range", symbol="NQZ5")) == "chop"


# ---------------------------------------------------------------- trades


def setup(
    strategy: str, side: Literal["long", "short"] = "long", rr: float = 2.0
) -> SetupCandidate:
    sign = 1 if side == "long" else -1
    return SetupCandidate(
        strategy=strategy,
        side=side,
        entry_price=PRICE,
        stop_price=PRICE - sign * 3.0,
        target_price=PRICE + sign * 3.0 * rr,
        rr=rr,
        reason="test setup",
    )


def test_takes_the_setup_that_fits_the_regime() -> None:
    setups = [setup(TREND_PULLBACK, rr=3.0), setup(MEAN_REVERSION, "short", rr=2.0)]
    decision = RuleBrain().decide_now(context("range", triggered_setups=setups))
    assert len(decision.trade_decisions) == 1
    trade = decision.trade_decisions[0]
    assert (trade.action, trade.side, trade.entry_condition_id) == (
        "enter",
        "short",
        MEAN_REVERSION,
    )
    assert trade.risk_fraction == initialize_default_strategies()[MEAN_REVERSION].risk_fraction
    assert (trade.stop_price, trade.target_price) == (PRICE + 3.0, PRICE - 6.0)
    assert decision.market_assessment.chosen_model == MEAN_REVERSION
    trend = RuleBrain().decide_now(context("trend", triggered_setups=setups))
    assert [t.entry_condition_id for t in trend.trade_decisions] == [TREND_PULLBACK]


def test_absorption_fade_fits_chop_and_session_extremes() -> None:
    fade = setup(ABSORPTION_FADE, "long")
    chop = RuleBrain().decide_now(context("chop", triggered_setups=[fade]))
    assert [t.entry_condition_id for t in chop.trade_decisions] == [ABSORPTION_FADE]
    mid_trend = RuleBrain().decide_now(context("trend", triggered_setups=[fade]))
    assert mid_trend.trade_decisions == []
    at_low = {**PROFILE, "low": PRICE - 1.0}
    low_trend = RuleBrain().decide_now(context("trend", triggered_setups=[fade], profile=at_low))
    assert [t.entry_condition_id for t in low_trend.trade_decisions] == [ABSORPTION_FADE]


def test_no_entry_when_disabled_at_limit_near_close_or_in_a_position() -> None:
    mr = [setup(MEAN_REVERSION)]
    state = initialize_default_strategies()
    off = {**state, MEAN_REVERSION: state[MEAN_REVERSION].model_copy(update={"enabled": False})}
    assert (
        RuleBrain().decide_now(context(triggered_setups=mr, strategy_state=off)).trade_decisions
        == []
    )
    full = {MEAN_REVERSION: StrategyPerformance(trades=5, trades_this_session=3)}
    ctx = context(triggered_setups=mr, strategy_performance=full)
    assert RuleBrain().decide_now(ctx).trade_decisions == []
    late = context(triggered_setups=mr, minute=385.0)
    assert RuleBrain().decide_now(late).trade_decisions == []
    pos = PositionView(side="long", size=1, entry_price=PRICE - 1, strategy=MEAN_REVERSION)
    assert RuleBrain().decide_now(context(triggered_setups=mr, position=pos)).trade_decisions == []


def test_exit_when_the_position_setup_is_invalidated() -> None:
    short = PositionView(side="short", size=1, entry_price=PRICE - 2, strategy=MEAN_REVERSION)
    brain = RuleBrain()
    brain.infer_regime(context("trend", 10))
    decision = brain.decide_now(context("trend", 11, position=short))
    assert [(t.action, t.entry_condition_id) for t in decision.trade_decisions] == [
        ("exit", MEAN_REVERSION)
    ]
    # A long mean-reversion trade is not invalidated by a trend up.
    long = short.model_copy(update={"side": "long"})
    assert brain.decide_now(context("trend", 12, position=long)).trade_decisions == []


# ---------------------------------------------------------------- learning rules


def perf(trades: int, wins: int, net: float, **kw: Any) -> StrategyPerformance:
    return StrategyPerformance(trades=trades, wins=wins, win_rate=wins / trades, net_pnl=net, **kw)


def tweaks(decision: Any) -> dict[str, dict[str, Any]]:
    return {t.name: t.changes.as_dict() for t in decision.strategy_updates.strategy_tweaks}


def test_no_judgement_below_min_trades() -> None:
    bad = {MEAN_REVERSION: perf(29, 5, -900.0)}
    decision = RuleBrain().decide_now(context(strategy_performance=bad))
    assert tweaks(decision) == {} and decision.notes_to_future_self == []


def test_bad_results_disable_with_a_note_naming_the_conditions() -> None:
    by_regime = {
        "range": {"trades": 12, "win_rate": 0.5, "net_pnl": 150.0},
        "trend": {"trades": 18, "win_rate": 0.17, "net_pnl": -800.0},
    }
    bad = {TREND_PULLBACK: perf(30, 9, -650.0, by_regime=by_regime)}
    decision = RuleBrain(learning="seed").decide_now(context("chop", strategy_performance=bad))
    assert tweaks(decision) == {TREND_PULLBACK: {"enabled": False}}
    note = decision.notes_to_future_self[-1]
    assert TREND_PULLBACK in note and "win rate 0.30" in note and "-650.00" in note
    assert note.index("trend (") < note.index("range (")  # the worst regime first
    assert "regime now chop" in note
    # A losing strategy with a fine win rate is disabled on net P&L alone.
    losing = {MEAN_REVERSION: perf(40, 22, -10.0)}
    assert tweaks(RuleBrain(learning="seed").decide_now(context(strategy_performance=losing))) == {
        MEAN_REVERSION: {"enabled": False}
    }


def test_good_results_raise_risk_by_one_step_up_to_the_cap() -> None:
    rules = LearningRules()
    state = initialize_default_strategies()
    good = {MEAN_REVERSION: perf(40, 28, 2400.0)}
    decision = RuleBrain(learning="seed").decide_now(context(strategy_performance=good))
    step = state[MEAN_REVERSION].risk_fraction + rules.risk_step
    assert tweaks(decision) == {MEAN_REVERSION: {"risk_fraction": pytest.approx(step)}}
    assert "raised" in decision.notes_to_future_self[-1]
    near_cap = {
        **state,
        MEAN_REVERSION: state[MEAN_REVERSION].model_copy(update={"risk_fraction": 0.0095}),
    }
    ctx = context(strategy_performance=good, strategy_state=near_cap)
    seed = RuleBrain(learning="seed")
    assert tweaks(seed.decide_now(ctx)) == {MEAN_REVERSION: {"risk_fraction": 0.01}}
    at_cap = {
        **state,
        MEAN_REVERSION: state[MEAN_REVERSION].model_copy(update={"risk_fraction": 0.01}),
    }
    ctx = context(strategy_performance=good, strategy_state=at_cap)
    assert tweaks(RuleBrain(learning="seed").decide_now(ctx)) == {}


def test_no_repeated_action_without_new_trades() -> None:
    brain = RuleBrain(learning="seed")
    good = {MEAN_REVERSION: perf(40, 28, 2400.0)}
    assert tweaks(brain.decide_now(context(minute=100, strategy_performance=good)))
    again = brain.decide_now(context(minute=101, strategy_performance=good))
    assert tweaks(again) == {} and again.notes_to_future_self == []
    more = {MEAN_REVERSION: perf(41, 29, 2500.0)}
    assert tweaks(brain.decide_now(context(minute=102, strategy_performance=more)))
    # Middling results: no action, and none later either.
    middling = {TREND_PULLBACK: perf(50, 25, 100.0)}
    assert tweaks(brain.decide_now(context(minute=103, strategy_performance=middling))) == {}


def test_a_disabled_strategy_is_not_disabled_again() -> None:
    state = initialize_default_strategies()
    off = {**state, TREND_PULLBACK: state[TREND_PULLBACK].model_copy(update={"enabled": False})}
    bad = {TREND_PULLBACK: perf(30, 5, -900.0)}
    ctx = context(strategy_performance=bad, strategy_state=off)
    assert tweaks(RuleBrain(learning="seed").decide_now(ctx)) == {}


# ---------------------------------------------------------------- validity and speed


def _synthetic_contexts() -> list[DecisionContext]:
    """Realistic contexts: every 5 minutes of a synthetic ES session, with detected setups."""
    cfg = SyntheticConfig(symbol="ES", days=6, seed=3, eth=False, rth_trades=60_000)
    contract = front_contract("ES", cfg.trade_dates()[0])
    engine = FeatureEngine(contract)
    state = initialize_default_strategies()
    performance = {
        MEAN_REVERSION: perf(34, 21, 1837.5, trades_this_session=1),
        TREND_PULLBACK: perf(31, 9, -450.0),
    }
    out: list[DecisionContext] = []
    for i, s in enumerate(iter_sessions(cfg)):
        if i < 5:
            engine.update(s.trades)
            continue
        start = 0
        for m in range(5, 390, 5):
            at = s.session.rth_open_ns + m * NS_PER_MIN
            cut = int(np.searchsorted(s.trades.ts, at, side="right"))
            engine.update(s.trades.slice(start, cut))
            start = cut
            snap = engine.snapshot(at)
            position = PositionView()
            if m % 25 == 0 and snap.price is not None:
                position = PositionView(side="long", size=1, entry_price=snap.price,
                                        strategy=ABSORPTION_FADE)  # fmt: skip
            setups = detect_setups(snap, state, 0.25)
            out.append(build_context(snap, 0.25, state, performance, position=position,
                                     triggered_setups=setups))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def synthetic_contexts() -> list[DecisionContext]:
    return _synthetic_contexts()


def test_decisions_pass_the_value_policy_with_no_rejections(
    synthetic_contexts: list[DecisionContext],
) -> None:
    brain = RuleBrain()
    regimes = set()
    actions = set()
    for ctx in synthetic_contexts:
        reply = asyncio.run(brain.decide(ctx))
        actions |= {t.action for t in reply.decision.trade_decisions}
        assert reply.rejections == [], reply.rejections
        assert reply.brain == "rules" and not reply.fell_back
        _, again = check_decision(reply.decision, ctx.check_context())
        assert again == []
        regimes.add(reply.decision.market_assessment.regime)
        zones = reply.decision.importance_zones
        assert zones[0].id == "poc"
        regime = reply.decision.market_assessment.regime
        expected_high = {"range": {"vah", "val"}, "trend": {"lvn"}, "chop": set()}[regime]
        assert {z.id for z in zones if z.priority == 3} <= expected_high
        assert all(z.priority <= 2 for z in zones if z.id not in expected_high)
        assert len({z.center_price for z in zones}) == len(zones)  # one zone per price
    assert regimes == {"trend", "range", "chop"}
    assert actions == {"enter", "exit"}  # entries and exits were validated too


def test_fixture_contexts_pass_the_value_policy(request: pytest.FixtureRequest) -> None:
    for name in ("decision_context", "rich_context"):
        try:
            ctx = request.getfixturevalue(name)
        except pytest.FixtureLookupError:
            continue
        reply = asyncio.run(RuleBrain().decide(ctx))
        assert reply.rejections == [], (name, reply.rejections)


def test_deterministic(synthetic_contexts: list[DecisionContext]) -> None:
    a, b = RuleBrain(), RuleBrain()
    for ctx in synthetic_contexts:
        assert a.decide_now(ctx).model_dump() == b.decide_now(ctx).model_dump()


def test_a_decision_takes_well_under_a_millisecond(
    synthetic_contexts: list[DecisionContext],
) -> None:
    # CPU time of this thread, not wall time: a busy machine preempts the thread (for a whole
    # scheduler slice, milliseconds) without the decision costing more.
    brain = RuleBrain()
    times = []
    for ctx in synthetic_contexts:
        t0 = time.thread_time()
        brain.decide_now(ctx)
        times.append(time.thread_time() - t0)
    assert statistics.median(times) < 1e-3


def test_variants_are_taken_in_their_builtins_regimes() -> None:
    state = initialize_default_strategies()
    name = f"{MEAN_REVERSION}:wide"
    state[name] = state[MEAN_REVERSION].model_copy(update={"stop_ticks": 24})
    wide = setup(name, "short")
    ranged = RuleBrain().decide_now(context("range", triggered_setups=[wide], strategy_state=state))
    assert [t.entry_condition_id for t in ranged.trade_decisions] == [name]
    assert name in ranged.strategy_updates.active_strategies
    trend = RuleBrain().decide_now(context("trend", triggered_setups=[wide], strategy_state=state))
    assert trend.trade_decisions == []
    state["MyFade"] = state[MEAN_REVERSION]
    mapped = RuleBrain(variants={"MyFade": MEAN_REVERSION})
    ctx = context("range", triggered_setups=[setup("MyFade")], strategy_state=state)
    assert [t.entry_condition_id for t in mapped.decide_now(ctx).trade_decisions] == ["MyFade"]
