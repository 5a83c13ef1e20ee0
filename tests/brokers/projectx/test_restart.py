"""kill -9 of the agent (between placement and acknowledgement, or in a position), then a
restart against the same simulated venue: the journal converges to what the venue did."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from fabio.brokers.projectx.models import PxOrderStatus, PxOrderType
from fabio.brokers.projectx.session import ProjectXSession
from fabio.brokers.projectx.sim.run import SimServer, build_sim, open_feeds
from fabio.brokers.projectx.sim.server import SimFaults
from fabio.execution.engine import ExecutionEngine
from fabio.execution.risk import RiskConfig
from fabio.instruments import parse_symbol
from fabio.journal import read_journal
from fabio.killswitch import EXECUTION_JOURNAL
from fabio.live import (
    journal_qty,
    journaled_fills,
    left_open,
    resolve_unexplained,
    unexplained_at_venue,
)
from fabio.timeutil import parse_at
from fabio.wiring import open_execution, read_state

from .harness import RTH_OPEN, Watch, sim_config

CHILD = Path(__file__).with_name("agent_child.py")


class SimThread:
    """The simulator on its own event loop in a thread (the agent runs in another process)."""

    def __init__(self, faults: SimFaults, speed: float = 20.0) -> None:
        feeds = open_feeds([], ["ES"], days=1, seed=7)
        self.sim = build_sim(feeds, speed, faults, start_ns=parse_at(RTH_OPEN))
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

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the simulator's loop (the venue is not thread-safe) and return its value."""

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)


T = TypeVar("T")


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
                problems = unexplained_at_venue(session, lambda s: int(trade.qty))
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


# ---------------------------------------------------------------------- kill -9 in a position
def kill_in_position(st: SimThread, log_dir: Path) -> None:
    """A child enters long 1 (its fill journaled, stop and target working), then kill -9."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), st.server.url, str(log_dir), "filled"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        assert line == "FILLED", line
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


def our_legs(st: SimThread) -> list[Any]:
    """The venue's bracket children of our entries (untagged, created by the venue)."""
    venue = st.sim.venue
    ours = {o.id for o in list(venue.orders.values()) if (o.custom_tag or "").startswith("ES-")}
    return [o for o in list(venue.orders.values()) if o.parent_id in ours]


def working_ours(st: SimThread) -> list[Any]:
    venue = st.sim.venue
    tagged = [o for o in list(venue.orders.values()) if (o.custom_tag or "").startswith("ES-")]
    return [
        o
        for o in [*tagged, *our_legs(st)]
        if PxOrderStatus(o.status).is_working and o.status != PxOrderStatus.SUSPENDED
    ]


def es_position(st: SimThread) -> int:
    return sum(p.qty for p in list(st.sim.venue.positions.values()))


Check = Callable[[ProjectXSession, ExecutionEngine], Awaitable[T]]


def restarted(st: SimThread, log_dir: Path, check: Check[T]) -> T:
    """A new process's session and engine on the journal (as `fabio run --mode live` wires
    them: what the journal leaves open, and the venue fills it already holds)."""

    async def run() -> T:
        session = ProjectXSession(sim_config(st.server.url), reconcile_every_sec=1.0)
        contract = parse_symbol("ES")
        session.journal_orders["ES"] = left_open(log_dir, contract, RiskConfig())
        session.journal_fills["ES"] = journaled_fills(log_dir, "ES")
        try:
            await session.connect(["ES"])
            assert await session.wait_connected(30)
            engine = open_execution(
                contract, log_dir, RiskConfig(), broker=lambda c, n: session.broker_for(c, n)
            )
            return await check(session, engine)
        finally:
            await session.close()

    return asyncio.run(run())


async def until(engine: ExecutionEngine, cond: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + 60
    while True:
        engine.process_broker_events()
        if cond():
            return
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def a_reconciliation(session: ProjectXSession, engine: ExecutionEngine) -> None:
    seen = session.reconciles
    await until(engine, lambda: session.reconciles >= seen + 2, "two reconciliations")


def records(log_dir: Path, kind: str) -> list[dict[str, Any]]:
    return [r for r in read_journal(log_dir / EXECUTION_JOURNAL).records if r.get("type") == kind]


def test_a_stop_filled_while_away_is_journaled_once_at_the_venue_price(tmp_path: Path) -> None:
    """kill -9 in a position; our stop fills while no process runs; the restart journals that
    fill (venue price and time, once, even after a second restart) before anything else, and
    the journal's P&L is the venue's."""
    with SimThread(SimFaults(), speed=5.0) as st:
        kill_in_position(st, tmp_path)
        venue = st.sim.venue
        (stop,) = [o for o in our_legs(st) if o.type == PxOrderType.STOP]
        contract = venue.contracts[stop.contract_id]

        def trigger() -> None:  # the stop moved through the market: it fills on the next print
            assert contract.last is not None
            body = {"accountId": venue.account.id, "orderId": stop.id}
            venue.modify({**body, "stopPrice": (contract.last + 4) * contract.tick_size})

        st.call(trigger)
        wait_for(lambda: es_position(st) == 0, "the stop to fill while the agent is down")
        placed = len(venue.orders)

        async def check(session: ProjectXSession, engine: ExecutionEngine) -> list[str]:
            assert engine.position() is None  # caught up in `recover`, before anything else
            await a_reconciliation(session, engine)
            assert engine.position() is None
            return unexplained_at_venue(session, lambda s: 0)

        assert restarted(st, tmp_path, check) == []
        assert len(venue.orders) == placed  # no protection put on a flat venue
        fills = records(tmp_path, "fill")
        stop_fills = [f for f in fills if f["role"] == "stop"]
        assert len(stop_fills) == 1
        (venue_fill,) = [t for t in venue.trades if t["orderId"] == stop.id]
        assert stop_fills[0]["venue_fill_id"] == str(venue_fill["id"])
        assert stop_fills[0]["price_ticks"] * 0.25 == venue_fill["price"]
        assert any(r["what"] == "caught_up" for r in records(tmp_path, "recovery"))
        state = read_state(parse_symbol("ES"), tmp_path)
        assert state.ledger.open_trades == {}
        pnl = state.ledger.summary()["net_pnl_usd"]
        assert pnl == pytest.approx(venue.account.balance - 50_000.0, abs=0.02)

        async def again(session: ProjectXSession, engine: ExecutionEngine) -> None:
            await a_reconciliation(session, engine)

        restarted(st, tmp_path, again)
        assert len(records(tmp_path, "fill")) == len(fills)  # never journaled twice


def test_a_position_closed_by_hand_while_away_closes_the_journal(tmp_path: Path) -> None:
    """kill -9 in a position; the trader closes it at the venue (our stop and target stay
    working there); the restart journals the close as a manual exit at the venue's price and
    cancels the leftover legs: journal == venue, no orphan order of ours."""
    with SimThread(SimFaults(), speed=5.0) as st:
        kill_in_position(st, tmp_path)
        venue = st.sim.venue
        cid = next(iter(venue.contracts))
        st.call(lambda: venue.close_contract({"accountId": venue.account.id, "contractId": cid}))
        wait_for(lambda: es_position(st) == 0, "the manual close")
        assert len(working_ours(st)) == 2  # the venue left our stop and target working

        async def check(session: ProjectXSession, engine: ExecutionEngine) -> list[str]:
            await until(engine, lambda: not working_ours(st), "the leftover legs cancelled")
            await a_reconciliation(session, engine)
            return unexplained_at_venue(session, lambda s: journal_qty(engine))

        assert restarted(st, tmp_path, check) == []
        exits = [f for f in records(tmp_path, "fill") if f["role"] == "exit"]
        assert [f["reason"] for f in exits] == ["manual at venue"]
        state = read_state(parse_symbol("ES"), tmp_path)
        assert state.ledger.open_trades == {}
        pnl = state.ledger.summary()["net_pnl_usd"]
        assert pnl == pytest.approx(venue.account.balance - 50_000.0, abs=0.02)
        assert "manual_exit" in {r["what"] for r in records(tmp_path, "recovery")}


def test_a_protected_position_is_adopted_and_its_legs_cancelled_when_closed(
    tmp_path: Path,
) -> None:
    """Restart in RTH while the venue holds the position with our stop and target working:
    adopted (nothing new sent, nothing flattened). Then the trader closes it by hand: the
    journal follows and the legs of the flat position are cancelled (the KeyError is gone)."""
    with SimThread(SimFaults(), speed=5.0) as st:
        kill_in_position(st, tmp_path)
        venue = st.sim.venue
        cid = next(iter(venue.contracts))
        placed = len(venue.orders)

        async def check(session: ProjectXSession, engine: ExecutionEngine) -> None:
            await until(engine, lambda: session.last_market_ns > 0, "the first print")
            engine.start_session("2024-01-02", session.clock_ns())  # RTH: nothing is late
            await a_reconciliation(session, engine)
            trade = engine.position()
            assert trade is not None and trade.qty == es_position(st) > 0
            assert len(venue.orders) == placed  # adopted: no new order, no flatten
            assert unexplained_at_venue(session, lambda s: journal_qty(engine)) == []
            (stop,) = [o for o in engine.broker.open_orders() if o.role.value == "stop"]
            venue_stop = next(o for o in our_legs(st) if o.type == PxOrderType.STOP)
            assert stop.venue_order_id == str(venue_stop.id)
            body = {"accountId": venue.account.id, "contractId": cid}
            await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(_call(venue.close_contract, body), st.loop)
            )
            await until(
                engine,
                lambda: engine.position() is None and not working_ours(st),
                "the journal closed and the legs cancelled",
            )
            assert not any("KeyError" in p for p in session.problems)

        restarted(st, tmp_path, check)
        whats = [r["what"] for r in records(tmp_path, "recovery")]
        assert "adopted" in whats and "manual_exit" in whats
        assert records(tmp_path, "stale_position") == []


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def test_a_journal_position_the_venue_never_reported_is_found_and_closed(tmp_path: Path) -> None:
    """The journal holds a position the venue has no record of at all (another venue, or its
    records gone): reconciliation compares every contract the journal holds, engages the kill
    switch and closes the journal's position at the last price; nothing is sent."""
    with SimThread(SimFaults(), speed=5.0) as first:
        kill_in_position(first, tmp_path)
    with SimThread(SimFaults(), speed=5.0) as st:

        async def check(session: ProjectXSession, engine: ExecutionEngine) -> list[str]:
            await a_reconciliation(session, engine)
            assert engine.position() is not None  # nothing at the venue explains it
            problems = unexplained_at_venue(session, lambda s: journal_qty(engine))
            assert problems == ["ES: the venue holds +0, the journal expects +2"]
            await resolve_unexplained(session, {"ES": engine}, problems[0])
            assert engine.position() is None
            return unexplained_at_venue(session, lambda s: 0)

        assert restarted(st, tmp_path, check) == []
        assert st.sim.counters["place"] == 0
        assert [r["what"] for r in records(tmp_path, "recovery")] == ["closed_unexplained"]
        assert records(tmp_path, "kill_switch")[-1]["engaged"] is True


def test_a_re_placed_stop_is_found_at_restart_and_its_fill_journaled(tmp_path: Path) -> None:
    """The venue cancelled our stop and the agent re-placed it (a new tag, `ES-2@run/r1`);
    kill -9; the restart takes the re-placed stop, not the cancelled one, for its stop: the
    position is adopted with nothing sent (no second stop), and when that stop fills its fill
    is journaled and the journal goes flat with the venue."""
    with SimThread(SimFaults(), speed=5.0) as st:
        kill_in_position(st, tmp_path)
        venue = st.sim.venue

        def replaced() -> list[Any]:
            return [
                o
                for o in list(venue.orders.values())
                if (o.custom_tag or "").endswith("/r1") and o.status == PxOrderStatus.OPEN
            ]

        async def lose_the_stop(session: ProjectXSession, engine: ExecutionEngine) -> None:
            await until(engine, lambda: session.last_market_ns > 0, "the first print")
            engine.start_session("2024-01-02", session.clock_ns())
            await a_reconciliation(session, engine)
            (stop,) = [o for o in our_legs(st) if o.type == PxOrderType.STOP]
            body = {"accountId": venue.account.id, "orderId": stop.id}
            await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(_call(venue.cancel, body), st.loop)
            )
            await until(engine, lambda: len(replaced()) == 1, "the stop re-placed")
            await a_reconciliation(session, engine)  # journaled; then the process dies

        restarted(st, tmp_path, lose_the_stop)
        (again,) = replaced()
        placed = len(venue.orders)

        async def check(session: ProjectXSession, engine: ExecutionEngine) -> None:
            await until(engine, lambda: session.last_market_ns > 0, "the first print")
            engine.start_session("2024-01-02", session.clock_ns())
            await a_reconciliation(session, engine)
            trade = engine.position()
            assert trade is not None and trade.qty == es_position(st) > 0
            assert len(venue.orders) == placed  # adopted: no stop placed again
            (stop,) = [o for o in engine.broker.open_orders() if o.role.value == "stop"]
            assert stop.venue_order_id == str(again.id)
            contract = venue.contracts[again.contract_id]

            def trigger() -> None:  # the stop moved through the market: it fills
                assert contract.last is not None
                body = {"accountId": venue.account.id, "orderId": again.id}
                venue.modify({**body, "stopPrice": (contract.last + 4) * contract.tick_size})

            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_call(trigger), st.loop))
            await until(engine, lambda: engine.position() is None, "the journal flat")
            await a_reconciliation(session, engine)
            assert unexplained_at_venue(session, lambda s: journal_qty(engine)) == []

        restarted(st, tmp_path, check)
        (venue_fill,) = [t for t in venue.trades if t["orderId"] == again.id]
        stop_fills = [f for f in records(tmp_path, "fill") if f["role"] == "stop"]
        assert [f["venue_fill_id"] for f in stop_fills] == [str(venue_fill["id"])]
        state = read_state(parse_symbol("ES"), tmp_path)
        assert state.ledger.open_trades == {}
        pnl = state.ledger.summary()["net_pnl_usd"]
        assert pnl == pytest.approx(venue.account.balance - 50_000.0, abs=0.02)


def test_a_leg_that_fills_after_a_close_by_hand_is_journaled_as_a_position(
    tmp_path: Path,
) -> None:
    """kill -9 in a position; the trader closes it by hand and the venue leaves our stop
    working; the stop then fills and opens a position nobody intended. The restart journals
    that fill as the entry of a trade of its own (journal == venue, a recovery record says
    so) and protects it; closed by hand again, the journal's P&L is the venue's."""
    with SimThread(SimFaults(), speed=5.0) as st:
        kill_in_position(st, tmp_path)
        venue = st.sim.venue
        cid = next(iter(venue.contracts))
        held = es_position(st)
        st.call(lambda: venue.close_contract({"accountId": venue.account.id, "contractId": cid}))
        wait_for(lambda: es_position(st) == 0, "the manual close")
        (stop,) = [o for o in our_legs(st) if o.type == PxOrderType.STOP]
        contract = venue.contracts[cid]

        def trigger() -> None:  # the leftover stop moved through the market: it fills
            assert contract.last is not None
            body = {"accountId": venue.account.id, "orderId": stop.id}
            venue.modify({**body, "stopPrice": (contract.last + 4) * contract.tick_size})

        st.call(trigger)
        wait_for(lambda: es_position(st) == -held, "the leftover stop to open a position")

        async def check(session: ProjectXSession, engine: ExecutionEngine) -> None:
            await until(engine, lambda: session.last_market_ns > 0, "the first print")
            engine.start_session("2024-01-02", session.clock_ns())
            await a_reconciliation(session, engine)
            assert journal_qty(engine) == es_position(st) == -held
            # and protected
            assert unexplained_at_venue(session, lambda s: journal_qty(engine)) == []
            body = {"accountId": venue.account.id, "contractId": cid}
            await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(_call(venue.close_contract, body), st.loop)
            )
            await until(engine, lambda: engine.position() is None, "the journal flat")

        restarted(st, tmp_path, check)
        whats = [r["what"] for r in records(tmp_path, "recovery")]
        assert "unintended_position" in whats
        fills = records(tmp_path, "fill")
        (leg_fill,) = [t for t in venue.trades if t["orderId"] == stop.id]
        assert [f["venue_fill_id"] for f in fills].count(str(leg_fill["id"])) == 1
        state = read_state(parse_symbol("ES"), tmp_path)
        assert state.ledger.open_trades == {}
        pnl = state.ledger.summary()["net_pnl_usd"]
        assert pnl == pytest.approx(venue.account.balance - 50_000.0, abs=0.02)
