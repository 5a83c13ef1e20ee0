"""Learning policies: expectancy in R with uncertainty (default) against the spec's seed rules,
per strategy and strategy x regime; shadow trades of disabled strategies; learning carried to a
new account."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fabio.backtest.runner import run_backtest
from fabio.brain.learning import ExpectancyPolicy, ExpectancyRules, bounds, make_policy
from fabio.brain.rules import RuleBrain
from fabio.data.synthetic import SyntheticConfig, SyntheticFeed
from fabio.domain import TradeBatch
from fabio.execution.performance import performance_by_strategy
from fabio.execution.shadow import ShadowBook
from fabio.execution.types import ClosedTrade
from fabio.journal import read_journal
from fabio.playbook.base import SetupCandidate
from fabio.strategies import (
    MEAN_REVERSION,
    TREND_PULLBACK,
    StrategyPerformance,
    initialize_default_strategies,
)
from tests.brain.test_rules import PRICE, context, setup, tweaks

RULES = ExpectancyRules()


def perf(
    n: int, avg_r: float, r_std: float, win_rate: float = 0.5, **kw: Any
) -> StrategyPerformance:
    wins = round(n * win_rate)
    return StrategyPerformance(
        trades=n,
        wins=wins,
        win_rate=win_rate,
        net_pnl=avg_r * n * 100,
        avg_r=avg_r,
        recent={"trades": n, "avg_r": avg_r, "r_std": r_std, "wins": wins},
        **kw,
    )


def test_low_win_rate_with_high_payoff_is_not_punished() -> None:
    # 25 % winners at +4 R, the rest -1 R: +0.25 R a trade
    rs = [4.0] * 10 + [-1.0] * 30
    mean, std = float(np.mean(rs)), float(np.std(rs, ddof=1))
    good = {TREND_PULLBACK: perf(40, mean, std, win_rate=0.25)}
    assert tweaks(RuleBrain().decide_now(context(strategy_performance=good))) == {}
    # the spec's rule disables it on its win rate alone
    seed = RuleBrain(learning="seed").decide_now(context(strategy_performance=good))
    assert tweaks(seed) == {TREND_PULLBACK: {"enabled": False}}


def test_evidence_of_a_negative_expectancy_throttles_in_bounded_steps() -> None:
    brain = RuleBrain()
    state = initialize_default_strategies()
    base = state[MEAN_REVERSION].risk_fraction
    weak = {MEAN_REVERSION: perf(12, -0.6, 1.0)}
    first = tweaks(brain.decide_now(context(minute=100, strategy_performance=weak)))
    assert first == {MEAN_REVERSION: {"risk_fraction": pytest.approx(base - RULES.risk_step)}}
    # no second step until `rejudge_trades` new trades
    assert tweaks(brain.decide_now(context(minute=101, strategy_performance=weak))) == {}
    cut = {
        **state,
        MEAN_REVERSION: state[MEAN_REVERSION].model_copy(
            update={"risk_fraction": base - RULES.risk_step}
        ),
    }
    weaker = {MEAN_REVERSION: perf(17, -0.6, 1.0)}
    second = tweaks(
        brain.decide_now(context(minute=102, strategy_performance=weaker, strategy_state=cut))
    )
    assert second == {MEAN_REVERSION: {"risk_fraction": pytest.approx(base - 2 * RULES.risk_step)}}
    # never below the floor while enabled
    floor = {
        **state,
        MEAN_REVERSION: state[MEAN_REVERSION].model_copy(
            update={"risk_fraction": RULES.risk_floor}
        ),
    }
    at_floor = {MEAN_REVERSION: perf(25, -0.6, 1.0)}
    assert (
        tweaks(
            brain.decide_now(
                context(minute=103, strategy_performance=at_floor, strategy_state=floor)
            )
        )
        == {}
    )


def test_disabled_only_when_the_evidence_is_clear() -> None:
    unclear = {MEAN_REVERSION: perf(40, -0.2, 1.5)}  # negative, but within its noise
    got = tweaks(RuleBrain().decide_now(context(strategy_performance=unclear)))
    assert got.get(MEAN_REVERSION, {}).get("enabled") is None
    clear = {MEAN_REVERSION: perf(40, -0.6, 1.0)}
    decision = RuleBrain().decide_now(context(strategy_performance=clear))
    assert tweaks(decision) == {MEAN_REVERSION: {"enabled": False}}
    assert "shadow" in decision.notes_to_future_self[-1]


def test_positive_expectancy_raises_risk_up_to_the_cap() -> None:
    state = initialize_default_strategies()
    good = {MEAN_REVERSION: perf(40, 0.5, 1.0)}
    got = tweaks(RuleBrain().decide_now(context(strategy_performance=good)))
    base = state[MEAN_REVERSION].risk_fraction
    assert got == {MEAN_REVERSION: {"risk_fraction": pytest.approx(base + RULES.risk_step)}}
    capped = {
        **state,
        MEAN_REVERSION: state[MEAN_REVERSION].model_copy(update={"risk_fraction": RULES.risk_cap}),
    }
    ctx = context(strategy_performance=good, strategy_state=capped)
    assert tweaks(RuleBrain().decide_now(ctx)) == {}


def regime_perf(regime: str, n: int, avg: float, std: float) -> StrategyPerformance:
    row = {
        "trades": n,
        "win_rate": 0.3,
        "net_pnl": avg * n * 100,
        "avg_r": avg,
        "recent_trades": n,
        "recent_avg_r": avg,
        "recent_r_std": std,
    }
    return StrategyPerformance(
        trades=n, by_regime={regime: row}, recent={"trades": n, "avg_r": 0.0, "r_std": 1.0}
    )


def test_strategy_x_regime_block_expires_and_needs_new_evidence() -> None:
    brain = RuleBrain()
    bad_in_range = {MEAN_REVERSION: regime_perf("range", 20, -0.8, 0.8)}
    fade = setup(MEAN_REVERSION, "short", rr=2.0)
    blocked = brain.decide_now(
        context("range", minute=100, strategy_performance=bad_in_range, triggered_setups=[fade])
    )
    assert blocked.trade_decisions == []
    assert MEAN_REVERSION not in blocked.strategy_updates.active_strategies
    assert any("stands aside in range" in n for n in blocked.notes_to_future_self)
    # ten sessions later (each new session: the minute goes back) it may trade again ...
    for _ in range(RULES.regime_block_sessions):
        brain.decide_now(context("range", minute=10, strategy_performance=bad_in_range))
        brain.decide_now(context("range", minute=300, strategy_performance=bad_in_range))
    again = brain.decide_now(
        context("range", minute=100, strategy_performance=bad_in_range, triggered_setups=[fade])
    )
    assert [t.entry_condition_id for t in again.trade_decisions] == [MEAN_REVERSION]
    # ... and is blocked again only when new trades in range confirm it
    worse = {MEAN_REVERSION: regime_perf("range", 21, -0.8, 0.8)}
    reblocked = brain.decide_now(
        context("range", minute=101, strategy_performance=worse, triggered_setups=[fade])
    )
    assert reblocked.trade_decisions == []


def test_a_disabled_strategy_earns_its_way_back_in_shadow_after_its_cooldown() -> None:
    state = initialize_default_strategies()
    off = {**state, TREND_PULLBACK: state[TREND_PULLBACK].model_copy(update={"enabled": False})}

    def shadow(n: int, sessions: int, avg: float) -> dict[str, StrategyPerformance]:
        return {
            TREND_PULLBACK: StrategyPerformance(
                trades=40,
                recent={"trades": 40, "avg_r": -0.6, "r_std": 1.0},
                shadow={
                    "trades": n,
                    "avg_r": avg,
                    "r_std": 1.0,
                    "wins": n // 2,
                    "sessions": sessions,
                },
            )
        }

    def judge(perfs: dict[str, StrategyPerformance]) -> dict[str, dict[str, Any]]:
        return tweaks(
            RuleBrain().decide_now(context(strategy_performance=perfs, strategy_state=off))
        )

    assert judge(shadow(20, 2, 0.8)) == {}  # cooldown: too few sessions
    assert judge(shadow(8, 8, 0.8)) == {}  # cooldown: too few shadow trades
    assert judge(shadow(20, 8, -0.1)) == {}  # still losing in shadow
    back = judge(shadow(20, 8, 0.8))
    assert back == {TREND_PULLBACK: {"enabled": True, "risk_fraction": RULES.risk_floor}}


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 500), mean=st.floats(-5, 5), std=st.floats(0, 10))
def test_bounds_shrink_towards_zero_and_narrow_with_trades(n: int, mean: float, std: float) -> None:
    shrunk, se = bounds(n, mean, std, RULES)
    assert abs(shrunk) <= abs(mean) + 1e-12 and shrunk * mean >= 0
    assert se > 0 and math.isfinite(se)
    _, se_more = bounds(n + 10, mean, std, RULES)
    assert se_more < se


def test_policy_names() -> None:
    assert make_policy(None).name == "expectancy"
    assert make_policy("seed").name == "seed"
    assert isinstance(make_policy("expectancy"), ExpectancyPolicy)
    with pytest.raises(ValueError):
        make_policy("magic")


# ---------------------------------------------------------------- shadow trades


def tape(ts0: int, prices: list[int]) -> TradeBatch:
    n = len(prices)
    return TradeBatch(
        ts=np.arange(ts0, ts0 + n, dtype=np.int64),
        price=np.array(prices, dtype=np.int64),
        size=np.ones(n, dtype=np.int64),
        side=np.ones(n, dtype=np.int8),
        inferred=np.zeros(n, dtype=np.bool_),
    )


def test_shadow_trades_close_at_stop_or_target_and_are_journaled() -> None:
    records: list[dict[str, Any]] = []
    book = ShadowBook(0.25, lambda e: records.append(e.to_record()), "ESH4", min_stop_ticks=4)
    p = PRICE / 0.25
    long = SetupCandidate(
        strategy=TREND_PULLBACK,
        side="long",
        entry_price=PRICE,
        stop_price=PRICE - 2.0,
        target_price=PRICE + 5.0,
        rr=2.5,
        reason="t",
    )
    book.consider([long], {TREND_PULLBACK: 1}, 100, int(p), "trend", "2024-01-02")
    assert TREND_PULLBACK in book.open
    # a second candidate while one is open, or beyond the session's limit, is ignored
    book.consider([long], {TREND_PULLBACK: 1}, 101, int(p), "trend", "2024-01-02")
    book.on_trades(tape(200, [int(p) + 2, int(p) + 20, int(p) + 21]))  # target (+20) traded through
    assert records and records[0]["exit_reason"] == "target"
    entry = int(p) + 1  # one tick of slippage
    assert records[0]["r_multiple"] == pytest.approx(
        (int(p) + 20 - entry) / (entry - (p - 8)), abs=1e-4
    )
    book.consider([long], {TREND_PULLBACK: 1}, 300, int(p), "trend", "2024-01-02")
    assert not book.open  # the session's one shadow trade was used
    book.consider([long], {TREND_PULLBACK: 1}, 400, int(p), "trend", "2024-01-03")
    book.on_trades(tape(500, [int(p) - 3, int(p) - 12]))  # gap through the stop at -8
    stop = records[1]
    assert stop["exit_reason"] == "stop" and stop["exit_ticks"] == int(p) - 12 - 1
    assert stop["r_multiple"] < -1


def test_shadow_trades_reach_the_performance_since_disabling() -> None:
    recs = [
        {
            "strategy": TREND_PULLBACK,
            "r_multiple": r,
            "trade_date": f"2024-01-0{i % 3 + 2}",
            "entry_ns": i,
        }
        for i, r in enumerate([1.0, -1.0, 2.0])
    ]
    perf = performance_by_strategy([], None, {TREND_PULLBACK: recs})
    assert perf[TREND_PULLBACK].shadow["trades"] == 3
    assert perf[TREND_PULLBACK].shadow["sessions"] == 3
    assert perf[TREND_PULLBACK].shadow["avg_r"] == pytest.approx(2 / 3, abs=1e-4)


def test_recent_r_is_after_costs_and_starts_at_a_re_enable() -> None:
    def trade(i: int, r: float) -> ClosedTrade:
        gross = r * 100
        return ClosedTrade(
            f"T{i}",
            "ESH4",
            MEAN_REVERSION,
            "range",
            1,
            1,
            "2024-01-02",
            i,
            i + 1,
            1.0,
            1.0,
            gross,
            5.0,
            gross - 5.0,
            r,
            "target",
        )

    trades = [trade(i, r) for i, r in enumerate([-1.0, -1.0, 2.0, 2.0])]
    perf = performance_by_strategy(trades)[MEAN_REVERSION]
    assert perf.recent["trades"] == 4 and perf.recent["avg_r"] < 0.5  # fees cost R
    since = performance_by_strategy(trades, since={MEAN_REVERSION: 2})[MEAN_REVERSION]
    assert since.recent["trades"] == 2 and since.trades == 4


# ---------------------------------------------------------------- across accounts


def feed(seed: int, days: int = 3) -> SyntheticFeed:
    return SyntheticFeed(
        SyntheticConfig(symbol="ES", days=days, seed=seed, eth=False, rth_trades=40_000)
    )


def test_a_new_account_keeps_what_was_learned(tmp_path: Path) -> None:
    first = run_backtest([feed(3)], RuleBrain(), tmp_path / "one")
    state = first.learning_state
    assert state is not None and len(state["trades"]) == len(first.closed_trades) > 0
    state["strategy_state"][TREND_PULLBACK]["risk_fraction"] = 0.002  # as if learning cut it
    state["notes"] = [{"ts": 1, "text": "carried note", "regime": "range", "strategy": None}]
    second = run_backtest([feed(4)], RuleBrain(), tmp_path / "two", carry=state)
    # a fresh account: its own balance and trades; statistics include the earlier account's
    assert second.summary["trades"] == len(second.closed_trades)
    assert second.starting_balance == first.starting_balance
    assert second.strategy_state[TREND_PULLBACK]["risk_fraction"] <= 0.002 + 0.0011
    carried = second.learning_state
    assert carried is not None
    assert len(carried["trades"]) == len(first.closed_trades) + len(second.closed_trades)
    assert any(n["text"] == "carried note" for n in carried["notes"])
    journal = read_journal(tmp_path / "two" / "execution.jsonl").records
    assert journal[0]["type"] == "learning_carry"
    # the risk account is this account's own: the earlier account's P&L is not in it
    own = round(sum(t.net_pnl_usd for t in second.closed_trades), 2)
    assert second.summary["final_balance"] == pytest.approx(second.starting_balance + own)


# ---------------------------------------------------------------- sized out (issue 12)

SIZED_OUT = "one ES contract risks $200.00 (8 ticks + 8 slippage), more than the budget"


def test_a_sized_out_strategy_earns_its_risk_back_in_shadow_after_its_cooldown() -> None:
    state = initialize_default_strategies()
    initial = state[TREND_PULLBACK].risk_fraction
    cut = {
        **state,
        TREND_PULLBACK: state[TREND_PULLBACK].model_copy(update={"risk_fraction": 0.003}),
    }

    def shadow(n: int, sessions: int, avg: float) -> dict[str, StrategyPerformance]:
        return {
            TREND_PULLBACK: StrategyPerformance(
                trades=15,
                recent={"trades": 15, "avg_r": -0.1, "r_std": 1.0},  # no throttle at z=1
                shadow={
                    "trades": n,
                    "avg_r": avg,
                    "r_std": 1.0,
                    "wins": n // 2,
                    "sessions": sessions,
                },
            )
        }

    def judge(perfs: dict[str, StrategyPerformance], sized_out: bool = True) -> dict[str, Any]:
        ctx = context(
            strategy_performance=perfs,
            strategy_state=cut,
            sized_out={TREND_PULLBACK: SIZED_OUT} if sized_out else {},
            initial_risk_fraction={k: v.risk_fraction for k, v in state.items()},
        )
        return tweaks(RuleBrain().decide_now(ctx))

    assert judge(shadow(20, 2, 0.8)) == {}  # cooldown: too few sessions
    assert judge(shadow(8, 8, 0.8)) == {}  # cooldown: too few shadow trades
    assert judge(shadow(20, 8, -0.1)) == {}  # still losing in shadow
    assert (
        judge(
            {TREND_PULLBACK: shadow(20, 8, 0.8)[TREND_PULLBACK].model_copy(update={"shadow": {}})}
        )
        == {}
    )
    # sized out only at wider stops (it still trades at the minimum): its shadow trades count
    assert judge(shadow(20, 8, 0.8), sized_out=False) == {
        TREND_PULLBACK: {"risk_fraction": initial}
    }
    back = judge(shadow(20, 8, 0.8))
    assert back == {TREND_PULLBACK: {"risk_fraction": initial}}  # its initial level


def test_a_sized_out_strategy_is_not_entered_and_not_restored_above_its_initial_level() -> None:
    state = initialize_default_strategies()
    s = setup(MEAN_REVERSION, "short")
    ctx = context("range", triggered_setups=[s], sized_out={MEAN_REVERSION: SIZED_OUT})
    assert RuleBrain().decide_now(ctx).trade_decisions == []  # it would only be refused
    assert len(RuleBrain().decide_now(context("range", triggered_setups=[s])).trade_decisions) == 1
    # already at its initial level (sized out by a small account): nothing to restore
    good = {
        MEAN_REVERSION: StrategyPerformance(
            shadow={"trades": 30, "avg_r": 1.0, "r_std": 1.0, "wins": 20, "sessions": 10}
        )
    }
    ctx = context(
        strategy_performance=good,
        sized_out={MEAN_REVERSION: SIZED_OUT},
        initial_risk_fraction={k: v.risk_fraction for k, v in state.items()},
    )
    assert tweaks(RuleBrain().decide_now(ctx)) == {}


def test_sized_out_setups_trade_in_shadow_in_a_backtest(tmp_path: Path) -> None:
    # ticks: 4-tick minimum stop + 2 ticks of slippage = $75 a contract; 0.001 of 50K is $50
    low = {
        k: v.model_copy(update={"risk_fraction": 0.001})
        for k, v in initialize_default_strategies().items()
    }
    result = run_backtest([feed(3)], RuleBrain(), tmp_path, strategies=low)
    assert result.closed_trades == []
    records = read_journal(tmp_path / "execution.jsonl").records
    shadows = [r for r in records if r["type"] == "shadow_trade"]
    assert shadows and {r["cause"] for r in shadows} == {"sized_out"}
    assert not [r for r in records if r["type"] == "entry"]
    perf = result.learning_state["shadow"] if result.learning_state else []
    assert len(perf) == len(shadows)
