"""kill -9 of the agent between order placement and acknowledgement, then a restart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from fabio.brokers.projectx.session import ProjectXSession
from fabio.brokers.projectx.sim.run import SimServer, build_sim, open_feeds
from fabio.brokers.projectx.sim.server import SimFaults
from fabio.execution.risk import RiskConfig
from fabio.instruments import parse_symbol
from fabio.journal import read_journal
from fabio.killswitch import EXECUTION_JOURNAL
from fabio.live import left_open
from fabio.timeutil import parse_at
from fabio.wiring import open_execution

from .harness import RTH_OPEN, Watch, sim_config

CHILD = Path(__file__).with_name("agent_child.py")


class SimThread:
    """The simulator on its own event loop in a thread (the agent runs in another process)."""

    def __init__(self, faults: SimFaults) -> None:
        feeds = open_feeds([], ["ES"], days=1, seed=7)
        self.sim = build_sim(feeds, 20.0, faults, start_ns=parse_at(RTH_OPEN))
        self.server = SimServer(self.sim)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.start())
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self) -> SimThread:
        self.thread.start()
        assert self.ready.wait(20)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def test_kill_9_between_placement_and_ack_then_restart(tmp_path: Path) -> None:
    faults = SimFaults(lose_order_response_rate=1.0, lost_response_hold_sec=300.0)
    with SimThread(faults) as st:
        sim = st.sim
        child = subprocess.Popen(
            [sys.executable, str(CHILD), st.server.url, str(tmp_path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            line = child.stdout.readline().strip()
            assert line == "SENT", line
            end = time.monotonic() + 60  # bounds a hang
            # the entry fills at the venue; its answer never comes back
            while not any(
                o.response_lost and o.fill_volume > 0 for o in list(sim.venue.orders.values())
            ):
                assert time.monotonic() < end, "the placement never filled at the simulator"
                time.sleep(0.05)
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
        entries = [o for o in list(sim.venue.orders.values()) if o.custom_tag]
        assert len(entries) == 1 and entries[0].fill_volume > 0
        qty = entries[0].fill_volume
        journal = read_journal(tmp_path / EXECUTION_JOURNAL).records
        assert not any(r.get("type") == "fill" for r in journal)  # died before hearing of it

        async def restart() -> tuple[int, list[str]]:
            session = ProjectXSession(sim_config(st.server.url))
            contract = parse_symbol("ES")
            session.journal_orders["ES"] = left_open(tmp_path, contract, RiskConfig())
            try:
                await session.connect(["ES"])
                assert await session.wait_connected(60)
                engine = open_execution(
                    contract, tmp_path, RiskConfig(), broker=lambda c, n: session.broker_for(c, n)
                )
                watch = Watch(sim)

                async def uncovered() -> list[str]:  # read on the simulator's own loop
                    async def read() -> list[str]:
                        return watch.uncovered()

                    return await asyncio.wrap_future(
                        asyncio.run_coroutine_threadsafe(read(), st.loop)
                    )

                # Until the restart has journaled the fill made while away and the venue holds
                # its stop. 60 s only bounds a hang (it took 3 s of wall time or less idle).
                end = time.monotonic() + 60
                while True:
                    engine.process_broker_events()
                    trade = engine.position()
                    if trade is not None and int(trade.qty) == qty and not await uncovered():
                        break
                    assert time.monotonic() < end, "the restart never adopted and protected"
                    await asyncio.sleep(0.05)
                problems = session.unexplained(lambda s: int(trade.qty))
                return int(trade.qty), problems
            finally:
                await session.close()

        fut = asyncio.run_coroutine_threadsafe(asyncio.sleep(0), st.loop)
        fut.result(5)
        ledger_qty, problems = asyncio.run(restart())
        pos = sim.venue.positions[entries[0].contract_id].qty
        assert ledger_qty == pos == qty  # the fill made while away is journaled
        assert problems == []  # explained and protected
        tags = [o.custom_tag for o in sim.venue.orders.values() if o.custom_tag]
        assert len(tags) == len(set(tags))
        entry_orders = [t for t in tags if t.startswith("ES-1@")]
        assert len(entry_orders) == 1  # never placed twice
        journal = read_journal(tmp_path / EXECUTION_JOURNAL).records
        assert any(r.get("type") == "fill" and r.get("order_id") == "ES-1" for r in journal)
