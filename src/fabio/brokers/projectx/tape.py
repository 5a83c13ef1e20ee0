"""The tape recorder: every market trade (with the prevailing best bid / ask) and every quote,
to daily Parquet files that `fabio backtest` reads.

Layout: `logs/tape/<ROOT>/<YYYY-MM-DD>.parquet` (trades: `ts, price, size, side, bid, ask,
bid_size, ask_size`, the symbol in the file's metadata) and `…/<YYYY-MM-DD>.quotes.parquet`. The
date is the UTC date of the prints. Rows are flushed every `flush_rows` or `flush_sec` to part
files beside the day (`.<date>.part-0001.parquet`), so a crash loses at most one flush; `close()`
and the next start merge a day's parts into its file.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

TRADE_SCHEMA = pa.schema(
    [
        ("ts", pa.int64()),
        ("price", pa.float64()),
        ("size", pa.int64()),
        ("side", pa.string()),
        ("bid", pa.float64()),
        ("ask", pa.float64()),
        ("bid_size", pa.int64()),
        ("ask_size", pa.int64()),
    ]
)
QUOTE_SCHEMA = pa.schema([("ts", pa.int64()), ("bid", pa.float64()), ("ask", pa.float64())])


def _day(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC).date().isoformat()


class TapeRecorder:
    """Buffers prints per symbol and day; writes part files; merges them into daily files."""

    def __init__(self, root: Path, flush_rows: int = 20_000, flush_sec: float = 5.0) -> None:
        self.root = root
        self.flush_rows = flush_rows
        self.flush_sec = flush_sec
        self._trades: dict[tuple[str, str], list[tuple[Any, ...]]] = defaultdict(list)
        self._quotes: dict[tuple[str, str], list[tuple[Any, ...]]] = defaultdict(list)
        self._symbols: dict[str, str] = {}
        self._last_flush = time.monotonic()
        self._parts = 0
        self.rows = 0
        self.errors: list[str] = []

    def trade(
        self,
        root: str,
        symbol: str,
        ts_ns: int,
        price: float,
        size: int,
        side: int,
        bid: float | None,
        ask: float | None,
    ) -> None:
        s = "B" if side > 0 else ("A" if side < 0 else "N")
        self._symbols[root] = symbol
        self._trades[(root, _day(ts_ns))].append((ts_ns, price, size, s, bid, ask, 0, 0))
        self.rows += 1
        self._maybe_flush()

    def quote(self, root: str, ts_ns: int, bid: float, ask: float) -> None:
        self._quotes[(root, _day(ts_ns))].append((ts_ns, bid, ask))
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        pending = sum(len(v) for v in self._trades.values())
        if pending >= self.flush_rows or time.monotonic() - self._last_flush > self.flush_sec:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        for (root, day), rows in list(self._trades.items()):
            if rows:
                self._write_part(root, day, "", rows, TRADE_SCHEMA)
        for (root, day), rows in list(self._quotes.items()):
            if rows:
                self._write_part(root, day, ".quotes", rows, QUOTE_SCHEMA)
        self._trades.clear()
        self._quotes.clear()

    def _write_part(
        self, root: str, day: str, kind: str, rows: list[tuple[Any, ...]], schema: pa.Schema
    ) -> None:
        folder = self.root / root
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._parts += 1
            cols = list(zip(*rows, strict=True))
            table = pa.table(
                {f.name: pa.array(c, f.type) for f, c in zip(schema, cols, strict=True)}
            )
            meta = {"fabio.symbol": self._symbols.get(root, root), "fabio.source": "projectx"}
            table = table.replace_schema_metadata(meta)
            name = f".{day}{kind}.part-{time.time_ns()}-{self._parts:05d}.parquet"
            tmp = folder / (name + ".tmp")
            pq.write_table(table, tmp, compression="zstd")
            tmp.replace(folder / name)
        except OSError as exc:  # the disk is full or gone: say so, keep trading
            self.errors.append(f"tape: cannot write {folder}: {exc}")

    def close(self) -> list[Path]:
        """Flush and merge every day's parts into its daily file; the daily files written."""
        self.flush()
        return merge_parts(self.root)


def merge_parts(root: Path) -> list[Path]:
    """Merge `.DAY[.quotes].part-*.parquet` into `DAY[.quotes].parquet` (appending to it)."""
    written: list[Path] = []
    if not root.exists():
        return written
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        groups: dict[str, list[Path]] = defaultdict(list)
        for part in folder.glob(".*.part-*.parquet"):
            groups[part.name[1:].split(".part-")[0]].append(part)
        for stem, parts in sorted(groups.items()):
            target = folder / f"{stem}.parquet"
            tables = [pq.read_table(target)] if target.exists() else []
            tables += [pq.read_table(p) for p in sorted(parts)]
            table = pa.concat_tables(tables, promote_options="default").sort_by("ts")
            tmp = folder / f".{stem}.merge.tmp"
            pq.write_table(table, tmp, compression="zstd")
            tmp.replace(target)
            for p in parts:
                p.unlink()
            written.append(target)
    return written
