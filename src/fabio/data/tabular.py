"""Plain trade tables (CSV, gzip CSV, Parquet: `ts, price, size, side`), and the plumbing every
reader shares: error wrapping, quote cleaning, side classification and batching.

The shared helpers live here rather than in `base.py` so that the readers depend on one module;
they hold no format-specific logic.
"""

from __future__ import annotations

import csv
import gzip
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import zstandard
from databento_dbn import DBNError
from numpy.typing import NDArray

from fabio.data.aggressor import TickRule, count_sources, lee_ready
from fabio.data.base import (
    DEFAULT_BATCH_ROWS,
    TradeSanitizer,
    check_mostly_readable,
    price_limits,
    require_file,
)
from fabio.domain import AggressorSource, LoadReport, MarketBatch, QuoteBatch, TradeBatch
from fabio.errors import DataError, InstrumentError
from fabio.instruments import Contract, parse_symbol

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
I8 = NDArray[np.int8]
Mask = NDArray[np.bool_]

# Library exceptions that mean "this file is broken", never "the code is broken".
FILE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    zlib.error,
    UnicodeDecodeError,
    pd.errors.ParserError,
    pd.errors.EmptyDataError,
    pa.ArrowException,
    zstandard.ZstdError,
    DBNError,
)

GZIP_MAGIC = b"\x1f\x8b"


def describe_error(exc: BaseException) -> str:
    """A user-facing reason for a library exception."""
    if isinstance(exc, EOFError):
        return "the file is truncated (the compressed stream ends early)"
    if isinstance(exc, gzip.BadGzipFile):
        return "not a valid gzip file"
    if isinstance(exc, zlib.error):
        return f"corrupt gzip data ({exc})"
    if isinstance(exc, zstandard.ZstdError):
        return f"corrupt zstd data ({exc})"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start})"
    if isinstance(exc, pd.errors.EmptyDataError):
        return "no columns or rows"
    text = str(exc)
    if isinstance(exc, OSError | pa.ArrowException):  # arrow's CSV reader and gzip stream
        if "Truncated compressed stream" in text:
            return "the file is truncated (the compressed stream ends early)"
        if "zlib" in text.lower() or "gzip" in text.lower():
            return f"corrupt gzip data ({text})"
        if "UTF8" in text or "UTF-8" in text:
            return "not UTF-8 text"
    return f"{type(exc).__name__}: {exc}"


@contextmanager
def file_errors(path: Path, what: str) -> Iterator[None]:
    """Turn a library exception raised while reading `path` into a DataError."""
    try:
        yield
    except DataError:
        raise
    except FILE_ERRORS as exc:
        raise DataError(f"{path}: cannot read this {what} file: {describe_error(exc)}") from exc


def open_binary(path: Path) -> IO[bytes]:
    """Open a file, transparently decompressing gzip (detected by its magic bytes)."""
    with path.open("rb") as fh:
        magic = fh.read(2)
    if magic == GZIP_MAGIC:
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def read_head(path: Path, size: int = 4096) -> bytes:
    """The first bytes of the (decompressed) file, for format detection."""
    with file_errors(path, "text"), open_binary(path) as fh:
        return fh.read(size)


CSV_BLOCK_BYTES = 4 << 20


CSV_COMMENT = "#"
CSV_SYMBOL_KEY = "fabio.symbol"


def csv_comments(head: bytes) -> list[str]:
    """The `#` comment lines that open a delimited file (before its header), without the `#`.

    `fabio synth` writes `# fabio.symbol=NQH4` there, so the contract travels with the file.
    """
    comments = []
    for line in head.decode("utf-8-sig", errors="replace").splitlines():
        if not line.startswith(CSV_COMMENT):
            break
        comments.append(line[1:].strip())
    return comments


def csv_meta(path: Path) -> dict[str, str]:
    """`key=value` pairs from the opening comment lines (e.g. `fabio.symbol`)."""
    meta: dict[str, str] = {}
    for comment in csv_comments(read_head(path, 1 << 16)):
        key, eq, value = comment.partition("=")
        if eq and key.strip():
            meta[key.strip()] = value.strip()
    return meta


def csv_header(path: Path, sep: str = ",") -> list[str]:
    """The column names on the first line of a delimited file (gzip or not), after any
    opening `#` comment lines."""
    head = read_head(path, 1 << 16)
    skip = len(csv_comments(head))
    first = head.decode("utf-8-sig", errors="replace").splitlines()[skip : skip + 1]
    return next(csv.reader(first, delimiter=sep), []) if first else []


def _open_arrow(path: Path) -> pa.NativeFile:
    """An arrow input stream over the file, decompressing gzip in C++ (magic-byte detection)."""
    with path.open("rb") as fh:
        magic = fh.read(2)
    raw = pa.OSFile(str(path), "rb")
    return pa.CompressedInputStream(raw, "gzip") if magic == GZIP_MAGIC else raw


def _to_column(arr: pa.Array, kind: str) -> Any:
    """A numpy/pandas column: numbers as float64 (or int64) when every cell converts, else the
    text, which the column parsers read cell by cell, flagging what is not a number."""
    if kind == "str":
        return pc.utf8_trim_whitespace(arr).to_pandas()
    targets = (pa.int64(), pa.float64()) if kind == "int" else (pa.float64(),)
    first = arr[0].as_py() if len(arr) else None
    padded = isinstance(first, str) and first != first.strip()  # e.g. Sierra's ", " separators

    def variants() -> Iterator[pa.Array]:
        if not padded:
            yield arr
        yield pc.utf8_trim_whitespace(arr)  # then without the spaces

    for cells in variants():
        for target in targets:
            try:
                converted = pc.cast(cells, target)
            except pa.ArrowInvalid:
                continue
            if target == pa.int64() and converted.null_count:
                continue  # int64 cannot hold a missing cell: read it as float (NaN)
            return converted.to_numpy(zero_copy_only=False)
    return arr.to_pandas()


def iter_csv_chunks(
    path: Path, report: LoadReport, batch_rows: int, kinds: dict[str, str], sep: str = ","
) -> Iterator[tuple[pd.DataFrame, I64]]:
    """Read a delimited file with pyarrow's streaming CSV reader, yielding (frame, file line of
    each row).

    Every cell is read as text and converted per column: `kinds` maps a column to "str" (keep
    the text), "int" (int64 when every cell is a whole number) or, by default, float64. A row
    with the wrong number of fields is counted as skipped with its line number; blank lines
    are passed over. gzip is read transparently.
    """
    names = csv_header(path, sep)
    if not names:
        raise DataError(f"{path}: no header line")
    comments = len(csv_comments(read_head(path, 1 << 16)))
    pending: list[int] = []  # file lines of rows the reader dropped, not yet accounted for

    def invalid(row: Any) -> str:
        line = int(row.number) if row.number is not None else 0
        pending.append(line)
        if row.text.strip():
            report.rows_read += 1
            report.skip("malformed row (wrong number of fields)", 1, f"line {line}")
        return "skip"

    reader = pcsv.open_csv(
        _open_arrow(path),
        read_options=pcsv.ReadOptions(
            use_threads=False, block_size=CSV_BLOCK_BYTES, skip_rows=comments
        ),
        parse_options=pcsv.ParseOptions(
            delimiter=sep, invalid_row_handler=invalid, ignore_empty_lines=False
        ),
        convert_options=pcsv.ConvertOptions(
            column_types={name: pa.string() for name in names}, strings_can_be_null=True
        ),
    )
    next_line = 2 + comments  # the header is the first line after the comments
    for rb in reader:
        n = rb.num_rows
        if n == 0:
            continue
        span = np.arange(next_line, next_line + n + len(pending), dtype=np.int64)
        if pending:
            span = span[~np.isin(span, np.asarray(pending, dtype=np.int64))]
        lines = span[:n]
        next_line = int(lines[-1]) + 1
        pending[:] = [x for x in pending if x >= next_line]
        blank = np.ones(n, dtype=np.bool_)  # a blank line reads as a row of empty cells
        for col in rb.columns:
            blank &= np.asarray(col.is_null(), dtype=np.bool_)
        if blank.any():
            rb = rb.filter(pa.array(~blank))
            lines = lines[~blank]
            n = rb.num_rows
            if n == 0:
                continue
        frame = pd.DataFrame(
            {
                name: _to_column(rb.column(i), kinds.get(name, "float"))
                for i, name in enumerate(rb.schema.names)
            },
            copy=False,
        )
        report.rows_read += n
        yield frame, lines


def resolve_contract(symbol: str, ref_year: int | None, source: str) -> Contract:
    """Parse a symbol, refusing to guess a 1–2 digit contract year without the data's year."""
    token = re.split(r"[-._ ]", symbol.strip().upper(), maxsplit=1)[0]
    if ref_year is None and re.fullmatch(r"[A-Z]+[FGHJKMNQUVXZ]\d{1,2}", token):
        raise DataError(
            f"{source}: cannot tell the year of contract '{symbol}' (no readable timestamp); "
            "give the symbol with a four-digit year, e.g. ESH2024"
        )
    try:
        return parse_symbol(symbol, ref_year=ref_year if ref_year is not None else 2000)
    except InstrumentError as exc:
        raise DataError(f"{source}: {exc}") from exc


def restart_report(report: LoadReport, notes: list[str]) -> None:
    """Zero a report's counters in place, so that reading a feed twice does not count twice."""
    report.rows_read = report.trades = report.quotes = 0
    report.skipped.clear()
    report.examples.clear()
    report.aggressor.clear()
    report.notes[:] = notes


def year_of_ns(ns: int) -> int:
    return int(pd.Timestamp(ns, unit="ns", tz=UTC).year)


# ---------------------------------------------------------------------------------------------
# Quotes, classification, batching


class QuoteCleaner:
    """Converts quote columns to ticks, dropping unusable quotes (counted, reported as notes).

    Quotes are secondary to trades: a bad quote never costs its trade, so drops go to the
    report's notes rather than its skip counter.
    """

    def __init__(self, tick_size: float) -> None:
        self.tick_size = tick_size
        self.last_ts: int | None = None
        self.dropped: Counter[str] = Counter()

    def clean(
        self,
        ts: I64,
        bid: F64,
        ask: F64,
        bid_size: F64 | None = None,
        ask_size: F64 | None = None,
    ) -> QuoteBatch:
        ts = np.asarray(ts, dtype=np.int64)
        bid = np.asarray(bid, dtype=np.float64)
        ask = np.asarray(ask, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            keep = np.isfinite(bid) & np.isfinite(ask) & (bid > 0) & (ask > 0)
            self._drop(~keep, "quotes without a bid or an ask")
            bs = bid / self.tick_size
            as_ = ask / self.tick_size
            bt = np.rint(bs)
            at = np.rint(as_)
            grid = (np.abs(bs - bt) <= 1e-6) & (np.abs(as_ - at) <= 1e-6)
        self._drop(keep & ~grid, "quotes off the tick grid")
        keep &= grid
        idx = np.flatnonzero(keep)
        if len(idx):
            kts = ts[idx]
            prior = np.maximum.accumulate(kts)
            prior = np.concatenate(([kts[0] if self.last_ts is None else self.last_ts], prior[:-1]))
            if self.last_ts is not None:
                prior = np.maximum(prior, self.last_ts)
            back = kts < prior
            if back.any():
                self.dropped["quotes going back in time"] += int(back.sum())
                idx = idx[~back]
            if len(idx):
                self.last_ts = max(int(ts[idx[-1]]), self.last_ts or int(ts[idx[-1]]))

        def size(col: F64 | None) -> I64:
            if col is None:
                return np.zeros(len(idx), dtype=np.int64)
            s = np.asarray(col, dtype=np.float64)[idx]
            s = np.where(np.isfinite(s) & (s > 0), s, 0.0)
            return np.rint(s).astype(np.int64)

        return QuoteBatch.from_arrays(
            ts[idx],
            bt[idx].astype(np.int64),
            at[idx].astype(np.int64),
            size(bid_size),
            size(ask_size),
        )

    def _drop(self, mask: Mask, reason: str) -> None:
        n = int(mask.sum())
        if n:
            self.dropped[reason] += n

    def notes(self) -> list[str]:
        return [f"{n} {reason} dropped" for reason, n in sorted(self.dropped.items())]


class Batcher:
    """Cuts time-ordered trades and quotes into MarketBatches of at most `batch_rows` trades.

    A batch's quotes are those with ts <= its last trade's ts. A full batch waits until the
    reader's watermark (the latest time it has read) passes its last trade, so quotes that share
    that timestamp but arrive in the next chunk still land in it.
    """

    def __init__(self, batch_rows: int, has_quotes: bool) -> None:
        if batch_rows < 1:
            raise ValueError("batch_rows must be at least 1")
        self.batch_rows = batch_rows
        self.has_quotes = has_quotes
        self._trades: list[TradeBatch] = []
        self._quotes: list[QuoteBatch] = []
        self._n_trades = 0
        self._watermark: int | None = None

    def add(
        self, trades: TradeBatch, quotes: QuoteBatch | None = None, watermark: int | None = None
    ) -> Iterator[MarketBatch]:
        if len(trades):
            self._trades.append(trades)
            self._n_trades += len(trades)
        if quotes is not None and len(quotes):
            self._quotes.append(quotes)
        if watermark is not None:
            self._watermark = (
                watermark if self._watermark is None else max(self._watermark, watermark)
            )
        if self._n_trades >= self.batch_rows:
            yield from self._emit(final=False)

    def finish(self) -> Iterator[MarketBatch]:
        yield from self._emit(final=True)

    def _emit(self, final: bool) -> Iterator[MarketBatch]:
        trades = TradeBatch.concat(self._trades)
        quotes = _concat_quotes(self._quotes) if self.has_quotes else None
        start = qstart = 0
        n = len(trades)
        while n - start >= self.batch_rows or (final and start < n):
            stop = min(start + self.batch_rows, n)
            last = int(trades.ts[stop - 1])
            if (
                not final
                and self.has_quotes
                and (self._watermark is None or last >= self._watermark)
            ):
                break
            qb = None
            if quotes is not None:
                qstop = qstart + int(np.searchsorted(quotes.ts[qstart:], last, side="right"))
                qb = quotes.slice(qstart, qstop)
                qstart = qstop
            yield MarketBatch(trades.slice(start, stop), qb)
            start = stop
        if final and quotes is not None and qstart < len(quotes):
            yield MarketBatch(TradeBatch.empty(), quotes.slice(qstart, len(quotes)))
            qstart = len(quotes)
        self._trades = [trades.slice(start, n)] if start < n else []
        self._n_trades = n - start
        self._quotes = (
            [quotes.slice(qstart, len(quotes))]
            if quotes is not None and qstart < len(quotes)
            else []
        )


def _concat_quotes(parts: list[QuoteBatch]) -> QuoteBatch:
    if not parts:
        return QuoteBatch.from_arrays([], [], [], [], [])
    if len(parts) == 1:
        return parts[0]
    return QuoteBatch(
        np.concatenate([q.ts for q in parts]),
        np.concatenate([q.bid for q in parts]),
        np.concatenate([q.ask for q in parts]),
        np.concatenate([q.bid_size for q in parts]),
        np.concatenate([q.ask_size for q in parts]),
    )


class FeedAssembler:
    """Classifies, sanitises and batches what a reader decoded, and fills its LoadReport."""

    def __init__(
        self,
        report: LoadReport,
        contract: Contract,
        batch_rows: int,
        has_quotes: bool,
        unit: str = "record",
    ) -> None:
        self.report = report
        self.contract = contract
        self.has_quotes = has_quotes
        self.unit = unit  # how a skipped row is cited: "line N" (text) or "record N" (binary)
        self.method = AggressorSource.LEE_READY if has_quotes else AggressorSource.TICK_RULE
        self.sanitizer = TradeSanitizer(
            report, contract.spec.tick_size, unit=unit, price_limits=price_limits(contract.spec)
        )
        self.tick = TickRule()
        self.quote_cleaner = QuoteCleaner(contract.spec.tick_size)
        self.batcher = Batcher(batch_rows, has_quotes)

    def trades(
        self,
        ts: I64,
        price: F64,
        size: F64,
        side: I8,
        bid: F64 | None = None,
        ask: F64 | None = None,
        lines: I64 | None = None,
    ) -> TradeBatch:
        """Classify trades with side 0 (Lee–Ready with quotes, else the tick rule), sanitise."""
        price = np.asarray(price, dtype=np.float64)
        side = np.asarray(side, dtype=np.int8)
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(price) & (price > 0)
        ticks = np.zeros(len(price), dtype=np.int8)
        ticks[valid] = self.tick.classify(price[valid])
        need = side == 0
        if need.any():
            if bid is not None and ask is not None:
                with np.errstate(invalid="ignore"):  # a zero quote means "no quote"
                    b = np.where(np.asarray(bid) > 0, bid, np.nan)
                    a = np.where(np.asarray(ask) > 0, ask, np.nan)
                cls = lee_ready(price, b, a, tick=ticks)
            else:
                cls = ticks
            side = np.where(need, cls, side).astype(np.int8)
        batch = self.sanitizer.clean(ts, price, size, side, need, lines=lines)
        self.report.aggressor.update(count_sources(batch, self.method))
        return batch

    def quotes(
        self,
        ts: I64,
        bid: F64,
        ask: F64,
        bid_size: F64 | None = None,
        ask_size: F64 | None = None,
    ) -> QuoteBatch:
        q = self.quote_cleaner.clean(ts, bid, ask, bid_size, ask_size)
        self.report.quotes += len(q)
        return q

    def emit(
        self, trades: TradeBatch, quotes: QuoteBatch | None, watermark: int | None
    ) -> Iterator[MarketBatch]:
        yield from self.batcher.add(trades, quotes, watermark)

    def finish(self) -> Iterator[MarketBatch]:
        """Flush the last batches and refuse the file if most rows were unusable."""
        yield from self.batcher.finish()
        self.report.notes.extend(self.quote_cleaner.notes())
        check_mostly_readable(self.report)


# ---------------------------------------------------------------------------------------------
# Column parsing shared by the CSV, Parquet and Sierra readers


def arrow_strings(col: pd.Series[Any]) -> pa.Array:
    """A column as one arrow string array (pandas may hold it as several chunks)."""
    arr = pa.array(col.astype("str"), type=pa.string())
    if isinstance(arr, pa.ChunkedArray):
        return arr.combine_chunks()
    return arr


def parse_float(col: pd.Series[Any]) -> tuple[F64, Mask]:
    """Numbers as float64 (missing = NaN) and a mask of cells that are present but not numbers."""
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        return col.to_numpy(dtype=np.float64, na_value=np.nan), np.zeros(len(col), dtype=np.bool_)
    parsed = pd.to_numeric(col, errors="coerce")
    values = parsed.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.asarray(col.notna().to_numpy(dtype=np.bool_) & np.isnan(values))
    return values, bad


_INT_RE = r"\s*[+-]?\d+\s*"


def parse_ts(col: pd.Series[Any], tz: str | None = None) -> tuple[I64, Mask]:
    """Timestamps to UTC ns: int ns since the epoch, or ISO-8601 text (naive = `tz`, default UTC).

    Returns the values and a mask of unreadable cells (missing or not a time).
    """
    n = len(col)
    dtype = col.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        dt = pd.to_datetime(col)
        if getattr(dt.dt, "tz", None) is None:
            dt = dt.dt.tz_localize(tz or "UTC")
        values = dt.dt.tz_convert("UTC").dt.as_unit("ns")
        bad = values.isna().to_numpy(dtype=np.bool_)
        return values.to_numpy(dtype="datetime64[ns]").view(np.int64).copy(), bad
    if pd.api.types.is_integer_dtype(dtype):
        return col.to_numpy(dtype=np.int64), np.zeros(n, dtype=np.bool_)
    if pd.api.types.is_float_dtype(dtype):
        f = col.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(f)
        return np.where(bad, 0, f).astype(np.int64), bad
    text = col.astype("str")
    present = col.notna().to_numpy(dtype=np.bool_)
    arr = arrow_strings(text)  # arrow's regex and cast are vectorised
    matched = pc.match_substring_regex(arr, f"^{_INT_RE}$")
    is_int = np.asarray(pc.fill_null(matched, False), dtype=np.bool_) & present
    out = np.zeros(n, dtype=np.int64)
    bad = ~present
    if is_int.any():
        digits = pc.utf8_trim_whitespace(arr.filter(pa.array(is_int)))
        try:
            out[is_int] = np.asarray(pc.cast(digits, pa.int64()), dtype=np.int64)
        except pa.ArrowInvalid:  # a number beyond int64: flag it, keep the rest
            where = np.flatnonzero(is_int)
            for i, text_value in zip(where, digits.to_pylist(), strict=True):
                value = int(text_value)
                if -(2**63) <= value < 2**63:
                    out[i] = value
                else:
                    bad[i] = True
    other = present & ~is_int
    if other.any():
        strings = text[other].str.strip()
        if tz is None:
            dt = pd.to_datetime(strings, format="ISO8601", errors="coerce", utc=True)
        else:
            dt = _localize_mixed(strings, tz)
        ok = dt.notna().to_numpy(dtype=np.bool_)
        ns = dt.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)
        where = np.flatnonzero(other)
        out[where[ok]] = ns[ok]
        bad[where[~ok]] = True
    return out, bad


def _localize_mixed(strings: pd.Series[Any], tz: str) -> pd.Series[Any]:
    """ISO strings where those without an offset are local time in `tz`."""
    has_offset = strings.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True).fillna(False)
    result = pd.Series(pd.NaT, index=strings.index, dtype="datetime64[ns, UTC]")
    if has_offset.any():
        aware = pd.to_datetime(strings[has_offset], format="ISO8601", errors="coerce", utc=True)
        result[has_offset] = aware.dt.as_unit("ns")
    if (~has_offset).any():
        naive = pd.to_datetime(strings[~has_offset], format="ISO8601", errors="coerce")
        local = naive.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
        result[~has_offset] = local.dt.tz_convert("UTC").dt.as_unit("ns")
    return result


# Not "BID"/"ASK": people use them both for the aggressor's book side and for where the
# trade printed, which are opposite sides.
_SIDE_WORDS = {
    "B": 1, "BUY": 1, "1": 1, "+1": 1, "1.0": 1, "+1.0": 1,
    "A": -1, "S": -1, "SELL": -1, "-1": -1, "-1.0": -1,
    "N": 0, "": 0, "0": 0, "0.0": 0, "NONE": 0,
}  # fmt: skip


def parse_side(col: pd.Series[Any]) -> tuple[I8, Mask]:
    """Aggressor side words or numbers to +1/-1/0, and a mask of values not understood."""
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        f = col.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            side = np.where(f == 1, 1, np.where(f == -1, -1, 0)).astype(np.int8)
            bad = np.isfinite(f) & (f != 1) & (f != -1) & (f != 0)
        return side, bad
    codes, uniques = pd.factorize(col.astype("str").str.strip().str.upper())
    table = np.array([_SIDE_WORDS.get(str(u), 2) for u in uniques] + [0], dtype=np.int8)
    mapped = table[codes]  # code -1 (missing) picks the trailing 0
    bad = np.asarray(mapped == 2, dtype=np.bool_)
    mapped[bad] = 0
    return mapped.astype(np.int8), bad


# ---------------------------------------------------------------------------------------------
# The CSV / Parquet feed

_ALIASES: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "timestamp", "ts_event", "time", "datetime"),
    "price": ("price", "px"),
    "size": ("size", "qty", "quantity", "volume"),
    "side": ("side", "aggressor"),
    "bid": ("bid", "bid_price", "bid_px"),
    "ask": ("ask", "ask_price", "ask_px"),
    "bid_size": ("bid_size", "bid_sz", "bidsize"),
    "ask_size": ("ask_size", "ask_sz", "asksize"),
    "symbol": ("symbol", "raw_symbol"),
}
PARQUET_SYMBOL_KEY = b"fabio.symbol"


def map_columns(names: list[str], source: str) -> dict[str, str]:
    """Our column name -> the file's, matching case-insensitively and with a few aliases."""
    lowered: dict[str, str] = {}
    for name in names:
        lowered.setdefault(str(name).strip().lower(), name)
    found: dict[str, str] = {}
    for ours, aliases in _ALIASES.items():
        for alias in aliases:
            if alias in lowered:
                found[ours] = lowered[alias]
                break
    missing = [c for c in ("ts", "price", "size") if c not in found]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)}; a trade table needs "
            f"ts, price, size and optionally side, bid, ask, bid_size, ask_size, symbol "
            f"(found: {', '.join(map(str, names)) or 'no header'})"
        )
    return found


class TabularFeed:
    """Trades from a CSV (plain or gzip) or Parquet file with columns `ts, price, size, side`."""

    def __init__(
        self,
        path: str | Path,
        symbol: str | None = None,
        tz: str | None = None,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> None:
        self.path = Path(path)
        require_file(self.path)
        self.tz = tz
        self.batch_rows = batch_rows
        self.is_parquet = self._is_parquet()
        fmt = "parquet" if self.is_parquet else "csv"
        self.report = LoadReport(source=str(self.path), format=fmt)
        self._symbol_filter: str | None = None
        self._ref_year: int | None = None
        with file_errors(self.path, fmt):
            if self.is_parquet:
                self.columns, file_symbol, head = self._inspect_parquet()
            else:
                self.columns, file_symbol, head = self._inspect_csv()
        self.has_quotes = "bid" in self.columns and "ask" in self.columns
        self.contract = self._choose_contract(symbol, file_symbol, head)
        self._notes = list(self.report.notes)

    # -- inspection ------------------------------------------------------------------------

    def _is_parquet(self) -> bool:
        with self.path.open("rb") as fh:
            return fh.read(4) == b"PAR1"

    def _inspect_parquet(self) -> tuple[dict[str, str], str | None, pd.DataFrame]:
        pf = pq.ParquetFile(self.path)
        meta = pf.schema_arrow.metadata or {}
        file_symbol = meta.get(PARQUET_SYMBOL_KEY)
        columns = map_columns(list(pf.schema_arrow.names), str(self.path))
        head = pd.DataFrame()
        if pf.metadata.num_rows:
            first = next(pf.iter_batches(batch_size=64, columns=self._wanted(columns)), None)
            if first is not None:
                head = first.to_pandas()
        return columns, file_symbol.decode() if file_symbol else None, head

    def _inspect_csv(self) -> tuple[dict[str, str], str | None, pd.DataFrame]:
        names = csv_header(self.path)
        columns = map_columns(names, str(self.path))
        scratch = LoadReport(source=str(self.path), format="csv")
        head = pd.DataFrame({name: pd.Series(dtype="str") for name in names})
        for frame, _ in iter_csv_chunks(self.path, scratch, 64, dict.fromkeys(names, "str")):
            head = frame.head(64)
            break
        return columns, csv_meta(self.path).get(CSV_SYMBOL_KEY), head[self._wanted(columns)]

    @staticmethod
    def _wanted(columns: dict[str, str]) -> list[str]:
        return list(dict.fromkeys(columns.values()))

    def _choose_contract(
        self, symbol: str | None, file_symbol: str | None, head: pd.DataFrame
    ) -> Contract:
        source = str(self.path)
        ref_year: int | None = None
        if len(head):
            ts, bad = parse_ts(head[self.columns["ts"]], self.tz)
            good = ts[~bad]
            if len(good):
                if 0 < abs(int(good[0])) < 10**15:
                    raise DataError(
                        f"{source}: ts {int(good[0])} is not in nanoseconds since the epoch "
                        "(it looks like seconds or milliseconds)"
                    )
                ref_year = year_of_ns(int(good[0]))
        self._ref_year = ref_year
        if "symbol" in self.columns and len(head):
            in_file = sorted(set(head[self.columns["symbol"]].dropna().astype(str).str.strip()))
            if symbol is not None:
                self._symbol_filter = symbol.strip().upper()
            elif len(in_file) == 1:
                file_symbol = file_symbol or in_file[0]
                self._symbol_filter = in_file[0].upper()
            elif len(in_file) > 1:
                raise DataError(
                    f"{source}: the file mixes several symbols ({', '.join(in_file)}); "
                    "choose one with --symbol"
                )
        chosen = symbol or file_symbol
        if chosen is None:
            raise DataError(
                f"{source}: no contract named in the file; give one with --symbol (e.g. ESU4)"
            )
        contract = resolve_contract(chosen, ref_year, source)
        if symbol is not None and file_symbol is not None:
            from_file = resolve_contract(file_symbol, ref_year, source)
            if from_file != contract:
                self.report.notes.append(
                    f"--symbol {symbol} overrides the file's symbol {file_symbol}"
                )
        return contract

    # -- reading ---------------------------------------------------------------------------

    def batches(self) -> Iterator[MarketBatch]:
        restart_report(self.report, self._notes)
        asm = FeedAssembler(
            self.report,
            self.contract,
            self.batch_rows,
            self.has_quotes,
            unit="record" if self.is_parquet else "line",
        )
        fmt = self.report.format
        with file_errors(self.path, fmt):
            chunks = self._parquet_chunks() if self.is_parquet else self._csv_chunks()
            for frame, lines in chunks:
                yield from self._process(asm, frame, lines)
            yield from asm.finish()

    def _parquet_chunks(self) -> Iterator[tuple[pd.DataFrame, I64]]:
        pf = pq.ParquetFile(self.path)
        row = 1
        for rb in pf.iter_batches(batch_size=self.batch_rows, columns=self._wanted(self.columns)):
            frame = rb.to_pandas()
            self.report.rows_read += len(frame)
            yield frame, np.arange(row, row + len(frame), dtype=np.int64)
            row += len(frame)

    def _csv_chunks(self) -> Iterator[tuple[pd.DataFrame, I64]]:
        kinds = {self.columns["ts"]: "int"}
        for key in ("side", "symbol"):
            if key in self.columns:
                kinds[self.columns[key]] = "str"
        return iter_csv_chunks(self.path, self.report, self.batch_rows, kinds)

    def _process(
        self, asm: FeedAssembler, frame: pd.DataFrame, lines: I64
    ) -> Iterator[MarketBatch]:
        cols = self.columns
        if self._symbol_filter is not None and "symbol" in cols:
            codes, uniques = pd.factorize(frame[cols["symbol"]].astype("str").str.strip())
            table = np.array([self._is_mine(str(u)) for u in uniques] + [False], dtype=np.bool_)
            mine = table[codes]
            others = int((~mine).sum())
            if others:
                self.report.rows_read -= others
                self._note_other_symbols(others)
                frame = frame[mine]
                lines = lines[mine]
        ts, bad_ts = parse_ts(frame[cols["ts"]], self.tz)
        price, bad_price = parse_float(frame[cols["price"]])
        size, bad_size = parse_float(frame[cols["size"]])
        if "side" in cols:
            side, bad_side = parse_side(frame[cols["side"]])
        else:
            side, bad_side = np.zeros(len(frame), np.int8), np.zeros(len(frame), np.bool_)
        keep = np.ones(len(frame), dtype=np.bool_)
        for mask, reason in (
            (bad_ts, "timestamp missing or unreadable"),
            (bad_price, "price is not a number"),
            (bad_size, "size is not a number"),
            (bad_side, "side not understood (expected B/BUY/1, A/S/SELL/-1, N/0/blank)"),
        ):
            hit = mask & keep
            if hit.any():
                self.report.skip(
                    reason, int(hit.sum()), f"{asm.unit} {int(lines[int(np.argmax(hit))])}"
                )
                keep &= ~hit
        bid = ask = bid_size = ask_size = None
        if self.has_quotes:
            bid = parse_float(frame[cols["bid"]])[0]
            ask = parse_float(frame[cols["ask"]])[0]
            if "bid_size" in cols:
                bid_size = parse_float(frame[cols["bid_size"]])[0]
            if "ask_size" in cols:
                ask_size = parse_float(frame[cols["ask_size"]])[0]
        if not keep.all():
            ts, price, size, side = ts[keep], price[keep], size[keep], side[keep]
            lines = lines[keep]
            if bid is not None and ask is not None:
                bid, ask = bid[keep], ask[keep]
                bid_size = bid_size[keep] if bid_size is not None else None
                ask_size = ask_size[keep] if ask_size is not None else None
        trades = asm.trades(ts, price, size, side, bid, ask, lines=lines)
        quotes = None
        if bid is not None and ask is not None:
            quotes = asm.quotes(ts, bid, ask, bid_size, ask_size)
        watermark = int(ts.max()) if len(ts) else None
        yield from asm.emit(trades, quotes, watermark)

    def _is_mine(self, symbol: str) -> bool:
        """Whether a symbol column value names our contract (`ESU4`, `ESU24`, `esu2024`…)."""
        if symbol.upper() == self._symbol_filter:
            return True
        try:
            return parse_symbol(symbol, ref_year=self._ref_year or 2000) == self.contract
        except InstrumentError:
            return False

    def _note_other_symbols(self, count: int) -> None:
        prefix = "rows of other symbols ignored: "
        for i, note in enumerate(self.report.notes):
            if note.startswith(prefix):
                self.report.notes[i] = f"{prefix}{int(note[len(prefix) :]) + count}"
                return
        self.report.notes.append(f"{prefix}{count}")
