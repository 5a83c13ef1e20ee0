"""Volume profile kernels: POC, value area (1-, 2- or 3-row rule) and HVN/LVN.

Profiles are dense int64 arrays of volume per price row (one row per tick), empty rows kept
between the low and the high. Rules follow FACTS.md §3:

- POC: the row with the most volume. Ties: the row closest to the middle of the profile's
  range; then the one on the side of the middle holding more volume; then the lower price.
- Value area: start at the POC and add, on each step, the group of the next `rows` rows above
  or the next `rows` rows below, whichever holds more volume (a tie goes up), until the volume
  inside reaches `pct` of the total. When one side reaches the profile's edge, keep adding from
  the other side. `rows=2` is the CBOT / Dalton rule, `rows=1` the one-row rule (AmiBroker,
  PyPI MarketProfile), `rows=3` the ATAS rule.
- HVN/LVN: smooth with a centred moving average, take local maxima (HVN) whose prominence is at
  least `prominence` of the smoothed POC volume, at least `min_separation` rows apart; an LVN is
  the lowest smoothed row between two neighbouring HVNs.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numpy.typing import NDArray


@nb.njit(cache=True, nogil=True)
def occupied_range(vol: NDArray[np.int64]) -> tuple[int, int]:
    """First and last row with volume, or (-1, -1) for an empty profile."""
    lo = -1
    for i in range(vol.shape[0]):
        if vol[i] > 0:
            lo = i
            break
    if lo < 0:
        return -1, -1
    hi = lo
    for i in range(vol.shape[0] - 1, lo - 1, -1):
        if vol[i] > 0:
            hi = i
            break
    return lo, hi


@nb.njit(cache=True, nogil=True)
def poc_index(vol: NDArray[np.int64], lo: int, hi: int) -> int:
    """Row of the point of control within [lo, hi], with the tie rules above (-1 if empty)."""
    if lo < 0:
        return -1
    best = np.int64(-1)
    for i in range(lo, hi + 1):
        if vol[i] > best:
            best = vol[i]
    if best <= 0:
        return -1
    twice_mid = lo + hi  # the middle in half-rows, so that it stays an integer
    chosen = -1
    chosen_dist = 0
    for i in range(lo, hi + 1):
        if vol[i] != best:
            continue
        dist = abs(2 * i - twice_mid)
        if chosen < 0 or dist < chosen_dist:
            chosen, chosen_dist = i, dist
        elif dist == chosen_dist and i != chosen:
            # Two rows equally far from the middle: one below it, one above it.
            below = np.int64(0)
            above = np.int64(0)
            for j in range(lo, hi + 1):
                if 2 * j < twice_mid:
                    below += vol[j]
                elif 2 * j > twice_mid:
                    above += vol[j]
            # More volume above: the upper row; more below, or equal: the lower price.
            chosen = max(chosen, i) if above > below else min(chosen, i)
    return chosen


@nb.njit(cache=True, nogil=True)
def value_area(
    vol: NDArray[np.int64], lo: int, hi: int, poc: int, pct: float, rows: int
) -> tuple[int, int]:
    """(val_row, vah_row) of the value area around `poc` within [lo, hi]."""
    if poc < 0:
        return -1, -1
    total = np.int64(0)
    for i in range(lo, hi + 1):
        total += vol[i]
    target = pct * total
    inside = vol[poc]
    down = poc
    up = poc
    while inside < target and (down > lo or up < hi):
        up_sum = np.int64(0)
        up_n = 0
        for k in range(1, rows + 1):
            if up + k <= hi:
                up_sum += vol[up + k]
                up_n += 1
        down_sum = np.int64(0)
        down_n = 0
        for k in range(1, rows + 1):
            if down - k >= lo:
                down_sum += vol[down - k]
                down_n += 1
        if up_n > 0 and (down_n == 0 or up_sum >= down_sum):
            up += up_n
            inside += up_sum
        else:
            down -= down_n
            inside += down_sum
    return down, up


@nb.njit(cache=True, nogil=True)
def profile_levels(vol: NDArray[np.int64], pct: float, rows: int) -> tuple[int, int, int, int, int]:
    """(lo, hi, poc, val, vah) rows of a whole profile array (all -1 when empty)."""
    lo, hi = occupied_range(vol)
    if lo < 0:
        return -1, -1, -1, -1, -1
    poc = poc_index(vol, lo, hi)
    val, vah = value_area(vol, lo, hi, poc, pct, rows)
    return lo, hi, poc, val, vah


@nb.njit(cache=True, nogil=True)
def _smooth(vol: NDArray[np.int64], lo: int, hi: int, smoothing: int) -> NDArray[np.float64]:
    n = hi - lo + 1
    half = smoothing // 2
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        acc = 0.0
        cnt = 0
        for k in range(max(0, i - half), min(n, i + half + 1)):
            acc += vol[lo + k]
            cnt += 1
        out[i] = acc / cnt
    return out


@nb.njit(cache=True, nogil=True)
def _prominence(smooth: NDArray[np.float64], i: int) -> float:
    """Height of peak `i` above the higher of its two bases (lowest points before a higher peak)."""
    n = smooth.shape[0]
    h = smooth[i]
    left_min = h
    j = i - 1
    while j >= 0 and smooth[j] <= h:
        left_min = min(left_min, smooth[j])
        j -= 1
    if j < 0:
        left_min = 0.0  # the profile's edge counts as empty
    right_min = h
    j = i + 1
    while j < n and smooth[j] <= h:
        right_min = min(right_min, smooth[j])
        j += 1
    if j >= n:
        right_min = 0.0
    return h - max(left_min, right_min)


@nb.njit(cache=True, nogil=True)
def _peaks(smooth: NDArray[np.float64], prominence: float) -> NDArray[np.int64]:
    """Local maxima (higher than the left neighbour, at least the right) that are prominent."""
    n = smooth.shape[0]
    peak_val = smooth.max()
    out = np.empty(n, dtype=np.int64)
    k = 0
    for i in range(n):
        left = smooth[i - 1] if i > 0 else -1.0
        right = smooth[i + 1] if i < n - 1 else -1.0
        if (
            smooth[i] > left
            and smooth[i] >= right
            and _prominence(smooth, i) >= prominence * peak_val
        ):
            out[k] = i
            k += 1
    return out[:k]


@nb.njit(cache=True, nogil=True)
def _separate(
    smooth: NDArray[np.float64], cand: NDArray[np.int64], min_sep: int
) -> NDArray[np.int64]:
    """Keep the tallest peaks first, dropping any closer than `min_sep` rows to a kept one."""
    order = np.argsort(-smooth[cand], kind="mergesort")
    taken = np.zeros(cand.shape[0], dtype=np.bool_)
    for c in order:
        ok = True
        for t in range(cand.shape[0]):
            if taken[t] and abs(cand[t] - cand[c]) < min_sep:
                ok = False
                break
        taken[c] = ok
    return cand[taken]


@nb.njit(cache=True, nogil=True)
def volume_nodes(
    vol: NDArray[np.int64],
    lo: int,
    hi: int,
    smoothing: int,
    min_separation: int,
    prominence: float,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Rows of high-volume nodes (ascending) and of the low-volume nodes between them."""
    empty = np.empty(0, dtype=np.int64)
    if lo < 0 or hi - lo + 1 < 3:
        return empty, empty
    smooth = _smooth(vol, lo, hi, smoothing)
    if smooth.max() <= 0.0:
        return empty, empty
    hvn = _separate(smooth, _peaks(smooth, prominence), min_separation)
    lvn = np.empty(max(hvn.shape[0] - 1, 0), dtype=np.int64)
    for k in range(hvn.shape[0] - 1):
        best = hvn[k] + 1
        for j in range(hvn[k] + 1, hvn[k + 1]):
            if smooth[j] < smooth[best]:
                best = j
        lvn[k] = best
    return hvn + lo, lvn + lo


def levels_of(
    vol: NDArray[np.int64], pct: float = 0.70, rows: int = 2
) -> tuple[int, int, int, int, int]:
    """Python entry point for `profile_levels` with dtype coercion."""
    lo, hi, poc, val, vah = profile_levels(np.ascontiguousarray(vol, dtype=np.int64), pct, rows)
    return int(lo), int(hi), int(poc), int(val), int(vah)
