"""Feed a data source through the feature engine up to a moment."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, time

import numpy as np

from fabio.data.base import MarketFeed
from fabio.features.engine import FeatureEngine
from fabio.features.snapshot import FeatureSnapshot
from fabio.sessions import SessionKind
from fabio.timeutil import CHICAGO, datetime_to_ns


def snapshot_at(engine: FeatureEngine, feed: MarketFeed, at_ns: int | None) -> FeatureSnapshot:
    """Replay `feed` up to and including `at_ns` (all of it when None), then snapshot."""
    for batch in feed.batches():
        trades = batch.trades
        if len(trades) == 0:
            continue
        if at_ns is not None and trades.ts[-1] > at_ns:
            cut = int(np.searchsorted(trades.ts, at_ns, side="right"))
            engine.update(trades.slice(0, cut))
            break
        engine.update(trades)
    return engine.snapshot(at_ns)


def sample_rth_snapshots(
    engine: FeatureEngine, feed: MarketFeed, times_of_day: Sequence[time]
) -> Iterator[FeatureSnapshot]:
    """Feed all of `feed` to `engine`, yielding the snapshot at each of `times_of_day`
    (America/Chicago) of every RTH session the data touches, while that session is open."""
    cal = engine.calendar
    pending: list[int] = []
    done: set[int] = set()
    for batch in feed.batches():
        trades = batch.trades
        if len(trades) == 0:
            continue
        idx = cal.locate(trades.ts, SessionKind.RTH)
        for sess in np.unique(idx[idx >= 0]).tolist():
            if sess in done:
                continue
            done.add(sess)
            session = cal.session(sess)
            for clock in times_of_day:
                ns = datetime_to_ns(datetime.combine(session.trade_date, clock, CHICAGO))
                if session.rth_open_ns < ns < session.rth_close_ns:
                    pending.append(ns)
        pending.sort()
        start = 0
        while pending and pending[0] <= int(trades.ts[-1]):
            at = pending.pop(0)
            cut = int(np.searchsorted(trades.ts, at, side="right"))
            engine.update(trades.slice(start, cut))
            start = cut
            snap = engine.snapshot(at)
            if snap.session is not None and snap.session.is_open and snap.market_stats:
                yield snap
        engine.update(trades.slice(start, len(trades)))
