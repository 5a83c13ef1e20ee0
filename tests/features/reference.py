"""Slow, obviously-correct reference implementations used to check the compiled kernels."""

from __future__ import annotations

import itertools


def ref_poc(vol: list[int]) -> int:
    """POC with FACTS.md §3 tie rules over the occupied range of `vol`."""
    occupied = [i for i, v in enumerate(vol) if v > 0]
    lo, hi = occupied[0], occupied[-1]
    best = max(vol[lo : hi + 1])
    ties = [i for i in range(lo, hi + 1) if vol[i] == best]
    mid2 = lo + hi
    dist = min(abs(2 * i - mid2) for i in ties)
    closest = [i for i in ties if abs(2 * i - mid2) == dist]
    if len(closest) == 1:
        return closest[0]
    below = sum(vol[j] for j in range(lo, hi + 1) if 2 * j < mid2)
    above = sum(vol[j] for j in range(lo, hi + 1) if 2 * j > mid2)
    return max(closest) if above > below else min(closest)


def ref_value_area(vol: list[int], pct: float, rows: int) -> tuple[int, int]:
    occupied = [i for i, v in enumerate(vol) if v > 0]
    lo, hi = occupied[0], occupied[-1]
    poc = ref_poc(vol)
    total = sum(vol)
    down = up = poc
    inside = vol[poc]
    while inside < pct * total and (down > lo or up < hi):
        ups = [vol[k] for k in range(up + 1, min(up + rows, hi) + 1)]
        downs = [vol[k] for k in range(max(down - rows, lo), down)]
        if ups and (not downs or sum(ups) >= sum(downs)):
            up += len(ups)
            inside += sum(ups)
        else:
            down -= len(downs)
            inside += sum(downs)
    return down, up


def _levels(
    trades: list[tuple[int, int, int, int]], upto: int, pct: float, rows: int
) -> tuple[int, int, int] | None:
    """(poc, val, vah) in ticks from the trades with ts < upto, or None."""
    hist: dict[int, int] = {}
    for t, p, q, _ in trades:
        if t < upto:
            hist[p] = hist.get(p, 0) + q
    if not hist:
        return None
    lo, hi = min(hist), max(hist)
    vol = [hist.get(p, 0) for p in range(lo, hi + 1)]
    poc = ref_poc(vol)
    val, vah = ref_value_area(vol, pct, rows)
    return poc + lo, val + lo, vah + lo


def ref_session_stats(
    trades: list[tuple[int, int, int, int]],
    open_ns: int,
    interval: int,
    pct: float,
    rows: int,
    tol: int,
    at: int,
) -> dict[str, object]:
    """POC crosses and time above/below/in value straight from their definitions.

    The levels in force at time u are those of all trades before the last grid point <= u; the
    location at u is the last trade price at or before u against the value area in force.
    """

    def grid(u: int) -> int:
        return open_ns + (u - open_ns) // interval * interval

    crosses: list[int] = []
    side = 0
    for t, p, _, _ in trades:
        lv = _levels(trades, grid(t), pct, rows)
        if lv is None:
            continue
        d = p - lv[0]
        s = 1 if d >= tol else (-1 if d <= -tol else 0)
        if s != 0 and s != side:
            if side != 0:
                crosses.append(t)
            side = s
    first = trades[0][0]
    points = {t for t, *_ in trades if t <= at}
    g = grid(first) + interval
    while g <= at:
        points.add(g)
        g += interval
    points.add(at)
    events = sorted(points)
    time_loc = {"above": 0, "below": 0, "in": 0}
    for a, b in itertools.pairwise(events):
        lv = _levels(trades, grid(a), pct, rows)
        if lv is None:
            continue
        last = [p for t, p, _, _ in trades if t <= a][-1]
        key = "above" if last > lv[2] else ("below" if last < lv[1] else "in")
        time_loc[key] += b - a
    return {"crosses": crosses, "time": time_loc}
