from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fabio.brain.schema import StrategyChanges, StrategyTweak, StrategyUpdates, TradeDecision
from fabio.domain import TradeBatch
from fabio.errors import FabioError
from fabio.execution.engine import EXECUTION_JOURNAL, ExecutionEngine
from fabio.execution.risk import RiskConfig
from fabio.instruments import parse_symbol
from fabio.journal import read_journal
from fabio.strategies import MEAN_REVERSION, StrategyParams, initialize_default_strategies
from fabio.timeutil import CHICAGO, datetime_to_ns
from fabio.wiring import open_execution
from tests.execution import scenario

ES = parse_symbol("ESH4", 2024)
SEC = 1_000_000_000
P = 4 * 5000  # 5000.00 in ticks
GOLDEN = Path(__file__).parent / "golden" / "execution_scenario.json"


def ct(hh: int, mm: int, ss: int = 0) -> int:
    return datetime_to_ns(datetime(2024, 3, 5, hh, mm, ss, tzinfo=CHICAGO))


def tape(start: int, prices: list[int], step_sec: float = 1.0) -> TradeBatch:
    n = len(prices)
    ts = start + (np.arange(n) * step_sec * SEC).astype(np.int64)
    return TradeBatch.from_arrays(ts, prices, np.full(n, 5), np.ones(n))


def enter(strategy: str = MEAN_REVERSION, side: str = "long", **kw: Any) -> TradeDecision:
    return TradeDecision(action="enter", side=side, entry_condition_id=strategy, **kw)  # type: ignore[arg-type]


def engine_at(log_dir: Path | None, **defaults: StrategyParams) -> ExecutionEngine:
    strategies = {**initialize_default_strategies(), **defaults}
    e = open_execution(ES, log_dir, RiskConfig(), defaults=strategies)
    e.start_session("2024-03-05", ct(8, 30))
    return e


def decisions(log_dir: Path) -> list[dict[str, Any]]:
    return [r for r in read_journal(log_dir / EXECUTION_JOURNAL).records if r["type"] == "decision"]


def test_full_cycle_enter_target_performance(tmp_path: Path) -> None:
    e = engine_at(tmp_path)
    e.on_trades(tape(ct(9, 0), [P] * 5))
    result = e.process_trade_decision(enter(), ct(9, 0, 10), P, regime="range")
    assert result.accepted and result.qty == 1  # floor(50,000 x 0.005 / (12 x $12.50)) = 1
    e.on_trades(tape(ct(9, 0, 11), [P, P + 10, P + 20, P + 25]))
    [trade] = e.ledger.closed
    # the market entry filled one tick worse (the default slippage model): 23 ticks won
    assert trade.entry_price == (P + 1) * 0.25
    assert trade.exit_reason == "target" and trade.exit_price == (P + 24) * 0.25
    assert trade.net_pnl_usd == pytest.approx(23 * 12.5 - 2.8)
    assert trade.r_multiple == pytest.approx(23 / 12, abs=1e-3) and trade.regime == "range"
    perf = e.get_performance_stats()[MEAN_REVERSION]
    assert perf.trades == 1 and perf.win_rate == 1.0 and perf.trades_this_session == 1
    assert e.ledger.risk.account.balance == pytest.approx(50_000 + 284.7)


@pytest.mark.parametrize(
    ("decision", "at", "reason"),
    [
        (enter("YoloBreakout"), ct(9, 0), "unknown strategy"),
        (enter(), ct(15, 5), "no new entries from 14:58 CT"),  # after the entry cut-off
        (enter(stop_price=math.nan), ct(9, 0), "not a finite positive price"),
        (enter(stop_price=-1.0), ct(9, 0), "not a finite positive price"),
        (enter(stop_price=4990.0), ct(9, 0), "wider than the strategy's stop_ticks"),
        (enter(target_price=5001.0), ct(9, 0), "below the strategy's min_rr"),
        (enter(stop_price=5001.0), ct(9, 0), "either side of the entry"),
        (enter("Wide"), ct(9, 0), "contract risks $5,025.00"),  # beyond the risk budget
    ],
)
def test_hostile_decisions_are_refused_and_journaled(
    tmp_path: Path, decision: TradeDecision, at: int, reason: str
) -> None:
    wide = StrategyParams(
        enabled=True, risk_fraction=0.005, stop_ticks=400, target_ticks=800, min_rr=1.5
    )
    e = engine_at(tmp_path, Wide=wide)
    e.on_trades(tape(at - 10 * SEC, [P] * 5))
    result = e.process_trade_decision(decision, at, P)
    assert not result.accepted and reason in result.reason
    [rec] = decisions(tmp_path)
    assert rec["accepted"] is False and rec["reason"] == result.reason
    assert e.broker.orders == {}


def test_risk_fraction_one_is_sized_by_the_strategy_not_the_brain(tmp_path: Path) -> None:
    e = engine_at(tmp_path)
    e.on_trades(tape(ct(9, 0), [P] * 3))
    result = e.process_trade_decision(enter(risk_fraction=1.0), ct(9, 0, 5), P)
    assert result.accepted and result.qty == 1


def test_one_position_at_a_time_and_exit(tmp_path: Path) -> None:
    e = engine_at(tmp_path)
    e.on_trades(tape(ct(9, 0), [P] * 3))
    assert e.process_trade_decision(enter(), ct(9, 0, 5), P).accepted
    again = e.process_trade_decision(enter(side="short"), ct(9, 0, 6), P)
    assert not again.accepted and "already open" in again.reason
    e.on_trades(tape(ct(9, 0, 7), [P + 1, P + 2]))
    out = e.process_trade_decision(
        TradeDecision(action="exit", reason="invalidated"), ct(9, 0, 9), P + 2
    )
    assert out.accepted
    e.on_trades(tape(ct(9, 0, 10), [P + 3]))
    [trade] = e.ledger.closed
    assert trade.exit_reason.startswith("brain exit")


def test_modify_never_widens_the_stop(tmp_path: Path) -> None:
    e = engine_at(tmp_path)
    e.on_trades(tape(ct(9, 0), [P] * 3))
    e.process_trade_decision(enter(), ct(9, 0, 5), P)
    e.on_trades(tape(ct(9, 0, 6), [P]))
    wider = e.process_trade_decision(
        TradeDecision(action="modify", stop_price=4995.0), ct(9, 0, 8), P
    )
    assert not wider.accepted and "wider stop" in wider.reason
    tighter = e.process_trade_decision(
        TradeDecision(action="modify", stop_price=4999.0), ct(9, 0, 9), P
    )
    assert tighter.accepted
    e.on_trades(tape(ct(9, 0, 10), [P - 4]))  # the tightened stop at 4999.00 fills
    [trade] = e.ledger.closed
    assert trade.exit_reason == "stop" and trade.exit_price == 4999.0 - 0.25


def test_flat_time_flattens(tmp_path: Path) -> None:
    e = engine_at(tmp_path)
    e.on_trades(tape(ct(14, 0), [P] * 3))
    assert e.process_trade_decision(enter(), ct(14, 0, 5), P).accepted
    e.on_trades(tape(ct(14, 0, 6), [P] * 2))
    e.on_trades(tape(ct(15, 8), [P + 1]))  # the flat time: an exit goes out
    e.on_trades(tape(ct(15, 8, 1), [P + 1]))
    [trade] = e.ledger.closed
    assert "flat" in trade.exit_reason


def test_strategy_updates_are_journaled_and_survive_a_restart(tmp_path: Path) -> None:
    e = engine_at(tmp_path)
    updates = StrategyUpdates(
        strategy_tweaks=[
            StrategyTweak(name=MEAN_REVERSION, changes=StrategyChanges(stop_ticks=10), reason="r"),
            StrategyTweak(name=MEAN_REVERSION, changes=StrategyChanges(risk_fraction=0.5)),
        ]
    )
    changes = e.apply_strategy_updates(updates, ct(9, 0))
    assert [c.accepted for c in changes] == [True, False]
    restarted = open_execution(ES, tmp_path, RiskConfig())
    assert restarted.strategy_state[MEAN_REVERSION].stop_ticks == 10
    records = read_journal(tmp_path / EXECUTION_JOURNAL).records
    assert sum(1 for r in records if r["type"] == "strategy_change") == 2


def test_restart_rebuilds_exactly_and_reprotects_the_open_position(tmp_path: Path) -> None:
    e = engine_at(tmp_path)
    e.on_trades(tape(ct(9, 0), [P] * 3))
    e.process_trade_decision(enter(), ct(9, 0, 5), P, "range")
    e.on_trades(tape(ct(9, 0, 6), [P, P + 25]))  # trade 1 closes at the target
    e.process_trade_decision(enter(side="short"), ct(9, 1), P + 25, "trend")
    e.on_trades(tape(ct(9, 1, 1), [P + 25, P + 24]))  # trade 2 open, short
    before = e.ledger.summary()
    restarted = open_execution(ES, tmp_path, RiskConfig())
    after = restarted.ledger.summary()
    for key in (
        "strategy_state",
        "trades_this_session",
        "open_trades",
        "closed_trades",
        "net_pnl_usd",
        "strategy_performance",
        "risk",
    ):
        assert after[key] == before[key], key
    # The stop came back: price runs up through it and the short is stopped out.
    restarted.on_trades(tape(ct(9, 2), [P + 30, P + 40]))
    assert len(restarted.ledger.closed) == 2
    assert restarted.ledger.closed[-1].exit_reason == "stop"
    # Numbering continues: no trade id is reused.
    restarted.on_trades(tape(ct(9, 3), [P + 40]))
    res = restarted.process_trade_decision(enter(), ct(9, 3, 1), P + 40)
    assert res.trade_id == "ESH4-T3"


def test_torn_journal_line_is_reported_not_fatal(tmp_path: Path) -> None:
    e = engine_at(tmp_path)
    e.on_trades(tape(ct(9, 0), [P] * 3))
    e.process_trade_decision(enter(), ct(9, 0, 5), P)
    with (tmp_path / EXECUTION_JOURNAL).open("a") as fh:
        fh.write('{"type": "fill", "trade_id": "ESH4-T1", "q')
    restarted = open_execution(ES, tmp_path, RiskConfig())
    assert any("torn last line" in p for p in restarted.problems)
    assert restarted.ledger.closed == []


def independent_fold(records: list[dict[str, Any]]) -> tuple[set[str], set[str], float]:
    """Closed and open trade ids and the net P&L, straight from fill records."""
    net: dict[str, int] = defaultdict(int)
    cash: dict[str, float] = defaultdict(float)
    for r in records:
        if r["type"] == "fill":
            net[r["trade_id"]] += r["side"] * r["qty"]
            cash[r["trade_id"]] += (
                -r["side"] * r["qty"] * r["price_ticks"] * 12.5 - r["commission_usd"]
            )
    closed = {t for t, q in net.items() if q == 0}
    return closed, set(net) - closed, sum(cash[t] for t in closed)


def test_kill_dash_nine_restarts_into_the_journaled_state(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.execution.scenario", str(tmp_path), "3", "--slow"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    journal = tmp_path / EXECUTION_JOURNAL
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if journal.exists() and journal.read_text().count('"type":"fill"') >= 6:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    read = read_journal(journal)
    assert all("torn last line" in p for p in read.problems)
    closed, open_ids, net = independent_fold(read.records)
    assert len(closed) >= 2
    restarted = open_execution(scenario.CONTRACT, tmp_path, RiskConfig())
    ids = [t.trade_id for t in restarted.ledger.closed]
    assert len(ids) == len(set(ids)) and set(ids) == closed  # none twice, none lost
    assert {t.trade_id for t in restarted.ledger.open_trades.values() if t.qty} == open_ids
    assert restarted.ledger.risk.account.balance == pytest.approx(50_000 + net)
    # The restarted process finishes the run from where the journal ends. (It need not match an
    # uninterrupted run: an entry whose fill was not journaled before the kill never happened.)
    finished = scenario.run(tmp_path)
    ids = [t.trade_id for t in finished.ledger.closed]
    assert len(ids) == len(set(ids)) and closed <= set(ids) and len(ids) > len(closed)
    assert finished.ledger.open_trades == {}


def test_golden_master() -> None:
    """A fixed synthetic session and a fixed decision script give fixed trades and statistics.

    Compare only: regenerate deliberately with `python -m tests.golden.regenerate` after an
    intended change (never through an environment variable).
    """
    result = json.loads(json.dumps(scenario.summary(scenario.run(None)), sort_keys=True))
    expected = json.loads(GOLDEN.read_text())
    assert result == expected


def test_an_entry_filled_beyond_its_stop_is_closed_on_its_trade(tmp_path: Path) -> None:
    # A market entry that fills past its stop (a gap): the venue cancels the bracket and exits
    # at once. That exit must close the trade in the ledger: before, its fill was "of unknown
    # order", the ledger kept a phantom position, and the risk engine later "flattened" it by
    # opening a real position the other way (a daily-loss breach on generator 2's NQ).
    e = engine_at(tmp_path)
    e.on_trades(tape(ct(9, 0), [P] * 3))
    result = e.process_trade_decision(
        enter(stop_price=(P - 12) / 4, target_price=(P + 24) / 4), ct(9, 0, 5), P
    )
    assert result.accepted
    e.on_trades(tape(ct(9, 0, 6), [P - 20, P - 21, P - 21]))
    assert e.problems == []
    [trade] = e.ledger.closed
    assert trade.entry_price == (P - 19) * 0.25  # one tick worse than the gap print
    assert trade.exit_price == (P - 22) * 0.25 and "beyond its stop" in trade.exit_reason
    assert e.ledger.open_trades == {} and e.position() is None
    assert e.broker.positions() == []
    # nothing left to "flatten": later prints and the session end open no position
    e.on_trades(tape(ct(9, 1), [P - 80, P - 90]))
    e.flatten(ct(9, 2), "test")
    assert e.broker.positions() == [] and len(e.ledger.closed) == 1


def test_a_stop_closer_than_the_minimum_is_widened_and_the_size_cut(tmp_path: Path) -> None:
    wide_risk = StrategyParams(
        enabled=True,
        risk_fraction=0.01,
        max_trades_per_session=3,
        min_rr=1.5,
        stop_ticks=16,
        target_ticks=40,
    )
    e = engine_at(tmp_path, **{MEAN_REVERSION: wide_risk})
    e.on_trades(tape(ct(9, 0), [P] * 5))
    # a structural stop 2 ticks away: moved to the 4-tick minimum beyond it, size from 4 + 2
    result = e.process_trade_decision(
        enter(stop_price=(P - 2) * 0.25, target_price=(P + 20) * 0.25), ct(9, 0, 10), P
    )
    assert result.accepted
    entry = next(
        r for r in read_journal(tmp_path / EXECUTION_JOURNAL).records if r["type"] == "entry"
    )
    assert entry["stop_ticks"] == P - 4 and entry["risk_ticks"] == 4
    # floor(50,000 x 0.01 / ((4 + 2) x $12.50)) = 6: the money at risk is the budget's
    assert result.qty == 5  # capped by the 50K's 5-lot position limit
    assert entry["risk_usd"] <= 50_000 * 0.01
    # the wider stop must still leave the strategy's reward:risk
    e2 = engine_at(tmp_path / "b", **{MEAN_REVERSION: wide_risk})
    e2.on_trades(tape(ct(9, 0), [P] * 5))
    refused = e2.process_trade_decision(
        enter(stop_price=(P - 2) * 0.25, target_price=(P + 5) * 0.25), ct(9, 0, 10), P
    )
    assert not refused.accepted and "widened to the minimum" in refused.reason


def test_replay_flags_duplicate_trade_and_order_ids(tmp_path: Path) -> None:
    """Two processes on one journal (what the run lock now prevents) write the same ids."""
    a, b = engine_at(tmp_path), engine_at(tmp_path)
    for e in (a, b):
        e.on_trades(tape(ct(9, 0), [P] * 5))
        assert e.process_trade_decision(enter(), ct(9, 0, 10), P).accepted
    restarted = open_execution(ES, tmp_path, RiskConfig())
    conflicts = restarted.ledger.conflicts
    assert any("duplicate trade id ESH4-T1" in c for c in conflicts)
    assert any("duplicate order id ESH4-1 (first used by ESH4-T1)" in c for c in conflicts)
    assert any("duplicate trade id" in p for p in restarted.problems)
    single = tmp_path / "single"
    e = engine_at(single)
    e.on_trades(tape(ct(9, 0), [P] * 5))
    e.process_trade_decision(enter(), ct(9, 0, 10), P)
    assert open_execution(ES, single, RiskConfig()).ledger.conflicts == []


def test_corrupt_record_inside_the_journal_halts_start_up(tmp_path: Path) -> None:
    e = engine_at(tmp_path)
    e.on_trades(tape(ct(9, 0), [P] * 5))
    e.process_trade_decision(enter(), ct(9, 0, 10), P)
    e.on_trades(tape(ct(9, 0, 11), [P, P + 10, P + 20, P + 25]))
    assert len(e.ledger.closed) == 1
    path = tmp_path / EXECUTION_JOURNAL
    lines = path.read_text().splitlines()
    target = next(i for i, line in enumerate(lines) if '"role":"target"' in line)
    lines[target] = lines[target][:40]  # a corrupt record in the middle, not a torn tail
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FabioError, match=rf"{EXECUTION_JOURNAL}:{target + 1}: corrupt"):
        open_execution(ES, tmp_path, RiskConfig())
