"""One session's complete volume profile from a feed (what `fabio profile` prints).

Built directly with `np.bincount`, independently of the incremental engine, so the two can be
checked against each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fabio.config import FeatureConfig
from fabio.data.base import MarketFeed
from fabio.domain import TradeBatch
from fabio.errors import DataError
from fabio.features.profile import profile_levels, volume_nodes
from fabio.sessions import CmeCalendar, SessionKind, cme_calendar
from fabio.timeutil import format_ns


class ProfileAccumulator:
    """Volume, buy and sell volume per tick price, growing to fit."""

    def __init__(self) -> None:
        self.base = 0
        self.vol = np.zeros(0, dtype=np.int64)
        self.buy = np.zeros(0, dtype=np.int64)
        self.sell = np.zeros(0, dtype=np.int64)
        self.trades = 0
        self.inferred_volume = 0
        self.first_ts: int | None = None
        self.last_ts: int | None = None

    def add(self, trades: TradeBatch) -> None:
        if len(trades) == 0:
            return
        lo, hi = int(trades.price.min()), int(trades.price.max())
        if len(self.vol) == 0:
            self.base = lo
            self.vol = np.zeros(hi - lo + 1, dtype=np.int64)
            self.buy = self.vol.copy()
            self.sell = self.vol.copy()
        elif lo < self.base or hi >= self.base + len(self.vol):
            new_base = min(lo, self.base)
            size = max(hi, self.base + len(self.vol) - 1) - new_base + 1
            for name in ("vol", "buy", "sell"):
                grown = np.zeros(size, dtype=np.int64)
                old: NDArray[np.int64] = getattr(self, name)
                grown[self.base - new_base : self.base - new_base + len(old)] = old
                setattr(self, name, grown)
            self.base = new_base
        rows = trades.price - self.base
        n = len(self.vol)
        self.vol += np.bincount(rows, weights=trades.size, minlength=n).astype(np.int64)
        buys = trades.side > 0
        sells = trades.side < 0
        self.buy += np.bincount(rows[buys], weights=trades.size[buys], minlength=n).astype(np.int64)
        self.sell += np.bincount(rows[sells], weights=trades.size[sells], minlength=n).astype(
            np.int64
        )
        self.trades += len(trades)
        self.inferred_volume += int(trades.size[trades.inferred].sum())
        self.first_ts = int(trades.ts[0]) if self.first_ts is None else self.first_ts
        self.last_ts = int(trades.ts[-1])


@dataclass(frozen=True, slots=True)
class SessionProfile:
    symbol: str
    trade_date: str
    session: str
    open: str
    close: str
    first_trade: str
    last_trade: str
    trades: int
    poc: float
    vah: float
    val: float
    high: float
    low: float
    volume: int
    buy_volume: int
    sell_volume: int
    cvd: int
    cvd_inferred_share: float
    value_area_pct: float
    value_area_rows: int
    hvn: list[float] = field(default_factory=list)
    lvn: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_session_profile(
    feed: MarketFeed,
    config: FeatureConfig,
    trade_date: date | None = None,
    calendar: CmeCalendar | None = None,
) -> SessionProfile:
    """The profile of `trade_date`'s session, or of the last session in the feed."""
    cal = calendar or cme_calendar()
    kind: SessionKind = config.session
    target = None
    if trade_date is not None:
        target = cal.index_on(trade_date)
        if target is None:
            raise DataError(f"{trade_date} is not a CME trading day (weekend or holiday)")
    acc = ProfileAccumulator()
    current = -1
    for batch in feed.batches():
        trades = batch.trades
        if len(trades) == 0:
            continue
        idx = cal.locate(trades.ts, kind)
        if target is None:
            latest = int(idx.max())
            if latest > current:
                current, acc = latest, ProfileAccumulator()
            acc.add(trades.take(idx == current))
        else:
            acc.add(trades.take(idx == target))
    chosen = target if target is not None else current
    if chosen is None or chosen < 0 or acc.trades == 0:
        where = f"on {trade_date}" if trade_date else "in any session"
        raise DataError(f"{feed.report.source}: no trades {where} ({kind.value.upper()} hours)")
    session = cal.session(chosen)
    open_ns, close_ns = session.bounds(kind)
    lo, hi, poc, val, vah = profile_levels(acc.vol, config.value_area_pct, config.value_area_rows)
    hvn, lvn = volume_nodes(
        acc.vol,
        lo,
        hi,
        config.hvn_lvn_smoothing_rows,
        config.hvn_lvn_min_separation_ticks,
        config.hvn_lvn_prominence,
    )
    spec = feed.contract.spec
    volume = int(acc.vol.sum())
    buy, sell = int(acc.buy.sum()), int(acc.sell.sum())

    def px(row: int) -> float:
        return spec.to_price(row + acc.base)

    return SessionProfile(
        symbol=feed.contract.symbol,
        trade_date=session.trade_date.isoformat(),
        session=kind.value,
        open=format_ns(open_ns),
        close=format_ns(close_ns),
        first_trade=format_ns(acc.first_ts or 0),
        last_trade=format_ns(acc.last_ts or 0),
        trades=acc.trades,
        poc=px(poc),
        vah=px(vah),
        val=px(val),
        high=px(hi),
        low=px(lo),
        volume=volume,
        buy_volume=buy,
        sell_volume=sell,
        cvd=buy - sell,
        cvd_inferred_share=round(acc.inferred_volume / volume, 4) if volume else 0.0,
        value_area_pct=config.value_area_pct,
        value_area_rows=config.value_area_rows,
        hvn=[px(int(r)) for r in hvn],
        lvn=[px(int(r)) for r in lvn],
    )
