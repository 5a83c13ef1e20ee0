"""When to decide: 30 s / 15 s / 5 s by importance zone, at once on events, with a floor.

The interval is `LLM_DECISION_INTERVAL_DEFAULT` outside zones, `_OUTER_BAND` inside the outer
band and `_INNER_BAND` inside the inner band of a high-priority zone (at least `min_priority`,
3 by default). An event (a
setup triggers, a position closes) asks for a decision at once, but never sooner than
`floor_sec` after the previous one, so that a burst of events costs one call.
"""

from __future__ import annotations

from dataclasses import dataclass

from fabio.brain.schema import ImportanceZone
from fabio.features.zones import Band, locate_in_zones
from fabio.features.zones import ImportanceZone as Zone

NS = 1_000_000_000


@dataclass(slots=True)
class Cadence:
    default_sec: float = 30.0
    outer_sec: float = 15.0
    inner_sec: float = 5.0
    floor_sec: float = 2.0
    min_priority: int = 3
    last_decision_ns: int | None = None

    def band(self, price: float, tick_size: float, zones: list[ImportanceZone]) -> Band:
        ticks = round(price / tick_size)
        hit = locate_in_zones(
            ticks,
            [
                Zone(
                    z.id,
                    round(z.center_price / tick_size),
                    z.inner_band_ticks,
                    z.outer_band_ticks,
                    z.priority,
                )
                for z in zones
            ],
            self.min_priority,
        )
        return hit.band

    def interval_sec(self, band: Band) -> float:
        if band is Band.INNER:
            return self.inner_sec
        if band is Band.OUTER:
            return self.outer_sec
        return self.default_sec

    def due(self, now_ns: int, band: Band, event: bool = False) -> bool:
        """Whether a decision is due at `now_ns`."""
        if self.last_decision_ns is None:
            return True
        elapsed = (now_ns - self.last_decision_ns) / NS
        if event and elapsed >= self.floor_sec:
            return True
        return elapsed >= self.interval_sec(band)

    def mark(self, now_ns: int) -> None:
        self.last_decision_ns = now_ns
