"""Sized out (issue 12): an enabled strategy whose own risk_fraction buys no contract trades in
shadow, the ledger attributes those shadow trades since its risk last changed, and the
determination ignores the account's own limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fabio.brain.schema import StrategyChanges, StrategyTweak, StrategyUpdates
from fabio.events import ShadowTradeEvent, StrategyChangeEvent, parse_record
from fabio.execution.engine import ExecutionEngine
from fabio.execution.risk import RiskConfig
from fabio.journal import read_journal
from fabio.strategies import TREND_PULLBACK, initialize_default_strategies
from fabio.wiring import open_execution, read_state
from tests.execution.test_engine import ES, SEC, P, ct, enter


def bars_engine(log_dir: Path | None, risk_fraction: float) -> ExecutionEngine:
    """ES on 5-minute bars with the 50K preset: 8-tick minimum stop, 8-tick slippage."""
    state = initialize_default_strategies()
    state[TREND_PULLBACK] = state[TREND_PULLBACK].model_copy(
        update={"risk_fraction": risk_fraction}
    )
    e = open_execution(
        ES, log_dir, RiskConfig(), defaults=state, min_stop_ticks=8, slippage_allowance_ticks=8
    )
    e.start_session("2024-03-05", ct(8, 30))
    return e


def test_sized_out_is_the_strategys_budget_against_one_contract() -> None:
    # one contract at the 8-tick minimum stop plus 8 ticks of slippage: $200 = 0.004 of 50K
    assert bars_engine(None, 0.004).sized_out(TREND_PULLBACK) is None
    e = bars_engine(None, 0.003)
    why = e.sized_out(TREND_PULLBACK)
    assert why is not None and "$200.00" in why and "$150.00" in why
    assert set(e.sized_out_strategies()) == {TREND_PULLBACK}
    # a wider stop needs a bigger budget: 0.004 buys the minimum stop, not a 12-tick one
    assert bars_engine(None, 0.004).sized_out(TREND_PULLBACK, 12) is not None
    # a disabled strategy is not "sized out" (it is disabled)
    e.ledger.book.strategy_state[TREND_PULLBACK] = e.strategy_state[TREND_PULLBACK].model_copy(
        update={"enabled": False}
    )
    assert e.sized_out_strategies() == {}


def test_account_refusals_are_not_sized_out() -> None:
    e = bars_engine(None, 0.005)
    e.set_kill_switch(True, "test", "cli", ct(9, 0))
    assert e.sized_out(TREND_PULLBACK) is None  # the kill switch refuses, not the budget
    tight = enter(TREND_PULLBACK, stop_price=(P - 8) * 0.25, target_price=(P + 24) * 0.25)
    refused = e.process_trade_decision(tight, ct(9, 1), P, "trend")
    assert not refused.accepted and "kill switch" in refused.reason
    assert "sized out" not in refused.reason
    e = bars_engine(None, 0.003)
    refused = e.process_trade_decision(tight, ct(9, 1), P, "trend")
    assert not refused.accepted and refused.reason.startswith("sized out:")


def shadow(name: str, entry_ns: int, r: float, cause: str = "sized_out") -> ShadowTradeEvent:
    return ShadowTradeEvent(
        ts_ns=entry_ns + SEC,
        symbol=ES.symbol,
        strategy=name,
        regime="trend",
        side=1,
        trade_date="2024-03-05",
        entry_ns=entry_ns,
        entry_ticks=P,
        stop_ticks=P - 8,
        target_ticks=P + 16,
        exit_ticks=P + 16,
        exit_reason="target",
        r_multiple=r,
        cause=cause,  # type: ignore[arg-type]
    )


def cut(e: ExecutionEngine, now: int, to: float) -> None:
    tweak = StrategyTweak(name=TREND_PULLBACK, changes=StrategyChanges(risk_fraction=to))
    [change] = e.apply_strategy_updates(StrategyUpdates(strategy_tweaks=[tweak]), now)
    assert change.accepted


def test_shadow_trades_count_since_the_risk_last_changed(tmp_path: Path) -> None:
    e = bars_engine(tmp_path, 0.004)
    e.emit(shadow(TREND_PULLBACK, ct(9, 0), 2.0))  # before the cut: not this level's evidence
    cut(e, ct(9, 30), 0.003)
    assert e.ledger.risk_changed_at[TREND_PULLBACK] == ct(9, 30)  # at run time, not on replay
    e.emit(shadow(TREND_PULLBACK, ct(10, 0), 1.0))
    e.emit(shadow(TREND_PULLBACK, ct(11, 0), -1.0))
    perf = e.get_performance_stats()[TREND_PULLBACK]
    assert perf.shadow["trades"] == 2 and perf.shadow["avg_r"] == pytest.approx(0.0)
    # a restart folds the same; the carry keeps the time
    view = read_state(ES, tmp_path, RiskConfig(), e.ledger.book.defaults)
    assert view.ledger.performance()[TREND_PULLBACK].shadow == perf.shadow
    assert view.ledger.learning_state()["risk_changed_at"] == {TREND_PULLBACK: ct(9, 30)}
    # a raise those shadow trades earned starts the strategy's judged record afresh
    e.ledger.book.guardrails = e.ledger.book.guardrails.model_copy(
        update={"min_trades_to_judge": 0}
    )
    cut(e, ct(12, 0), 0.005)
    assert e.ledger.enabled_at[TREND_PULLBACK] == ct(12, 0)
    assert TREND_PULLBACK not in e.get_performance_stats()  # no shadow trade since the raise


def test_disabled_at_moves_at_run_time_so_shadow_counts_without_a_restart() -> None:
    e = bars_engine(None, 0.005)
    tweak = StrategyTweak(name=TREND_PULLBACK, changes=StrategyChanges(enabled=False))
    e.apply_strategy_updates(StrategyUpdates(strategy_tweaks=[tweak]), ct(9, 0))
    e.emit(shadow(TREND_PULLBACK, ct(10, 0), 1.0, cause="disabled"))
    assert e.get_performance_stats()[TREND_PULLBACK].shadow["trades"] == 1


def test_shadow_cause_is_journaled_and_old_records_read_as_disabled(tmp_path: Path) -> None:
    e = bars_engine(tmp_path, 0.003)
    e.emit(shadow(TREND_PULLBACK, ct(10, 0), 1.0))
    [rec] = [
        r for r in read_journal(tmp_path / "execution.jsonl").records if r["type"] == "shadow_trade"
    ]
    assert rec["cause"] == "sized_out"
    old: dict[str, Any] = {k: v for k, v in rec.items() if k not in ("cause", "schema_version")}
    parsed = parse_record(old)
    assert isinstance(parsed, ShadowTradeEvent) and parsed.cause == "disabled"
    change = StrategyChangeEvent(
        ts_ns=1, symbol=ES.symbol, strategy=TREND_PULLBACK, field="risk_fraction"
    )
    assert parse_record(change.to_record()) == change
