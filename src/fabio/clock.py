"""Clocks: event time for replays (deterministic), the wall clock for live sessions."""

from __future__ import annotations

import time


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
