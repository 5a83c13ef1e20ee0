"""A fixed, deterministic execution scenario: a synthetic session and a scripted decision list.

Used by the golden master and by the kill -9 test (run as a script: `python -m
tests.execution.scenario LOG_DIR [--slow]`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from fabio.brain.schema import TradeDecision
from fabio.data.synthetic import SyntheticConfig, iter_sessions
from fabio.execution.engine import ExecutionEngine
from fabio.execution.risk import RiskConfig
from fabio.instruments import parse_symbol
from fabio.sessions import SessionKind
from fabio.strategies import MEAN_REVERSION, TREND_PULLBACK
from fabio.wiring import open_execution

CONTRACT = parse_symbol("ESH4", 2024)
MINUTE = 60_000_000_000
STRATEGIES = (MEAN_REVERSION, TREND_PULLBACK)


def scripted_decision(k: int) -> TradeDecision:
    """Alternate long and short entries of two strategies with their default brackets."""
    return TradeDecision(
        action="enter",
        side="long" if k % 2 == 0 else "short",
        entry_condition_id=STRATEGIES[(k // 2) % 2],
        order_type="market",
        reason=f"scripted #{k}",
    )


def run(
    log_dir: Path | None, days: int = 3, every_min: int = 20, slow: bool = False
) -> ExecutionEngine:
    """Replay `days` RTH sessions, deciding every `every_min` minutes; resume from the journal."""
    engine = open_execution(CONTRACT, log_dir, RiskConfig())
    resume_after = engine.ledger.last_ts_ns
    cfg = SyntheticConfig(symbol="ES", days=days, seed=42, rth_trades=60_000, eth=False)
    k = 0
    for s in iter_sessions(cfg):
        open_ns, close_ns = s.session.bounds(SessionKind.RTH)
        trades = s.trades
        if close_ns <= resume_after:
            k += (close_ns - open_ns) // (every_min * MINUTE)
            continue
        engine.start_session(s.session.trade_date.isoformat(), open_ns)
        edges = np.arange(open_ns + every_min * MINUTE, close_ns, every_min * MINUTE)
        start = 0
        for edge in edges.tolist():
            stop = int(np.searchsorted(trades.ts, edge))
            if edge > resume_after:
                engine.on_trades(trades.slice(start, stop))
                if stop > 0:
                    engine.process_trade_decision(
                        scripted_decision(k), edge, int(trades.price[stop - 1]), "range"
                    )
                if slow:
                    time.sleep(0.02)
            start = stop
            k += 1
        if close_ns > resume_after:
            engine.on_trades(trades.slice(start, len(trades)))
            last = int(trades.price[-1]) if len(trades) else None
            engine.end_session(s.session.trade_date.isoformat(), close_ns, last)
    return engine


def summary(engine: ExecutionEngine) -> dict[str, Any]:
    """What the golden master pins: every closed trade and the performance per strategy."""
    return {
        "closed_trades": [t.to_dict() for t in engine.ledger.closed],
        "strategy_performance": {
            k: v.model_dump() for k, v in engine.get_performance_stats().items()
        },
        "balance": engine.ledger.risk.account.balance,
        "strategy_state": {k: v.model_dump() for k, v in engine.strategy_state.items()},
    }


if __name__ == "__main__":
    run(
        Path(sys.argv[1]),
        days=int(sys.argv[2]) if len(sys.argv) > 2 else 3,
        slow="--slow" in sys.argv,
    )
