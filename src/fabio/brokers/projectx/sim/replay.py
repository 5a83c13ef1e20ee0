"""Paces market data files (or the synthetic market) as a live tape, several contracts merged.

Market time runs `speed` times the wall clock from the first print (or from `start_ns`);
`shift_to_now` moves every timestamp so the first replayed print is stamped with the present,
as a live feed would be. The files' own quotes are not replayed: the top of book follows the
prints (a buy lifts the ask, a sell hits the bid), which is what the matching needs.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from fabio.brokers.projectx.sim.venue import SimContract
from fabio.data.base import MarketFeed
from fabio.instruments import MONTH_CODES, Contract

Print = tuple[int, str, int, int, int]  # ts_ns, contract id, price ticks, size, side
OnPrints = Callable[[list[Print]], Awaitable[None]]

PRODUCT_NAMES = {
    "EP": "E-mini S&P 500",
    "ENQ": "E-mini NASDAQ-100",
    "MES": "Micro E-mini S&P 500",
    "MNQ": "Micro E-mini Nasdaq-100",
}


def contract_for(contract: Contract, first_ts_ns: int) -> SimContract:
    """The ProjectX contract of a feed (front quarterly month when the file does not say)."""
    spec = contract.spec
    cid = contract.projectx_contract_id
    if cid is None:
        d = datetime.fromtimestamp(first_ts_ns / 1e9, tz=UTC)
        code, year = next(
            (
                (c, d.year)
                for c, m in sorted(MONTH_CODES.items(), key=lambda kv: kv[1])
                if m >= d.month
            ),
            ("H", d.year + 1),
        )
        cid = f"CON.F.US.{spec.projectx_root}.{code}{year % 100:02d}"
    parts = cid.split(".")
    return SimContract(
        id=cid,
        name=f"{spec.root}{parts[4]}",
        description=PRODUCT_NAMES.get(spec.projectx_root, spec.name),
        tick_size=spec.tick_size,
        tick_value=spec.tick_value,
        symbol_id=f"F.US.{spec.projectx_root}",
    )


def _prints(feed: MarketFeed, contract_id: str) -> Iterator[Print]:
    for batch in feed.batches():
        t = batch.trades
        for ts, price, size, side in zip(
            t.ts.tolist(), t.price.tolist(), t.size.tolist(), t.side.tolist(), strict=True
        ):
            yield ts, contract_id, price, size, side


@dataclass(slots=True)
class ReplayStats:
    prints: int = 0
    market_ns: int = 0
    done: bool = False


class Replay:
    """Merges the feeds in time order and hands out prints as market time passes."""

    def __init__(
        self,
        feeds: list[tuple[SimContract, MarketFeed]],
        speed: float,
        *,
        start_ns: int | None = None,
        shift_to_now: bool = False,
        frame_sec: float = 0.02,
        max_per_frame: int = 20_000,
    ) -> None:
        self.feeds = feeds
        self.speed = speed
        self.start_ns = start_ns
        self.shift_to_now = shift_to_now
        self.frame = frame_sec
        self.max_per_frame = max_per_frame
        self.offset_ns = 0
        self.stats = ReplayStats()
        self.paused = asyncio.Event()
        self.paused.set()  # set = running; cleared, the market (and its time) holds still

    async def run(self, on_prints: OnPrints) -> None:
        stream = heapq.merge(*(_prints(f, c.id) for c, f in self.feeds))
        pending: Print | None = None
        for p in stream:
            if self.start_ns is None or p[0] >= self.start_ns:
                pending = p
                break
        if pending is None:
            self.stats.done = True
            return
        first = pending[0]
        if self.shift_to_now:
            self.offset_ns = time.time_ns() - first
        wall0 = time.monotonic()
        while True:
            if not self.paused.is_set():  # paused: market time holds still until resumed
                held = time.monotonic()
                await self.paused.wait()
                wall0 += time.monotonic() - held
            market_now = first + int((time.monotonic() - wall0) * self.speed * 1e9)
            out: list[Print] = []
            while (
                pending is not None and pending[0] <= market_now and len(out) < (self.max_per_frame)
            ):
                ts, cid, price, size, side = pending
                out.append((ts + self.offset_ns, cid, price, size, side))
                pending = next(stream, None)
            if out:
                self.stats.prints += len(out)
                self.stats.market_ns = out[-1][0]
                await on_prints(out)
            if pending is None:
                self.stats.done = True
                return
            await asyncio.sleep(self.frame)
