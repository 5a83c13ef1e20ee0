from __future__ import annotations

from fabio.brain.schema import StrategyChanges, StrategyTweak, StrategyUpdates
from fabio.execution.strategy_book import GuardrailConfig, StrategyBook
from fabio.strategies import (
    ABSORPTION_FADE,
    MEAN_REVERSION,
    TREND_PULLBACK,
    StrategyPerformance,
    initialize_default_strategies,
)

SEC = 1_000_000_000
SEASONED = StrategyPerformance(trades=40, wins=28, win_rate=0.7, net_pnl=900.0)


def tweak(name: str, **changes: object) -> StrategyUpdates:
    return StrategyUpdates(
        strategy_tweaks=[
            StrategyTweak(name=name, changes=StrategyChanges(**changes), reason="test")
        ]
    )


def book() -> StrategyBook:
    return StrategyBook(initialize_default_strategies(), GuardrailConfig())


def test_hostile_risk_fraction_is_clamped_by_step_and_cap() -> None:
    b = book()
    [c] = b.apply_strategy_updates(
        tweak(MEAN_REVERSION, risk_fraction=1.0), 0, {MEAN_REVERSION: SEASONED}
    )
    assert c.accepted and c.new == 0.007  # 0.005 + the 0.002 step
    [c] = b.apply_strategy_updates(
        tweak(MEAN_REVERSION, risk_fraction=1.0), 1000 * SEC, {MEAN_REVERSION: SEASONED}
    )
    assert c.accepted and c.new == 0.009
    [c] = b.apply_strategy_updates(
        tweak(MEAN_REVERSION, risk_fraction=1.0), 2000 * SEC, {MEAN_REVERSION: SEASONED}
    )
    assert c.new == 0.01  # the cap
    assert b.strategy_state[MEAN_REVERSION].risk_fraction == 0.01


def test_raising_risk_needs_enough_trades_but_cutting_never_waits() -> None:
    b = book()
    young = StrategyPerformance(trades=5, wins=5, win_rate=1.0, net_pnl=500.0)
    [c] = b.apply_strategy_updates(
        tweak(MEAN_REVERSION, risk_fraction=0.006), 0, {MEAN_REVERSION: young}
    )
    assert not c.accepted and "30 closed or shadow trades" in c.reason
    [c] = b.apply_strategy_updates(tweak(MEAN_REVERSION, risk_fraction=0.002), 0, {})
    assert c.accepted and c.new == 0.003  # cut, one step at a time
    [c] = b.apply_strategy_updates(tweak(MEAN_REVERSION, enabled=False), SEC, {})
    assert c.accepted  # disabling is always allowed, even within the cooldown


def test_cooldown_between_changes() -> None:
    b = book()
    b.apply_strategy_updates(tweak(TREND_PULLBACK, target_ticks=50), 0)
    [c] = b.apply_strategy_updates(tweak(TREND_PULLBACK, target_ticks=60), 60 * SEC)
    assert not c.accepted and "cooldown" in c.reason
    [c] = b.apply_strategy_updates(tweak(TREND_PULLBACK, target_ticks=60), 901 * SEC)
    assert c.accepted and c.new == 60


def test_ticks_step_bounds_and_no_wider_stop_with_an_open_trade() -> None:
    b = book()
    [c] = b.apply_strategy_updates(tweak(ABSORPTION_FADE, stop_ticks=400), 0)
    assert c.accepted and c.new == 12  # 8 + 50 % step
    [c] = b.apply_strategy_updates(
        tweak(ABSORPTION_FADE, stop_ticks=20), 1000 * SEC, open_strategies={ABSORPTION_FADE}
    )
    assert not c.accepted and "wider stop" in c.reason
    [c] = b.apply_strategy_updates(
        tweak(ABSORPTION_FADE, stop_ticks=10), 2000 * SEC, open_strategies={ABSORPTION_FADE}
    )
    assert c.accepted and c.new == 10  # a tighter stop is fine


def test_unknown_strategy_and_reenable_rule() -> None:
    b = book()
    [c] = b.apply_strategy_updates(tweak("Ghost", enabled=True), 0)
    assert not c.accepted and "unknown" in c.reason
    b.apply_strategy_updates(tweak(MEAN_REVERSION, enabled=False), 0)
    [c] = b.apply_strategy_updates(tweak(MEAN_REVERSION, enabled=True), 2000 * SEC, {})
    assert not c.accepted and "re-enabling" in c.reason
    [c] = b.apply_strategy_updates(
        tweak(MEAN_REVERSION, enabled=True), 4000 * SEC, {MEAN_REVERSION: SEASONED}
    )
    assert c.accepted


def test_can_trade_enabled_active_and_session_limit() -> None:
    b = book()
    assert b.can_trade(MEAN_REVERSION).ok
    assert not b.can_trade("Ghost").ok
    for _ in range(3):
        b.record_entry(MEAN_REVERSION)
    permission = b.can_trade(MEAN_REVERSION)
    assert not permission.ok and "3 trades this session" in permission.reason
    b.new_session()
    assert b.can_trade(MEAN_REVERSION).ok
    b.apply_strategy_updates(StrategyUpdates(active_strategies=[TREND_PULLBACK]), 0)
    assert not b.can_trade(MEAN_REVERSION).ok and b.can_trade(TREND_PULLBACK).ok
    b.apply_strategy_updates(tweak(TREND_PULLBACK, enabled=False), 0)
    assert "disabled" in b.can_trade(TREND_PULLBACK).reason


def test_replaying_records_rebuilds_the_same_state() -> None:
    b = book()
    changes = []
    changes += b.apply_strategy_updates(tweak(MEAN_REVERSION, risk_fraction=0.004), 0)
    changes += b.apply_strategy_updates(tweak(TREND_PULLBACK, stop_ticks=12), 10 * SEC)
    changes += b.apply_strategy_updates(tweak(TREND_PULLBACK, stop_ticks=8), 20 * SEC)
    fresh = book()
    for ch in changes:
        fresh.apply_change(ch)
    assert fresh.strategy_state == b.strategy_state
