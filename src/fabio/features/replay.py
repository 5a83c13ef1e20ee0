"""Feed a data source through the feature engine up to a moment."""

from __future__ import annotations

import numpy as np

from fabio.data.base import MarketFeed
from fabio.features.engine import FeatureEngine
from fabio.features.snapshot import FeatureSnapshot


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
