"""Clocks: event time for replays (deterministic), the wall clock for live sessions."""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class ReplayClock:
    """Market time as the events say: advanced by the feed, never backwards."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = int(start_ns)

    def advance(self, ts_ns: int) -> int:
        if ts_ns > self._now:
            self._now = int(ts_ns)
        return self._now

    def now_ns(self) -> int:
        return self._now


class WallClock:
    """The machine's UTC time (live and paper sessions)."""

    def now_ns(self) -> int:
        return time.time_ns()


class Deadlines(Protocol):
    """Elapsed time and deadlines for a call bounded in time (the LLM brain's budget).

    `WallDeadlines` is the machine's monotonic clock; a test passes one whose time it moves
    itself, so that "the answer came too late" never depends on how busy the machine is."""

    def now(self) -> float:
        """Seconds on a monotonic clock."""
        ...

    def deadline(self, seconds: float) -> AbstractAsyncContextManager[object]:
        """Cancel the enclosed block with TimeoutError after `seconds` on this clock."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` on this clock (a retry's backoff or Retry-After)."""
        ...


class WallDeadlines:
    """The machine's monotonic clock and asyncio's timeouts (live sessions, backtests)."""

    def now(self) -> float:
        return time.perf_counter()

    def deadline(self, seconds: float) -> AbstractAsyncContextManager[object]:
        return asyncio.timeout(seconds)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
