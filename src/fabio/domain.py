"""Value types shared by every layer: trades, quotes and batches of them.

Prices are integer ticks, times are UTC nanoseconds since the epoch, sizes are contracts.
Batches are struct-of-arrays (numpy) so that the hot path stays vectorised.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

import numpy as np
from numpy.typing import NDArray

I64 = NDArray[np.int64]
I8 = NDArray[np.int8]
BoolArray = NDArray[np.bool_]


class Side(IntEnum):
    """Aggressor side of a trade."""

    SELL = -1
    UNKNOWN = 0
    BUY = 1


class AggressorSource(StrEnum):
    """Where a trade's aggressor side came from."""

    EXCHANGE = "exchange"  # reported by the venue (Databento side, Sierra TradeType)
    QUOTE_RULE = "quote_rule"  # at/above ask = buy, at/below bid = sell
    LEE_READY = "lee_ready"  # quote rule, tick rule at the midpoint
    TICK_RULE = "tick_rule"  # uptick = buy, downtick = sell, zero tick = previous
    BAR_SPLIT = "bar_split"  # from a bar's Ask/BidVolume split
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class TradeBatch:
    """Time-ordered trades as parallel arrays.

    `side` is +1 buy aggressor, -1 sell aggressor, 0 unknown; `inferred` marks trades whose
    side was classified by us (quote/tick rule, bar split) rather than reported by the venue.
    """

    ts: I64
    price: I64
    size: I64
    side: I8
    inferred: BoolArray

    def __post_init__(self) -> None:
        n = len(self.ts)
        for name in ("price", "size", "side", "inferred"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"TradeBatch.{name} has {len(getattr(self, name))} rows, ts has {n}"
                )

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def empty(cls) -> TradeBatch:
        return cls.from_arrays([], [], [], [])

    @classmethod
    def from_arrays(
        cls,
        ts: object,
        price: object,
        size: object,
        side: object,
        inferred: object | None = None,
    ) -> TradeBatch:
        """Build a batch, converting to the canonical dtypes."""
        ts_a = np.ascontiguousarray(ts, dtype=np.int64)
        inf_a = (
            np.zeros(len(ts_a), dtype=np.bool_)
            if inferred is None
            else np.ascontiguousarray(inferred, dtype=np.bool_)
        )
        return cls(
            ts=ts_a,
            price=np.ascontiguousarray(price, dtype=np.int64),
            size=np.ascontiguousarray(size, dtype=np.int64),
            side=np.ascontiguousarray(side, dtype=np.int8),
            inferred=inf_a,
        )

    def slice(self, start: int, stop: int) -> TradeBatch:
        return TradeBatch(
            self.ts[start:stop],
            self.price[start:stop],
            self.size[start:stop],
            self.side[start:stop],
            self.inferred[start:stop],
        )

    def take(self, mask_or_index: NDArray[np.bool_] | NDArray[np.intp]) -> TradeBatch:
        return TradeBatch(
            self.ts[mask_or_index],
            self.price[mask_or_index],
            self.size[mask_or_index],
            self.side[mask_or_index],
            self.inferred[mask_or_index],
        )

    @staticmethod
    def concat(batches: list[TradeBatch]) -> TradeBatch:
        if not batches:
            return TradeBatch.empty()
        return TradeBatch(
            np.concatenate([b.ts for b in batches]),
            np.concatenate([b.price for b in batches]),
            np.concatenate([b.size for b in batches]),
            np.concatenate([b.side for b in batches]),
            np.concatenate([b.inferred for b in batches]),
        )


@dataclass(frozen=True, slots=True)
class QuoteBatch:
    """Time-ordered top-of-book updates as parallel arrays (prices in ticks)."""

    ts: I64
    bid: I64
    ask: I64
    bid_size: I64
    ask_size: I64

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def from_arrays(
        cls, ts: object, bid: object, ask: object, bid_size: object, ask_size: object
    ) -> QuoteBatch:
        return cls(
            np.ascontiguousarray(ts, dtype=np.int64),
            np.ascontiguousarray(bid, dtype=np.int64),
            np.ascontiguousarray(ask, dtype=np.int64),
            np.ascontiguousarray(bid_size, dtype=np.int64),
            np.ascontiguousarray(ask_size, dtype=np.int64),
        )

    def slice(self, start: int, stop: int) -> QuoteBatch:
        return QuoteBatch(
            self.ts[start:stop],
            self.bid[start:stop],
            self.ask[start:stop],
            self.bid_size[start:stop],
            self.ask_size[start:stop],
        )


@dataclass(frozen=True, slots=True)
class MarketBatch:
    """What a feed yields: trades, and the quotes of the same span where the source has them."""

    trades: TradeBatch
    quotes: QuoteBatch | None = None


@dataclass(slots=True)
class LoadReport:
    """What a reader did with a file: rows read, kept, and skipped by reason."""

    source: str
    format: str
    rows_read: int = 0
    trades: int = 0
    quotes: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    aggressor: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def skip(self, reason: str, count: int = 1, example: str | None = None) -> None:
        """Count `count` skipped rows for `reason`, keeping the first example."""
        if count <= 0:
            return
        self.skipped[reason] += count
        if example is not None and reason not in self.examples:
            self.examples[reason] = example[:200]

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        parts = [f"{self.source} ({self.format}): {self.rows_read} rows, {self.trades} trades"]
        if self.quotes:
            parts.append(f"{self.quotes} quotes")
        if self.skipped:
            reasons = ", ".join(f"{n} {r}" for r, n in sorted(self.skipped.items()))
            parts.append(f"skipped {self.skipped_total} ({reasons})")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "format": self.format,
            "rows_read": self.rows_read,
            "trades": self.trades,
            "quotes": self.quotes,
            "skipped": dict(self.skipped),
            "examples": dict(self.examples),
            "aggressor": dict(self.aggressor),
            "notes": list(self.notes),
        }
