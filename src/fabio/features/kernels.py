"""The per-trade hot path of the feature engine, compiled with numba.

One session's running state lives in an int64 array `st` (indices `S_*`) plus dense arrays:
the profile (`vol`, `buy`, `sell` per row), per-second buckets of volume, delta, time by
location against value and prices (high, low, first, last row), per-minute running range, and
buffers of POC-cross and big-print times.

Developing POC/VAH/VAL live on a market-time grid anchored at the session open (every
`interval` ns, 1 s by default): the levels in force at time t are those of all trades with
ts < the last grid point <= t. That makes every statistic independent of how trades were
batched, and keeps the value area current at least once per interval of market time.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numpy.typing import NDArray

from fabio.features.profile import poc_index, value_area

NS_SEC = 1_000_000_000

S_NEXT_BOUNDARY = 0
S_DIRTY = 1
S_POC = 2
S_VAL = 3
S_VAH = 4
S_LAST_TS = 5
S_LAST_ROW = 6
S_LOC = 7  # -1 below value, 0 inside, +1 above (of the last price, against the VA in force)
S_CROSS_SIDE = 8  # hysteresis side against the POC: -1 below, +1 above, 0 not yet known
S_CVD = 9
S_HIGH = 10
S_LOW = 11
S_VOLUME = 12
S_BUY = 13
S_SELL = 14
S_NTRADES = 15
S_T_ABOVE = 16
S_T_BELOW = 17
S_T_IN = 18
S_NCROSS = 19
S_INF_VOL = 20
S_NBIG = 21
S_OPEN_NS = 22
S_INTERVAL = 23
S_TOL = 24
S_ROWS = 25
S_BIG_MIN = 26
S_ACCRUED_TO = 27
S_FIRST_TS = 28
S_CLOSE_NS = 29
S_SIZE = 30

PX_HIGH, PX_LOW, PX_FIRST, PX_LAST = 0, 1, 2, 3  # sec_px columns; -1: no trade that second
LOC_COLUMN = (1, 0, 2)  # sec_time columns: 0 above, 1 below, 2 inside; index by loc + 1


def new_state(
    open_ns: int, close_ns: int, interval_ns: int, tol: int, rows: int, big_min: int
) -> NDArray[np.int64]:
    st = np.zeros(S_SIZE, dtype=np.int64)
    st[S_NEXT_BOUNDARY] = open_ns
    st[S_POC] = st[S_VAL] = st[S_VAH] = -1
    st[S_LAST_ROW] = -1
    st[S_HIGH] = -1
    st[S_LOW] = -1
    st[S_OPEN_NS] = open_ns
    st[S_CLOSE_NS] = close_ns
    st[S_INTERVAL] = interval_ns
    st[S_TOL] = tol
    st[S_ROWS] = rows
    st[S_BIG_MIN] = big_min
    st[S_ACCRUED_TO] = open_ns
    st[S_FIRST_TS] = -1
    return st


@nb.njit(cache=True, nogil=True, inline="always")
def _loc_column(loc: np.int64) -> int:
    if loc > 0:
        return 0
    if loc < 0:
        return 1
    return 2


@nb.njit(cache=True, nogil=True)
def _accrue(st: NDArray[np.int64], sec_time: NDArray[np.int64], to: np.int64) -> None:
    """Credit the time from S_ACCRUED_TO to `to` to the current location, second by second."""
    start = st[S_ACCRUED_TO]
    if to <= start:
        return
    st[S_ACCRUED_TO] = to
    if st[S_NTRADES] == 0 or st[S_VAL] < 0:
        return
    col = _loc_column(st[S_LOC])
    if col == 0:
        st[S_T_ABOVE] += to - start
    elif col == 1:
        st[S_T_BELOW] += to - start
    else:
        st[S_T_IN] += to - start
    open_ns = st[S_OPEN_NS]
    n_sec = sec_time.shape[0]
    t = start
    while t < to:
        sec = (t - open_ns) // NS_SEC
        edge = open_ns + (sec + 1) * NS_SEC
        stop = edge if edge < to else to
        if 0 <= sec < n_sec:
            sec_time[sec, col] += stop - t
        t = stop


@nb.njit(cache=True, nogil=True)
def _relocate(st: NDArray[np.int64]) -> None:
    row = st[S_LAST_ROW]
    if row < 0 or st[S_VAL] < 0:
        st[S_LOC] = 0
    elif row > st[S_VAH]:
        st[S_LOC] = 1
    elif row < st[S_VAL]:
        st[S_LOC] = -1
    else:
        st[S_LOC] = 0


@nb.njit(cache=True, nogil=True)
def advance(
    st: NDArray[np.int64],
    pct: float,
    vol: NDArray[np.int64],
    sec_time: NDArray[np.int64],
    t: np.int64,
) -> None:
    """Move the session clock to `t`: roll the developing levels at a grid point, accrue time."""
    if t >= st[S_NEXT_BOUNDARY]:
        boundary = st[S_NEXT_BOUNDARY]
        _accrue(st, sec_time, boundary)
        if st[S_DIRTY] != 0:
            lo = st[S_LOW]
            hi = st[S_HIGH]
            poc = poc_index(vol, lo, hi)
            val, vah = value_area(vol, lo, hi, poc, pct, st[S_ROWS])
            st[S_POC] = poc
            st[S_VAL] = val
            st[S_VAH] = vah
            st[S_DIRTY] = 0
            _relocate(st)
        interval = st[S_INTERVAL]
        open_ns = st[S_OPEN_NS]
        st[S_NEXT_BOUNDARY] = open_ns + ((t - open_ns) // interval + 1) * interval
    _accrue(st, sec_time, t)


@nb.njit(cache=True, nogil=True)
def ingest(  # noqa: C901 - one compiled loop over trades is the point
    ts: NDArray[np.int64],
    rows: NDArray[np.int64],
    size: NDArray[np.int64],
    side: NDArray[np.int8],
    inferred: NDArray[np.bool_],
    st: NDArray[np.int64],
    pct: float,
    vol: NDArray[np.int64],
    buy: NDArray[np.int64],
    sell: NDArray[np.int64],
    sec_vol: NDArray[np.int64],
    sec_delta: NDArray[np.int64],
    sec_time: NDArray[np.int64],
    sec_px: NDArray[np.int64],
    minute_range: NDArray[np.int64],
    cross_ts: NDArray[np.int64],
    big: NDArray[np.int64],
) -> None:
    """Add one session's trades (time-ordered, rows already offset into `vol`)."""
    open_ns = st[S_OPEN_NS]
    n_sec = sec_vol.shape[0]
    n_min = minute_range.shape[0]
    tol = st[S_TOL]
    big_min = st[S_BIG_MIN]
    for i in range(ts.shape[0]):
        t = ts[i]
        advance(st, pct, vol, sec_time, t)
        r = rows[i]
        q = size[i]
        s = np.int64(side[i])
        vol[r] += q
        if s > 0:
            buy[r] += q
            st[S_BUY] += q
        elif s < 0:
            sell[r] += q
            st[S_SELL] += q
        st[S_CVD] += s * q
        st[S_VOLUME] += q
        if inferred[i]:
            st[S_INF_VOL] += q
        sec = (t - open_ns) // NS_SEC
        if 0 <= sec < n_sec:
            sec_vol[sec] += q
            sec_delta[sec] += s * q
            if sec_px[sec, PX_HIGH] < 0:
                sec_px[sec, PX_HIGH] = r
                sec_px[sec, PX_LOW] = r
                sec_px[sec, PX_FIRST] = r
            else:
                if r > sec_px[sec, PX_HIGH]:
                    sec_px[sec, PX_HIGH] = r
                if r < sec_px[sec, PX_LOW]:
                    sec_px[sec, PX_LOW] = r
            sec_px[sec, PX_LAST] = r
        if st[S_NTRADES] == 0:
            st[S_HIGH] = r
            st[S_LOW] = r
            st[S_FIRST_TS] = t
        else:
            if r > st[S_HIGH]:
                st[S_HIGH] = r
            if r < st[S_LOW]:
                st[S_LOW] = r
        minute = (t - open_ns) // (60 * NS_SEC)
        if 0 <= minute < n_min:
            minute_range[minute] = st[S_HIGH] - st[S_LOW]
        st[S_NTRADES] += 1
        st[S_LAST_TS] = t
        st[S_LAST_ROW] = r
        st[S_DIRTY] = 1
        poc = st[S_POC]
        if poc >= 0:
            d = r - poc
            sd = 0
            if d >= tol:
                sd = 1
            elif d <= -tol:
                sd = -1
            if sd != 0 and sd != st[S_CROSS_SIDE]:
                if st[S_CROSS_SIDE] != 0:
                    cross_ts[st[S_NCROSS]] = t
                    st[S_NCROSS] += 1
                st[S_CROSS_SIDE] = sd
        _relocate(st)
        if q >= big_min:
            k = st[S_NBIG]
            big[k, 0] = t
            big[k, 1] = r
            big[k, 2] = q
            big[k, 3] = s
            st[S_NBIG] += 1


@nb.njit(cache=True, nogil=True)
def window_sums(
    sec_vol: NDArray[np.int64],
    sec_delta: NDArray[np.int64],
    sec_time: NDArray[np.int64],
    sec: int,
) -> NDArray[np.int64]:
    """Sums over the seconds (sec-299..sec), (sec-899..sec) and (sec-1799..sec).

    Returns [vol_5m, delta_5m, vol_15m, delta_15m, above_30m, below_30m, in_30m] (time in ns).
    """
    out = np.zeros(7, dtype=np.int64)
    n = sec_vol.shape[0]
    hi = min(n - 1, sec)
    for s in range(max(0, sec - 1799), hi + 1):
        age = sec - s
        if age < 300:
            out[0] += sec_vol[s]
            out[1] += sec_delta[s]
        if age < 900:
            out[2] += sec_vol[s]
            out[3] += sec_delta[s]
        out[4] += sec_time[s, 0]
        out[5] += sec_time[s, 1]
        out[6] += sec_time[s, 2]
    return out


@nb.njit(cache=True, nogil=True)
def window_moves(sec_px: NDArray[np.int64], sec: int, last_row: int) -> NDArray[np.int64]:
    """Price range, net change and extremes (rows) over the last 300 and 900 seconds.

    The windows are the seconds (sec-299..sec) and (sec-899..sec). Returns [range_5m,
    change_5m, range_15m, change_15m, high_5m, low_5m, high_15m, low_15m]. The change is
    measured from the last price before the window (or, in a session younger than the window,
    its first trade) to `last_row`; a window without trades has range 0 and extremes -1. One
    pass over the longer window.
    """
    out = np.zeros(8, dtype=np.int64)
    n = sec_px.shape[0]
    widths = (300, 900)
    high = np.full(2, -1, dtype=np.int64)
    low = np.full(2, -1, dtype=np.int64)
    first = np.full(2, -1, dtype=np.int64)
    for s in range(max(0, sec - 899), min(n - 1, sec) + 1):
        if sec_px[s, PX_HIGH] < 0:
            continue
        for k in range(2):
            if sec - s >= widths[k]:
                continue
            if first[k] < 0:
                first[k] = sec_px[s, PX_FIRST]
                high[k] = sec_px[s, PX_HIGH]
                low[k] = sec_px[s, PX_LOW]
            else:
                high[k] = max(high[k], sec_px[s, PX_HIGH])
                low[k] = min(low[k], sec_px[s, PX_LOW])
    for k in range(2):
        ref = np.int64(-1)
        s = min(sec - widths[k] + 1, n) - 1
        while s >= 0 and ref < 0:
            ref = sec_px[s, PX_LAST]
            s -= 1
        if ref < 0:
            ref = first[k] if first[k] >= 0 else np.int64(last_row)
        if high[k] >= 0:
            out[2 * k] = high[k] - low[k]
        out[2 * k + 1] = last_row - ref if last_row >= 0 else 0
        out[4 + 2 * k] = high[k]
        out[5 + 2 * k] = low[k]
    return out


@nb.njit(cache=True, nogil=True)
def minute_close_path(  # noqa: C901 - one compiled pass over the window is the point
    sec_px: NDArray[np.int64], k: int, last_row: int
) -> NDArray[np.int64]:
    """The path of the closes (rows) of minutes k-30 .. k, summed up in one pass.

    Minute m covers seconds [60 m, 60 m + 60); its close is the last trade's row in it, carried
    forward over minutes without trades (from the last trade before the window); minute k closes
    at `last_row`. A window of w minutes (closes of minutes k-w .. k) counts only when k >= w and
    every close in it is known (a trade at or before minute k-w). Returns
    [ok15, change15, range15, ok30, change30, range30, s1, s5]: s1 the sum of the 15 squared
    one-minute changes and s5 of the 11 squared overlapping five-minute changes of the 15-minute
    window (integers, exact).
    """
    count = 30
    closes = np.full(count + 1, -1, dtype=np.int64)
    closes[count] = last_row
    n = sec_px.shape[0]
    first = k - count
    carry = np.int64(-1)
    s = min(max(first, 0) * 60, n) - 1
    while s >= 0:
        if sec_px[s, PX_LAST] >= 0:
            carry = sec_px[s, PX_LAST]
            break
        s -= 1
    for j in range(count):
        m = first + j
        if m >= 0:
            s = min(m * 60 + 59, n - 1)
            while s >= m * 60:
                if sec_px[s, PX_LAST] >= 0:
                    carry = sec_px[s, PX_LAST]
                    break
                s -= 1
            closes[j] = carry
    out = np.zeros(8, dtype=np.int64)
    for slot, w in ((0, 15), (3, 30)):
        if k < w:
            continue
        lo = closes[count - w]
        hi = lo
        ok = True
        for j in range(count - w, count + 1):
            c = closes[j]
            if c < 0:
                ok = False
                break
            lo = min(lo, c)
            hi = max(hi, c)
        if ok:
            out[slot] = 1
            out[slot + 1] = closes[count] - closes[count - w]
            out[slot + 2] = hi - lo
    if out[0] == 1:
        a = count - 15
        for j in range(a, count):
            d = closes[j + 1] - closes[j]
            out[6] += d * d
        for j in range(a, count - 4):
            d = closes[j + 5] - closes[j]
            out[7] += d * d
    return out


@nb.njit(cache=True, nogil=True)
def scale_rows(
    sec_px: NDArray[np.int64],
    sec_vol: NDArray[np.int64],
    sec_delta: NDArray[np.int64],
    first: int,
    minutes: int,
) -> NDArray[np.float64]:
    """Rows `first` .. `minutes - 1` of the per-minute scale samples (see
    `engine.minute_scale_samples`): rolling 5- and 15-minute range in ticks and |delta| / volume
    over 15 minutes; NaN before a window's minutes are all in the session or without a trade."""
    start = max(0, first - 14)
    span = minutes - start
    hi = np.empty(max(span, 0), dtype=np.int64)
    lo = np.empty(max(span, 0), dtype=np.int64)
    vol = np.zeros(max(span, 0), dtype=np.int64)
    delta = np.zeros(max(span, 0), dtype=np.int64)
    for j in range(span):
        h = np.int64(-(2**62))
        low = np.int64(2**62)
        base = (start + j) * 60
        for s in range(base, base + 60):
            if sec_px[s, PX_HIGH] >= 0:
                h = max(h, sec_px[s, PX_HIGH])
                low = min(low, sec_px[s, PX_LOW])
            vol[j] += sec_vol[s]
            delta[j] += sec_delta[s]
        hi[j] = h
        lo[j] = low
    out = np.full((max(minutes - first, 0), 3), np.nan)
    for m in range(first, minutes):
        j = m - start
        for col, w in ((0, 5), (1, 15)):
            if m < w - 1:
                continue
            whi = hi[j]
            wlo = lo[j]
            for i in range(j - w + 1, j):
                whi = max(whi, hi[i])
                wlo = min(wlo, lo[i])
            if whi >= wlo:
                out[m - first, col] = float(whi - wlo)
        if m >= 14:
            cv = np.int64(0)
            cd = np.int64(0)
            for i in range(j - 14, j + 1):
                cv += vol[i]
                cd += delta[i]
            if cv > 0:
                out[m - first, 2] = abs(cd) / cv
    return out
