"""Build and serve a simulated gateway (the `fabio gateway-sim` command and the tests)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import uvicorn

from fabio.brokers.projectx.sim.replay import Replay, contract_for
from fabio.brokers.projectx.sim.server import GatewaySim, SimFaults, create_app
from fabio.brokers.projectx.sim.venue import SimContract
from fabio.data.base import MarketFeed
from fabio.errors import FabioError
from fabio.listen import bind_listener


def open_feeds(
    paths: list[Path],
    symbols: list[str],
    *,
    days: int = 2,
    seed: int = 7,
    volatility: float = 1.0,
) -> list[tuple[SimContract, MarketFeed]]:
    """Feeds to replay: the files, or the synthetic market for each symbol (`volatility`:
    SyntheticConfig's)."""
    feeds: list[MarketFeed] = []
    if paths:
        from fabio.data import open_feed

        for i, path in enumerate(paths):
            feeds.append(open_feed(path, symbol=symbols[i] if i < len(symbols) else None))
    else:
        from fabio.data.synthetic import SyntheticConfig, SyntheticFeed

        for n, symbol in enumerate(symbols or ["ES"]):
            feeds.append(
                SyntheticFeed(
                    SyntheticConfig(symbol=symbol, days=days, seed=seed + n, volatility=volatility)
                )
            )
    out: list[tuple[SimContract, MarketFeed]] = []
    for feed in feeds:
        first = next(iter(feed.batches()), None)
        if first is None or len(first.trades) == 0:
            raise FabioError(f"{feed.report.source}: no trades to replay")
        contract = contract_for(feed.contract, int(first.trades.ts[0]))
        if any(c.id == contract.id for c, _ in out):
            raise FabioError(f"two feeds for the same contract {contract.id}")
        out.append((contract, feed))
    return out


def build_sim(
    feeds: list[tuple[SimContract, MarketFeed]],
    speed: float,
    faults: SimFaults | None = None,
    *,
    start_ns: int | None = None,
    shift_to_now: bool = False,
    required_key: str | None = None,
    replay: bool = True,
) -> GatewaySim:
    contracts = [c for c, _ in feeds]
    rep = Replay(feeds, speed, start_ns=start_ns, shift_to_now=shift_to_now) if replay else None
    return GatewaySim(contracts, rep, faults, required_key=required_key)


class SimServer:
    """A simulator served by uvicorn inside the current event loop (127.0.0.1)."""

    def __init__(self, sim: GatewaySim, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sim = sim
        self.app = create_app(sim)
        self.config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            ws_max_size=16 * 1024 * 1024,
        )
        self.server = uvicorn.Server(self.config)
        self._task: asyncio.Task[None] | None = None
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        # bound here, not by uvicorn: a busy port is one clear error, not its traceback
        sock = bind_listener(self.config.host, self.config.port, "the simulator")
        self._task = asyncio.get_running_loop().create_task(self.server.serve(sockets=[sock]))
        while not self.server.started:
            if self._task.done():
                self._task.result()
                raise FabioError("the simulator did not start")
            await asyncio.sleep(0.01)
        sockets = self.server.servers[0].sockets
        self.port = sockets[0].getsockname()[1]
        await self.sim.start()

    async def stop(self) -> None:
        await self.sim.stop()
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, timeout=5)

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
