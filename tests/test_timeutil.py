"""format_ns against datetime's own formatting, across DST switches and time zones."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from fabio.timeutil import CHICAGO, NS_PER_SEC, format_ns


def _reference(ns: int, tz: ZoneInfo) -> str:
    dt = (
        datetime.fromtimestamp(ns // NS_PER_SEC, tz=UTC)
        .replace(microsecond=(ns % NS_PER_SEC) // 1_000)
        .astimezone(tz)
    )
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " " + (dt.tzname() or "")


@given(
    st.integers(-(10**18), 4 * 10**18),
    st.sampled_from(["America/Chicago", "UTC", "Asia/Kolkata", "America/New_York"]),
)
def test_format_ns_matches_datetime(ns: int, zone: str) -> None:
    tz = ZoneInfo(zone)
    assert format_ns(ns, tz) == _reference(ns, tz)


def test_format_ns_around_the_spring_and_fall_switches() -> None:
    for switch in (1_710_057_600, 1_730_617_200):  # 2024-03-10 08:00 and 2024-11-03 07:00 UTC
        for second in range(switch - 3_700, switch + 3_700, 7):
            ns = second * NS_PER_SEC + 987_654_321
            assert format_ns(ns) == _reference(ns, CHICAGO)
    assert format_ns(1_710_057_600 * NS_PER_SEC) == "2024-03-10 03:00:00.000 CDT"
    assert format_ns(1_710_057_599 * NS_PER_SEC + 999_999_999) == "2024-03-10 01:59:59.999 CST"
