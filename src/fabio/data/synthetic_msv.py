"""A second labelled synthetic market: Markov-switching volatility (`--generator msv`).

Written independently of `fabio.data.synthetic` (generator 1) so that the regime read can be
checked on mechanics it was not designed against (docs/synthetic.md, "Generator 2"). What
differs, on purpose:

- **Regime process**: a hidden Markov chain on minutes (geometric dwell times, mean
  `mean_dwell_min`, with a minimum dwell `min_dwell_min`), not gamma-length segments; it runs
  across the RTH open (a regime may carry over from one minute to the next session).
- **Price**: a per-second latent mid in ticks. Trend is a drifting random walk; range is an
  Ornstein-Uhlenbeck process around the level where the range began (a mean-reverting band,
  no fixed rotation period); chop is a fast OU with a tiny variance. Volatility switches with
  the regime and is scaled by a day factor (a GARCH(1, 1)-like recursion on daily shocks) and
  a parametric intraday U shape.
- **Order flow follows price** (a Kyle-style inversion): the expected aggressor imbalance is a
  tanh of the mid's velocity over the last minute in units of the day's volatility, plus noise
  traders; generator 1 sets the imbalance per regime and draws the price separately.
- **Arrivals and prints**: a Poisson rate with the U shape, a regime multiplier and a day
  activity factor that rises with volatility; one print per event with a negative binomial
  size (mean ~2.4, no 1-lot floor rule); the spread is one tick, two ticks at random in fast
  markets.
- **Instrument**: NQ-like by default (tick 0.25 at ~17,000-19,000, ~220 k RTH trades, moves of
  ~20 ticks a minute), RTH only.

Labels are the chain's state per minute (0 trend, 1 range, 2 chop), the same `RegimeLabels` as
generator 1, and files have the same columns (`write_msv`). Everything is drawn from
`numpy.random.default_rng([seed, 0x4D5356, ...])`; a session depends on its index, the
previous close and the chain state carried over, so the same config gives the same market.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator

from fabio.data.synthetic import (
    GeneratedFeed,
    RegimeLabels,
    SyntheticSession,
    front_contract,
    write_sessions,
)
from fabio.domain import QuoteBatch, TradeBatch
from fabio.errors import ConfigError, InstrumentError
from fabio.instruments import SPECS, parse_symbol
from fabio.sessions import cme_calendar
from fabio.timeutil import NS_PER_MIN, NS_PER_SEC

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
I8 = NDArray[np.int8]

GENERATOR_NAME = "fabio.synthetic-msv/1"
_STREAM = 0x4D5356  # "MSV": keeps this generator's random streams apart from generator 1's

TREND, RANGE, CHOP = 0, 1, 2


class MsvParams(BaseModel):
    """Parameters of the Markov-switching market; prices in ticks of the chosen product."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    price_level: float = Field(18_000.0, gt=0)  # first session's open, index points
    sigma_min_ticks: float = Field(16.0, gt=0)  # typical 1-minute move at day factor 1
    mean_dwell_min: float = Field(55.0, ge=5)  # mean regime duration (geometric)
    min_dwell_min: int = Field(10, ge=1, le=60)
    stationary: tuple[float, float, float] = (0.35, 0.35, 0.30)  # trend, range, chop
    trend_drift_sigmas: tuple[float, float] = (0.35, 0.7)  # drift per minute / sigma
    trend_vol: float = Field(0.8, gt=0)  # trend noise / sigma
    range_width_sigmas: tuple[float, float] = (1.4, 2.6)  # OU stationary std / sigma
    range_half_life_min: tuple[float, float] = (2.0, 6.0)
    chop_std_sigmas: tuple[float, float] = (0.08, 0.18)  # chop OU std / sigma
    chop_half_life_sec: float = Field(20.0, gt=0)
    flow_beta: float = Field(0.9, gt=0)  # imbalance = tanh(beta * velocity / sigma)
    flow_informed: float = Field(0.35, ge=0, le=1)  # share of volume that follows the price
    flow_noise: float = Field(0.05, ge=0)
    rth_trades: int = Field(220_000, ge=1_000, le=5_000_000)
    activity: tuple[float, float, float] = (1.4, 1.0, 0.7)  # trade-rate multiplier per regime
    garch: tuple[float, float, float] = (0.1, 0.15, 0.75)  # omega, alpha, beta (daily)
    u_shape: tuple[float, float, float] = (1.0, 2.2, 1.6)  # base, open bump, close bump
    wide_spread_share: float = Field(0.05, ge=0, le=0.5)
    mean_size: float = Field(2.4, ge=1)

    @field_validator("stationary", "activity")
    @classmethod
    def _positive(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(value) <= 0:
            raise ValueError("must be positive")
        return value

    @classmethod
    def draw(cls, rng: np.random.Generator, symbol: str = "NQ") -> MsvParams:
        """Random parameters for robustness runs: scale, speed, mix, flow and activity."""
        root = parse_symbol(symbol).spec.root
        nq = root in ("NQ", "MNQ")
        mix = rng.dirichlet([6.0, 6.0, 5.0])
        lo = rng.uniform(0.25, 0.45)
        return cls(
            price_level=float(rng.uniform(12_000, 21_000) if nq else rng.uniform(3_000, 6_000)),
            sigma_min_ticks=float(np.exp(rng.uniform(np.log(6), np.log(40)))) * (1 if nq else 0.25),
            mean_dwell_min=float(rng.uniform(40, 90)),
            stationary=(float(mix[0]), float(mix[1]), float(mix[2])),
            trend_drift_sigmas=(lo, lo + rng.uniform(0.15, 0.4)),
            trend_vol=float(rng.uniform(0.6, 1.0)),
            range_width_sigmas=(float(rng.uniform(1.2, 1.8)), float(rng.uniform(2.0, 3.0))),
            range_half_life_min=(float(rng.uniform(1.5, 3.0)), float(rng.uniform(4.0, 8.0))),
            chop_std_sigmas=(float(rng.uniform(0.06, 0.1)), float(rng.uniform(0.12, 0.22))),
            flow_beta=float(rng.uniform(0.6, 1.3)),
            flow_informed=float(rng.uniform(0.25, 0.5)),
            flow_noise=float(rng.uniform(0.02, 0.08)),
            rth_trades=int(np.exp(rng.uniform(np.log(40_000), np.log(600_000)))),
            activity=(float(rng.uniform(1.1, 1.7)), 1.0, float(rng.uniform(0.5, 0.9))),
        )


class MsvConfig(BaseModel):
    """What to generate: product, trade dates, seed and the process parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str = "NQ"
    days: int = Field(1, ge=1, le=10_000)
    seed: int = Field(0, ge=0)
    start: date = date(2024, 1, 2)
    params: MsvParams = MsvParams()

    @field_validator("symbol")
    @classmethod
    def _root(cls, value: str) -> str:
        try:
            return parse_symbol(value).spec.root
        except InstrumentError as exc:
            raise ValueError(str(exc)) from None

    def trade_dates(self) -> list[date]:
        dates = cme_calendar().next_trade_dates(self.start, self.days)
        if len(dates) < self.days:
            raise ConfigError(
                f"the CME calendar has only {len(dates)} trade dates from {self.start}"
            )
        return dates


def _transition(p: MsvParams) -> F64:
    """Per-minute transition matrix: stay with 1 - 1/dwell, else move in proportion to the mix."""
    leave = 1.0 / p.mean_dwell_min
    pi = np.asarray(p.stationary, dtype=np.float64)
    pi = pi / pi.sum()
    m = np.zeros((3, 3))
    for i in range(3):
        others = pi.copy()
        others[i] = 0.0
        m[i] = leave * others / others.sum()
        m[i, i] = 1.0 - leave
    return m


def _chain(rng: np.random.Generator, n: int, state: int, age: int, p: MsvParams) -> tuple[I8, int]:
    """Minute states of the hidden chain from (`state`, minutes spent in it); returns the age."""
    m = _transition(p)
    out = np.empty(n, dtype=np.int8)
    u = rng.random(n)
    for i in range(n):
        if age >= p.min_dwell_min:
            cum = np.cumsum(m[state])
            nxt = int(np.searchsorted(cum, u[i] * cum[-1], side="right"))
            if nxt != state:
                state, age = min(nxt, 2), 0
        out[i] = state
        age += 1
    return out, age


def _u_shape(n_min: int, p: MsvParams) -> F64:
    """Activity by minute of the RTH session: a base level with bumps at the open and close."""
    t = np.arange(n_min, dtype=np.float64)
    base, open_bump, close_bump = p.u_shape
    shape = base + open_bump * np.exp(-t / 25.0) + close_bump * np.exp(-(n_min - 1 - t) / 15.0)
    return shape / shape.mean()


def _ou(rng: np.random.Generator, n: int, x0: float, std: float, half_life_sec: float) -> F64:
    """An exact-discretisation OU path (per second) starting at `x0` with stationary `std`."""
    a = math.exp(-math.log(2.0) / max(half_life_sec, 1e-6))
    eps = rng.standard_normal(n) * std * math.sqrt(1.0 - a * a)
    out = np.empty(n)
    x = x0
    for i in range(n):  # n is one regime spell; a short Python loop per spell
        x = a * x + eps[i]
        out[i] = x
    return out


def _mid_path(
    rng: np.random.Generator, regime_min: I8, vol_min: F64, sigma: float, p: MsvParams
) -> F64:
    """The latent mid (ticks from the open) per second, spell by spell."""
    n_sec = len(regime_min) * 60
    mid = np.empty(n_sec)
    level = 0.0
    change = np.flatnonzero(np.diff(regime_min)) + 1
    starts = np.concatenate(([0], change)).tolist()
    stops = np.concatenate((change, [len(regime_min)])).tolist()
    for a, b in zip(starts, stops, strict=True):
        reg = int(regime_min[a])
        lo, hi = a * 60, b * 60
        n = hi - lo
        vol = np.repeat(vol_min[a:b], 60) * sigma  # ticks per sqrt(minute)
        if reg == TREND:
            d = 1.0 if rng.random() < 0.5 else -1.0
            drift = d * rng.uniform(*p.trend_drift_sigmas)
            # per second: the drift per minute / 60, the noise per sqrt(minute) / sqrt(60)
            steps = drift * vol / 60.0 + p.trend_vol * vol * rng.standard_normal(n) / math.sqrt(60)
            path = level + np.cumsum(steps)
        elif reg == RANGE:
            width = rng.uniform(*p.range_width_sigmas) * float(vol.mean())
            half = rng.uniform(*p.range_half_life_min) * 60.0
            path = level + _ou(rng, n, 0.0, width, half)
        else:
            std = rng.uniform(*p.chop_std_sigmas) * float(vol.mean())
            std = max(std, 0.6)  # at least about a tick: a pin still ticks
            path = level + _ou(rng, n, 0.0, std, p.chop_half_life_sec)
        mid[lo:hi] = path
        level = float(path[-1])
    return mid


def _velocity(mid: F64, window: int = 60) -> F64:
    """Change of the mid over the last `window` seconds (ticks)."""
    past = np.concatenate((np.full(window, mid[0]), mid[:-window]))
    return np.asarray(mid - past, dtype=np.float64)


def generate_msv_session(
    cfg: MsvConfig,
    index: int,
    prev_close_ticks: int | None,
    state: int,
    age: int,
    day_var: float,
    trade_date: date | None = None,
) -> tuple[SyntheticSession, int, int, float]:
    """Trade date `index`: the session, the chain's state and age at its close, the day variance.

    `trade_date` is `cfg.trade_dates()[index]` (pass it when generating many sessions).
    """
    p = cfg.params
    spec = SPECS[cfg.symbol]
    cal = cme_calendar()
    cal_index = cal.index_on(trade_date or cfg.trade_dates()[index])
    assert cal_index is not None
    session = cal.session(cal_index)
    rng = np.random.default_rng([cfg.seed, _STREAM, index])
    start_ns, end_ns = session.rth_open_ns, session.rth_close_ns
    n_min = max(1, (end_ns - start_ns) // NS_PER_MIN)
    n_sec = n_min * 60

    # Day volatility: a GARCH(1, 1)-like recursion on the previous day's shock.
    omega, alpha, beta = p.garch
    shock = rng.standard_normal()
    day_var = omega + alpha * day_var * shock * shock + beta * day_var
    day_var = min(max(day_var, 0.15), 6.0)
    day_vol = math.sqrt(day_var)

    regime_min, age = _chain(rng, n_min, state, age, p)
    shape = _u_shape(n_min, p)
    vol_min = shape**0.5  # moves scale with the square root of activity
    sigma = p.sigma_min_ticks * day_vol
    mid = _mid_path(rng, regime_min, vol_min, sigma, p)

    if prev_close_ticks is None:
        open_ticks = spec.to_ticks(p.price_level)
    else:
        open_ticks = prev_close_ticks + round(0.3 * sigma * rng.standard_normal())

    # Flow follows price: informed traders push the way the mid moved in the last minute.
    vel = _velocity(mid) / max(sigma, 1e-9)
    imb = p.flow_informed * np.tanh(p.flow_beta * vel)
    imb += p.flow_noise * rng.standard_normal(n_min).repeat(60)
    imb = np.clip(imb, -0.95, 0.95)

    act = np.asarray(p.activity)[regime_min.astype(np.int64)] * shape
    per_min = act / act.mean() * p.rth_trades * day_vol**0.5 / 390.0  # busier on volatile days
    rate_sec = np.repeat(per_min / 60.0, 60)
    count = rng.poisson(rate_sec)
    sec = np.repeat(np.arange(n_sec, dtype=np.int64), count)
    ts = np.sort(sec * NS_PER_SEC + rng.integers(0, NS_PER_SEC, len(sec), dtype=np.int64))
    sec = ts // NS_PER_SEC
    ts = ts + start_ns
    side = np.where(rng.random(len(sec)) < 0.5 + 0.5 * imb[sec], 1, -1).astype(np.int8)
    wide = rng.random(len(sec)) < p.wide_spread_share * np.clip(np.abs(vel[sec]), 0.5, 2.0)
    bid = open_ticks + np.floor(mid[sec]).astype(np.int64) - wide.astype(np.int64)
    ask = open_ticks + np.floor(mid[sec]).astype(np.int64) + 1
    price = np.where(side > 0, ask, bid)
    k = 1.5
    size = 1 + rng.negative_binomial(k, k / (k + p.mean_size - 1.0), len(sec)).astype(np.int64)
    book = np.asarray([4.0, 7.0, 10.0])[regime_min[sec // 60].astype(np.int64)]
    bid_size = np.maximum(1, rng.poisson(book)).astype(np.int64)
    ask_size = np.maximum(1, rng.poisson(book)).astype(np.int64)
    ask_size = np.where(side > 0, np.maximum(ask_size, size), ask_size)
    bid_size = np.where(side < 0, np.maximum(bid_size, size), bid_size)

    trades = TradeBatch.from_arrays(ts, price, size, side)
    quotes = QuoteBatch.from_arrays(ts, bid, ask, bid_size, ask_size)
    minute = np.unique(sec // 60)
    labels = RegimeLabels(start_ns + minute * NS_PER_MIN, regime_min[minute].astype(np.int8))
    close_ticks = open_ticks + int(np.floor(mid[-1]))
    out = SyntheticSession(session, trades, quotes, labels, open_ticks, close_ticks)
    return out, int(regime_min[-1]), age, day_var


def iter_msv_sessions(cfg: MsvConfig) -> Iterator[SyntheticSession]:
    """All sessions in order; price, chain state and day volatility carry over."""
    rng = np.random.default_rng([cfg.seed, _STREAM, 0xFFFF])
    pi = np.asarray(cfg.params.stationary) / sum(cfg.params.stationary)
    state, age = int(rng.choice(3, p=pi)), int(rng.integers(0, 60))
    prev: int | None = None
    day_var = 1.0
    for i, trade_date in enumerate(cfg.trade_dates()):
        s, state, age, day_var = generate_msv_session(cfg, i, prev, state, age, day_var, trade_date)
        prev = s.close_ticks
        yield s


class MsvFeed(GeneratedFeed[MsvConfig]):
    """A `MarketFeed` over generator 2 (trades and the quote at each trade), with labels."""

    source_prefix = "synthetic-msv"
    generator_name = GENERATOR_NAME

    def sessions(self) -> Iterator[SyntheticSession]:
        return iter_msv_sessions(self.config)


def write_msv(
    out: Path, symbol: str, days: int, seed: int, start: date | None = None
) -> dict[str, object]:
    """Write generator 2's market like `write_synthetic` (same columns, labels beside it)."""
    try:
        cfg = MsvConfig(symbol=symbol, days=days, seed=seed, start=start or date(2024, 1, 2))
    except ValueError as exc:
        raise ConfigError(f"synthetic market (msv): {exc}") from None
    dates = cfg.trade_dates()
    contract = front_contract(cfg.symbol, dates[0])
    return write_sessions(
        Path(out), iter_msv_sessions(cfg), contract, seed, GENERATOR_NAME, len(dates)
    )
