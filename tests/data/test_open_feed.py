"""`open_feed`: format detection, the MarketFeed contract for every reader, clear errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import zstandard

from fabio.data import (
    DbnFeed,
    MarketFeed,
    SierraBarFeed,
    SierraTimeAndSalesFeed,
    TabularFeed,
    detect_format,
    open_feed,
    read_all,
)
from fabio.errors import DataError

from .conftest import BARS_ESH23, MBO_FILE, MBP1_FILE, TAS_2022, TAS_2023, TRADES_FILE

T0 = 1_719_878_281_218_218_853


@pytest.mark.parametrize(
    ("path", "fmt", "cls"),
    [
        (MBO_FILE, "dbn", DbnFeed),
        (MBP1_FILE, "dbn", DbnFeed),
        (TAS_2022, "sierra-tas", SierraTimeAndSalesFeed),
        (BARS_ESH23, "sierra-bars", SierraBarFeed),
    ],
    ids=["mbo", "mbp1", "tas", "bars"],
)
def test_detects_the_shared_files(
    SHARED_DATA: Path,
    path: Path,
    fmt: str,
    cls: type,
) -> None:
    assert detect_format(path) == fmt
    feed = open_feed(path)
    assert isinstance(feed, cls) and isinstance(feed, MarketFeed)


@pytest.mark.parametrize(
    "path",
    [MBO_FILE, MBP1_FILE, TRADES_FILE, TAS_2023, BARS_ESH23],
    ids=["mbo", "mbp1", "trades", "tas", "bars"],
)
def test_every_feed_keeps_the_batch_contract(SHARED_DATA: Path, path: Path) -> None:
    feed = open_feed(path, batch_rows=50)
    batches = list(feed.batches())
    last = None
    for b in batches:
        assert len(b.trades) <= 50
        ts = b.trades.ts
        assert (np.diff(ts) >= 0).all()
        if len(ts) and last is not None:
            assert ts[0] >= last
        if b.quotes is not None and len(b.trades):
            assert (b.quotes.ts <= ts[-1]).all()
        if len(ts):
            last = int(ts[-1])
    trades, _ = read_all(open_feed(path))
    assert sum(len(b.trades) for b in batches) == len(trades) == feed.report.trades
    assert feed.report.aggressor.total() == feed.report.trades
    first = feed.report.to_dict()
    read_all(feed)  # a second pass counts afresh
    assert feed.report.to_dict() == first


def test_csv_and_parquet_detection(tmp_path: Path) -> None:
    csv = tmp_path / "trades.csv"
    csv.write_text(f"ts,price,size,side\n{T0},5000.00,1,B\n")
    assert detect_format(csv) == "csv"
    gz = tmp_path / "trades.csv.gz"
    gz.write_bytes(gzip.compress(csv.read_bytes()))
    assert detect_format(gz) == "csv"
    assert isinstance(open_feed(gz, symbol="ES"), TabularFeed)
    # A Sierra export named .csv is still recognised by its header
    bars = tmp_path / "ESH23.csv"
    bars.write_text(
        "Date, Time, Open, High, Low, Last, Volume, NumberOfTrades, BidVolume, AskVolume\n"
        "2023/3/1, 08:30:00, 4000.00, 4001.00, 3999.00, 4000.50, 100, 80, 50, 50\n"
    )
    assert detect_format(bars) == "sierra-bars"
    trades, quotes = read_all(open_feed(bars))
    assert int(trades.size.sum()) == 100 and quotes is None


def test_unknown_formats_name_the_supported_ones(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("hello,world\n1,2\n")
    with pytest.raises(DataError, match=r"(?s)cannot recognise.*Databento DBN.*Sierra Chart bars"):
        open_feed(junk)
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataError, match="Supported formats"):
        open_feed(binary)
    zst = tmp_path / "data.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(b"ts,price\n1,2\n"))
    with pytest.raises(DataError, match="not DBN"):
        open_feed(zst)


def test_missing_empty_and_truncated_files(SHARED_DATA: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        open_feed(tmp_path / "nope.dbn")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        open_feed(empty)
    empty_gz = tmp_path / "empty.txt.gz"
    empty_gz.write_bytes(gzip.compress(b""))
    with pytest.raises(DataError, match="empty"):
        open_feed(empty_gz)
    cut = tmp_path / "cut.dbn.zst"
    cut.write_bytes(MBP1_FILE.read_bytes()[:20_000])
    with pytest.raises(DataError, match="truncated"):
        read_all(open_feed(cut))
    cut_gz = tmp_path / "ESH23-cut.txt.gz"
    cut_gz.write_bytes(BARS_ESH23.read_bytes()[:50_000])
    with pytest.raises(DataError, match="truncated"):
        read_all(open_feed(cut_gz))
    broken_gz = tmp_path / "broken.csv.gz"
    broken_gz.write_bytes(b"\x1f\x8b" + b"\x00" * 50)
    with pytest.raises(DataError, match="broken"):
        read_all(open_feed(broken_gz))
