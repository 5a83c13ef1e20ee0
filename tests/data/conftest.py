"""Shared fixtures for the data readers: the real CME files and small hand-made DBN files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import databento_dbn as dbn
import numpy as np
import pytest
from numpy.typing import NDArray

from fabio.data.dbn import LAYOUTS, record_dtype

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DATABENTO = SHARED / "databento"
MBO_FILE = DATABENTO / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"
MBO_EARLY_FILE = DATABENTO / "esh4-glbx-mdp3-20231224.mbo.dbn.zst"
TRADES_FILE = DATABENTO / "futures_trades_2024-07-01T23-58_2024-07-02T00-02.dbn.zst"
MBP1_FILE = DATABENTO / "futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02.dbn.zst"
DEFINITION_FILE = DATABENTO / "definition-glbx-es-fut.dbn.zst"
TAS_2022 = SHARED / "sierra-tbt" / "ES-2022-01-24-rth-open.txt.gz"
TAS_2023 = SHARED / "sierra-tbt" / "ES-2023-06-29-rth-open.txt.gz"
BARS_ESH23 = SHARED / "es-5m-sierra" / "ESH23-CME.scid_BarData__5m.txt.gz"


@pytest.fixture(scope="session")
def SHARED_DATA() -> Path:
    """The real market data folder; tests that need it skip when it is absent (a fresh clone)."""
    if not SHARED.is_dir():
        pytest.skip(f"real market data not found at {SHARED} (only present in CI / dev setups)")
    return SHARED


class _Interval:
    def __init__(self, start: dt.date, end: dt.date, symbol: str) -> None:
        self.start_date = start
        self.end_date = end
        self.symbol = symbol


class _Mapping:
    def __init__(self, raw: str, intervals: list[_Interval]) -> None:
        self.raw_symbol = raw
        self.intervals = intervals


START_NS = 1_719_878_280_000_000_000  # 2024-07-01 23:58 UTC


def dbn_metadata(schema: str, symbols: dict[str, int], ts_out: bool = False) -> bytes:
    """Encoded DBN metadata mapping raw symbols to instrument ids."""
    day = dt.date(2024, 7, 1)
    meta = dbn.Metadata(
        dataset="GLBX.MDP3",
        schema=dbn.Schema(schema),
        start=START_NS,
        end=START_NS + 240_000_000_000,
        stype_in=dbn.SType.RAW_SYMBOL,
        stype_out=dbn.SType.INSTRUMENT_ID,
        symbols=list(symbols),
        partial=[],
        not_found=[],
        mappings=[
            _Mapping(raw, [_Interval(day, day + dt.timedelta(days=2), str(iid))])
            for raw, iid in symbols.items()
        ],
        ts_out=ts_out,
    )
    return bytes(meta.encode())


def dbn_records(schema: str, n: int) -> NDArray[np.void]:
    """`n` zeroed records of a schema with length/rtype set, ready to fill."""
    layout = LAYOUTS[schema]
    recs = np.zeros(n, dtype=record_dtype(layout, False))
    recs["length"] = layout.size // 4
    recs["rtype"] = layout.rtype
    recs["publisher_id"] = 1
    return recs


def trade_records(
    ts: list[int], price: list[float], size: list[int], side: str, instrument_id: int = 118
) -> NDArray[np.void]:
    recs = dbn_records("trades", len(ts))
    recs["ts_event"] = ts
    recs["ts_recv"] = ts
    recs["price"] = np.rint(np.asarray(price) * 1e9).astype(np.int64)
    recs["size"] = size
    recs["action"] = ord("T")
    recs["side"] = [ord(c) for c in side]
    recs["instrument_id"] = instrument_id
    return recs


def write_dbn(
    path: Path, schema: str, records: NDArray[np.void] | bytes, symbols: dict[str, int]
) -> Path:
    body = records if isinstance(records, bytes) else records.tobytes()
    path.write_bytes(dbn_metadata(schema, symbols) + body)
    return path
