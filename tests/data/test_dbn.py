"""Databento DBN reader: real CME files, the fast decoder against the object decoder, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zstandard

from fabio.data import read_all
from fabio.data.dbn import (
    LAYOUTS,
    DbnFeed,
    decode_columns,
    decode_objects,
    decompressed_chunks,
    record_dtype,
)
from fabio.errors import DataError

from .conftest import (
    DEFINITION_FILE,
    MBO_EARLY_FILE,
    MBO_FILE,
    MBP1_FILE,
    START_NS,
    TRADES_FILE,
    dbn_metadata,
    dbn_records,
    trade_records,
    write_dbn,
)

REAL = [MBO_FILE, MBO_EARLY_FILE, TRADES_FILE, MBP1_FILE]


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name[:30])
def test_fast_decoder_matches_databento_objects_bit_for_bit(SHARED_DATA: Path, path: Path) -> None:
    fast = decode_columns(path)
    slow = decode_objects(path)
    assert set(fast) == set(slow)
    for key, values in slow.items():
        assert np.array_equal(fast[key], values), key


def test_mbo_hour_has_2973_trades(SHARED_DATA: Path) -> None:
    feed = DbnFeed(MBO_FILE)
    assert feed.contract.symbol == "ESH4" and feed.contract.year == 2024
    trades, quotes = read_all(feed)
    assert quotes is None
    assert len(trades) == 2973  # action T only, not the 6,371 F records
    assert int(trades.size.sum()) == 9892
    assert feed.report.rows_read == 68_792
    assert int((trades.side[~trades.inferred] == 1).sum()) == 1542
    assert int((trades.side[~trades.inferred] == -1).sum()) == 1430
    # The one side-N print is the first of the session (the reopening): the tick rule has
    # nothing before it, so it stays unknown.
    assert int(trades.inferred.sum()) == 1 and bool(trades.inferred[0]) and trades.side[0] == 0
    assert feed.report.aggressor == {"exchange": 2972, "unknown": 1}
    assert not feed.report.skipped
    assert (np.diff(trades.ts) >= 0).all()
    assert trades.price.min() * 0.25 > 4000 and trades.price.max() * 0.25 < 5000


def test_mbo_earlier_slice_has_no_trades(SHARED_DATA: Path) -> None:
    feed = DbnFeed(MBO_EARLY_FILE)
    trades, _ = read_all(feed)
    assert len(trades) == 0
    assert feed.report.rows_read == 8725
    assert "no trades in this file" in feed.report.notes


def test_trades_file_and_mbp1_trades_agree(SHARED_DATA: Path) -> None:
    t_feed = DbnFeed(TRADES_FILE)
    trades, quotes = read_all(t_feed)
    assert quotes is None
    assert len(trades) == 120 and int(trades.size.sum()) == 253
    assert t_feed.contract.symbol == "ESU4"
    m_feed = DbnFeed(MBP1_FILE)
    m_trades, m_quotes = read_all(m_feed)
    for name in ("ts", "price", "size", "side"):
        assert np.array_equal(getattr(trades, name), getattr(m_trades, name)), name
    assert m_quotes is not None and len(m_quotes) == 2288  # every MBP-1 record is a book state
    assert m_feed.report.quotes == 2288
    assert (m_quotes.ask > m_quotes.bid).all()
    assert int(trades.price[0]) == round(5528.75 / 0.25)


def test_mbp1_batches_align_quotes_with_trades(SHARED_DATA: Path) -> None:
    batches = list(DbnFeed(MBP1_FILE, batch_rows=16).batches())
    assert sum(len(b.trades) for b in batches) == 120
    assert all(len(b.trades) <= 16 for b in batches)
    prev_last = None
    for b in batches:
        assert b.quotes is not None
        if len(b.trades):
            last = int(b.trades.ts[-1])
            assert (b.quotes.ts <= last).all()
            if prev_last is not None:
                assert (b.quotes.ts >= prev_last).all()
            prev_last = last
    assert len(batches[-1].trades) == 0 and len(batches[-1].quotes or []) > 0
    assert sum(len(b.quotes or []) for b in batches) == 2288


def test_plain_dbn_reads_like_zst(SHARED_DATA: Path, tmp_path: Path) -> None:
    plain = tmp_path / "trades.dbn"
    plain.write_bytes(b"".join(decompressed_chunks(TRADES_FILE)))
    a, _ = read_all(DbnFeed(plain))
    b, _ = read_all(DbnFeed(TRADES_FILE))
    assert np.array_equal(a.ts, b.ts) and np.array_equal(a.price, b.price)


def test_definition_file_is_refused(SHARED_DATA: Path) -> None:
    with pytest.raises(DataError, match="contains instrument definitions, not trades"):
        DbnFeed(DEFINITION_FILE)


def test_truncated_zst_is_a_data_error(SHARED_DATA: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.dbn.zst"
    raw = MBO_FILE.read_bytes()
    cut.write_bytes(raw[: len(raw) // 2])
    feed = DbnFeed(cut)  # the metadata frame is intact
    with pytest.raises(DataError, match="truncated"):
        read_all(feed)


def test_corrupt_zst_is_a_data_error(SHARED_DATA: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.dbn.zst"
    raw = bytearray(MBO_FILE.read_bytes())
    raw[400:600] = b"\x00" * 200
    bad.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"bad\.dbn\.zst"):
        read_all(DbnFeed(bad))


def test_zst_of_garbage_and_empty_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.dbn.zst"
    junk.write_bytes(zstandard.ZstdCompressor().compress(b"not a dbn file at all"))
    with pytest.raises(DataError, match="not a DBN file"):
        DbnFeed(junk)
    empty = tmp_path / "empty.dbn"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        DbnFeed(empty)


def test_record_cut_in_the_middle(tmp_path: Path) -> None:
    recs = trade_records([START_NS + 1, START_NS + 2], [5000.0, 5000.25], [1, 1], "BA")
    path = write_dbn(tmp_path / "cut.dbn", "trades", recs.tobytes()[:-10], {"ESU4": 118})
    with pytest.raises(DataError, match="ends inside a record"):
        read_all(DbnFeed(path))


def test_undefined_price_and_side_n_without_quotes(tmp_path: Path) -> None:
    ts = [START_NS + i for i in range(5)]
    recs = trade_records(ts, [5000.0, 5000.25, 1.0, 5000.25, 5000.0], [1, 2, 3, 4, 5], "BNNNN")
    recs["price"][2] = 9_223_372_036_854_775_807
    feed = DbnFeed(write_dbn(tmp_path / "t.dbn", "trades", recs, {"ESU4": 118}))
    trades, _ = read_all(feed)
    assert feed.report.skipped == {"price undefined (INT64_MAX)": 1}
    assert trades.size.tolist() == [1, 2, 4, 5]
    assert trades.side.tolist() == [1, 1, 1, -1]  # tick rule: uptick, zero tick, downtick
    assert trades.inferred.tolist() == [False, True, True, True]
    assert feed.report.aggressor == {"exchange": 1, "tick_rule": 3}


def test_side_n_with_quotes_uses_lee_ready(tmp_path: Path) -> None:
    recs = dbn_records("mbp-1", 4)
    recs["ts_event"] = [START_NS + i for i in range(4)]
    recs["instrument_id"] = 118
    recs["action"] = [ord(c) for c in "ATTT"]
    recs["side"] = [ord(c) for c in "BNNN"]
    recs["price"] = [int(p * 1e9) for p in (5000.0, 5000.25, 5000.0, 5000.125 + 0.125)]
    recs["size"] = [3, 1, 1, 1]
    recs["bid_px"] = int(5000.0 * 1e9)
    recs["ask_px"] = int(5000.25 * 1e9)
    recs["bid_sz"] = 10
    recs["ask_sz"] = 12
    recs["ask_px"][3] = int(5000.5 * 1e9)  # last trade at the midpoint of 5000.0 / 5000.5
    feed = DbnFeed(write_dbn(tmp_path / "m.dbn", "mbp-1", recs, {"ESU4": 118}))
    trades, quotes = read_all(feed)
    assert trades.side.tolist() == [1, -1, 1]  # at ask, at bid, at mid after an uptick
    assert trades.inferred.all()
    assert feed.report.aggressor == {"lee_ready": 3}
    assert quotes is not None and len(quotes) == 4
    assert quotes.bid_size.tolist() == [10] * 4


def test_mixed_instruments(tmp_path: Path) -> None:
    a = trade_records([START_NS + 1, START_NS + 3], [5000.0, 5000.25], [1, 1], "BA", 118)
    b = trade_records([START_NS + 2], [5100.0], [7], "B", 119)
    body = a[:1].tobytes() + b.tobytes() + a[1:].tobytes()  # (np.concatenate drops padding)
    symbols = {"ESU4": 118, "ESZ4": 119}
    path = write_dbn(tmp_path / "two.dbn", "trades", body, symbols)
    with pytest.raises(DataError, match=r"ESU4, ESZ4.*--symbol"):
        DbnFeed(path)
    feed = DbnFeed(path, symbol="ESZ4")
    trades, _ = read_all(feed)
    assert trades.size.tolist() == [7] and feed.contract.symbol == "ESZ4"
    assert "records of other instruments ignored: 2" in feed.report.notes
    with pytest.raises(DataError, match="no ESH5 in this file"):
        DbnFeed(path, symbol="ESH5")
    only_u = write_dbn(tmp_path / "one.dbn", "trades", body, {"ESU4": 118})
    feed = DbnFeed(only_u)
    assert read_all(feed)[0].size.tolist() == [1, 1]
    spread = write_dbn(tmp_path / "spread.dbn", "trades", body, {"ESU4": 118, "ESU4-ESZ4": 119})
    feed = DbnFeed(spread)
    assert feed.contract.symbol == "ESU4" and read_all(feed)[0].size.tolist() == [1, 1]
    assert "ignoring ESU4-ESZ4" in feed.report.notes


def test_other_record_types_are_walked_over(tmp_path: Path) -> None:
    """Live-style streams interleave other records (here a 32-byte one): the slow path copes."""
    recs = trade_records([START_NS + 1, START_NS + 2], [5000.0, 5000.25], [1, 2], "BA")
    other = np.zeros(32, dtype=np.uint8)
    other[0], other[1] = 8, 0x17
    body = recs[:1].tobytes() + other.tobytes() + recs[1:].tobytes()
    feed = DbnFeed(write_dbn(tmp_path / "mixed.dbn", "trades", body, {"ESU4": 118}))
    trades, _ = read_all(feed)
    assert trades.size.tolist() == [1, 2]
    assert feed.report.rows_read == 3


def test_time_going_back_is_skipped(tmp_path: Path) -> None:
    ts = [START_NS + i for i in (1, 2, 3, 1, 5, 6)]
    recs = trade_records(ts, [5000.0] * 6, [1] * 6, "BBBBBB")
    feed = DbnFeed(write_dbn(tmp_path / "back.dbn", "trades", recs, {"ESU4": 118}))
    trades, _ = read_all(feed)
    assert len(trades) == 5
    assert feed.report.skipped == {"timestamp goes back in time": 1}


def test_unsupported_schema(tmp_path: Path) -> None:
    path = tmp_path / "ohlcv.dbn"
    path.write_bytes(write_dbn(tmp_path / "x.dbn", "ohlcv-1m", b"", {"ESU4": 118}).read_bytes())
    with pytest.raises(DataError, match="schema 'ohlcv-1m' has no individual trades"):
        DbnFeed(path)


def test_records_with_ts_out(tmp_path: Path) -> None:
    """Live-gateway files append each record's send time: 8 more bytes per record."""
    recs = np.zeros(2, dtype=record_dtype(LAYOUTS["trades"], ts_out=True))
    recs["length"], recs["rtype"], recs["instrument_id"] = 56 // 4, 0, 118
    recs["ts_event"] = [START_NS + 1, START_NS + 2]
    recs["price"], recs["size"] = 5000 * 10**9, [1, 2]
    recs["action"], recs["side"] = ord("T"), ord("A")
    path = tmp_path / "ts_out.dbn"
    path.write_bytes(dbn_metadata("trades", {"ESU4": 118}, ts_out=True) + recs.tobytes())
    assert decode_columns(path)["size"].tolist() == decode_objects(path)["size"].tolist() == [1, 2]
    trades, _ = read_all(DbnFeed(path))
    assert trades.side.tolist() == [-1, -1] and trades.price.tolist() == [20000, 20000]
