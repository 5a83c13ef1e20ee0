from __future__ import annotations

from fabio.brain.cadence import Cadence
from fabio.brain.schema import ImportanceZone
from fabio.features.zones import Band

SEC = 1_000_000_000
ZONES = [
    ImportanceZone(
        id="poc", center_price=5000.0, priority=3, inner_band_ticks=4, outer_band_ticks=12
    ),
    ImportanceZone(
        id="minor", center_price=5050.0, priority=2, inner_band_ticks=4, outer_band_ticks=12
    ),
]


def test_interval_by_band() -> None:
    c = Cadence()
    assert c.band(5000.5, 0.25, ZONES) is Band.INNER
    assert c.band(5002.5, 0.25, ZONES) is Band.OUTER
    assert c.band(5010.0, 0.25, ZONES) is Band.OUTSIDE
    assert c.band(5050.0, 0.25, ZONES) is Band.OUTSIDE  # below min_priority
    assert [c.interval_sec(b) for b in (Band.INNER, Band.OUTER, Band.OUTSIDE)] == [5, 15, 30]


def test_due_and_event_floor() -> None:
    c = Cadence()
    assert c.due(0, Band.OUTSIDE)
    c.mark(0)
    assert not c.due(29 * SEC, Band.OUTSIDE)
    assert c.due(30 * SEC, Band.OUTSIDE)
    assert c.due(5 * SEC, Band.INNER) and not c.due(4 * SEC, Band.INNER)
    assert not c.due(1 * SEC, Band.OUTSIDE, event=True)  # the floor stops a burst
    assert c.due(2 * SEC, Band.OUTSIDE, event=True)
