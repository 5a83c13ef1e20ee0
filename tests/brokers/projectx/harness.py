"""The simulator served on 127.0.0.1 and a venue session connected to it, plus invariants."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fabio.brokers.projectx.broker import ProjectXBroker
from fabio.brokers.projectx.config import ProjectXConfig
from fabio.brokers.projectx.models import PxOrderStatus, PxOrderType
from fabio.brokers.projectx.session import ProjectXSession
from fabio.brokers.projectx.sim.replay import Print
from fabio.brokers.projectx.sim.run import SimServer, build_sim, open_feeds
from fabio.brokers.projectx.sim.server import GatewaySim, SimFaults
from fabio.instruments import parse_symbol
from fabio.orders import BracketRequest, Order, OrderType
from fabio.timeutil import parse_at

RTH_OPEN = "2024-01-02 08:30"
# Market time runs this many times the wall clock. A 4-tick bracket takes about 220 s of this
# synthetic market to resolve (7 s at 30x, under 2 s here); the replay costs ~0.15 s of CPU per
# wall second at this speed, so the client is not starved. Faults and timeouts stay in real seconds.
SPEED = 120.0


def sim_config(url: str, **overrides: Any) -> ProjectXConfig:
    base: dict[str, Any] = dict(
        username="trader",
        api_key="any-key",
        account="PRAC-V2-SIM-50K",
        api_url=url,
        rtc_url=url,
        order_timeout_sec=1.0,
        request_timeout_sec=3.0,
        hub_stale_after_sec=5.0,
        hub_connect_timeout_sec=5.0,
        hub_backoff_initial_sec=0.2,
        hub_backoff_max_sec=2.0,
    )
    base.update(overrides)
    return ProjectXConfig(**base)


@dataclass
class Watch:
    """Watches the simulated account: unprotected positions, largest position, duplicate tags.

    "No position without a working stop" is checked in market events, not in wall time: from
    `install()` on, the simulated market does not move while a position lacks the stop that
    covers it. The replay hands prints to the venue one at a time whenever the next print could
    fill a working order, and before each it waits until every position is covered again. So
    the agent's reaction to a fill (the hub event, its request, the venue's acceptance) is never
    raced against the machine's load: a position is never exposed to a print the agent could
    have protected it from. What the check catches is an agent that does not protect in
    response to the fill itself (it waits for a later print, the next partial fill, the exit):
    the market then waits for nothing, and after `hold_bound_sec` (which only bounds that hang)
    the position counts as an unprotected event and the market resumes. The old check, 1.5 s of
    wall time between a fill and its stop, failed under load without any defect; and it missed
    a resize that came one partial fill late if the fills came within 1.5 s.
    """

    sim: GatewaySim
    hold_bound_sec: float = 30.0
    max_abs_position: int = 0
    unprotected_events: int = 0
    holds: int = 0  # times the market waited for a protection
    longest_hold_sec: float = 0.0  # wall time, for information only (load makes it longer)
    _flagged: set[str] = field(default_factory=set)

    def install(self) -> Watch:
        """Hold the market while a position is unprotected (before the simulator starts)."""
        assert not self.sim._tasks, "install the watch before the simulator starts"
        inner = self.sim.on_prints

        async def on_prints(prints: list[Print]) -> None:
            i = 0
            while i < len(prints):
                await self._hold()
                j = i
                while j < len(prints) and not self._could_fill(prints[j]):
                    j += 1
                j = min(j + 1, len(prints))  # the first print that could fill ends the chunk
                await inner(prints[i:j])
                self.sample()
                i = j

        self.sim.on_prints = on_prints  # type: ignore[method-assign]
        return self

    def _could_fill(self, p: Print) -> bool:
        _, cid, price, _, _ = p
        for o in self.sim.venue.orders.values():
            if o.contract_id != cid or o.status != PxOrderStatus.OPEN:
                continue
            if o.type == PxOrderType.LIMIT and o.limit_ticks is not None:
                if price <= o.limit_ticks if o.side == 0 else price >= o.limit_ticks:
                    return True
            elif o.type == PxOrderType.STOP and o.stop_ticks is not None:
                if price >= o.stop_ticks if o.side == 0 else price <= o.stop_ticks:
                    return True
            else:
                return True  # a market order (or a type this check does not model)
        return False

    def uncovered(self) -> list[str]:
        """Contracts whose position is larger than its working stops cover."""
        venue = self.sim.venue
        out = []
        for cid, pos in venue.positions.items():
            if pos.qty == 0:
                continue
            covered = sum(
                o.remaining
                for o in venue.orders.values()
                if o.contract_id == cid
                and o.type == PxOrderType.STOP
                and o.status == PxOrderStatus.OPEN
                and o.sign == (-1 if pos.qty > 0 else 1)
            )
            if covered < abs(pos.qty):
                out.append(cid)
        return out

    async def _hold(self) -> None:
        bare = set(self.uncovered())
        self._flagged &= bare  # covered (or flat) again: watched afresh
        bare -= self._flagged  # counted already: the market goes on
        if not bare:
            return
        self.holds += 1
        start = time.monotonic()
        while bare and time.monotonic() - start <= self.hold_bound_sec:
            await asyncio.sleep(0.01)
            bare = set(self.uncovered()) - self._flagged
        self.longest_hold_sec = max(self.longest_hold_sec, time.monotonic() - start)
        for cid in bare:
            self._flagged.add(cid)
            self.unprotected_events += 1

    def sample(self) -> None:
        for pos in self.sim.venue.positions.values():
            self.max_abs_position = max(self.max_abs_position, abs(pos.qty))

    def duplicate_tags(self) -> list[str]:
        tags = Counter(o.custom_tag for o in self.sim.venue.orders.values() if o.custom_tag)
        return sorted(t for t, n in tags.items() if n > 1)

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.05)


Body = Callable[["Rig"], Awaitable[None]]


@dataclass
class Rig:
    sim: GatewaySim
    server: SimServer
    session: ProjectXSession
    broker: ProjectXBroker
    watch: Watch

    async def wait(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise AssertionError(
                    f"timed out waiting for {what} "
                    f"(unprotected events so far: {self.watch.unprotected_events})"
                )
            await asyncio.sleep(0.02)

    def last(self) -> int:
        price = self.session.last_price_ticks(self.broker.contract_id)
        assert price is not None
        return price

    def bracket(
        self,
        side: int = 1,
        qty: int = 1,
        stop: int = 8,
        target: int = 8,
        entry: OrderType = OrderType.MARKET,
    ) -> list[Order]:
        last = self.last()
        return self.broker.submit_bracket(
            BracketRequest(
                "ES",
                side,
                qty,
                "MeanReversionPOC_v2",
                entry,
                last - side * stop,
                last + side * target,
                limit_ticks=last if entry is OrderType.LIMIT else None,
            ),
            self.session.clock_ns(),
        )


async def run_rig(
    body: Body,
    faults: SimFaults | None = None,
    *,
    speed: float = SPEED,
    start: str = RTH_OPEN,
    config: dict[str, Any] | None = None,
    session_kwargs: dict[str, Any] | None = None,
) -> Rig:
    feeds = open_feeds([], ["ES"], days=1, seed=7)
    sim = build_sim(feeds, speed, faults, start_ns=parse_at(start))
    watch = Watch(sim).install()
    server = SimServer(sim)
    await server.start()
    session = ProjectXSession(
        sim_config(server.url, **(config or {})), reconcile_every_sec=1.0, **(session_kwargs or {})
    )
    watcher = asyncio.get_running_loop().create_task(watch.run())
    try:
        await session.connect(["ES"])
        assert await session.wait_connected(60)
        broker = session.broker_for(parse_symbol("ES"), 1)
        rig = Rig(sim, server, session, broker, watch)
        await rig.wait(
            lambda: session.last_price_ticks(broker.contract_id) is not None, 60, "the first print"
        )
        await body(rig)
        return rig
    finally:
        watcher.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.close(), 15)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.stop(), 15)
