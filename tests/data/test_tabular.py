"""CSV / Parquet trade tables: parsing, sides, quotes, symbols and bad rows."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fabio.data import read_all
from fabio.data.tabular import Batcher, TabularFeed, parse_side, parse_ts
from fabio.domain import QuoteBatch, TradeBatch
from fabio.errors import DataError

T0 = 1_719_878_281_218_218_853  # 2024-07-01T23:58:01.218218853Z


def write_csv(path: Path, lines: list[str], gz: bool = False) -> Path:
    text = "\n".join(lines) + "\n"
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def test_ns_timestamps_sides_and_tick_rule(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "t.csv",
        [
            "TS,Price,SIZE,Side",  # the header is case-insensitive
            f"{T0},5528.75,2,B",
            f"{T0 + 1},5529.00,1,N",  # uptick -> buy
            f"{T0 + 2},5529.00,1,",  # zero tick -> buy
            f"{T0 + 3},5528.75,3,S",
            f"{T0 + 4},5528.50,1,0",  # downtick -> sell
        ],
    )
    feed = TabularFeed(path, symbol="ESU4")
    trades, quotes = read_all(feed)
    assert quotes is None
    assert trades.ts.tolist() == [T0 + i for i in range(5)]  # exact: no float round trip
    assert trades.price.tolist() == [22115, 22116, 22116, 22115, 22114]
    assert trades.side.tolist() == [1, 1, 1, -1, -1]
    assert trades.inferred.tolist() == [False, True, True, False, True]
    assert feed.report.aggressor == {"exchange": 2, "tick_rule": 3}
    assert feed.contract.symbol == "ESU4" and feed.contract.year == 2024


def test_iso_timestamps(tmp_path: Path) -> None:
    lines = [
        "ts,price,size,side",
        "2024-07-01T23:58:01.218218853Z,5528.75,1,B",
        "2024-07-01 23:58:02,5528.75,1,B",  # naive = UTC
        "2024-07-01T18:58:03-05:00,5528.75,1,B",
        "2024-07-01T23:58:04.5+00:00,5528.75,1,B",
    ]
    trades, _ = read_all(TabularFeed(write_csv(tmp_path / "iso.csv", lines), symbol="ES"))
    second = 1_000_000_000
    base = T0 - 218_218_853 - second  # 23:58:00
    assert trades.ts.tolist() == [T0, base + 2 * second, base + 3 * second, base + 4_500_000_000]
    chicago, _ = read_all(
        TabularFeed(write_csv(tmp_path / "iso2.csv", lines[:3]), symbol="ES", tz="America/Chicago")
    )
    assert int(chicago.ts[1]) == base + 2 * second + 5 * 3600 * second  # CDT is UTC-5


def test_side_words() -> None:
    words = ["B", "buy", "1", "+1", "A", "S", "sell", "-1", "N", "", "0", None, "X"]
    side, bad = parse_side(pd.Series(words, dtype="str"))
    assert side.tolist() == [1, 1, 1, 1, -1, -1, -1, -1, 0, 0, 0, 0, 0]
    assert bad.tolist() == [False] * 12 + [True]
    side, bad = parse_side(pd.Series([1.0, -1.0, 0.0, np.nan, 2.0]))
    assert side.tolist() == [1, -1, 0, 0, 0] and bad.tolist() == [False] * 4 + [True]


def test_parse_ts_flags_unreadable_values() -> None:
    ts, bad = parse_ts(
        pd.Series([str(T0), "yesterday", None, "2024-13-01", "99999999999999999999"], dtype="str")
    )
    assert int(ts[0]) == T0 and bad.tolist() == [False, True, True, True, True]


def test_quotes_and_lee_ready(tmp_path: Path) -> None:
    lines = [
        "ts,price,size,side,bid,ask,bid_size,ask_size",
        f"{T0},5528.75,2,N,5528.50,5528.75,29,6",  # at the ask -> buy
        f"{T0 + 5},5528.50,1,N,5528.50,5528.75,29,4",  # at the bid -> sell
        f"{T0 + 9},5528.75,1,B,,,,",  # no quote: the trade stays, the quote is dropped
    ]
    feed = TabularFeed(write_csv(tmp_path / "q.csv", lines), symbol="ESU4")
    trades, quotes = read_all(feed)
    assert trades.side.tolist() == [1, -1, 1]
    assert feed.report.aggressor == {"lee_ready": 2, "exchange": 1}
    assert quotes is not None and quotes.bid.tolist() == [22114, 22114]
    assert quotes.ask_size.tolist() == [6, 4]
    assert "1 quotes without a bid or an ask dropped" in feed.report.notes


def test_bad_rows_are_counted(tmp_path: Path) -> None:
    lines = ["ts,price,size,side"]
    rows = [
        "5000.00,1,B",
        "nan,1,B",
        "0,1,B",
        "5000.00,-2,B",
        "5000.00,1.5,B",
        "5000.10,1,B",
        "abc,1,B",
        "5000.00,1,Q",
        "5000.00,1,B,extra",
        "5000.25,1,A",
    ]
    lines += [f"{T0 + i},{r}" for i, r in enumerate(rows)]
    lines.insert(3, "not-a-time,5000.00,1,B")
    lines.append(f"{T0 - 5},5000.00,1,B")  # back in time
    feed = TabularFeed(write_csv(tmp_path / "bad.csv", lines), symbol="ESU4")
    trades, _ = read_all(feed)
    assert trades.price.tolist() == [20000, 20001]
    assert feed.report.skipped == {
        "price is NaN or infinite": 1,
        "price is zero or negative": 1,
        "size is zero or negative": 1,
        "size is not a whole number": 1,
        "price is off the tick grid": 1,
        "price is not a number": 1,
        "side not understood (expected B/BUY/1, A/S/SELL/-1, N/0/blank)": 1,
        "malformed row (wrong number of fields)": 1,
        "timestamp missing or unreadable": 1,
        "timestamp goes back in time": 1,
    }
    assert feed.report.rows_read == 12
    assert feed.report.examples["malformed row (wrong number of fields)"] == "line 11"


def test_mostly_out_of_order_is_refused(tmp_path: Path) -> None:
    lines = ["ts,price,size,side"] + [f"{T0 - i},5000.00,1,B" for i in range(1200)]
    with pytest.raises(DataError, match="not sorted by time"):
        read_all(TabularFeed(write_csv(tmp_path / "rev.csv", lines), symbol="ES"))


def test_small_mostly_bad_file_is_refused(tmp_path: Path) -> None:
    lines = ["ts,price,size,side"] + [f"{T0 + i},5000.10,1,B" for i in range(30)]
    with pytest.raises(DataError, match="unusable"):
        read_all(TabularFeed(write_csv(tmp_path / "grid.csv", lines), symbol="ES"))


def test_chunks_gzip_and_batches(tmp_path: Path) -> None:
    lines = ["ts,price,size,side"] + [
        f"{T0 + i},{5000 + (i % 4) * 0.25:.2f},1,B" for i in range(95)
    ]
    feed = TabularFeed(write_csv(tmp_path / "t.csv.gz", lines, gz=True), symbol="ES", batch_rows=10)
    batches = list(feed.batches())
    assert [len(b.trades) for b in batches] == [10] * 9 + [5]
    assert feed.report.rows_read == 95 and feed.report.trades == 95


def test_truncated_gzip(tmp_path: Path) -> None:
    lines = ["ts,price,size,side"] + [f"{T0 + i},5000.00,{i % 7 + 1},B" for i in range(5000)]
    good = write_csv(tmp_path / "t.csv.gz", lines, gz=True)
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.csv\.gz.*truncated"):
        read_all(TabularFeed(cut, symbol="ES", batch_rows=500))


def test_symbol_column(tmp_path: Path) -> None:
    lines = ["ts,price,size,side,symbol", f"{T0},5000.00,1,B,ESU4", f"{T0 + 1},5000.25,2,A,ESZ4"]
    path = write_csv(tmp_path / "two.csv", lines)
    with pytest.raises(DataError, match="ESU4, ESZ4"):
        TabularFeed(path)
    feed = TabularFeed(path, symbol="ESZ4")
    trades, _ = read_all(feed)
    assert trades.size.tolist() == [2] and feed.report.rows_read == 1
    assert "rows of other symbols ignored: 1" in feed.report.notes
    one = write_csv(tmp_path / "one.csv", lines[:2])
    assert TabularFeed(one).contract.symbol == "ESU4"
    long_names = write_csv(tmp_path / "long.csv", [lines[0], f"{T0},5000.00,1,B,ESU2024"])
    assert len(read_all(TabularFeed(long_names, symbol="ESU4"))[0]) == 1


def test_missing_symbol_columns_and_units(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", ["ts,price,size", f"{T0},5000.00,1"])
    with pytest.raises(DataError, match="--symbol"):
        TabularFeed(path)
    with pytest.raises(DataError, match="missing column"):
        TabularFeed(
            write_csv(tmp_path / "m.csv", ["ts,px_last,size", f"{T0},5000.00,1"]), symbol="ES"
        )
    with pytest.raises(DataError, match="seconds or milliseconds"):
        TabularFeed(
            write_csv(tmp_path / "s.csv", ["ts,price,size", "1719878281,5000.00,1"]), symbol="ES"
        )
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        TabularFeed(empty, symbol="ES")
    header_only = write_csv(tmp_path / "h.csv", ["ts,price,size,side"])
    trades, _ = read_all(TabularFeed(header_only, symbol="ES"))
    assert len(trades) == 0


def _parquet(path: Path, table: pa.Table, symbol: str | None) -> Path:
    if symbol is not None:
        table = table.replace_schema_metadata({"fabio.symbol": symbol})
    pq.write_table(table, path)
    return path


def test_parquet_with_symbol_metadata(tmp_path: Path) -> None:
    table = pa.table(
        {
            "ts": pa.array([T0, T0 + 1, T0 + 2], pa.int64()),
            "price": [5000.0, 5000.25, 5000.0],
            "size": pa.array([1, 2, 3], pa.int64()),
            "side": ["B", "A", "N"],
            "bid": [4999.75, 5000.0, 5000.0],
            "ask": [5000.0, 5000.25, 5000.25],
        }
    )
    path = _parquet(tmp_path / "t.parquet", table, "NQH5")
    feed = TabularFeed(path, batch_rows=2)
    assert feed.contract.symbol == "NQH5" and feed.contract.year == 2025
    trades, quotes = read_all(feed)
    assert trades.side.tolist() == [1, -1, -1] and trades.inferred.tolist() == [False, False, True]
    assert quotes is not None and len(quotes) == 3 and quotes.bid_size.tolist() == [0, 0, 0]
    assert feed.report.format == "parquet"
    with pytest.raises(DataError, match="--symbol"):
        TabularFeed(_parquet(tmp_path / "nosym.parquet", table, None))
    over = TabularFeed(path, symbol="NQM5")
    assert over.contract.symbol == "NQM5" and "overrides" in over.report.notes[0]


def test_parquet_timestamp_type_and_numeric_side(tmp_path: Path) -> None:
    table = pa.table(
        {
            "timestamp": pa.array([T0, T0 + 1000], pa.timestamp("ns", tz="UTC")),
            "Price": [5000.0, 5000.25],
            "Qty": [1.0, 2.0],
            "side": pa.array([1, -1], pa.int8()),
        }
    )
    trades, _ = read_all(TabularFeed(_parquet(tmp_path / "t.parquet", table, "ESU4")))
    assert trades.ts.tolist() == [T0, T0 + 1000] and trades.side.tolist() == [1, -1]


def test_corrupt_parquet(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1" + b"\x00" * 100)
    with pytest.raises(DataError, match=r"bad\.parquet"):
        TabularFeed(bad, symbol="ES")


def test_batcher_waits_for_quotes_of_the_same_time() -> None:
    b = Batcher(2, has_quotes=True)
    t = TradeBatch.from_arrays([1, 2, 3], [1, 1, 1], [1, 1, 1], [1, 1, 1])
    q = QuoteBatch.from_arrays([1, 2], [1, 1], [2, 2], [1, 1], [1, 1])
    assert list(b.add(t, q, watermark=2)) == []  # a quote at ts 2 may still come
    out = list(
        b.add(TradeBatch.empty(), QuoteBatch.from_arrays([2, 3], [1, 1], [2, 2], [1, 1], [1, 1]), 3)
    )
    assert len(out) == 1 and out[0].quotes is not None and out[0].quotes.ts.tolist() == [1, 2, 2]
    rest = list(b.finish())
    assert [len(m.trades) for m in rest] == [1]
    assert rest[0].quotes is not None and rest[0].quotes.ts.tolist() == [3]


def test_prices_outside_a_sane_band_are_skipped_and_counted(tmp_path: Path) -> None:
    """Issue 13 item 5: 1e12 crashed a profile (29 TiB); 1,000,000 became its high and VAH."""
    rows = [f"{T0 + i},{5000 + (i % 8) * 0.25:.2f},1,B" for i in range(60)]
    rows[10] = f"{T0 + 10},1000000000000,1,B"  # beyond any plausible ES price
    rows[20] = f"{T0 + 20},1000000.00,1,B"  # beyond any plausible ES price
    rows[30] = f"{T0 + 30},6500.00,1,B"  # plausible for ES, but 30 % from this market
    feed = TabularFeed(
        write_csv(tmp_path / "fat.csv", ["ts,price,size,side", *rows]), symbol="ESU4"
    )
    trades, _ = read_all(feed)
    assert len(trades) == 57 and int(trades.price.max()) == 4 * 5001.75
    assert feed.report.skipped == {
        "price outside the instrument's plausible range 100 to 50000": 2,
        "price more than 20% from the recent median": 1,
    }
    assert (
        feed.report.examples["price outside the instrument's plausible range 100 to 50000"]
        == "line 12"
    )  # the header is line 1: row 10 is line 12
    assert feed.report.examples["price more than 20% from the recent median"] == "line 32"


def test_profile_of_a_file_with_a_fat_finger_print_is_sane(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    rows = [f"{T0 + i * 10**9},{5000 + (i % 8) * 0.25:.2f},1,B" for i in range(600)]
    rows[100] = f"{T0 + 100 * 10**9},1e12,1,B"
    rows[200] = f"{T0 + 200 * 10**9},1000000,1,B"
    path = write_csv(tmp_path / "ESU4.csv", ["ts,price,size,side", *rows])
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from fabio.cli import main; main()",
            "profile",
            str(path),
            "--eth",
            "--symbol",
            "ESU4",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    profile = json.loads(result.stdout)
    assert profile["high"] == 5001.75 and profile["vah"] <= 5001.75
    assert "2 price outside" in result.stderr or "skipped 2" in result.stderr


def test_skipped_rows_are_always_cited_as_line_n(tmp_path: Path) -> None:
    """Issue 13 item 9: one form ("line N", the file's line) for every reason of a text file,
    also after earlier rows were dropped (lines do not shift) and in gzip files."""
    lines = [
        "ts,price,size,side",
        f"{T0},5000.00,1,B",  # line 2
        f"{T0 + 1},5000.00,1,B,extra",  # line 3: wrong number of fields
        "",  # line 4: blank, passed over
        f"{T0 + 2},abc,1,B",  # line 5: not a number
        f"{T0 + 3},5000.10,1,B",  # line 6: off the grid (sanitizer)
        f"{T0 + 4},5000.00,0,B",  # line 7: size zero (sanitizer)
        f"{T0 - 9},5000.00,1,B",  # line 8: back in time (sanitizer)
    ] + [f"{T0 + 10 + i},5000.25,1,A" for i in range(30)]
    for gz in (False, True):
        feed = TabularFeed(
            write_csv(tmp_path / f"l.csv{'.gz' if gz else ''}", lines, gz=gz),
            symbol="ESU4",
            batch_rows=4,
        )
        read_all(feed)
        assert feed.report.examples == {
            "malformed row (wrong number of fields)": "line 3",
            "price is not a number": "line 5",
            "price is off the tick grid": "line 6",
            "size is zero or negative": "line 7",
            "timestamp goes back in time": "line 8",
        }
    table = pa.table(
        {"ts": [T0, T0 + 1, T0 + 2], "price": [5000.0, -1.0, 5000.25], "size": [1, 1, 1]}
    )
    pq.write_table(table, tmp_path / "t.parquet")
    feed = TabularFeed(tmp_path / "t.parquet", symbol="ESU4")
    read_all(feed)
    assert feed.report.examples == {"price is zero or negative": "record 2"}
