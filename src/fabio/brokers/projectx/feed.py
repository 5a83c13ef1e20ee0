"""The market hub as a `MarketFeed`: trades and quotes of one contract in small batches.

`GatewayTrade.type` is not documented as the aggressor side (PROJECTX.md §2.5). Every print is
checked against the prevailing best bid / ask: a buy should print at or above the ask, a sell at
or below the bid. While the agreement is high (or not yet measured) the venue's type is used;
once `min_checks` comparable prints show less than `min_agreement`, the side comes from the
quote rule instead (marked inferred), and the status says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from fabio.brokers.projectx.models import PxMarketTrade, PxQuote
from fabio.domain import AggressorSource, LoadReport, MarketBatch, QuoteBatch, TradeBatch
from fabio.errors import FabioError
from fabio.instruments import Contract


@dataclass(slots=True)
class AggressorCheck:
    """How often the venue's trade type agrees with the quote rule."""

    min_checks: int = 200
    min_agreement: float = 0.95
    checked: int = 0
    agreed: int = 0

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.checked if self.checked else None

    @property
    def use_venue_type(self) -> bool:
        a = self.agreement
        return a is None or self.checked < self.min_checks or a >= self.min_agreement

    def check(self, side: int, price: int, bid: int | None, ask: int | None) -> int:
        """Record one print; the quote rule's side (0 when the quote says nothing)."""
        rule = 0
        if ask is not None and price >= ask:
            rule = 1
        elif bid is not None and price <= bid:
            rule = -1
        if rule != 0 and side != 0:
            self.checked += 1
            self.agreed += int(rule == side)
        return rule


class LiveFeed:
    """One contract's live market data, queued as `MarketBatch`es for the agent."""

    def __init__(self, contract: Contract, contract_id: str, tick_size: float) -> None:
        self.contract = contract
        self.contract_id = contract_id
        self.tick_size = tick_size
        self.report = LoadReport(source=f"ProjectX market hub {contract_id}", format="projectx")
        self.aggressor = AggressorCheck()
        self.bid: int | None = None
        self.ask: int | None = None
        self.last_ts = 0
        self._queue: asyncio.Queue[MarketBatch | None] = asyncio.Queue()
        self.last_price: int | None = None
        self.received_ns: int | None = None  # perf counter of the last trade message

    def batches(self) -> Iterator[MarketBatch]:
        raise FabioError("the live feed is asynchronous: iterate `stream()`")

    async def stream(self) -> AsyncIterator[MarketBatch]:
        while True:
            batch = await self._queue.get()
            if batch is None:
                return
            yield batch

    def get_nowait(self) -> list[MarketBatch]:
        out: list[MarketBatch] = []
        while not self._queue.empty():
            b = self._queue.get_nowait()
            if b is not None:
                out.append(b)
        return out

    def close(self) -> None:
        self._queue.put_nowait(None)

    def on_quote(self, quote: PxQuote) -> tuple[int, int, int] | None:
        if quote.bid is not None:
            self.bid = round(quote.bid / self.tick_size)
        if quote.ask is not None:
            self.ask = round(quote.ask / self.tick_size)
        if self.bid is None or self.ask is None:
            return None
        ts = max(quote.ts_ns or self.last_ts, self.last_ts)
        self.report.quotes += 1
        return ts, self.bid, self.ask

    def on_trades(self, trades: list[PxMarketTrade], received_ns: int | None = None) -> TradeBatch:
        ts, price, size, side, inferred = [], [], [], [], []
        for t in trades:
            p = round(t.price / self.tick_size)
            if abs(t.price / self.tick_size - p) > 1e-6:
                self.report.skip("price is off the tick grid", example=str(t.price))
                continue
            stamp = max(t.ts_ns, self.last_ts)  # never back in time: ties keep arrival order
            if t.ts_ns < self.last_ts:
                self.report.skip("timestamp goes back in time (kept at the last time)")
            self.last_ts = stamp
            rule = self.aggressor.check(t.side, p, self.bid, self.ask)
            if t.side != 0 and self.aggressor.use_venue_type:
                s, inf = t.side, False
                self.report.aggressor[AggressorSource.EXCHANGE.value] += 1
            else:
                s, inf = rule, True
                self.report.aggressor[AggressorSource.QUOTE_RULE.value] += 1
            ts.append(stamp)
            price.append(p)
            size.append(t.size)
            side.append(s)
            inferred.append(inf)
        batch = TradeBatch.from_arrays(ts, price, size, side, inferred)
        self.report.trades += len(batch)
        self.report.rows_read += len(trades)
        if len(batch):
            self.last_price = int(batch.price[-1])
            quotes = None
            if self.bid is not None and self.ask is not None:
                quotes = QuoteBatch.from_arrays([batch.ts[-1]], [self.bid], [self.ask], [0], [0])
            self.received_ns = received_ns
            self._queue.put_nowait(MarketBatch(batch, quotes))
        return batch
