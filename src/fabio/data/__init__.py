"""Market data readers behind one entry point: `open_feed(path)` picks the reader by format.

Supported: Databento DBN (`.dbn`, `.dbn.zst`), Parquet and CSV trade tables (`ts, price,
size, side`; CSV plain or gzip), Sierra Chart time-and-sales exports and Sierra Chart bar
exports (plain or gzip). See docs/data.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fabio.data.base import DEFAULT_BATCH_ROWS, MarketFeed, require_file
from fabio.data.dbn import DBN_MAGIC, ZSTD_MAGIC, DbnFeed, decompressed_chunks
from fabio.data.sierra import SierraBarFeed, SierraTimeAndSalesFeed
from fabio.data.tabular import (
    TabularFeed,
    csv_comments,
    file_errors,
    read_head,
    resolve_contract,
)
from fabio.domain import QuoteBatch, TradeBatch
from fabio.errors import DataError
from fabio.instruments import parse_symbol

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "SUPPORTED_FORMATS",
    "DbnFeed",
    "MarketFeed",
    "SierraBarFeed",
    "SierraTimeAndSalesFeed",
    "TabularFeed",
    "detect_format",
    "open_feed",
    "read_all",
]

SUPPORTED_FORMATS = (
    "Databento DBN (.dbn, .dbn.zst; schemas trades, tbbo, mbp-1, mbp-10, mbo)",
    "Parquet trades (.parquet: ts, price, size, side)",
    "CSV trades (.csv, .csv.gz: ts, price, size, side)",
    "Sierra Chart time and sales (.txt, .txt.gz, header 'Date;Time;Sequence;…')",
    "Sierra Chart bars (.txt, .txt.gz, header 'Date, Time, Open, High, Low, Last, …')",
)


def _unsupported(path: Path, why: str) -> DataError:
    formats = "\n  ".join(SUPPORTED_FORMATS)
    return DataError(f"{path}: {why}. Supported formats:\n  {formats}")


def detect_format(path: str | Path) -> str:
    """`dbn`, `parquet`, `csv`, `sierra-tas` or `sierra-bars`, from the file's name and bytes."""
    p = Path(path)
    require_file(p)
    with p.open("rb") as fh:
        magic = fh.read(4)
    name = p.name.lower()
    if magic[:3] == DBN_MAGIC or name.endswith((".dbn", ".dbn.zst")):
        return "dbn"
    if magic == ZSTD_MAGIC:
        with file_errors(p, "zstd"):
            first = next(decompressed_chunks(p, 4096), b"")
        if first[:3] == DBN_MAGIC:
            return "dbn"
        raise _unsupported(p, "a zstd-compressed file that is not DBN")
    if magic == b"PAR1" or name.endswith((".parquet", ".pq")):
        return "parquet"
    head = read_head(p)
    if not head.strip():
        raise DataError(f"{p}: the file is empty")
    try:
        lines = head.decode("utf-8-sig").splitlines()
        skip = len(csv_comments(head))  # a CSV may open with `# fabio.symbol=…` lines
        first_line = (lines[skip] if skip < len(lines) else lines[0]).strip()
    except UnicodeDecodeError as exc:
        raise _unsupported(p, "binary content that is not a known format") from exc
    squashed = first_line.lower().replace(" ", "")
    if squashed.startswith("date;time;"):
        return "sierra-tas"
    if squashed.startswith("date,time,open,"):
        return "sierra-bars"
    columns = {c.strip().lower() for c in first_line.replace(";", ",").split(",")}
    if {"price"} <= columns and columns & {"ts", "timestamp", "ts_event", "time", "datetime"}:
        return "csv"
    raise _unsupported(p, f"cannot recognise the header '{first_line[:80]}'")


def open_feed(
    path: str | Path,
    symbol: str | None = None,
    tz: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    force_symbol: bool = False,
) -> MarketFeed:
    """Open a market data file with the reader its format needs.

    `symbol` names the contract when the file does not. When the file names one (its name, its
    metadata or its symbol column), a different `symbol` is an error unless `force_symbol`
    relabels the data on purpose; the same product without a month (`ES` for ESM23) keeps the
    file's contract. `tz` is the time zone of naive timestamps (defaults: UTC, except Sierra
    bar exports, which are US Central).
    """
    if symbol is None or force_symbol:
        return _open(path, symbol, tz, batch_rows)
    try:
        own = _open(path, None, tz, batch_rows)
    except DataError:  # the file does not say (or holds several): the symbol chooses
        return _open(path, symbol, tz, batch_rows)
    if own.contract.month_code is None or own.contract.year is None:
        # The file names the product only: the symbol may add the month, not change the product.
        if parse_symbol(symbol).spec.root == own.contract.spec.root:
            return _open(path, symbol, tz, batch_rows)
        wanted = parse_symbol(symbol)
    else:
        wanted = resolve_contract(symbol, own.contract.year, str(path))
    same_month = wanted.month_code is None or (
        wanted.month_code == own.contract.month_code and wanted.year == own.contract.year
    )
    if wanted.spec.root != own.contract.spec.root or not same_month:
        raise DataError(
            f"{path}: the file holds {own.contract.symbol}, not {symbol.strip().upper()}; "
            "leave out --symbol, or relabel the data on purpose with --force-symbol"
        )
    return own


def _open(path: str | Path, symbol: str | None, tz: str | None, batch_rows: int) -> MarketFeed:
    fmt = detect_format(path)
    feed: MarketFeed
    if fmt == "dbn":
        feed = DbnFeed(path, symbol=symbol, tz=tz, batch_rows=batch_rows)
    elif fmt == "sierra-tas":
        feed = SierraTimeAndSalesFeed(path, symbol=symbol, tz=tz, batch_rows=batch_rows)
    elif fmt == "sierra-bars":
        feed = SierraBarFeed(path, symbol=symbol, tz=tz, batch_rows=batch_rows)
    else:
        feed = TabularFeed(path, symbol=symbol, tz=tz, batch_rows=batch_rows)
    return feed


def read_all(feed: MarketFeed) -> tuple[TradeBatch, QuoteBatch | None]:
    """Every trade (and quote, when the source has quotes) of a feed, concatenated."""
    trades: list[TradeBatch] = []
    quotes: list[QuoteBatch] = []
    saw_quotes = False
    for batch in feed.batches():
        trades.append(batch.trades)
        if batch.quotes is not None:
            saw_quotes = True
            quotes.append(batch.quotes)
    if not saw_quotes:
        return TradeBatch.concat(trades), None
    return TradeBatch.concat(trades), QuoteBatch(
        np.concatenate([q.ts for q in quotes]),
        np.concatenate([q.bid for q in quotes]),
        np.concatenate([q.ask for q in quotes]),
        np.concatenate([q.bid_size for q in quotes]),
        np.concatenate([q.ask_size for q in quotes]),
    )
