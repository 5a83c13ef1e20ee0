from __future__ import annotations

import pytest

from fabio.features.zones import Band, ImportanceZone, locate_in_zones


def test_band_of() -> None:
    z = ImportanceZone("poc", center_ticks=100, inner_band_ticks=4, outer_band_ticks=12)
    assert z.band_of(100) is Band.INNER
    assert z.band_of(96) is Band.INNER
    assert z.band_of(95) is Band.OUTER
    assert z.band_of(112) is Band.OUTER
    assert z.band_of(113) is Band.OUTSIDE


def test_inner_beats_outer_then_priority_then_nearest() -> None:
    a = ImportanceZone("a", 100, 2, 20, priority=3)
    b = ImportanceZone("b", 110, 2, 20, priority=1)
    assert locate_in_zones(109, [a, b]).zone is b  # inner of b beats outer of a
    c = ImportanceZone("c", 104, 2, 20, priority=2)
    hit = locate_in_zones(90, [a, c])
    assert hit.zone is a and hit.band is Band.OUTER
    assert locate_in_zones(500, [a, b, c]).band is Band.OUTSIDE
    assert locate_in_zones(100, [a], min_priority=4).zone is None


def test_invalid_bands_rejected() -> None:
    with pytest.raises(ValueError, match="inner_band_ticks"):
        ImportanceZone("x", 0, 10, 5)
