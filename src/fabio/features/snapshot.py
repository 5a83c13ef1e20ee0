"""The feature snapshot: what the brain and the CLI see, with the spec's names.

Prices in a snapshot are plain index points (floats at the edge), distances in ticks, times in
seconds. `to_dict()` gives the JSON shape used by `--json` and, later, the journal.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ProfileLevels:
    """A session's volume profile summary."""

    poc: float | None
    vah: float | None
    val: float | None
    high: float | None
    low: float | None
    volume: int
    buy_volume: int
    sell_volume: int
    cvd: int
    hvn: list[float] = field(default_factory=list)
    lvn: list[float] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    trade_date: str
    kind: str
    open: str
    close: str
    minutes_into_session: float
    minutes_to_close: float
    is_open: bool
    trades: int


@dataclass(frozen=True, slots=True)
class PocCrossStats:
    count_last_5min: int
    count_last_15min: int
    count_last_30min: int
    time_since_last_cross_sec: float | None
    current_side: str  # above_poc | below_poc | at_poc


@dataclass(frozen=True, slots=True)
class MarketStats:
    session_range_ticks: int
    session_range_percentile: float | None
    session_range_percentile_final: float | None
    sessions_in_percentile: int
    distance_to_poc_ticks: int | None
    distance_to_vah_ticks: int | None
    distance_to_val_ticks: int | None
    time_above_value_sec: float
    time_below_value_sec: float
    time_in_value_sec: float
    time_above_value_last_30min_sec: float
    time_below_value_last_30min_sec: float
    time_in_value_last_30min_sec: float
    cvd: int
    cvd_slope_5min: float | None
    cvd_slope_15min: float | None
    cvd_inferred_share: float
    volume_last_5min: int
    volume_last_15min: int
    # Rolling price statistics (regimes switch within a session; the session range does not
    # see it). Defaults keep older constructors valid.
    range_last_5min_ticks: int = 0
    price_change_last_5min_ticks: int = 0
    range_last_15min_ticks: int = 0
    price_change_last_15min_ticks: int = 0
    high_last_15min: float | None = None  # extremes of the 15-minute window (prices)
    low_last_15min: float | None = None
    # The market's own scale: medians of the rolling 5- and 15-minute range and of
    # abs(cvd_slope_15min), sampled every minute over the last sessions and this one
    # (None until there are enough minutes). The regime read divides by them.
    typical_range_5min_ticks: float | None = None
    typical_range_15min_ticks: float | None = None
    typical_cvd_slope_15min: float | None = None
    # The path of one-minute closes (the last price of each minute; the current minute's is
    # the last trade): net change and range over the last 15 and 30 minutes (ticks), and the
    # variance ratio of the last 15 minutes, var(5-minute changes) / (5 var(1-minute changes)):
    # about 1 for a random walk, above 1 when moves persist (trend, a slow rotation), well
    # below 1 when each move is taken back (chop). None until the session has the minutes.
    close_change_last_15min_ticks: int | None = None
    close_range_last_15min_ticks: int | None = None
    close_change_last_30min_ticks: int | None = None
    close_range_last_30min_ticks: int | None = None
    variance_ratio_15min: float | None = None


@dataclass(frozen=True, slots=True)
class BigPrint:
    time: str
    price: float
    size: int
    side: str


@dataclass(frozen=True, slots=True)
class OrderflowSignals:
    window_sec: int
    big_print_min_size: int
    big_prints_count: int
    big_prints_buy_volume: int
    big_prints_sell_volume: int
    recent_big_prints: list[BigPrint]
    absorption: dict[str, Any] | None
    exhaustion: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class FeatureSnapshot:
    """Everything the feature engine knows at one moment."""

    symbol: str
    ts_ns: int
    time: str
    price: float | None
    last_trade_time: str | None
    session: SessionInfo | None
    profile: ProfileLevels | None
    developing: dict[str, float | None]
    prior_session: dict[str, Any] | None
    market_stats: MarketStats | None
    poc_cross_stats: PocCrossStats | None
    orderflow: OrderflowSignals | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
