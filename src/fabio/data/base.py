"""The market-data port: every source yields time-ordered `MarketBatch`es behind one interface.

Readers share `TradeSanitizer`, so that bad rows are handled the same way everywhere: a row with
a NaN, zero or negative price or size, a price off the tick grid, a price outside the
instrument's plausible range or more than ±20 % from the recent median (a fat-fingered 1e12 or
1,000,000 must neither crash a profile nor become its high), or a timestamp that goes back in
time is skipped and counted by reason in the feed's `LoadReport`, citing the row as `line N`
(text files) or `record N` (binary files), 1-based in the file. A file that is mostly unreadable
or not time-ordered raises `DataError` with a message saying what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from fabio.domain import LoadReport, TradeBatch
from fabio.errors import DataError
from fabio.instruments import InstrumentSpec
from fabio.ports import MarketFeed

__all__ = ["MarketFeed", "TradeSanitizer", "check_mostly_readable", "price_limits", "require_file"]

DEFAULT_BATCH_ROWS = 65_536
# A trade further than this share from the median of recent prices is a bad print.
PRICE_BAND_SHARE = 0.20
# Below this many in-range prices a batch's own median is not trusted: the last one is kept.
_MIN_ROWS_FOR_MEDIAN = 20
# Plausible price ranges (index points) of the products: far wider than any traded level, narrow
# enough that a profile over them stays small.
_PRICE_LIMITS = {
    "ES": (100.0, 50_000.0),
    "MES": (100.0, 50_000.0),
    "NQ": (100.0, 200_000.0),
    "MNQ": (100.0, 200_000.0),
}


def price_limits(spec: InstrumentSpec) -> tuple[float, float]:
    """The plausible (low, high) price of a product; unknown roots get a generous range."""
    return _PRICE_LIMITS.get(spec.root, (spec.tick_size, 10_000_000.0))


# Above this share of rows going back in time, the file is refused as unsorted.
MAX_OUT_OF_ORDER_SHARE = 0.01


class TradeSanitizer:
    """Validates raw trade columns batch by batch, carrying time order across batches."""

    def __init__(
        self,
        report: LoadReport,
        tick_size: float,
        unit: str = "record",
        price_limits: tuple[float, float] | None = None,
    ) -> None:
        self.report = report
        self.tick_size = tick_size
        self.unit = unit
        self.price_limits = price_limits
        self.reference: float | None = None  # the median of recent good prices
        self.last_ts: int | None = None
        self._seen = 0
        self._out_of_order = 0

    def clean(
        self,
        ts: NDArray[np.int64],
        price: NDArray[np.float64],
        size: NDArray[np.float64],
        side: NDArray[np.int8],
        inferred: NDArray[np.bool_] | None = None,
        lines: NDArray[np.int64] | None = None,
    ) -> TradeBatch:
        """Return the valid rows as a TradeBatch (price converted to ticks).

        `lines`: each row's line (or record) number in the file; without it rows are numbered
        in the order this sanitizer saw them.
        """
        n = len(ts)
        if lines is None:
            lines = np.arange(self._seen + 1, self._seen + n + 1, dtype=np.int64)
        self._seen += n
        price = np.asarray(price, dtype=np.float64)
        size_f = np.asarray(size, dtype=np.float64)
        keep = np.ones(n, dtype=np.bool_)

        def drop(mask: NDArray[np.bool_], reason: str) -> None:
            bad = mask & keep
            count = int(bad.sum())
            if count:
                where = int(np.flatnonzero(bad)[0])
                self.report.skip(reason, count, f"{self.unit} {int(lines[where])}")
                keep[bad] = False

        drop(~np.isfinite(price), "price is NaN or infinite")
        drop(~np.isfinite(size_f), "size is NaN or infinite")
        drop(np.isfinite(price) & (price <= 0), "price is zero or negative")
        drop(np.isfinite(size_f) & (size_f <= 0), "size is zero or negative")
        drop(np.isfinite(size_f) & (size_f != np.floor(size_f)), "size is not a whole number")
        with np.errstate(invalid="ignore"):
            scaled = price / self.tick_size
            ticks = np.rint(scaled)
            drop(
                np.isfinite(scaled) & (np.abs(scaled - ticks) > 1e-6), "price is off the tick grid"
            )
        self._price_band(price, keep, drop)

        ts = np.asarray(ts, dtype=np.int64)
        idx = np.flatnonzero(keep)
        if len(idx):
            kept_ts = ts[idx]
            prior = np.maximum.accumulate(kept_ts)
            prior = np.concatenate(
                ([self.last_ts if self.last_ts is not None else kept_ts[0]], prior[:-1])
            )
            if self.last_ts is not None:
                prior = np.maximum(prior, self.last_ts)
            back = kept_ts < prior
            if back.any():
                mask = np.zeros(n, dtype=np.bool_)
                mask[idx[back]] = True
                self._out_of_order += int(back.sum())
                drop(mask, "timestamp goes back in time")
                idx = np.flatnonzero(keep)
            if len(idx):
                self.last_ts = (
                    int(ts[idx[-1]])
                    if self.last_ts is None
                    else max(self.last_ts, int(ts[idx[-1]]))
                )
        self._check_order()
        inf = (
            np.zeros(n, dtype=np.bool_)
            if inferred is None
            else np.asarray(inferred, dtype=np.bool_)
        )
        batch = TradeBatch.from_arrays(
            ts[idx],
            ticks[idx].astype(np.int64),
            size_f[idx].astype(np.int64),
            np.asarray(side)[idx],
            inf[idx],
        )
        self.report.trades += len(batch)
        return batch

    def _price_band(
        self,
        price: NDArray[np.float64],
        keep: NDArray[np.bool_],
        drop: Callable[[NDArray[np.bool_], str], None],
    ) -> None:
        """Skip prints outside the product's plausible range or far from the recent median."""
        if self.price_limits is not None:
            lo, hi = self.price_limits
            with np.errstate(invalid="ignore"):
                drop(
                    (price < lo) | (price > hi),
                    f"price outside the instrument's plausible range {lo:g} to {hi:g}",
                )
        good = price[keep]
        if len(good) >= _MIN_ROWS_FOR_MEDIAN or (self.reference is None and len(good)):
            self.reference = float(np.median(good))
        if self.reference is None:
            return
        ref = self.reference
        with np.errstate(invalid="ignore"):
            drop(
                np.abs(price - ref) > PRICE_BAND_SHARE * ref,
                f"price more than {PRICE_BAND_SHARE:.0%} from the recent median",
            )
        good = price[keep]
        if len(good) >= _MIN_ROWS_FOR_MEDIAN:
            self.reference = float(np.median(good))

    def _check_order(self) -> None:
        if self._seen >= 1000 and self._out_of_order > MAX_OUT_OF_ORDER_SHARE * self._seen:
            raise DataError(
                f"{self.report.source}: {self._out_of_order} of the first {self._seen} rows go "
                "back "
                "in time; the file is not sorted by time (sort it by timestamp and try again)"
            )


def check_mostly_readable(report: LoadReport, min_share: float = 0.5) -> None:
    """Refuse a file where most rows were unusable: it is probably not the format we think."""
    if report.rows_read >= 20 and report.skipped_total > (1 - min_share) * report.rows_read:
        top = ", ".join(f"{n} {r}" for r, n in report.skipped.most_common(3))
        raise DataError(
            f"{report.source}: {report.skipped_total} of {report.rows_read} rows are unusable "
            f"({top}); is this really a {report.format} file?"
        )


def require_file(path: Path) -> None:
    """A readable, non-empty regular file, or a DataError saying what is wrong."""
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
