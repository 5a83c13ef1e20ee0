"""Conversions at the edges: engine time is int UTC nanoseconds; people read America/Chicago."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from fabio.errors import FabioError

CHICAGO = ZoneInfo("America/Chicago")
NS_PER_SEC = 1_000_000_000
NS_PER_MIN = 60 * NS_PER_SEC


def datetime_to_ns(dt: datetime) -> int:
    """An aware datetime to UTC ns (exact, no float rounding)."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime: attach a time zone first")
    delta = dt.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_SEC + delta.microseconds * 1_000


def ns_to_datetime(ns: int, tz: ZoneInfo = CHICAGO) -> datetime:
    return (
        datetime.fromtimestamp(ns // NS_PER_SEC, tz=UTC)
        .replace(microsecond=(ns % NS_PER_SEC) // 1_000)
        .astimezone(tz)
    )


@lru_cache(maxsize=4096)
def _second_text(second: int, tz: ZoneInfo) -> tuple[str, str]:
    """(`2023-12-25 17:30:00`, `CST`) for a whole UTC second (snapshots format the same few
    seconds over and over: the clock, the last trade, the window's big prints)."""
    dt = datetime.fromtimestamp(second, tz=UTC).astimezone(tz)
    return dt.strftime("%Y-%m-%d %H:%M:%S"), dt.tzname() or ""


def format_ns(ns: int, tz: ZoneInfo = CHICAGO) -> str:
    """`2023-12-25 17:30:00.123 CST` style, for humans."""
    day_time, zone = _second_text(ns // NS_PER_SEC, tz)
    return f"{day_time}.{(ns % NS_PER_SEC) // 1_000_000:03d} {zone}"


def parse_at(text: str, tz: ZoneInfo = CHICAGO) -> int:
    """Parse `YYYY-MM-DD HH:MM[:SS]` (America/Chicago unless it carries an offset) to UTC ns."""
    raw = text.strip().replace("T", " ")
    try:
        dt = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise FabioError(
            f"cannot read the time '{text}': expected 'YYYY-MM-DD HH:MM[:SS]' "
            "(America/Chicago) or the same with an offset such as '+00:00'"
        ) from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return datetime_to_ns(dt)
