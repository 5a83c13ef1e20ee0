"""A position found open at a restart is flattened only by TopStep's rule (issue 20 item 2, its
time part): when it comes from an earlier trade date, or is held past the flat time of its own
trade date, both measured on the CME trade date (from 17:00 CT the evening before), never on
the session the feed starts from. Otherwise it is kept, overnight (--eth) too."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from fabio.brain.schema import TradeDecision
from fabio.domain import TradeBatch
from fabio.execution.engine import EXECUTION_JOURNAL, ExecutionEngine
from fabio.execution.risk import RiskConfig
from fabio.instruments import parse_symbol
from fabio.journal import read_journal
from fabio.orders import OrderRole
from fabio.sessions import SessionKind
from fabio.strategies import MEAN_REVERSION
from fabio.timeutil import CHICAGO, datetime_to_ns
from fabio.wiring import open_execution

ES = parse_symbol("ESH4", 2024)
SEC = 1_000_000_000
P = 4 * 5000
ETH = RiskConfig(trading_session=SessionKind.ETH)


def at(day: int, hh: int, mm: int = 0, ss: int = 0) -> int:
    return datetime_to_ns(datetime(2024, 3, day, hh, mm, ss, tzinfo=CHICAGO))


def tape(start: int, prices: list[int]) -> TradeBatch:
    n = len(prices)
    ts = start + np.arange(n, dtype=np.int64) * SEC
    return TradeBatch.from_arrays(ts, prices, np.full(n, 5), np.ones(n))


def long_position(log_dir: Path, config: RiskConfig, trade_date: str, start: int, t: int) -> None:
    """An engine opens `trade_date` at `start`, goes long 1 ES at `t`, and dies (kill -9)."""
    e = open_execution(ES, log_dir, config)
    e.start_session(trade_date, start)
    e.on_trades(tape(t - 10 * SEC, [P] * 3))
    d = TradeDecision(action="enter", side="long", entry_condition_id=MEAN_REVERSION)
    result = e.process_trade_decision(d, t, P)
    assert result.accepted, result.reason
    e.on_trades(tape(t + SEC, [P, P]))
    assert e.position() is not None and e.position().qty == 1  # type: ignore[union-attr]


def stale_records(log_dir: Path) -> list[dict[str, object]]:
    records = read_journal(log_dir / EXECUTION_JOURNAL).records
    return [r for r in records if r["type"] == "stale_position"]


def exits(e: ExecutionEngine) -> list[object]:
    return [o for o in e.broker.open_orders() if o.role is OrderRole.EXIT]


def test_an_overnight_position_survives_an_eth_restart(tmp_path: Path) -> None:
    """The measured failure: with --eth, a restart flattened a protected position "before the
    RTH open 08:30 CT", because its session started the evening before."""
    wed_globex_open = at(5, 17)  # trade date Wednesday 2024-03-06 opens Tuesday 17:00 CT
    long_position(tmp_path, ETH, "2024-03-06", wed_globex_open, at(5, 20))
    for now in (None, at(6, 2)):  # as the feed's session start, and at the real time
        again = open_execution(ES, tmp_path, ETH)
        again.start_session("2024-03-06", wed_globex_open, now)
        trade = again.position()
        assert trade is not None and trade.qty == 1
        assert stale_records(tmp_path) == [] and exits(again) == []
    # still protected: the stop put back at the restart closes it
    again.on_trades(tape(at(6, 2, 1), [P - 20, P - 20]))
    assert again.position() is None and again.ledger.closed[-1].exit_reason == "stop"


def test_a_restart_after_the_flat_time_flattens_at_once(tmp_path: Path) -> None:
    """RTH: the agent's session starts at 08:30; a restart at 15:30 is past the flat time, which
    the session's start did not see."""
    long_position(tmp_path, RiskConfig(), "2024-03-05", at(5, 8, 30), at(5, 14))
    again = open_execution(ES, tmp_path, RiskConfig())
    again.start_session("2024-03-05", at(5, 8, 30), at(5, 15, 30))
    [stale] = stale_records(tmp_path)
    assert stale["reason"] == (
        "restart: ESH4-T1 is held past the point of being flat (held past the flat time "
        "15:08 CT of 2024-03-05 (now 2024-03-05 15:30:00 CT))"
    )
    assert len(exits(again)) == 1


def test_an_eth_position_from_the_previous_trade_date_is_flattened(tmp_path: Path) -> None:
    long_position(tmp_path, ETH, "2024-03-06", at(5, 17), at(6, 10))
    again = open_execution(ES, tmp_path, ETH)
    again.start_session("2024-03-07", at(6, 17), at(6, 17, 30))  # Thursday's Globex evening
    [stale] = stale_records(tmp_path)
    assert "from trade date 2024-03-06 is still open on 2024-03-07" in str(stale["reason"])
    assert len(exits(again)) == 1
