"""A seeded synthetic CME index-futures market with known regimes (see docs/synthetic.md).

No full day of real tick data is available, so backtests, benchmarks and the regime classifier
are developed against this generator. Each trade date is cut into regime segments (trend,
range, chop) whose true label is kept per minute; a fair-value path in ticks follows the
regime, trades arrive as a Poisson process shaped by the real ES intraday volume curve, and
each print goes to the ask (buy aggressor) or the bid (sell aggressor) of a one-tick market.
Everything is vectorised with numpy and derived from `numpy.random.default_rng(seed)` only,
so the same configuration always produces the same arrays and the same files.

Calibration targets come from the real ES data in `../shared/data` (ten years of Sierra 5-minute
bars, Databento and Sierra prints); `python -m fabio.data.synthetic_calibration` compares them.
"""

from __future__ import annotations

import gzip
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from enum import IntEnum
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fabio.data.base import DEFAULT_BATCH_ROWS
from fabio.data.tabular import CSV_SYMBOL_KEY
from fabio.domain import AggressorSource, LoadReport, MarketBatch, QuoteBatch, TradeBatch
from fabio.errors import ConfigError, InstrumentError
from fabio.instruments import MONTH_CODES, SPECS, Contract, parse_symbol
from fabio.sessions import Session, cme_calendar
from fabio.timeutil import CHICAGO, NS_PER_MIN, NS_PER_SEC, ns_to_datetime

if TYPE_CHECKING:
    import pyarrow as pa

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
I8 = NDArray[np.int8]

GENERATOR_NAME = "fabio.synthetic/1"

# Mean share of the trade date's volume per 5-minute bar, 17:00 CT (previous evening) → 16:00 CT,
# in units of 1e-5. Real ES, Sierra 5-minute bars 2021-07 → 2023-12 (598 complete trade dates),
# computed by `fabio.data.synthetic_calibration.volume_curve_5m`. RTH (08:30–15:00) is bars
# 186–263 and holds 79 % of the volume; the 08:30 and 14:55 bars carry the open/close spikes.
_VOLUME_CURVE_5M: tuple[int, ...] = (
    130,
    60,
    52,
    49,
    45,
    40,
    44,
    38,
    35,
    34,
    32,
    30,
    52,
    42,
    39,
    44,
    38,
    36,
    44,
    38,
    39,
    44,
    45,
    44,
    91,
    69,
    60,
    76,
    57,
    50,
    63,
    55,
    53,
    55,
    51,
    48,
    56,
    50,
    47,
    60,
    51,
    48,
    68,
    62,
    58,
    55,
    51,
    47,
    53,
    46,
    46,
    41,
    41,
    39,
    42,
    38,
    36,
    37,
    35,
    34,
    41,
    34,
    32,
    31,
    31,
    31,
    36,
    31,
    30,
    30,
    27,
    27,
    34,
    30,
    29,
    27,
    26,
    28,
    35,
    28,
    26,
    27,
    27,
    30,
    51,
    40,
    37,
    34,
    34,
    36,
    43,
    38,
    38,
    40,
    43,
    54,
    96,
    70,
    61,
    63,
    60,
    57,
    64,
    57,
    56,
    61,
    56,
    69,
    217,
    159,
    141,
    136,
    132,
    127,
    141,
    117,
    111,
    107,
    104,
    100,
    154,
    129,
    114,
    111,
    107,
    97,
    107,
    100,
    91,
    91,
    91,
    88,
    103,
    94,
    86,
    85,
    87,
    81,
    86,
    84,
    86,
    82,
    85,
    88,
    108,
    88,
    90,
    87,
    88,
    85,
    94,
    87,
    87,
    95,
    92,
    102,
    138,
    115,
    111,
    108,
    113,
    113,
    131,
    121,
    124,
    127,
    124,
    125,
    185,
    169,
    169,
    190,
    199,
    182,
    580,
    373,
    323,
    310,
    299,
    285,
    346,
    300,
    287,
    306,
    272,
    520,
    2792,
    1993,
    1717,
    1748,
    1581,
    1351,
    1873,
    1522,
    1441,
    1418,
    1295,
    1274,
    1316,
    1189,
    1155,
    1117,
    1083,
    1019,
    1141,
    998,
    941,
    965,
    891,
    900,
    999,
    873,
    850,
    811,
    766,
    749,
    825,
    739,
    685,
    688,
    676,
    650,
    690,
    632,
    618,
    639,
    618,
    599,
    767,
    683,
    625,
    635,
    647,
    635,
    695,
    623,
    610,
    620,
    594,
    603,
    932,
    754,
    697,
    717,
    672,
    686,
    805,
    790,
    777,
    760,
    752,
    750,
    921,
    845,
    855,
    850,
    845,
    813,
    986,
    955,
    1041,
    1189,
    1962,
    5248,
    2101,
    580,
    462,
    166,
    119,
    98,
    108,
    83,
    81,
    97,
    82,
    138,
)
_CURVE_START_MIN = 17 * 60  # the curve's first bar starts at 17:00 CT
_RTH_BARS = slice(186, 264)

# Defaults per product (assumptions, see docs/synthetic.md): RTH trades per session, fair price
# at the start of 2024, range scale in ticks relative to ES (NQ moves ~4x as many ticks), and
# the median top-of-book size.
DEFAULT_RTH_TRADES = {"ES": 500_000, "NQ": 400_000, "MES": 350_000, "MNQ": 450_000}
_BASE_PRICE = {"ES": 4800.0, "MES": 4800.0, "NQ": 16900.0, "MNQ": 16900.0}
_TICK_SCALE = {"ES": 1.0, "MES": 1.0, "NQ": 4.0, "MNQ": 4.0}
_BOOK_SIZE = {"ES": 30.0, "MES": 15.0, "NQ": 6.0, "MNQ": 8.0}
_ROOT_CODE = {"ES": 1, "NQ": 2, "MES": 3, "MNQ": 4}


class Regime(IntEnum):
    """The true market regime of a minute."""

    TREND = 0
    RANGE = 1
    CHOP = 2

    @property
    def label(self) -> str:
        return self.name.lower()


REGIME_NAMES: tuple[str, ...] = tuple(r.label for r in Regime)


class RegimeParams(BaseModel):
    """Regime process parameters; prices in ES ticks at volatility 1, times in minutes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rth_probs: tuple[float, float, float] = (0.32, 0.38, 0.30)  # trend, range, chop
    eth_probs: tuple[float, float, float] = (0.20, 0.40, 0.40)
    segment_mean_min: float = Field(65.0, gt=0)
    segment_min_min: int = Field(25, ge=1)
    segment_max_min: int = Field(120, ge=1)
    trend_drift: tuple[float, float] = (0.85, 1.7)  # ticks per minute
    trend_noise: float = Field(0.9, ge=0)  # random-walk ticks per sqrt(minute)
    trend_imbalance: tuple[float, float] = (0.10, 0.16)  # net aggressor volume / volume
    trend_day_bias: float = Field(0.65, ge=0, le=1)  # P(a trend follows the day's direction)
    range_half_width: tuple[float, float] = (5.0, 12.0)  # ticks
    range_period_min: tuple[float, float] = (10.0, 24.0)
    range_imbalance: tuple[float, float] = (0.04, 0.08)  # amplitude, sign follows the rotation
    chop_noise: float = Field(1.0, ge=0)  # ticks
    flow_noise: float = Field(0.03, ge=0)  # std of the 1-minute imbalance noise, every regime
    activity: tuple[float, float, float] = (1.25, 1.0, 0.8)  # trade-rate multiplier per regime
    activity_vol_exponent: float = Field(0.4, ge=0)  # price moves scale with rate**exponent
    day_vol_sigma: float = Field(0.65, ge=0)  # log-normal day volatility, AR(1) across days
    day_vol_phi: float = Field(0.7, ge=0, lt=1)
    gap_ticks: float = Field(6.0, ge=0)  # std of the close → next open gap

    @field_validator("rth_probs", "eth_probs", "activity")
    @classmethod
    def _positive(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(value) < 0 or sum(value) <= 0:
            raise ValueError("must be non-negative and not all zero")
        return value

    @model_validator(mode="after")
    def _segments(self) -> RegimeParams:
        if self.segment_min_min > self.segment_max_min:
            raise ValueError("segment_min_min must not exceed segment_max_min")
        return self

    @field_validator(
        "trend_drift", "trend_imbalance", "range_half_width", "range_period_min", "range_imbalance"
    )
    @classmethod
    def _interval(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] < 0 or value[1] < value[0]:
            raise ValueError("must be an interval (low, high) with 0 <= low <= high")
        return value


class SyntheticConfig(BaseModel):
    """What to generate: product, trade dates, seed, activity and the regime process."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str = "ES"
    days: int = Field(1, ge=1, le=10_000)
    seed: int = Field(0, ge=0)
    start: date = date(2024, 1, 2)
    rth_trades: int | None = Field(None, ge=1, le=20_000_000)
    eth: bool = True
    volatility: float = Field(1.0, gt=0, le=20)
    regimes: RegimeParams = RegimeParams()
    # The first session's opening price in ticks (None: the product's 2024 level). The market
    # is the same path shifted by a whole number of ticks: a paper restart continues from where
    # the previous market was (fabio.paper).
    open_ticks: int | None = Field(None, ge=1)

    @field_validator("symbol")
    @classmethod
    def _root(cls, value: str) -> str:
        """A root (`ES`) or a contract (`NQZ5`: its root; the month follows the dates)."""
        try:
            return parse_symbol(value).spec.root
        except InstrumentError as exc:
            raise ValueError(str(exc)) from None

    @property
    def target_rth_trades(self) -> int:
        """Expected trades in a full RTH session (the product's default when not set)."""
        return self.rth_trades if self.rth_trades is not None else DEFAULT_RTH_TRADES[self.symbol]

    def trade_dates(self) -> list[date]:
        """The CME trade dates generated: `days` of them from `start` on."""
        dates = cme_calendar().next_trade_dates(self.start, self.days)
        if len(dates) < self.days:
            raise ConfigError(
                f"the CME calendar has only {len(dates)} trade dates from {self.start}"
            )
        return dates


@dataclass(frozen=True, slots=True)
class RegimeLabels:
    """True regime per minute: minute start (UTC ns) and `Regime` code, time-ordered."""

    minute_ts: I64
    regime: I8

    def __len__(self) -> int:
        return len(self.minute_ts)

    @staticmethod
    def concat(parts: list[RegimeLabels]) -> RegimeLabels:
        if not parts:
            return RegimeLabels(np.empty(0, np.int64), np.empty(0, np.int8))
        return RegimeLabels(
            np.concatenate([p.minute_ts for p in parts]), np.concatenate([p.regime for p in parts])
        )

    def names(self) -> list[str]:
        return [REGIME_NAMES[int(r)] for r in self.regime]

    def minutes_by_regime(self) -> dict[str, int]:
        counts = np.bincount(self.regime.astype(np.int64), minlength=len(Regime))
        return {name: int(counts[i]) for i, name in enumerate(REGIME_NAMES)}

    def at(self, ts: I64) -> I8:
        """The regime of each timestamp's minute (-1 where the minute has no label)."""
        minute = np.asarray(ts, dtype=np.int64)
        minute = minute - (minute % NS_PER_MIN)
        if len(self.minute_ts) == 0:
            return np.full(len(minute), -1, dtype=np.int8)
        idx = np.searchsorted(self.minute_ts, minute)
        safe = np.clip(idx, 0, len(self.minute_ts) - 1)
        hit = (idx < len(self.minute_ts)) & (self.minute_ts[safe] == minute)
        return np.where(hit, self.regime[safe], -1).astype(np.int8)


@dataclass(frozen=True, slots=True)
class SyntheticSession:
    """One generated trade date: its trades, the quote at each trade, and the true regimes."""

    session: Session
    trades: TradeBatch
    quotes: QuoteBatch
    labels: RegimeLabels
    open_ticks: int
    close_ticks: int


@dataclass(frozen=True, slots=True)
class _Plan:
    """The per-second skeleton of a session, before trades are drawn."""

    start_ns: int
    regime: I8  # per second
    fair: F64  # fair value in ticks relative to the open, per second
    imbalance: F64  # expected net aggressor volume share, per second
    rate: F64  # expected trades per second


# ---------------------------------------------------------------- small vectorised helpers


def _smooth_noise(rng: np.random.Generator, n: int, width: int) -> F64:
    """Stationary unit-variance noise correlated over ~`width` samples (triangular kernel)."""
    if n <= 0:
        return np.zeros(0)
    width = max(1, width)
    box = np.ones(width)
    kernel = np.convolve(box, box)
    kernel /= math.sqrt(float(np.sum(kernel * kernel)))
    white = rng.standard_normal(n + len(kernel) - 1)
    return np.convolve(white, kernel, mode="valid")


def _curve_per_second(start_min_of_day: int, n_sec: int) -> F64:
    """Expected share of the day's volume in each second from a CT clock minute on."""
    curve = np.asarray(_VOLUME_CURVE_5M, dtype=np.float64) / 1e5 / 300.0
    offset = (start_min_of_day - _CURVE_START_MIN) % 1440
    bar = (offset * 60 + np.arange(n_sec)) // 300
    return curve[np.clip(bar, 0, len(curve) - 1)]


def _rth_curve_sum() -> float:
    return float(np.sum(np.asarray(_VOLUME_CURVE_5M[_RTH_BARS], dtype=np.float64))) / 1e5


def _day_volatility(cfg: SyntheticConfig, count: int) -> F64:
    """Log-normal AR(1) day volatility multipliers for the first `count` trade dates."""
    p = cfg.regimes
    blocks = max(1, -(-count // 256))
    x = _ar1_series(cfg.seed, _ROOT_CODE[cfg.symbol], p.day_vol_phi, blocks)
    sigma = p.day_vol_sigma
    return np.exp(sigma * x[:count] - 0.5 * sigma * sigma)


@lru_cache(maxsize=16)
def _ar1_series(seed: int, root_code: int, phi: float, blocks: int) -> F64:
    """A unit-variance AR(1) series of 256 * blocks values; a prefix never depends on `blocks`."""
    z = np.random.default_rng([seed, root_code, 0xD4]).standard_normal(256 * blocks)
    x = np.empty(len(z))
    x[0] = z[0]
    for i in range(1, len(z)):  # one value per trade date
        x[i] = phi * x[i - 1] + math.sqrt(1 - phi * phi) * z[i]
    x.flags.writeable = False
    return x


def front_contract(root: str, trade_date: date) -> Contract:
    """The front quarterly contract on a trade date (rolled on the Monday of expiry week)."""
    spec = SPECS[root.upper()]
    year, month = trade_date.year, trade_date.month
    while True:
        quarter = next((m for m in sorted(MONTH_CODES.values()) if m >= month), None)
        if quarter is None:
            year, month = year + 1, 1
            continue
        first = date(year, quarter, 1)
        third_friday = first + timedelta(days=(4 - first.weekday()) % 7 + 14)
        if trade_date < third_friday - timedelta(days=4):
            code = next(c for c, m in MONTH_CODES.items() if m == quarter)
            return Contract(spec, code, year)
        month = quarter + 1
        if month > 12:
            year, month = year + 1, 1


# ---------------------------------------------------------------- the regime process


def _draw_segments(
    rng: np.random.Generator, minutes: int, probs: tuple[float, float, float], p: RegimeParams
) -> list[tuple[int, int, Regime]]:
    """Cut `minutes` into regime segments of tens of minutes, never repeating a regime."""
    segments: list[tuple[int, int, Regime]] = []
    start = 0
    prev: Regime | None = None
    base = np.asarray(probs, dtype=np.float64)
    while start < minutes:
        length = round(rng.gamma(3.0, p.segment_mean_min / 3.0))
        length = min(max(length, p.segment_min_min), p.segment_max_min)
        if minutes - (start + length) < p.segment_min_min:
            length = minutes - start
        w = base.copy()
        if prev is not None and w.sum() > w[prev]:
            w[prev] = 0.0
        regime = Regime(int(rng.choice(3, p=w / w.sum())))
        segments.append((start, start + length, regime))
        start += length
        prev = regime
    return segments


def _trend(
    rng: np.random.Generator, act: F64, scale: float, direction: int, p: RegimeParams
) -> tuple[F64, F64]:
    """Persistent drift with random-walk noise; flow leans the trend's way throughout."""
    n = len(act)
    drift = rng.uniform(*p.trend_drift) / 60.0
    steps = direction * drift * act + p.trend_noise / math.sqrt(60.0) * act * rng.standard_normal(n)
    ramp = 1.0 - np.exp(-np.arange(n) / 60.0)
    wiggle = 1.2 * float(act.mean()) * ramp * _smooth_noise(rng, n, 90)
    imb = direction * rng.uniform(*p.trend_imbalance)
    return scale * (np.cumsum(steps) + wiggle), np.full(n, imb)


def _range(rng: np.random.Generator, act: F64, scale: float, p: RegimeParams) -> tuple[F64, F64]:
    """Rotation between two edges around the segment's start; flow follows the rotation."""
    n = len(act)
    half = rng.uniform(*p.range_half_width) * float(act.mean())
    period = rng.uniform(*p.range_period_min) * 60.0
    phase = rng.uniform(0.0, 2.0 * math.pi)
    angle = 2.0 * math.pi * np.arange(n) / period + phase
    ramp = 1.0 - np.exp(-np.arange(n) / 60.0)
    noise = 0.25 * half * ramp * _smooth_noise(rng, n, 45)
    path = half * (np.sin(angle) - math.sin(phase)) + noise
    imb = rng.uniform(*p.range_imbalance) * np.cos(angle)
    return scale * path, imb


def _chop(rng: np.random.Generator, act: F64, scale: float, p: RegimeParams) -> tuple[F64, F64]:
    """Price pinned near the segment's start level, crossing it again and again; flat flow."""
    n = len(act)
    level_noise = p.chop_noise * scale * min(1.0, float(act.mean())) ** 0.5
    ramp = 1.0 - np.exp(-np.arange(n) / 30.0)
    path = level_noise * ramp * _smooth_noise(rng, n, 20)
    return path, np.zeros(n)


def _session_parts(session: Session, start_ns: int, n_min: int) -> list[tuple[int, int, bool]]:
    """Minute spans with their own regime segments: overnight, RTH, post-close hour."""
    rth_a = min(max(0, (session.rth_open_ns - start_ns) // NS_PER_MIN), n_min)
    rth_b = min(max(rth_a, (session.rth_close_ns - start_ns) // NS_PER_MIN), n_min)
    parts = [(0, rth_a, False), (rth_a, rth_b, True), (rth_b, n_min, False)]
    return [(a, b, rth) for a, b, rth in parts if b > a]


def _plan_session(
    cfg: SyntheticConfig, session: Session, day_vol: float, rng: np.random.Generator
) -> _Plan:
    """Regimes, fair value, expected imbalance and trade rate for every second of a session."""
    p = cfg.regimes
    start_ns = session.eth_open_ns if cfg.eth else session.rth_open_ns
    end_ns = session.eth_close_ns if cfg.eth else session.rth_close_ns
    n_min = max(0, (end_ns - start_ns) // NS_PER_MIN)
    n_sec = n_min * 60
    ct = ns_to_datetime(start_ns, CHICAGO)
    curve = _curve_per_second(ct.hour * 60 + ct.minute, n_sec)
    rth_mean = _rth_curve_sum() / (len(_VOLUME_CURVE_5M[_RTH_BARS]) * 300)
    act = (curve / rth_mean) ** p.activity_vol_exponent
    # Trends scale with the day's volatility; ranges with its square root (a volatile day
    # is mostly volatile through its trends); chop is a microstructure pin and barely scales.
    tick_scale = _TICK_SCALE[cfg.symbol]
    scale = day_vol * cfg.volatility * tick_scale
    range_scale = math.sqrt(day_vol * cfg.volatility) * tick_scale
    chop_scale = math.sqrt(tick_scale) * min(2.0, (day_vol * cfg.volatility) ** 0.25)
    day_dir = 1 if rng.random() < 0.5 else -1

    regime = np.empty(n_sec, dtype=np.int8)
    fair = np.empty(n_sec)
    imb = np.empty(n_sec)
    level = 0.0
    parts = _session_parts(session, start_ns, n_min)
    for a, b, is_rth in parts:
        probs = p.rth_probs if is_rth else p.eth_probs
        for s0, s1, reg in _draw_segments(rng, b - a, probs, p):
            lo, hi = (a + s0) * 60, (a + s1) * 60
            seg_act = act[lo:hi]
            if reg is Regime.TREND:
                d = day_dir if rng.random() < p.trend_day_bias else -day_dir
                path, seg_imb = _trend(rng, seg_act, scale, d, p)
            elif reg is Regime.RANGE:
                path, seg_imb = _range(rng, seg_act, range_scale, p)
            else:
                path, seg_imb = _chop(rng, seg_act, chop_scale, p)
            regime[lo:hi] = reg
            fair[lo:hi] = level + path
            imb[lo:hi] = seg_imb
            level = float(fair[hi - 1])

    imb += p.flow_noise * _smooth_noise(rng, n_sec, 30)
    mult = np.asarray(p.activity, dtype=np.float64)[regime]
    for a, b, _ in parts:  # keep each part's expected volume
        mult[a * 60 : b * 60] /= float(mult[a * 60 : b * 60].mean())
    rate = curve * (cfg.target_rth_trades / _rth_curve_sum()) * mult
    return _Plan(start_ns, regime, fair, np.clip(imb, -0.9, 0.9), rate)


# ---------------------------------------------------------------- trades and quotes

_MEAN_CLUSTER = 1.3  # prints per aggressor event (same timestamp, same side)
_ONE_LOT_SHARE = 0.70
_SIZE_TAIL_ALPHA = 1.8
_SIZE_TAIL_SCALE = 1.6
_MAX_SIZE = 2_000


def _draw_sizes(rng: np.random.Generator, n: int) -> I64:
    """Heavy-tailed print sizes: 70 % 1-lots, the rest 2 + a discretised Lomax (Pareto II)."""
    u = rng.random(n)
    tail = _SIZE_TAIL_SCALE * ((1.0 - rng.random(n)) ** (-1.0 / _SIZE_TAIL_ALPHA) - 1.0)
    size = np.where(u < _ONE_LOT_SHARE, 1.0, 2.0 + np.floor(tail))
    return np.minimum(size, _MAX_SIZE).astype(np.int64)


def _draw_trades(
    cfg: SyntheticConfig, plan: _Plan, open_ticks: int, rng: np.random.Generator
) -> tuple[TradeBatch, QuoteBatch]:
    """Poisson aggressor events per second, split into prints at the touch of a 1-tick market."""
    events = rng.poisson(plan.rate / _MEAN_CLUSTER)
    sec = np.repeat(np.arange(len(events), dtype=np.int64), events)
    ts_ev = np.sort(sec * NS_PER_SEC + rng.integers(0, NS_PER_SEC, len(sec), dtype=np.int64))
    sec = (ts_ev // NS_PER_SEC).astype(np.int64)  # unchanged by the sort, but keep them paired
    buy_p = 0.5 + 0.5 * plan.imbalance[sec]
    side_ev = np.where(rng.random(len(sec)) < buy_p, 1, -1).astype(np.int8)
    cluster = rng.geometric(1.0 / _MEAN_CLUSTER, len(sec))
    ts = np.repeat(ts_ev, cluster) + plan.start_ns
    side = np.repeat(side_ev, cluster)
    sec_t = np.repeat(sec, cluster)
    n = len(ts)

    bid = open_ticks + np.floor(plan.fair[sec_t]).astype(np.int64)
    ask = bid + 1
    price = np.where(side > 0, ask, bid)
    size = _draw_sizes(rng, n)

    book = _BOOK_SIZE[cfg.symbol] * np.asarray([0.6, 1.0, 1.6])[plan.regime[sec_t]]
    bid_size = np.maximum(1, np.rint(book * rng.lognormal(0.0, 0.6, n))).astype(np.int64)
    ask_size = np.maximum(1, np.rint(book * rng.lognormal(0.0, 0.6, n))).astype(np.int64)
    ask_size = np.where(side > 0, np.maximum(ask_size, size), ask_size)
    bid_size = np.where(side < 0, np.maximum(bid_size, size), bid_size)

    trades = TradeBatch.from_arrays(ts, price, size, side)
    quotes = QuoteBatch.from_arrays(ts, bid, ask, bid_size, ask_size)
    return trades, quotes


def _labels_for(plan: _Plan, trades: TradeBatch) -> RegimeLabels:
    minute = np.unique((trades.ts - plan.start_ns) // NS_PER_MIN)
    regime = plan.regime[np.minimum(minute * 60, len(plan.regime) - 1)]
    return RegimeLabels(plan.start_ns + minute * NS_PER_MIN, regime.astype(np.int8))


def generate_session(
    config: SyntheticConfig | None = None, index: int = 0, prev_close_ticks: int | None = None
) -> SyntheticSession:
    """Generate trade date number `index` of `config` (default: one ES session, ETH + RTH).

    Deterministic in (seed, symbol, index, prev_close_ticks). The feed chains sessions by
    passing the previous close; alone, a session opens at the product's 2024 price level.
    E.g. `generate_session(SyntheticConfig(rth_trades=1_000_000, eth=False)).trades`.
    """
    cfg = config if config is not None else SyntheticConfig()
    session, rng, open_ticks, plan = _open_and_plan(cfg, index, prev_close_ticks)
    trades, quotes = _draw_trades(cfg, plan, open_ticks, rng)
    labels = _labels_for(plan, trades)
    return SyntheticSession(session, trades, quotes, labels, open_ticks, _close(plan, open_ticks))


def _open_and_plan(
    cfg: SyntheticConfig, index: int, prev_close_ticks: int | None
) -> tuple[Session, np.random.Generator, int, _Plan]:
    """Session `index`: its opening price (the gap after the previous close) and its plan; the
    generator is left where the trades are drawn from."""
    if not 0 <= index < cfg.days:
        raise ConfigError(f"session index {index} is outside 0..{cfg.days - 1}")
    cal = cme_calendar()
    cal_index = cal.index_on(cfg.trade_dates()[index])
    assert cal_index is not None
    session = cal.session(cal_index)
    rng = np.random.default_rng([cfg.seed, _ROOT_CODE[cfg.symbol], index])
    spec = SPECS[cfg.symbol]
    if prev_close_ticks is None:
        open_ticks = (
            cfg.open_ticks if cfg.open_ticks is not None else spec.to_ticks(_BASE_PRICE[cfg.symbol])
        )
        rng.standard_normal()  # keep the stream aligned with the chained case
    else:
        gap = cfg.regimes.gap_ticks * _TICK_SCALE[cfg.symbol] * rng.standard_normal()
        open_ticks = prev_close_ticks + round(gap)
    day_vol = float(_day_volatility(cfg, index + 1)[index])
    return session, rng, open_ticks, _plan_session(cfg, session, day_vol, rng)


def _close(plan: _Plan, open_ticks: int) -> int:
    return open_ticks + (int(np.floor(plan.fair[-1])) if len(plan.fair) else 0)


def session_closes(config: SyntheticConfig) -> list[int]:
    """Each session's closing price in ticks, as `iter_sessions` chains them, without drawing
    the trades (a few times faster than generating the market)."""
    closes: list[int] = []
    for i in range(config.days):
        _session, _rng, open_ticks, plan = _open_and_plan(config, i, closes[-1] if closes else None)
        closes.append(_close(plan, open_ticks))
    return closes


def anchored(config: SyntheticConfig, index: int, close_ticks: int) -> SyntheticConfig:
    """The same market shifted by a whole number of ticks so that session `index` closes at
    `close_ticks`: the sessions after it open on the generator's own overnight gap from there."""
    spec = SPECS[config.symbol]
    first_open = (
        config.open_ticks
        if config.open_ticks is not None
        else spec.to_ticks(_BASE_PRICE[config.symbol])
    )
    closes = session_closes(config.model_copy(update={"days": index + 1}))
    return config.model_copy(update={"open_ticks": first_open + close_ticks - closes[index]})


def iter_sessions(config: SyntheticConfig) -> Iterator[SyntheticSession]:
    """All sessions of `config` in order, each opening near the previous close."""
    prev: int | None = None
    for i in range(config.days):
        s = generate_session(config, i, prev)
        prev = s.close_ticks
        yield s


# ---------------------------------------------------------------- the feed


class _GeneratorConfig(Protocol):
    @property
    def symbol(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def days(self) -> int: ...

    def trade_dates(self) -> list[date]: ...


C = TypeVar("C", bound=_GeneratorConfig)


class GeneratedFeed(Generic[C]):
    """A `MarketFeed` over a labelled generator: trades and the quote at each trade."""

    source_prefix = "synthetic"
    generator_name = GENERATOR_NAME

    def __init__(self, config: C, batch_rows: int = DEFAULT_BATCH_ROWS) -> None:
        if batch_rows < 1:
            raise ConfigError("batch_rows must be at least 1")
        self.config = config
        self.batch_rows = batch_rows
        self.contract: Contract = front_contract(config.symbol, config.trade_dates()[0])
        self.report = LoadReport(
            source=f"{self.source_prefix}:{config.symbol} seed={config.seed} days={config.days}",
            format="synthetic",
        )
        self.report.notes.append(f"generator {self.generator_name}; aggressor side known by design")
        self._labels: RegimeLabels | None = None

    def sessions(self) -> Iterator[SyntheticSession]:
        """The generator's sessions in order."""
        raise NotImplementedError

    def batches(self) -> Iterator[MarketBatch]:
        """Generate session by session (memory stays at one session), in time order."""
        parts: list[RegimeLabels] = []
        self.report.rows_read = self.report.trades = self.report.quotes = 0
        self.report.aggressor.clear()
        for s in self.sessions():
            parts.append(s.labels)
            n = len(s.trades)
            self.report.rows_read += n
            self.report.trades += n
            self.report.quotes += n
            self.report.aggressor[AggressorSource.EXCHANGE.value] += n
            for a in range(0, n, self.batch_rows):
                b = min(a + self.batch_rows, n)
                yield MarketBatch(s.trades.slice(a, b), s.quotes.slice(a, b))
        self._labels = RegimeLabels.concat(parts)

    @property
    def labels(self) -> RegimeLabels:
        """True per-minute regimes of every session (generates the market once if needed)."""
        if self._labels is None:
            self._labels = RegimeLabels.concat([s.labels for s in self.sessions()])
        return self._labels


class SyntheticFeed(GeneratedFeed[SyntheticConfig]):
    """A `MarketFeed` over the synthetic market (generator 1)."""

    def sessions(self) -> Iterator[SyntheticSession]:
        return iter_sessions(self.config)


# ---------------------------------------------------------------- files


def _labels_path(out: Path) -> Path:
    name = out.name
    for ext in (".csv.gz", ".parquet", ".csv"):
        if name.endswith(ext):
            return out.with_name(name[: -len(ext)] + ".labels.csv")
    return out.with_name(name + ".labels.csv")


def _arrow_table(s: SyntheticSession, tick: float) -> pa.Table:
    import pyarrow as pa

    side = np.where(s.trades.side > 0, "B", "A")
    return pa.table(
        {
            "ts": pa.array(s.trades.ts, pa.int64()),
            "price": pa.array(s.trades.price * tick, pa.float64()),
            "size": pa.array(s.trades.size, pa.int64()),
            "side": pa.array(side, pa.string()),
            "bid": pa.array(s.quotes.bid * tick, pa.float64()),
            "ask": pa.array(s.quotes.ask * tick, pa.float64()),
            "bid_size": pa.array(s.quotes.bid_size, pa.int64()),
            "ask_size": pa.array(s.quotes.ask_size, pa.int64()),
        }
    )


def _csv_prices(table: pa.Table) -> pa.Table:
    """Prices as fixed two-decimal text in CSV (`4800.00`, not `4800`): clearly floats."""
    import pyarrow as pa

    for name in ("price", "bid", "ask"):
        i = table.column_names.index(name)
        table = table.set_column(i, name, table[name].cast(pa.decimal128(14, 2)))
    return table


def _write_labels(path: Path, labels: RegimeLabels, trade_dates: list[date]) -> None:
    """Per-minute labels as CSV; trade dates repeat per session's minutes."""
    lines = ["minute_start_ts,minute_start_ct,trade_date,regime"]
    for ts, reg, td in zip(labels.minute_ts.tolist(), labels.names(), trade_dates, strict=True):
        ct = ns_to_datetime(int(ts), CHICAGO).strftime("%Y-%m-%d %H:%M")
        lines.append(f"{ts},{ct},{td.isoformat()},{reg}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_synthetic(
    out: Path,
    symbol: str,
    days: int,
    seed: int,
    start: date | None = None,
    rth_trades: int | None = None,
) -> dict[str, object]:
    """Write a synthetic market as Parquet (default) or CSV(.gz), labels beside it.

    Same arguments → byte-identical files. Returns a summary (sessions, trades, labels path,
    regime minutes by type).
    """
    out = Path(out)
    try:
        cfg = SyntheticConfig(
            symbol=symbol,
            days=days,
            seed=seed,
            start=start or date(2024, 1, 2),
            rth_trades=rth_trades,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"synthetic market: {problems}") from None
    dates = cfg.trade_dates()
    contract = front_contract(cfg.symbol, dates[0])
    return write_sessions(out, iter_sessions(cfg), contract, seed, GENERATOR_NAME, len(dates))


def write_sessions(
    out: Path,
    sessions: Iterator[SyntheticSession],
    contract: Contract,
    seed: int,
    generator: str,
    n_sessions: int,
) -> dict[str, object]:
    """Write generated sessions as Parquet (default) or CSV(.gz), labels beside them.

    Shared by both generators: same columns, metadata and label file.
    """
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    name = out.name.lower()
    fmt = "csv" if name.endswith((".csv", ".csv.gz")) else "parquet"
    tick = contract.spec.tick_size
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "fabio.symbol": contract.symbol,
        "fabio.seed": str(seed),
        "fabio.generator": generator,
    }
    trades = 0
    label_parts: list[RegimeLabels] = []
    label_dates: list[date] = []
    first_date: date | None = None
    last_date: date | None = None
    with out.open("wb") as raw:
        sink: io.BufferedIOBase = raw
        if fmt == "csv" and name.endswith(".gz"):  # no name or mtime: byte-identical reruns
            sink = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
        writer: pq.ParquetWriter | None = None
        try:
            for i, s in enumerate(sessions):
                table = _arrow_table(s, tick)
                if fmt == "parquet":
                    if writer is None:
                        schema = table.schema.with_metadata(meta)
                        writer = pq.ParquetWriter(sink, schema, compression="zstd")
                    writer.write_table(table.replace_schema_metadata(meta))
                else:
                    if i == 0:  # the contract first, as a comment line the CSV reader reads
                        sink.write(f"# {CSV_SYMBOL_KEY}={contract.symbol}\n".encode())
                        sink.write((",".join(table.column_names) + "\n").encode())
                    opts = pacsv.WriteOptions(include_header=False, quoting_style="none")
                    pacsv.write_csv(_csv_prices(table), sink, write_options=opts)
                trades += len(s.trades)
                label_parts.append(s.labels)
                label_dates.extend([s.session.trade_date] * len(s.labels))
                first_date = first_date or s.session.trade_date
                last_date = s.session.trade_date
        finally:
            if writer is not None:
                writer.close()
            if sink is not raw:
                sink.close()
    labels = RegimeLabels.concat(label_parts)
    labels_path = _labels_path(out)
    _write_labels(labels_path, labels, label_dates)
    return {
        "path": str(out),
        "format": fmt,
        "symbol": contract.symbol,
        "seed": seed,
        "generator": generator,
        "sessions": n_sessions,
        "first_trade_date": first_date.isoformat() if first_date else None,
        "last_trade_date": last_date.isoformat() if last_date else None,
        "trades": trades,
        "labels": str(labels_path),
        "regime_minutes": labels.minutes_by_regime(),
    }
