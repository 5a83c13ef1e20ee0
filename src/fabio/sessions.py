"""CME equity-index futures sessions from an exchange calendar (holidays, early closes).

A trade date runs from the Globex open at 17:00 CT the evening before to 16:00 CT (earlier on
early-close days); regular trading hours (RTH) run 08:30–15:00 CT, cut short by an early close.
The calendar is `pandas_market_calendars`' `CME_Equity`; nothing here hand-writes holidays.
`exchange-calendars` is not a dependency of ours: its only CME calendar (`CMES`) closes the
trade date at 17:00 CT, an hour after the equity index futures' 16:00 CT close, and
`CME_Equity` has the right hours, holidays and early closes (it is still installed, pinned by
pandas_market_calendars itself).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from fabio.timeutil import CHICAGO, datetime_to_ns

RTH_OPEN = time(8, 30)
RTH_CLOSE = time(15, 0)
CALENDAR_FIRST = date(2005, 1, 1)
CALENDAR_LAST = date(2035, 12, 31)


class SessionKind(StrEnum):
    """Which part of the trade date a profile or feature set covers."""

    RTH = "rth"
    ETH = "eth"


@dataclass(frozen=True, slots=True)
class Session:
    """One CME trade date with its Globex (ETH) and RTH bounds in UTC ns (end exclusive)."""

    trade_date: date
    eth_open_ns: int
    eth_close_ns: int
    rth_open_ns: int
    rth_close_ns: int
    early_close: bool

    def bounds(self, kind: SessionKind) -> tuple[int, int]:
        if kind is SessionKind.RTH:
            return self.rth_open_ns, self.rth_close_ns
        return self.eth_open_ns, self.eth_close_ns


class CmeCalendar:
    """The CME equity futures calendar as sorted arrays, for vectorised session look-ups."""

    def __init__(self, first: date = CALENDAR_FIRST, last: date = CALENDAR_LAST) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pandas_market_calendars as mcal

            schedule = mcal.get_calendar("CME_Equity").schedule(first.isoformat(), last.isoformat())
        self.trade_dates: list[date] = [ts.date() for ts in schedule.index]
        self.eth_open = schedule["market_open"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        self.eth_close = schedule["market_close"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        rth_open = np.empty(len(self.trade_dates), dtype=np.int64)
        rth_close = np.empty(len(self.trade_dates), dtype=np.int64)
        early = np.empty(len(self.trade_dates), dtype=np.bool_)
        for i, d in enumerate(self.trade_dates):
            regular_close = datetime_to_ns(datetime.combine(d, time(16, 0), CHICAGO))
            rth_open[i] = datetime_to_ns(datetime.combine(d, RTH_OPEN, CHICAGO))
            rth_close[i] = min(
                datetime_to_ns(datetime.combine(d, RTH_CLOSE, CHICAGO)), int(self.eth_close[i])
            )
            early[i] = int(self.eth_close[i]) < regular_close
        self.rth_open, self.rth_close, self.early_close = rth_open, rth_close, early
        self._index_by_date = {d: i for i, d in enumerate(self.trade_dates)}

    def __len__(self) -> int:
        return len(self.trade_dates)

    def session(self, index: int) -> Session:
        return Session(
            self.trade_dates[index],
            int(self.eth_open[index]),
            int(self.eth_close[index]),
            int(self.rth_open[index]),
            int(self.rth_close[index]),
            bool(self.early_close[index]),
        )

    def bounds_arrays(self, kind: SessionKind) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        if kind is SessionKind.RTH:
            return self.rth_open, self.rth_close
        return self.eth_open, self.eth_close

    def locate(self, ts: NDArray[np.int64], kind: SessionKind) -> NDArray[np.int64]:
        """Index of the session containing each timestamp, or -1 (break, weekend, holiday)."""
        opens, closes = self.bounds_arrays(kind)
        idx = np.searchsorted(opens, ts, side="right") - 1
        safe = np.clip(idx, 0, len(opens) - 1)
        inside = (idx >= 0) & (ts < closes[safe])
        return np.where(inside, idx, -1).astype(np.int64)

    def session_at(self, ts_ns: int, kind: SessionKind) -> Session | None:
        """`locate` for one timestamp (called on every step: no arrays built)."""
        opens, closes = self.bounds_arrays(kind)
        idx = int(np.searchsorted(opens, ts_ns, side="right")) - 1
        if idx < 0 or ts_ns >= int(closes[idx]):
            return None
        return self.session(idx)

    def latest_index_at(self, ts_ns: int, kind: SessionKind) -> int:
        """The session in progress at `ts_ns`, else the last one that opened before it (or -1)."""
        opens, _ = self.bounds_arrays(kind)
        return int(np.searchsorted(opens, ts_ns, side="right")) - 1

    def index_on(self, trade_date: date) -> int | None:
        return self._index_by_date.get(trade_date)

    def trade_date_of(self, ts_ns: int) -> date | None:
        """The trade date a Globex timestamp belongs to (None in the daily break or a holiday)."""
        s = self.session_at(ts_ns, SessionKind.ETH)
        return None if s is None else s.trade_date

    def next_trade_dates(self, start: date, count: int) -> list[date]:
        """`count` trade dates from `start` on (inclusive)."""
        i = int(
            np.searchsorted(np.array(self.trade_dates, dtype="datetime64[D]"), np.datetime64(start))
        )
        return self.trade_dates[i : i + count]


@lru_cache(maxsize=1)
def cme_calendar() -> CmeCalendar:
    """The process-wide calendar (built once, ~0.1 s)."""
    return CmeCalendar()
