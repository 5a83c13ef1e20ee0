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
    """Samples the simulated account: unprotected time, largest position, duplicates."""

    sim: GatewaySim
    grace_sec: float = 1.5
    max_abs_position: int = 0
    unprotected_events: int = 0
    _since: dict[str, float] = field(default_factory=dict)
    _flagged: set[str] = field(default_factory=set)

    def sample(self) -> None:
        venue = self.sim.venue
        for cid, pos in venue.positions.items():
            self.max_abs_position = max(self.max_abs_position, abs(pos.qty))
            if pos.qty == 0:
                self._since.pop(cid, None)
                self._flagged.discard(cid)
                continue
            covered = sum(
                o.remaining
                for o in venue.orders.values()
                if o.contract_id == cid
                and o.type == PxOrderType.STOP
                and o.status == PxOrderStatus.OPEN
                and o.sign == (-1 if pos.qty > 0 else 1)
            )
            if covered >= abs(pos.qty):
                self._since.pop(cid, None)
                self._flagged.discard(cid)
                continue
            start = self._since.setdefault(cid, time.monotonic())
            if time.monotonic() - start > self.grace_sec and cid not in self._flagged:
                self._flagged.add(cid)
                self.unprotected_events += 1

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
                raise AssertionError(f"timed out waiting for {what}")
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
    server = SimServer(sim)
    await server.start()
    session = ProjectXSession(
        sim_config(server.url, **(config or {})), reconcile_every_sec=1.0, **(session_kwargs or {})
    )
    watch = Watch(sim)
    watcher = asyncio.get_running_loop().create_task(watch.run())
    try:
        await session.connect(["ES"])
        assert await session.wait_connected(10)
        broker = session.broker_for(parse_symbol("ES"), 1)
        rig = Rig(sim, server, session, broker, watch)
        await rig.wait(
            lambda: session.last_price_ticks(broker.contract_id) is not None, 10, "the first print"
        )
        await body(rig)
        return rig
    finally:
        watcher.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.close(), 15)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.stop(), 15)
