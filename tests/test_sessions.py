from __future__ import annotations

from datetime import date

import numpy as np

from fabio.sessions import SessionKind, cme_calendar
from fabio.timeutil import format_ns, parse_at


def test_trade_date_runs_from_17_ct_the_evening_before() -> None:
    cal = cme_calendar()
    s = cal.session_at(parse_at("2023-12-25 18:30"), SessionKind.ETH)  # Christmas evening
    assert s is not None and s.trade_date == date(2023, 12, 26)
    assert format_ns(s.eth_open_ns).startswith("2023-12-25 17:00")
    assert format_ns(s.eth_close_ns).startswith("2023-12-26 16:00")
    assert format_ns(s.rth_open_ns).startswith("2023-12-26 08:30")
    assert format_ns(s.rth_close_ns).startswith("2023-12-26 15:00")


def test_holidays_breaks_and_early_closes() -> None:
    cal = cme_calendar()
    assert cal.index_on(date(2023, 12, 25)) is None  # Christmas
    assert cal.session_at(parse_at("2024-03-05 16:30"), SessionKind.ETH) is None  # daily break
    assert cal.session_at(parse_at("2024-03-09 12:00"), SessionKind.ETH) is None  # Saturday
    black_friday = cal.session_at(parse_at("2023-11-24 10:00"), SessionKind.RTH)
    assert black_friday is not None and black_friday.early_close
    assert format_ns(black_friday.rth_close_ns).startswith("2023-11-24 12:00")
    assert cal.session_at(parse_at("2023-11-24 13:00"), SessionKind.RTH) is None


def test_daylight_saving_is_handled_by_the_calendar() -> None:
    cal = cme_calendar()
    winter = cal.session_at(parse_at("2024-03-08 09:00"), SessionKind.RTH)
    summer = cal.session_at(parse_at("2024-03-11 09:00"), SessionKind.RTH)
    assert winter is not None and summer is not None
    hour = 3_600_000_000_000
    assert (winter.rth_open_ns // hour) % 24 == 14  # 08:30 CST = 14:30 UTC
    assert (summer.rth_open_ns // hour) % 24 == 13  # 08:30 CDT = 13:30 UTC


def test_locate_vectorised() -> None:
    cal = cme_calendar()
    ts = np.array([parse_at("2024-03-05 09:00"), parse_at("2024-03-05 07:00")], dtype=np.int64)
    idx = cal.locate(ts, SessionKind.RTH)
    assert idx[0] >= 0 and idx[1] == -1
    assert cal.locate(ts, SessionKind.ETH).tolist() == [idx[0], idx[0]]


def test_parse_at_offsets() -> None:
    assert parse_at("2024-03-05 14:30+00:00") == parse_at("2024-03-05 08:30")


def test_session_at_agrees_with_locate_everywhere() -> None:
    """The scalar lookup every step uses gives `locate`'s answer: inside, at the bounds, in
    breaks, weekends and holidays, before and after the calendar."""
    cal = cme_calendar()
    rng = np.random.default_rng(12)
    for kind in (SessionKind.RTH, SessionKind.ETH):
        opens, closes = cal.bounds_arrays(kind)
        edges = np.concatenate([opens, closes, opens - 1, closes - 1, [opens[0] - 10**15]])
        span = rng.integers(int(opens[0]) - 10**14, int(closes[-1]) + 10**14, 20_000)
        ts = np.concatenate([edges, span]).astype(np.int64)
        want = cal.locate(ts, kind)
        for t, w in zip(ts.tolist(), want.tolist(), strict=True):
            s = cal.session_at(t, kind)
            assert (s is None) == (w < 0)
            if s is not None:
                assert s == cal.session(w)
