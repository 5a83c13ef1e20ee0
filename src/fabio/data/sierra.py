"""Sierra Chart text exports: time and sales (`;`-separated) and bar data (`, `-separated).

Time and sales: the time's fraction is the microsecond count written without zero padding
(`13:30:00.5001` is 5,001 µs after the second): read this way, times agree with the `Sequence`
numbers in the shared files, read as a decimal fraction they do not. Rows are put in `Sequence`
order (one export was sorted by the time text) and repeated sequence numbers are dropped.

Bars become trades (only bars exist for most of the history): each bar's volume is spread
evenly over the ticks of its range, split buy/sell by Ask/BidVolume, and timed along the path
Open → Low → High → Close (up bar) or Open → High → Low → Close (down bar). See docs/data.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fabio.data.aggressor import count_sources
from fabio.data.base import (
    DEFAULT_BATCH_ROWS,
    MAX_OUT_OF_ORDER_SHARE,
    PRICE_BAND_SHARE,
    check_mostly_readable,
    price_limits,
    require_file,
)
from fabio.data.tabular import (
    F64,
    I8,
    I64,
    Batcher,
    FeedAssembler,
    Mask,
    arrow_strings,
    csv_header,
    file_errors,
    iter_csv_chunks,
    parse_float,
    resolve_contract,
    restart_report,
)
from fabio.domain import AggressorSource, LoadReport, MarketBatch, TradeBatch
from fabio.errors import DataError
from fabio.instruments import Contract

NS_PER_DAY = 86_400 * 1_000_000_000
_CLOCK_RE = r"^\s*(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2})(?:\.(?P<f>\d{1,6}))?\s*$"
_DATE_FORMATS = ("%Y/%m/%d", "%Y-%m-%d", "%m/%d/%Y", "%Y%m%d")
# A 5-minute ES bar rarely spans 100 points; 20,000 ticks is a broken row, not a market.
MAX_BAR_RANGE_TICKS = 20_000
BAR_CHUNK = 8_192


def _digits(arr: pa.Array) -> I64:
    filled = pc.if_else(pc.equal(arr, ""), "0", arr)
    return np.asarray(pc.cast(filled, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def parse_clock(col: pd.Series[Any]) -> tuple[I64, Mask]:
    """`HH:MM:SS[.micros]` to nanoseconds after midnight (the fraction is a microsecond count)."""
    arr = arrow_strings(col)
    parts = pc.extract_regex(arr, _CLOCK_RE)
    ok = np.asarray(parts.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)
    h = _digits(parts.field("h"))
    m = _digits(parts.field("m"))
    s = _digits(parts.field("s"))
    us = _digits(parts.field("f"))
    ok &= (h < 24) & (m < 60) & (s < 61)
    ns = ((h * 60 + m) * 60 + s) * 1_000_000_000 + us * 1_000
    return np.where(ok, ns, 0), ~ok


def _parse_one_date(text: str) -> date | None:
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    return None


def parse_dates(col: pd.Series[Any]) -> tuple[I64, Mask]:
    """Dates (`2023/5/10`, `2023-06-29`, `5/10/2023`) to ns of their midnight (naive)."""
    codes, uniques = pd.factorize(col.astype("str"))
    epoch = date(1970, 1, 1)
    table = np.zeros(len(uniques) + 1, dtype=np.int64)
    bad_table = np.ones(len(uniques) + 1, dtype=np.bool_)
    for i, u in enumerate(uniques):
        d = _parse_one_date(str(u))
        if d is not None:
            table[i] = (d - epoch).days * NS_PER_DAY
            bad_table[i] = False
    return table[codes], bad_table[codes]


def local_to_utc(local_ns: I64, tz: str) -> tuple[I64, Mask]:
    """Naive local-time ns in `tz` to UTC ns; times that do not exist or repeat are flagged."""
    if tz.upper() in ("UTC", "Z", "ETC/UTC", "GMT"):
        return local_ns, np.zeros(len(local_ns), dtype=np.bool_)
    try:
        idx = pd.DatetimeIndex(np.asarray(local_ns).view("datetime64[ns]"))
        aware = idx.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    except (KeyError, ValueError) as exc:  # unknown zone name
        raise DataError(f"unknown time zone '{tz}' ({exc})") from exc
    bad = np.asarray(aware.isna(), dtype=np.bool_)
    return np.where(bad, 0, aware.asi8), bad


def _first_year(dates: pd.Series[Any]) -> int | None:
    """The year of the first readable date, to resolve one- or two-digit contract years."""
    days, bad = parse_dates(dates)
    good = days[~bad]
    if not len(good):
        return None
    return (date(1970, 1, 1) + timedelta(days=int(good[0] // NS_PER_DAY))).year


def _map_header(names: list[str], wanted: tuple[str, ...]) -> dict[str, str]:
    lowered = {str(n).strip().lower(): str(n) for n in names}
    return {w: lowered[w.lower()] for w in wanted if w.lower() in lowered}


def _contract_from_name_or_symbol(path: Path, symbol: str | None, ref_year: int | None) -> Contract:
    if symbol is not None:
        return resolve_contract(symbol, ref_year, str(path))
    try:
        return resolve_contract(path.name, ref_year, str(path))
    except DataError as exc:
        if "cannot tell the year" in str(exc):
            raise
        raise DataError(
            f"{path}: cannot tell the contract from the file name; give it with --symbol "
            f"(e.g. ESH23) [{exc}]"
        ) from exc


# ---------------------------------------------------------------------------------------------
# Time and sales

_TAS_COLUMNS = (
    "Date", "Time", "Sequence", "Price", "Volume", "TradeType",
    "AskPrice", "BidPrice", "AskSize", "BidSize",
)  # fmt: skip


@dataclass(slots=True)
class _Prints:
    """Parsed time-and-sales rows, kept together while they are put in Sequence order."""

    ts: I64
    price: F64
    size: F64
    side: I8
    bid: F64
    ask: F64
    bid_size: F64
    ask_size: F64
    seq: I64
    line: I64  # the row's line in the file

    def take(self, idx: Mask | I64) -> _Prints:
        return _Prints(*(getattr(self, f.name)[idx] for f in fields(self)))

    @staticmethod
    def concat_all(parts: list[_Prints]) -> _Prints:
        if len(parts) == 1:
            return parts[0]
        names = [f.name for f in fields(_Prints)]
        if not parts:
            f, i = np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.int64)
            return _Prints(i, f, f, np.zeros(0, dtype=np.int8), f, f, f, f, i, i)
        return _Prints(*(np.concatenate([getattr(p, n) for p in parts]) for n in names))

    def __len__(self) -> int:
        return len(self.ts)


class SierraTimeAndSalesFeed:
    """A Sierra Chart time-and-sales export (`Date;Time;Sequence;…;Price;Volume;TradeType;…`)."""

    def __init__(
        self,
        path: str | Path,
        symbol: str | None = None,
        tz: str | None = None,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> None:
        self.path = Path(path)
        require_file(self.path)
        self.tz = tz or "UTC"
        self.batch_rows = batch_rows
        self.report = LoadReport(source=str(self.path), format="sierra-time-and-sales")
        with file_errors(self.path, "Sierra Chart time-and-sales"):
            names = csv_header(self.path, ";")
            scratch = LoadReport(source=str(self.path), format="sierra-time-and-sales")
            chunks = iter_csv_chunks(self.path, scratch, 8, dict.fromkeys(names, "str"), ";")
            head = next(iter(chunks), (pd.DataFrame(columns=names), None))[0].head(8)
        self.columns = _map_header([str(c) for c in head.columns], _TAS_COLUMNS)
        missing = [c for c in ("Date", "Time", "Price", "Volume") if c not in self.columns]
        if missing:
            raise DataError(
                f"{self.path}: not a Sierra Chart time-and-sales export: missing column(s) "
                f"{', '.join(missing)}"
            )
        self.has_quotes = "AskPrice" in self.columns and "BidPrice" in self.columns
        ref_year = _first_year(head[self.columns["Date"]])
        self.contract = _contract_from_name_or_symbol(self.path, symbol, ref_year)

    def batches(self) -> Iterator[MarketBatch]:
        restart_report(self.report, [])
        asm = FeedAssembler(
            self.report, self.contract, self.batch_rows, self.has_quotes, unit="line"
        )
        with file_errors(self.path, "Sierra Chart time-and-sales"):
            if "Sequence" not in self.columns:
                for frame, lines in self._chunks():
                    yield from self._feed(asm, self._parse(frame, lines))
            else:
                # Sequence order is the exchange's order; an export may be sorted otherwise
                # (one of the shared files by the time text), so read all, then sort.
                parts = [self._parse(frame, lines) for frame, lines in self._chunks()]
                rows = self._dedupe(_Prints.concat_all(parts))
                for i in range(0, len(rows), self.batch_rows):
                    yield from self._feed(
                        asm, rows.take(np.arange(i, min(i + self.batch_rows, len(rows))))
                    )
            yield from asm.finish()

    def _chunks(self) -> Iterator[tuple[pd.DataFrame, I64]]:
        kinds = {self.columns["Date"]: "str", self.columns["Time"]: "str"}
        return iter_csv_chunks(self.path, self.report, self.batch_rows, kinds, sep=";")

    def _parse(self, frame: pd.DataFrame, lines: I64) -> _Prints:
        cols = self.columns
        n = len(frame)
        days, bad_date = parse_dates(frame[cols["Date"]])
        clock, bad_clock = parse_clock(frame[cols["Time"]])
        ts, bad_tz = local_to_utc(days + clock, self.tz)
        price, bad_price = parse_float(frame[cols["Price"]])
        size, bad_size = parse_float(frame[cols["Volume"]])
        nan = np.full(n, np.nan)
        side = np.zeros(n, dtype=np.int8)
        if "TradeType" in cols:
            tt, _ = parse_float(frame[cols["TradeType"]])
            side = np.where(tt == 2, 1, np.where(tt == 1, -1, 0)).astype(np.int8)
        quote = {k: parse_float(frame[cols[k]])[0] if k in cols else nan
                 for k in ("BidPrice", "AskPrice", "BidSize", "AskSize")}  # fmt: skip
        seq = np.zeros(n, dtype=np.int64)
        bad_seq = np.zeros(n, dtype=np.bool_)
        if "Sequence" in cols:
            seq_f, bad_seq = parse_float(frame[cols["Sequence"]])
            bad_seq |= ~np.isfinite(seq_f)
            seq = np.where(bad_seq, 0, seq_f).astype(np.int64)
        keep = np.ones(n, dtype=np.bool_)
        for mask, reason in (
            (bad_date | bad_clock, "date or time unreadable"),
            (bad_tz & ~(bad_date | bad_clock), f"time does not exist or repeats in {self.tz}"),
            (bad_price, "price is not a number"),
            (bad_size, "size is not a number"),
            (bad_seq, "Sequence missing or not a number"),
        ):
            hit = mask & keep
            if hit.any():
                self.report.skip(reason, int(hit.sum()), f"line {int(lines[int(np.argmax(hit))])}")
                keep &= ~hit
        rows = _Prints(
            ts, price, size, side, quote["BidPrice"], quote["AskPrice"],
            quote["BidSize"], quote["AskSize"], seq, lines,
        )  # fmt: skip
        return rows if keep.all() else rows.take(keep)

    def _dedupe(self, rows: _Prints) -> _Prints:
        """Sort by Sequence; a repeated sequence number keeps its first row."""
        order = np.argsort(rows.seq, kind="stable")
        rows = rows.take(order)
        dup = np.zeros(len(rows), dtype=np.bool_)
        if len(rows) > 1:
            dup[1:] = rows.seq[1:] == rows.seq[:-1]
        if dup.any():
            self.report.skip(
                "duplicate Sequence number", int(dup.sum()), f"Sequence {rows.seq[dup][0]}"
            )
            rows = rows.take(~dup)
        return rows

    def _feed(self, asm: FeedAssembler, rows: _Prints) -> Iterator[MarketBatch]:
        if not len(rows):
            return
        bid = np.where(rows.bid > 0, rows.bid, np.nan) if self.has_quotes else None
        ask = np.where(rows.ask > 0, rows.ask, np.nan) if self.has_quotes else None
        trades = asm.trades(rows.ts, rows.price, rows.size, rows.side, bid, ask, rows.line)
        quotes = None
        if bid is not None and ask is not None:
            quotes = asm.quotes(rows.ts, bid, ask, rows.bid_size, rows.ask_size)
        yield from asm.emit(trades, quotes, int(rows.ts.max()))


# ---------------------------------------------------------------------------------------------
# Bars


def largest_remainder(group: I64, weight: I64, target: I64, priority: I64, n_groups: int) -> I64:
    """Split each group's integer `target` over its cells in proportion to `weight`, exactly.

    Hamilton's method: every cell gets the floor of its quota, then the cells with the largest
    remainders get one more until the group's total is reached; ties go to the lower
    `priority`. Requires `target <= sum(weight)` per group.
    """
    weight = np.asarray(weight, dtype=np.int64)
    if len(group) == 0:
        return np.zeros(0, dtype=np.int64)
    total = np.bincount(group, weights=weight, minlength=n_groups).astype(np.int64)
    t = target[group]
    w_total = total[group]
    safe = np.where(w_total > 0, w_total, 1)
    q = weight * t
    floor = q // safe
    rem = q % safe
    deficit = target - np.bincount(group, weights=floor, minlength=n_groups).astype(np.int64)
    order = np.lexsort((priority, -rem, group))
    g_sorted = group[order]
    first = np.searchsorted(g_sorted, g_sorted, side="left")
    rank = np.arange(len(order)) - first
    extra = np.zeros(len(group), dtype=np.int64)
    extra[order] = rank < deficit[g_sorted]
    return floor + extra


@dataclass(frozen=True, slots=True)
class BarTrades:
    """Trades made from bars, in time order; `bar` is the index of the bar each came from."""

    ts: I64
    price: I64
    size: I64
    side: I8
    bar: I64


def bars_to_trades(
    start: I64,
    length: I64,
    open_: I64,
    high: I64,
    low: I64,
    close: I64,
    volume: I64,
    buy: I64,
    sell: I64,
) -> BarTrades:
    """Turn validated bars (prices in ticks, buy + sell <= volume) into trades.

    Volume: V // n contracts on each of the n ticks of [low, high], the remainder one each to
    the ticks nearest the close (ties: the tick visited later). Sides: the bar's buy volume is
    split over the ticks by the largest-remainder method, sell likewise over what is left, the
    rest is side 0. Time: along the path Open → Low → High → Close (Close >= Open) or
    Open → High → Low → Close, `length` ns spread evenly over the path's steps; each tick prints
    at its last visit, except the open, which prints at the bar start. When Open == Close the
    tick's volume is halved between the first and the last print.
    """
    o, h, lo, c = (np.asarray(a, dtype=np.int64) for a in (open_, high, low, close))
    vol, a_buy, b_sell = (np.asarray(a, dtype=np.int64) for a in (volume, buy, sell))
    m = len(o)
    n = h - lo + 1
    up = c >= o
    path = np.where(up, (o - lo) + (h - lo) + (h - c), (h - o) + (h - lo) + (c - lo))
    split = (o == c) & (path > 0)
    cells = n + split
    bar = np.repeat(np.arange(m, dtype=np.int64), cells)
    starts = np.cumsum(cells) - cells
    k = np.arange(len(bar), dtype=np.int64) - starts[bar]

    ob, hb, lb, cb, upb, nb = o[bar], h[bar], lo[bar], c[bar], up[bar], n[bar]
    # Ticks in the order of their last visit (S), then the open moved to the front.
    io = np.where(up, np.where(o < c, o - lo, n - 1), h - o)[bar]
    idx = np.where(k == 0, io, np.where(k <= io, k - 1, k))
    c_len = cb - lb
    h_len = hb - cb
    price_up = np.where(idx < c_len, lb + idx, hb - (idx - c_len))
    price_dn = np.where(idx < h_len, hb - idx, lb + (idx - h_len))
    extra = k == nb  # the last print of an Open == Close bar
    price = np.where(extra, cb, np.where(upb, price_up, price_dn))

    # Position along the path of each tick's last visit -> time.
    ol = (ob - lb) + (hb - lb)
    pos_up = np.where(price >= cb, ol + (hb - price), (ob - lb) + (price - lb))
    ho = (hb - ob) + (hb - lb)
    pos_dn = np.where(price <= cb, ho + (price - lb), (hb - ob) + (hb - price))
    pos = np.where(upb, pos_up, pos_dn)
    pos = np.where(k == 0, 0, np.where(extra, path[bar], pos))
    ts = start[bar] + (pos * length[bar]) // (path[bar] + 1)

    # Volume priority: nearest the close first, a tie going to the tick visited later.
    d = np.abs(price - cb)
    nearer = np.where(d == 0, 0, 1 + np.minimum(d - 1, hb - cb) + np.minimum(d - 1, cb - lb))
    tie = (d > 0) & (cb + d <= hb) & (cb - d >= lb)
    rank = nearer + (tie & np.where(upb, price < cb, price > cb))
    base = (vol // n)[bar]
    r = (vol % n)[bar]
    heavy = rank < r
    v = base + heavy

    buys = _even_split_buys(vol, n, a_buy, bar, rank, heavy)
    sells = v - buys
    unknown = np.zeros_like(v)
    rest = (vol - a_buy - b_sell) > 0
    if rest.any():
        mask = rest[bar] & ~extra
        sub_bar = bar[mask]
        remaining = v[mask] - buys[mask]
        s = largest_remainder(sub_bar, remaining, b_sell, rank[mask], m)
        sells[mask] = s
        # The end print of a split bar copies its open cell before halving.
        end = extra & rest[bar]
        sells[end] = sells[starts[bar[end]]]
        unknown = v - buys - sells

    # Open == Close: half (rounded down) at the start, the rest at the end.
    if split.any():
        first = starts[split]
        last = first + n[split]
        for arr in (buys, sells, unknown):
            whole = arr[first].copy()
            arr[first] = whole // 2
            arr[last] = whole - whole // 2
        # Sides of one contract each leave the start empty: move the first such contract there.
        empty = (buys[first] + sells[first] + unknown[first] == 0) & (
            buys[last] + sells[last] + unknown[last] >= 2
        )
        moved = np.zeros(len(first), dtype=np.bool_)
        for arr in (buys, sells, unknown):
            take = empty & ~moved & (arr[last] > 0)
            arr[first[take]] += 1
            arr[last[take]] -= 1
            moved |= take

    sizes = np.stack([buys, sells, unknown], axis=1).ravel()
    keep = sizes > 0
    sides = np.tile(np.array([1, -1, 0], dtype=np.int8), len(bar))
    return BarTrades(
        ts=np.repeat(ts, 3)[keep],
        price=np.repeat(price, 3)[keep],
        size=sizes[keep],
        side=sides[keep],
        bar=np.repeat(bar, 3)[keep],
    )


def _even_split_buys(vol: I64, n: I64, buy: I64, bar: I64, rank: I64, heavy: Mask) -> I64:
    """Largest-remainder split of each bar's buy volume over its evenly spread ticks.

    The ticks carry only two volumes (V // n and one more), so the remainders take two values
    and the method has a closed form: no sort needed.
    """
    safe = np.where(vol > 0, vol, 1)
    b = vol // n
    r = vol % n
    fh, remh = np.divmod((b + 1) * buy, safe)
    fb, remb = np.divmod(b * buy, safe)
    deficit = buy - r * fh - (n - r) * fb
    heavy_first = (remh >= remb)[bar]
    kb, rb, nb = deficit[bar], r[bar], n[bar]
    extra = np.where(
        heavy_first,
        rank < kb,
        ((rank >= rb) & (rank < rb + kb)) | (rank < kb - (nb - rb)),
    )
    return np.where(heavy, fh[bar], fb[bar]) + extra


_BAR_COLUMNS = (
    "Date", "Time", "Open", "High", "Low", "Last", "Close", "Volume", "BidVolume", "AskVolume",
)  # fmt: skip


_MALFORMED = "malformed row (wrong number of fields)"


class SierraBarFeed:
    """A Sierra Chart bar export (`Date, Time, Open, High, Low, Last, Volume, …`) as trades."""

    def __init__(
        self,
        path: str | Path,
        symbol: str | None = None,
        tz: str | None = None,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> None:
        self.path = Path(path)
        require_file(self.path)
        self.tz = tz or "America/Chicago"
        self.batch_rows = batch_rows
        self.report = LoadReport(source=str(self.path), format="sierra-bars")
        with file_errors(self.path, "Sierra Chart bar"):
            self._frame = self._read()
        ref_year = _first_year(self._frame[self.columns["Date"]].iloc[:8])
        self.contract = _contract_from_name_or_symbol(self.path, symbol, ref_year)
        self.bar_length_ns: int | None = None

    def _read(self) -> pd.DataFrame:
        kinds = {n: "str" for n in csv_header(self.path) if n.strip() in ("Date", "Time")}
        scratch = LoadReport(source=str(self.path), format="sierra-bars")
        parts = list(iter_csv_chunks(self.path, scratch, self.batch_rows, kinds))
        if parts:
            frame = pd.concat([f for f, _ in parts], ignore_index=True)
            self._lines = np.concatenate([ln for _, ln in parts])
        else:
            frame = pd.DataFrame({n: pd.Series(dtype="str") for n in csv_header(self.path)})
            self._lines = np.zeros(0, dtype=np.int64)
        frame.columns = [str(c).strip() for c in frame.columns]
        self._bad_lines = (scratch.skipped.get(_MALFORMED, 0), scratch.examples.get(_MALFORMED))
        self.columns = _map_header(list(frame.columns), _BAR_COLUMNS)
        if "Last" not in self.columns and "Close" in self.columns:
            self.columns["Last"] = self.columns["Close"]
        needed = ("Date", "Time", "Open", "High", "Low", "Last", "Volume", "BidVolume", "AskVolume")
        missing = [c for c in needed if c not in self.columns]
        if missing:
            raise DataError(
                f"{self.path}: not a Sierra Chart bar export with bid/ask volume: missing "
                f"column(s) {', '.join(missing)}"
            )
        return frame

    def batches(self) -> Iterator[MarketBatch]:
        start, length, o, h, lo, c, vol, buy, sell = self._bars()
        batcher = Batcher(self.batch_rows, has_quotes=False)
        for i in range(0, len(o), BAR_CHUNK):
            j = slice(i, i + BAR_CHUNK)
            made = bars_to_trades(
                start[j], length[j], o[j], h[j], lo[j], c[j], vol[j], buy[j], sell[j]
            )
            n = len(made.ts)
            batch = TradeBatch(
                made.ts, made.price, made.size, made.side, np.ones(n, dtype=np.bool_)
            )
            self.report.trades += n
            self.report.aggressor.update(count_sources(batch, AggressorSource.BAR_SPLIT))
            yield from batcher.add(batch)
        yield from batcher.finish()

    def _bars(self) -> tuple[I64, I64, I64, I64, I64, I64, I64, I64, I64]:
        """Validate the bars (counting skips) and return them as int arrays, ticks for prices."""
        f, cols, rep = self._frame, self.columns, self.report
        restart_report(rep, [])
        rep.rows_read = len(f) + self._bad_lines[0]
        rep.skip(_MALFORMED, self._bad_lines[0], self._bad_lines[1])
        tick = self.contract.spec.tick_size
        days, bad_date = parse_dates(f[cols["Date"]])
        clock, bad_clock = parse_clock(f[cols["Time"]])
        start, bad_tz = local_to_utc(days + clock, self.tz)
        num = {k: parse_float(f[cols[k]]) for k in ("Open", "High", "Low", "Last")}
        vols = {k: parse_float(f[cols[k]]) for k in ("Volume", "BidVolume", "AskVolume")}
        prices = np.stack([num[k][0] for k in ("Open", "High", "Low", "Last")])
        volumes = np.stack([vols[k][0] for k in ("Volume", "AskVolume", "BidVolume")])
        unreadable = np.any(np.stack([v[1] for v in (*num.values(), *vols.values())]), axis=0)
        with np.errstate(invalid="ignore"):
            scaled = prices / tick
            ticks = np.rint(scaled)
            nan = ~np.all(np.isfinite(prices), axis=0) | ~np.all(np.isfinite(volumes), axis=0)
            nonpos = np.any(prices <= 0, axis=0)
            off_grid = np.any(np.abs(scaled - ticks) > 1e-6, axis=0)
            bad_vol = np.any((volumes < 0) | (volumes != np.floor(volumes)), axis=0)
        ti = np.where(np.isfinite(ticks), ticks, 0).astype(np.int64)
        o, h, lo, c = ti
        inconsistent = (h < lo) | (o > h) | (o < lo) | (c > h) | (c < lo)
        too_wide = (h - lo) > MAX_BAR_RANGE_TICKS
        implausible, far = self._price_band(prices, days, ~(nan | nonpos))
        keep = np.ones(len(f), dtype=np.bool_)
        for mask, reason in (
            (bad_date | bad_clock, "date or time unreadable"),
            (bad_tz, f"time does not exist or repeats in {self.tz}"),
            (unreadable | nan, "field missing or not a number"),
            (nonpos, "price is zero or negative"),
            (off_grid, "price is off the tick grid"),
            (inconsistent, "high below low, or open/close outside [low, high]"),
            (
                implausible,
                "price outside the instrument's plausible range "
                f"{self._limits[0]:g} to {self._limits[1]:g}",
            ),
            (far, f"price more than {PRICE_BAND_SHARE:.0%} from the day's median"),
            (too_wide, f"bar range wider than {MAX_BAR_RANGE_TICKS} ticks"),
            (bad_vol, "volume negative or not a whole number"),
        ):
            hit = mask & keep
            if hit.any():
                rep.skip(reason, int(hit.sum()), f"line {int(self._lines[np.argmax(hit)])}")
                keep &= ~hit
        # Time order: a bar starting at or before an earlier kept bar is dropped.
        idx = np.flatnonzero(keep)
        if len(idx) > 1:
            st = start[idx]
            prior = np.concatenate(([np.iinfo(np.int64).min], np.maximum.accumulate(st)[:-1]))
            back = st <= prior
            if back.any():
                rep.skip("bar time goes back or repeats", int(back.sum()),
                         f"line {int(self._lines[idx[np.argmax(back)]])}")  # fmt: skip
                if len(idx) >= 1000 and back.sum() > MAX_OUT_OF_ORDER_SHARE * len(idx):
                    raise DataError(
                        f"{self.path}: {int(back.sum())} of {len(idx)} bars go back in time; "
                        "the file is not sorted by time (sort it and try again)"
                    )
                keep[idx[back]] = False
        check_mostly_readable(rep)
        idx = np.flatnonzero(keep)
        start = start[idx]
        o, h, lo, c = o[idx], h[idx], lo[idx], c[idx]
        vol, buy, sell = (volumes[i][idx].astype(np.int64) for i in range(3))
        buy, sell = self._reconcile(vol, buy, sell)
        length = self._lengths(start)
        zero = int((vol == 0).sum())
        if zero:
            rep.notes.append(f"{zero} bars with zero volume (no trades)")
        return start, length, o, h, lo, c, vol, buy, sell

    @property
    def _limits(self) -> tuple[float, float]:
        return price_limits(self.contract.spec)

    def _price_band(self, prices: F64, days: I64, usable: Mask) -> tuple[Mask, Mask]:
        """Bars with a price outside the product's plausible range, and bars with a price more
        than PRICE_BAND_SHARE from the median close of their day (a bad print, not a market)."""
        lo, hi = self._limits
        with np.errstate(invalid="ignore"):
            implausible = np.any((prices < lo) | (prices > hi), axis=0)
            ok = usable & ~implausible
            close = pd.Series(np.where(ok, prices[3], np.nan))
            median = close.groupby(days).transform("median").to_numpy(dtype=np.float64)
            far = np.any(np.abs(prices - median) > PRICE_BAND_SHARE * median, axis=0) & ok
        return implausible & usable, far

    def _reconcile(self, vol: I64, buy: I64, sell: I64) -> tuple[I64, I64]:
        """Make buy + sell <= volume: scale both down (largest remainder) where they exceed it."""
        over = buy + sell > vol
        short = buy + sell < vol
        if short.any():
            self.report.notes.append(
                f"{int(short.sum())} bars with AskVolume + BidVolume < Volume: "
                "the difference is traded with side 0 (unknown)"
            )
        if not over.any():
            return buy, sell
        self.report.notes.append(
            f"{int(over.sum())} bars with AskVolume + BidVolume > Volume: both scaled down"
        )
        buy, sell = buy.copy(), sell.copy()
        ov = np.flatnonzero(over)
        groups = np.repeat(np.arange(len(ov), dtype=np.int64), 2)
        weights = np.stack([buy[ov], sell[ov]], axis=1).ravel()
        priority = np.tile(np.array([0, 1], dtype=np.int64), len(ov))
        split = largest_remainder(groups, weights, vol[ov], priority, len(ov)).reshape(-1, 2)
        buy[ov], sell[ov] = split[:, 0], split[:, 1]
        return buy, sell

    def _lengths(self, start: I64) -> I64:
        """Each bar's time span: the file's usual bar length, cut short by the next bar's start."""
        if len(start) == 0:
            return np.zeros(0, dtype=np.int64)
        diffs = np.diff(start)
        diffs = diffs[diffs > 0]
        if len(diffs):
            values, counts = np.unique(diffs, return_counts=True)
            usual = int(values[np.argmax(counts)])
        else:
            usual = self._length_from_name()
        self.bar_length_ns = usual
        length = np.full(len(start), usual, dtype=np.int64)
        if len(start) > 1:
            length[:-1] = np.minimum(usual, np.diff(start))
        return length

    def _length_from_name(self) -> int:
        m = re.search(r"_(\d+)\s*(s|sec|m|min|h|d)\b", self.path.name, re.IGNORECASE)
        if m is None:
            self.report.notes.append("one bar only and no bar length in the file name: 1 minute")
            return 60 * 1_000_000_000
        unit = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86_400}[m.group(2).lower()]
        return int(m.group(1)) * unit * 1_000_000_000
