"""A live execution engine that places one bracket and then waits (killed -9 by the test).

Usage: python agent_child.py URL LOG_DIR [sent|filled]: prints SENT once the bracket is sent,
or (filled) FILLED once the entry's fill is journaled (a position open with its protection).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from fabio.brokers.projectx.session import ProjectXSession
from fabio.decision import TradeDecision
from fabio.execution.risk import RiskConfig
from fabio.instruments import parse_symbol
from fabio.wiring import open_execution

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from tests.brokers.projectx.harness import sim_config


async def main(url: str, log_dir: Path, wait: str = "sent") -> None:
    session = ProjectXSession(sim_config(url, order_timeout_sec=120.0))
    await session.connect(["ES"])
    await session.wait_connected(10)
    contract = parse_symbol("ES")
    engine = open_execution(
        contract, log_dir, RiskConfig(), broker=lambda c, n: session.broker_for(c, n)
    )
    cid = session.contracts["ES"].id
    while session.last_price_ticks(cid) is None:
        await asyncio.sleep(0.02)
    last = session.last_price_ticks(cid)
    assert last is not None
    now = session.clock_ns()
    engine.start_session("2024-01-02", now)
    result = engine.process_trade_decision(
        TradeDecision(
            action="enter",
            side="long",
            entry_condition_id="MeanReversionPOC_v2",
            stop_price=(last - 8) * 0.25,
            target_price=(last + 12) * 0.25,
            reason="kill -9 test",
        ),
        now,
        last,
    )
    engine.process_broker_events()
    if not result.accepted or wait == "sent":
        print("SENT" if result.accepted else f"REFUSED {result.reason}", flush=True)
    else:
        broker = session.brokers[cid]
        while True:  # the entry filled (journaled) and the venue works both legs
            engine.process_broker_events()
            trade = engine.position()
            legs = [o for o in broker.open_orders() if o.role.value in ("stop", "target")]
            placed = all(broker.links[o.id].venue_id is not None for o in legs)
            if trade is not None and trade.qty != 0 and len(legs) == 2 and placed:
                break
            await asyncio.sleep(0.02)
        print("FILLED", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), *sys.argv[3:4]))
