"""Sierra Chart readers: time and sales, and bars turned into trades."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fabio.data import read_all
from fabio.data.sierra import (
    SierraBarFeed,
    SierraTimeAndSalesFeed,
    _even_split_buys,
    bars_to_trades,
    largest_remainder,
    parse_clock,
)
from fabio.data.tabular import parse_ts
from fabio.errors import DataError
from fabio.timeutil import datetime_to_ns

from .conftest import BARS_ESH23, TAS_2022, TAS_2023

TAS_HEADER = (
    "Date;Time;Sequence;DepthSequence;Price;Volume;TradeType;AskPrice;BidPrice;AskSize;BidSize;"
    "TotalAskDepth"
)
BAR_HEADER = "Date, Time, Open, High, Low, Last, Volume, NumberOfTrades, BidVolume, AskVolume"


def utc_ns(*args: int) -> int:
    return datetime_to_ns(datetime(*args, tzinfo=UTC))  # type: ignore[misc]


def tas_row(seq: int, time: str, price: float = 4414.0, size: int = 1, tt: int = 2,
            ask: float = 4414.0, bid: float = 4413.75) -> str:  # fmt: skip
    return f"2023-06-29;{time};{seq};{seq - 1};{price};{size};{tt};{ask};{bid};41;57;1015"


def write_tas(path: Path, rows: list[str], gz: bool = False) -> Path:
    text = "\n".join([TAS_HEADER, *rows]) + "\n"
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def write_bars(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join([BAR_HEADER, *rows]) + "\n")
    return path


# --------------------------------------------------------------------------- time and sales


def test_clock_fraction_is_a_microsecond_count() -> None:
    ns, bad = parse_clock(pd.Series(["13:30:00.5001", "13:30:00.47000", "13:30:01", "13:30:00.000",
                                     "25:00:00", "junk"]))  # fmt: skip
    assert ns[:4].tolist() == [
        (13 * 3600 + 30 * 60) * 10**9 + 5_001_000,
        (13 * 3600 + 30 * 60) * 10**9 + 47_000_000,
        (13 * 3600 + 30 * 60 + 1) * 10**9,
        (13 * 3600 + 30 * 60) * 10**9,
    ]
    assert bad.tolist() == [False, False, False, False, True, True]


def test_clock_parsing_accepts_chunked_arrow_columns() -> None:
    import pyarrow as pa

    chunked = pa.chunked_array([["13:30:00.1"], ["13:30:01", "bad"]])
    col = pd.Series(pd.arrays.ArrowStringArray(chunked))
    ns, bad = parse_clock(col)
    assert ns[1] - ns[0] == 10**9 - 1_000 and bad.tolist() == [False, False, True]
    ts, bad_ts = parse_ts(pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([["1"], ["x"]]))))
    assert ts[0] == 1 and bad_ts.tolist() == [False, True]


def test_real_time_and_sales_2022(SHARED_DATA: Path) -> None:
    feed = SierraTimeAndSalesFeed(TAS_2022)
    trades, quotes = read_all(feed)
    assert len(trades) == 2026 and int(trades.size.sum()) == 2846
    assert (
        int((trades.side == 1).sum()) == 1016 and int(trades.size[trades.side == 1].sum()) == 1432
    )
    assert not trades.inferred.any() and feed.report.aggressor == {"exchange": 2026}
    assert int(trades.ts[0]) == utc_ns(2022, 1, 24, 13, 30) + 5_000_000  # "13:30:00.5000"
    assert (np.diff(trades.ts) >= 0).all()
    assert quotes is not None and len(quotes) == 2026
    # Every buy printed at or through the ask, every sell at or through the bid (173 buys and
    # 262 sells swept past the quoted level): the quote rule is 100 % right here too.
    buys, sells = trades.side == 1, trades.side == -1
    assert (trades.price[buys] >= quotes.ask[buys]).all()
    assert int((trades.price[buys] > quotes.ask[buys]).sum()) == 173
    assert (trades.price[sells] <= quotes.bid[sells]).all()
    assert int((trades.price[sells] < quotes.bid[sells]).sum()) == 262
    assert feed.contract.symbol == "ES" and not feed.report.skipped


def test_real_time_and_sales_2023_is_put_in_sequence_order(SHARED_DATA: Path) -> None:
    """This export was sorted by the time text; Sequence order restores time order exactly."""
    trades, _ = read_all(feed := SierraTimeAndSalesFeed(TAS_2023, batch_rows=100))
    assert len(trades) == 1026 and int(trades.size.sum()) == 1641
    assert not feed.report.skipped
    assert (np.diff(trades.ts) >= 0).all()
    assert int(trades.ts[0]) == utc_ns(2023, 6, 29, 13, 30)


def test_time_zone_parameter(SHARED_DATA: Path) -> None:
    utc, _ = read_all(SierraTimeAndSalesFeed(TAS_2022))
    chicago, _ = read_all(SierraTimeAndSalesFeed(TAS_2022, tz="America/Chicago"))
    assert int(chicago.ts[0] - utc.ts[0]) == 6 * 3600 * 10**9  # CST in January


def test_time_and_sales_bad_rows(tmp_path: Path) -> None:
    rows = [
        tas_row(10, "13:30:00.000"),
        tas_row(11, "13:30:00.1000", tt=0),  # no side: at the ask -> buy, inferred
        tas_row(11, "13:30:00.1000"),  # duplicate sequence
        tas_row(12, "13:30:00.2000", price=float("nan")),
        tas_row(13, "13:30:00.3000", price=0.0),
        tas_row(14, "13:30:00.4000", size=-1),
        tas_row(15, "13:30:00.5000", price=4414.1),
        tas_row(16, "25:30:00.5000"),
        tas_row(17, "13:29:00"),  # back in time
        tas_row(18, "13:30:00.6000", tt=0, price=4413.75),  # at the bid -> sell
        tas_row(19, "13:30:00.7000") + ";extra;fields",
        tas_row(20, "13:30:00.8000").replace("4414.0;1;", "abc;1;", 1),
    ]
    feed = SierraTimeAndSalesFeed(write_tas(tmp_path / "ES-tas.txt", rows), symbol="ESU3")
    trades, _ = read_all(feed)
    assert feed.report.skipped == {
        "duplicate Sequence number": 1,
        "price is NaN or infinite": 1,
        "price is zero or negative": 1,
        "size is zero or negative": 1,
        "price is off the tick grid": 1,
        "date or time unreadable": 1,
        "timestamp goes back in time": 1,
        "malformed row (wrong number of fields)": 1,
        "price is not a number": 1,
    }
    assert feed.report.rows_read == 12
    assert trades.side.tolist() == [1, 1, -1]
    assert trades.inferred.tolist() == [False, True, True]
    assert feed.report.aggressor == {"exchange": 1, "lee_ready": 2}
    assert feed.contract.symbol == "ESU3" and feed.contract.year == 2023


def test_time_and_sales_shuffled_rows_and_gzip(tmp_path: Path) -> None:
    rows = [tas_row(100 + i, f"13:30:{i:02d}.000") for i in range(30)]
    shuffled = rows[10:] + rows[:10]
    feed = SierraTimeAndSalesFeed(write_tas(tmp_path / "ES.txt.gz", shuffled, gz=True),
                                  batch_rows=7)  # fmt: skip
    batches = list(feed.batches())
    trades = np.concatenate([b.trades.ts for b in batches])
    assert len(trades) == 30 and (np.diff(trades) > 0).all()
    assert all(len(b.trades) <= 7 for b in batches)


def test_time_and_sales_mostly_out_of_order_is_refused(tmp_path: Path) -> None:
    rows = [tas_row(100 + i, f"13:{59 - i // 60:02d}:{59 - i % 60:02d}.000") for i in range(1200)]
    with pytest.raises(DataError, match="not sorted by time"):
        read_all(SierraTimeAndSalesFeed(write_tas(tmp_path / "ES.txt", rows)))


def test_time_and_sales_truncated_gzip(SHARED_DATA: Path, tmp_path: Path) -> None:
    cut = tmp_path / "ES-cut.txt.gz"
    raw = TAS_2023.read_bytes()
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated"):
        read_all(SierraTimeAndSalesFeed(cut))


def test_time_and_sales_without_sequence_streams_in_file_order(tmp_path: Path) -> None:
    lines = ["Date;Time;Price;Volume;TradeType;AskPrice;BidPrice"]
    lines += [
        f"2023-06-29;13:30:{i:02d};4414.0;1;{1 if i % 2 else 2};4414.0;4413.75" for i in range(9)
    ]
    path = tmp_path / "ES.txt"
    path.write_text("\n".join(lines) + "\n")
    trades, quotes = read_all(SierraTimeAndSalesFeed(path, batch_rows=4))
    assert trades.side.tolist() == [1, -1] * 4 + [1]
    assert quotes is not None and len(quotes) == 9
    header_only = tmp_path / "ES-empty.txt"
    header_only.write_text(TAS_HEADER + "\n")
    trades, _ = read_all(SierraTimeAndSalesFeed(header_only))
    assert len(trades) == 0


def test_time_and_sales_needs_a_contract(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--symbol"):
        SierraTimeAndSalesFeed(write_tas(tmp_path / "export.txt", [tas_row(1, "13:30:00")]))


# --------------------------------------------------------------------------- bars -> trades


def _convert(*bars: tuple[int, ...], length: int = 1000) -> list[tuple[int, int, int, int]]:
    a = np.array(bars, dtype=np.int64).reshape(-1, 7)
    start = np.arange(len(a), dtype=np.int64) * length
    made = bars_to_trades(start, np.full(len(a), length), *a.T)
    return list(zip(made.ts.tolist(), made.price.tolist(), made.size.tolist(),
                    made.side.tolist(), strict=True))  # fmt: skip


def test_up_bar_path_volume_and_split() -> None:
    # O, H, L, C, V, buy, sell (ticks): path 10 -> 9 -> 13 -> 12, 6 steps, 7 positions
    got = _convert((10, 13, 9, 12, 11, 6, 5))
    assert got == [
        (0, 10, 1, 1), (0, 10, 1, -1),  # the open prints first, at the bar start
        (142, 9, 1, 1), (142, 9, 1, -1),
        (428, 11, 1, 1), (428, 11, 1, -1),
        (714, 13, 1, 1), (714, 13, 1, -1),
        (857, 12, 2, 1), (857, 12, 1, -1),  # close last; it got the odd contract (nearest)
    ]  # fmt: skip


def test_down_bar_path_and_ties() -> None:
    # path 12 -> 13 -> 9 -> 10; all ticks get 1 contract; buys go to the ticks nearest the
    # close (10, then 9: for a down bar the lower tick is visited later)
    got = _convert((12, 13, 9, 10, 5, 2, 3))
    assert [g[1] for g in got] == [12, 13, 11, 9, 10]
    assert [(g[1], g[3]) for g in got if g[3] == 1] == [(9, 1), (10, 1)]
    assert [g[0] for g in got] == [0, 142, 428, 714, 857]


def test_open_equals_close_prints_at_both_ends() -> None:
    got = _convert((10, 11, 9, 10, 9, 5, 4))
    assert got == [
        (0, 10, 1, 1),
        (200, 9, 1, 1), (200, 9, 2, -1),
        (600, 11, 2, 1), (600, 11, 1, -1),
        (800, 10, 1, 1), (800, 10, 1, -1),
    ]  # fmt: skip


def test_unsplit_volume_is_side_zero_and_single_tick_bar() -> None:
    assert _convert((10, 10, 10, 10, 5, 2, 1)) == [(0, 10, 2, 1), (0, 10, 1, -1), (0, 10, 2, 0)]


def test_fewer_contracts_than_ticks() -> None:
    got = _convert((10, 12, 8, 11, 2, 1, 1))
    assert sorted((g[1], g[2]) for g in got) == [(11, 1), (12, 1)]  # nearest the close


def test_largest_remainder_is_exact_with_priority_ties() -> None:
    group = np.array([0, 0, 0, 1, 1], dtype=np.int64)
    out = largest_remainder(group, np.array([1, 1, 1, 2, 1]), np.array([2, 2]),
                            np.array([2, 0, 1, 0, 1]), 2)  # fmt: skip
    assert out.tolist() == [0, 1, 1, 1, 1]  # group 1: quotas 1.33 / 0.67 -> 1 / 1


bar_strategy = st.tuples(
    st.integers(0, 12), st.integers(0, 12), st.integers(0, 12), st.integers(0, 400),
    st.floats(0, 1), st.floats(0, 1),
)  # fmt: skip


def _bars(raw: list[tuple[int, int, int, int, float, float]]) -> tuple[np.ndarray, ...]:
    o, h, lo, c, v, b, s = ([] for _ in range(7))
    for x, y, z, vol, fa, fb in raw:
        low = 1000
        high = low + max(x, y, z)
        o.append(low + x)
        c.append(low + y)
        lo.append(low)
        h.append(high)
        v.append(vol)
        buy = int(vol * fa)
        b.append(buy)
        s.append(int((vol - buy) * fb) if fb < 0.5 else vol - buy)
    return tuple(np.array(a, dtype=np.int64) for a in (o, h, lo, c, v, b, s))


@settings(max_examples=150, deadline=None)
@given(st.lists(bar_strategy, min_size=1, max_size=12))
def test_bar_conversion_invariants(raw: list[tuple[int, int, int, int, float, float]]) -> None:
    o, h, lo, c, vol, buy, sell = _bars(raw)
    m = len(o)
    length = np.full(m, 300 * 10**9, dtype=np.int64)
    start = np.arange(m, dtype=np.int64) * 300 * 10**9
    made = bars_to_trades(start, length, o, h, lo, c, vol, buy, sell)
    assert (np.diff(made.ts) >= 0).all() and (made.size > 0).all()
    weights = np.bincount(made.bar, weights=made.size, minlength=m)
    assert np.array_equal(weights, vol)
    assert np.array_equal(
        np.bincount(made.bar, weights=made.size * (made.side == 1), minlength=m), buy
    )
    assert np.array_equal(
        np.bincount(made.bar, weights=made.size * (made.side == -1), minlength=m), sell
    )
    assert ((made.price >= lo[made.bar]) & (made.price <= h[made.bar])).all()
    assert (made.ts >= start[made.bar]).all() and (made.ts < (start + length)[made.bar]).all()
    for i in range(m):
        mine = np.flatnonzero(made.bar == i)
        if not len(mine):
            continue
        assert made.price[mine[-1]] == c[i]
        if vol[i] >= 2 * (h[i] - lo[i] + 1):
            assert made.price[mine[0]] == o[i] and made.ts[mine[0]] == start[i]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 15), st.integers(0, 200), st.floats(0, 1)),
                min_size=1, max_size=10))  # fmt: skip
def test_closed_form_buy_split_equals_generic_largest_remainder(
    raw: list[tuple[int, int, float]],
) -> None:
    n = np.array([r[0] for r in raw], dtype=np.int64)
    vol = np.array([r[1] for r in raw], dtype=np.int64)
    buy = np.array([int(r[1] * r[2]) for r in raw], dtype=np.int64)
    bar = np.repeat(np.arange(len(n)), n)
    rank = np.concatenate([np.random.default_rng(int(k)).permutation(k) for k in n])
    heavy = rank < (vol % n)[bar]
    weights = (vol // n)[bar] + heavy
    fast = _even_split_buys(vol, n, buy, bar, rank, heavy)
    assert np.array_equal(fast, largest_remainder(bar, weights, buy, rank, len(n)))


# --------------------------------------------------------------------------- bar files


def test_real_bar_file(SHARED_DATA: Path) -> None:
    feed = SierraBarFeed(BARS_ESH23)
    assert feed.contract.symbol == "ESH3" and feed.contract.year == 2023
    batches = list(feed.batches())
    trades = batches[0].trades.concat([b.trades for b in batches])
    assert feed.bar_length_ns == 300 * 10**9
    assert feed.report.rows_read == 17_118 and not feed.report.skipped
    assert int(trades.size.sum()) == 98_374_911  # the Volume column's sum
    assert int(trades.size[trades.side == 1].sum()) == 49_163_709  # AskVolume
    assert int(trades.size[trades.side == -1].sum()) == 49_211_202  # BidVolume
    assert trades.inferred.all() and feed.report.aggressor == {"bar_split": len(trades)}
    assert (np.diff(trades.ts) >= 0).all()
    assert all(len(b.trades) <= feed.batch_rows for b in batches)
    # 2022/12/19 00:00 CT = 06:00 UTC: the first bar opens at 3880.50 at its start
    assert int(trades.ts[0]) == utc_ns(2022, 12, 19, 6)
    assert int(trades.price[0]) == 3880.5 * 4
    # The RTH open bar of 2023-03-10 (08:30 CST = 14:30 UTC): buy total = its AskVolume
    t0 = utc_ns(2023, 3, 10, 14, 30)
    inside = (trades.ts >= t0) & (trades.ts < t0 + 300 * 10**9)
    assert int(trades.size[inside & (trades.side == 1)].sum()) == 25_440
    assert int(trades.size[inside & (trades.side == -1)].sum()) == 24_198
    assert int(trades.price[np.flatnonzero(inside)[0]]) == round(3913.5 * 4)
    # The last bar's last print is its close, 3957.25, before the bar ends (08:30 CST)
    assert int(trades.price[-1]) == 3957.25 * 4
    assert int(trades.ts[-1]) < utc_ns(2023, 3, 17, 13, 30)


def test_bar_file_bad_rows(tmp_path: Path) -> None:
    rows = [
        "2023/3/1, 08:30:00, 4000.00, 4001.00, 3999.00, 4000.50, 100, 80, 50, 50",
        "2023/3/1, 08:35:00, 4000.50, 4000.00, 4001.00, 4000.50, 100, 80, 50, 50",  # H < L
        "2023/3/1, 08:40:00, 4000.50, 4001.00, 4000.00, 4000.60, 100, 80, 50, 50",  # off grid
        "2023/3/1, 08:45:00, 4000.50, 4001.00, 4000.00, 4000.50, , 80, 50, 50",  # no volume
        "2023/3/1, 08:50:00, 4000.50, 4001.00, 4000.00, 4000.50, -5, 80, 50, 50",
        "2023/3/1, 08:20:00, 4000.50, 4001.00, 4000.00, 4000.50, 100, 80, 50, 50",  # back
        "2023/3/1, 08:55:00, 4000.50, 4001.00, 4000.00, 4000.50, 100, 80, 40, 70",  # A+B > V
        "2023/3/1, 09:00:00, 4000.50, 4001.00, 4000.00, 4000.50, 100, 80, 30, 30",  # A+B < V
        "2023/3/1, 09:05:00, 4000.50, 4001.00, 4000.00, 4000.50, 100, 80, 30, 30, 9",
        "2023/3/1, 09:10:00, 0, 4001.00, 4000.00, 4000.50, 100, 80, 30, 30",
    ]
    feed = SierraBarFeed(write_bars(tmp_path / "ESH23-CME.scid_BarData__5m.txt", rows))
    trades, quotes = read_all(feed)
    assert quotes is None
    assert feed.report.skipped == {
        "high below low, or open/close outside [low, high]": 1,
        "price is off the tick grid": 1,
        "field missing or not a number": 1,
        "volume negative or not a whole number": 1,
        "bar time goes back or repeats": 1,
        "malformed row (wrong number of fields)": 1,
        "price is zero or negative": 1,
    }
    assert feed.report.rows_read == 10
    assert int(trades.size.sum()) == 300
    assert int(trades.size[trades.side == 0].sum()) == 40
    # 70 : 40 scaled to 100 -> 64 : 36 (63.6 / 36.4)
    assert int(trades.size[trades.side == 1].sum()) == 50 + 64 + 30
    assert any("scaled down" in n for n in feed.report.notes)
    assert any("side 0" in n for n in feed.report.notes)


def test_bar_file_mostly_unusable_is_refused(tmp_path: Path) -> None:
    rows = [f"2023/3/1, 08:{i:02d}:00, 4000.10, 4001.00, 4000.00, 4000.50, 9, 8, 4, 5"
            for i in range(30)]  # fmt: skip
    with pytest.raises(DataError, match="unusable"):
        read_all(SierraBarFeed(write_bars(tmp_path / "ESH23.txt", rows)))


def test_bar_file_name_without_contract(tmp_path: Path) -> None:
    rows = ["2023/3/1, 08:30:00, 4000.00, 4001.00, 3999.00, 4000.50, 100, 80, 50, 50"]
    path = write_bars(tmp_path / "bars.txt", rows)
    with pytest.raises(DataError, match="--symbol"):
        SierraBarFeed(path)
    feed = SierraBarFeed(path, symbol="NQH3")
    trades, _ = read_all(feed)
    assert feed.contract.spec.root == "NQ" and int(trades.size.sum()) == 100
    assert "one bar only" in " ".join(feed.report.notes)


def test_bar_length_is_the_most_common_gap_and_bars_never_overlap(tmp_path: Path) -> None:
    times = ["08:30:00", "08:31:00", "08:32:00", "08:32:30", "08:33:30", "09:00:00"]
    rows = [f"2023/3/1, {t}, 4000.00, 4002.00, 3999.00, 4000.50, 200, 80, 100, 100" for t in times]
    feed = SierraBarFeed(write_bars(tmp_path / "ESH23.txt", rows))
    trades, _ = read_all(feed)
    assert feed.bar_length_ns == 60 * 10**9
    start = utc_ns(2023, 3, 1, 14, 32)  # 08:32 CST; the next bar starts 30 s later
    bar3 = (trades.ts >= start) & (trades.ts < start + 30 * 10**9)
    assert int(trades.size[bar3].sum()) == 200  # squeezed into the 30 s before the next bar
    bar4 = (trades.ts >= start + 30 * 10**9) & (trades.ts < start + 90 * 10**9)
    assert int(trades.size[bar4].sum()) == 200
    assert int(trades.ts[bar4].max()) > start + 80 * 10**9  # a full minute


def test_bar_file_prices_outside_a_sane_band_are_skipped(tmp_path: Path) -> None:
    rows = [
        f"2023/3/1, {8 + (30 + 5 * i) // 60:02d}:{(30 + 5 * i) % 60:02d}:00, 4000.00, "
        "4001.00, 3999.00, 4000.50, 100, 80, 50, 50"
        for i in range(30)
    ]
    rows[5] = rows[5].replace("4001.00", "1000000.00")  # a fat-fingered high
    rows[9] = rows[9].replace(
        "4000.00, 4001.00, 3999.00, 4000.50", "4000.00, 5200.00, 3999.00, 4000.50"
    )  # 30 % above the day
    feed = SierraBarFeed(write_bars(tmp_path / "ESH23-CME.scid_BarData__5m.txt", rows))
    trades, _ = read_all(feed)
    assert feed.report.skipped == {
        "price outside the instrument's plausible range 100 to 50000": 1,
        "price more than 20% from the day's median": 1,
    }
    assert feed.report.examples["price more than 20% from the day's median"] == "line 11"
    assert int(trades.price.max()) == 4 * 4001
