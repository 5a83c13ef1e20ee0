"""Importance zones: prices where decisions should come more often (spec: 30 s / 15 s / 5 s)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Band(StrEnum):
    INNER = "inner"
    OUTER = "outer"
    OUTSIDE = "outside"


@dataclass(frozen=True, slots=True)
class ImportanceZone:
    """A key price with two bands around it; `priority` orders overlapping zones (higher first)."""

    id: str
    center_ticks: int
    inner_band_ticks: int
    outer_band_ticks: int
    priority: int = 1

    def __post_init__(self) -> None:
        if self.inner_band_ticks < 0 or self.outer_band_ticks < self.inner_band_ticks:
            raise ValueError(
                f"zone {self.id}: need 0 <= inner_band_ticks <= outer_band_ticks, got "
                f"{self.inner_band_ticks} and {self.outer_band_ticks}"
            )

    def band_of(self, price_ticks: int) -> Band:
        distance = abs(price_ticks - self.center_ticks)
        if distance <= self.inner_band_ticks:
            return Band.INNER
        if distance <= self.outer_band_ticks:
            return Band.OUTER
        return Band.OUTSIDE


@dataclass(frozen=True, slots=True)
class ZoneHit:
    zone: ImportanceZone | None
    band: Band


_BAND_RANK = {Band.INNER: 2, Band.OUTER: 1, Band.OUTSIDE: 0}


def locate_in_zones(
    price_ticks: int, zones: list[ImportanceZone], min_priority: int = 1
) -> ZoneHit:
    """The tightest band the price is in among zones of at least `min_priority`.

    Inner beats outer; among equal bands the higher priority, then the nearer centre, wins.
    """
    best: ZoneHit = ZoneHit(None, Band.OUTSIDE)
    best_key: tuple[int, int, int] | None = None
    for zone in zones:
        if zone.priority < min_priority:
            continue
        band = zone.band_of(price_ticks)
        if band is Band.OUTSIDE:
            continue
        key = (_BAND_RANK[band], zone.priority, -abs(price_ticks - zone.center_ticks))
        if best_key is None or key > best_key:
            best, best_key = ZoneHit(zone, band), key
    return best
