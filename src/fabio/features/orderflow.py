"""Order-flow signals over a recent window of trades: big prints, absorption, exhaustion.

- Big print: one trade of at least `big_print_min_size` contracts (per-instrument default).
- Absorption at the bid (or ask): over the window, aggressive sell (buy) volume traded within
  `absorption_max_move_ticks` of the window's low (high) is at least
  `absorption_min_volume_share` of the window's volume, its imbalance
  (sell − buy) / (sell + buy) is at least `absorption_min_imbalance`, and that extreme has held
  for at least half the window: heavy aggression at a price that does not give way.
- Exhaustion up (down): the window's high (low) was made in its last third, while the
  buy (sell) aggressor volume of that last third is below `exhaustion_volume_ratio` times that
  of the first third: a push to new prices on fading aggression.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np
from numpy.typing import NDArray

from fabio.config import FeatureConfig

DEFAULT_BIG_PRINT = {"ES": 50, "NQ": 20, "MES": 50, "MNQ": 50}
MIN_WINDOW_TRADES = 20


def big_print_threshold(root: str, config: FeatureConfig) -> int:
    if config.big_print_min_size > 0:
        return config.big_print_min_size
    return DEFAULT_BIG_PRINT.get(root, 50)


@nb.njit(cache=True, nogil=True)
def _absorption_kernel(  # noqa: C901 - both sides in one compiled pass is the point
    ts: NDArray[np.int64],
    rows: NDArray[np.int64],
    size: NDArray[np.int64],
    side: NDArray[np.int8],
    max_move: int,
) -> NDArray[np.int64]:
    """Both sides in two passes: row 0 the bid (aggressor -1, at the low), row 1 the ask
    (aggressor +1, at the high); columns extreme row, aggressive volume, passive volume, first
    touch ts (-1: none), total volume."""
    n = ts.shape[0]
    low = rows[0]
    high = rows[0]
    for i in range(n):
        if rows[i] < low:
            low = rows[i]
        if rows[i] > high:
            high = rows[i]
    out = np.zeros((2, 5), dtype=np.int64)
    out[0, 0] = low
    out[1, 0] = high
    out[0, 3] = -1
    out[1, 3] = -1
    for i in range(n):
        out[0, 4] += size[i]
        r = rows[i]
        if r <= low + max_move:
            if side[i] == -1:
                out[0, 1] += size[i]
            elif side[i] == 1:
                out[0, 2] += size[i]
        if r >= high - max_move:
            if side[i] == 1:
                out[1, 1] += size[i]
            elif side[i] == -1:
                out[1, 2] += size[i]
        if out[0, 3] < 0 and r == low:
            out[0, 3] = ts[i]
        if out[1, 3] < 0 and r == high:
            out[1, 3] = ts[i]
    out[1, 4] = out[0, 4]
    return out


def absorption(
    ts: NDArray[np.int64],
    rows: NDArray[np.int64],
    size: NDArray[np.int64],
    side: NDArray[np.int8],
    now_ns: int,
    window_ns: int,
    config: FeatureConfig,
) -> dict[str, Any] | None:
    """The stronger of bid/ask absorption in the window, or None."""
    if len(ts) < MIN_WINDOW_TRADES:
        return None
    best: dict[str, Any] | None = None
    sides = _absorption_kernel(ts, rows, size, side, config.absorption_max_move_ticks).tolist()
    for name, (extreme, aggressive, passive, first, total) in zip(
        ("bid", "ask"), sides, strict=True
    ):
        if aggressive + passive == 0 or total <= 0:
            continue
        share = aggressive / total
        imbalance = (aggressive - passive) / (aggressive + passive)
        held_ns = now_ns - first
        if (
            share >= config.absorption_min_volume_share
            and imbalance >= config.absorption_min_imbalance
            and held_ns >= window_ns // 2
        ) and (best is None or share > best["volume_share"]):
            best = {
                "side": name,
                "price_ticks": int(extreme),
                "aggressive_volume": int(aggressive),
                "volume_share": round(share, 3),
                "imbalance": round(imbalance, 3),
                "held_sec": round(held_ns / 1e9, 1),
            }
    return best


# Absorption read from bars (where the volume inside a bar is spread evenly and the tick-level
# test above cannot see it): the last bar's volume is at least BAR_VOLUME_RATIO times the mean of
# the earlier bars in the window, its aggressor imbalance at least BAR_MIN_IMBALANCE one way, and
# yet it closed in the other half of its range (at least BAR_CLOSE_OFF of the range away from
# the extreme the aggressors pushed to): heavy aggression that did not move the price.
BAR_VOLUME_RATIO = 1.3
BAR_MIN_IMBALANCE = 0.1
BAR_CLOSE_OFF = 0.5
BAR_MIN_RANGE_TICKS = 2


def bar_absorption(
    ts: NDArray[np.int64],
    rows: NDArray[np.int64],
    size: NDArray[np.int64],
    side: NDArray[np.int8],
    now_ns: int,
    bar_ns: int,
) -> dict[str, Any] | None:
    """Absorption in the last complete bar [now - bar_ns, now), or None (see above)."""
    if bar_ns <= 0 or len(ts) == 0:
        return None
    last = ts >= now_ns - bar_ns
    if not last.any() or last.all():
        return None
    earlier_bars = (now_ns - bar_ns - int(ts[0])) / bar_ns
    if earlier_bars < 1:
        return None
    vol = int(size[last].sum())
    mean_before = int(size[~last].sum()) / max(1.0, float(np.ceil(earlier_bars)))
    if vol < BAR_VOLUME_RATIO * mean_before or vol <= 0:
        return None
    buy = int(size[last & (side > 0)].sum())
    sell = int(size[last & (side < 0)].sum())
    lo, hi = int(rows[last].min()), int(rows[last].max())
    close = int(rows[last][-1])
    span = hi - lo
    if span < BAR_MIN_RANGE_TICKS:
        return None
    imbalance = (buy - sell) / vol
    if imbalance >= BAR_MIN_IMBALANCE and hi - close >= BAR_CLOSE_OFF * span:
        name, extreme, aggressive = "ask", hi, buy  # buyers hit the offer; it held
    elif -imbalance >= BAR_MIN_IMBALANCE and close - lo >= BAR_CLOSE_OFF * span:
        name, extreme, aggressive = "bid", lo, sell
    else:
        return None
    return {
        "side": name,
        "price_ticks": extreme,
        "aggressive_volume": aggressive,
        "volume_share": round(aggressive / vol, 3),
        "imbalance": round(abs(imbalance), 3),
        "held_sec": round(bar_ns / 1e9, 1),
    }


@nb.njit(cache=True, nogil=True)
def _thirds_kernel(
    ts: NDArray[np.int64],
    rows: NDArray[np.int64],
    size: NDArray[np.int64],
    side: NDArray[np.int8],
    start: int,
    third: int,
) -> NDArray[np.int64]:
    """Per third of the window (first, middle, last): high, low, buy volume, sell volume, count."""
    out = np.zeros((3, 5), dtype=np.int64)
    for k in range(3):
        out[k, 0] = np.iinfo(np.int64).min
        out[k, 1] = np.iinfo(np.int64).max
    for i in range(ts.shape[0]):
        k = (ts[i] - start) // third
        k = 0 if k < 0 else (2 if k > 2 else k)
        r = rows[i]
        if r > out[k, 0]:
            out[k, 0] = r
        if r < out[k, 1]:
            out[k, 1] = r
        if side[i] > 0:
            out[k, 2] += size[i]
        elif side[i] < 0:
            out[k, 3] += size[i]
        out[k, 4] += 1
    return out


def exhaustion(
    ts: NDArray[np.int64],
    rows: NDArray[np.int64],
    size: NDArray[np.int64],
    side: NDArray[np.int8],
    now_ns: int,
    window_ns: int,
    config: FeatureConfig,
) -> dict[str, Any] | None:
    """A push to a new window extreme on fading aggression, or None."""
    if len(ts) < MIN_WINDOW_TRADES:
        return None
    third = max(1, window_ns // 3)
    parts = _thirds_kernel(ts, rows, size, side, now_ns - window_ns, third)
    if parts[0, 4] == 0 or parts[2, 4] == 0:
        return None
    earlier_high = max(parts[0, 0], parts[1, 0])
    earlier_low = min(parts[0, 1], parts[1, 1])
    for direction, made_late, extreme, column in (
        ("up", parts[2, 0] > earlier_high, parts[2, 0], 2),
        ("down", parts[2, 1] < earlier_low, parts[2, 1], 3),
    ):
        early_vol = int(parts[0, column])
        late_vol = int(parts[2, column])
        if made_late and early_vol > 0 and late_vol < config.exhaustion_volume_ratio * early_vol:
            return {
                "direction": direction,
                "price_ticks": int(extreme),
                "early_aggressive_volume": early_vol,
                "late_aggressive_volume": late_vol,
                "volume_ratio": round(late_vol / early_vol, 3),
            }
    return None
