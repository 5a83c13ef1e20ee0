"""The incremental order-flow feature engine, driven by event time and fed batch by batch.

`FeatureEngine.update(trades)` takes time-ordered trades (any batch size: the live feed hands
it a few trades, a backtest tens of thousands); `snapshot(at_ns)` returns the `FeatureSnapshot`
at a moment at or after the last trade. Sessions (RTH or ETH trade dates) come from the CME
calendar; trades outside the configured session are counted and ignored. Every statistic is
defined in docs/features.md.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fabio.config import FeatureConfig
from fabio.domain import TradeBatch
from fabio.features import kernels as K
from fabio.features.orderflow import (
    absorption,
    bar_absorption,
    big_print_threshold,
    exhaustion,
)
from fabio.features.profile import profile_levels, volume_nodes
from fabio.features.snapshot import (
    BigPrint,
    FeatureSnapshot,
    MarketStats,
    OrderflowSignals,
    PocCrossStats,
    ProfileLevels,
    SessionInfo,
)
from fabio.instruments import Contract, InstrumentSpec
from fabio.sessions import CmeCalendar, Session, cme_calendar
from fabio.timeutil import NS_PER_MIN, NS_PER_SEC, format_ns

INITIAL_ROWS = 4096


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """What later sessions need from a finished one."""

    trade_date: str
    range_by_minute: NDArray[np.int64]  # running range (ticks) at the end of each minute
    final_range: int
    levels: dict[str, object]
    # Per-minute samples of the rolling 5- and 15-minute range (ticks) and of |delta| / volume
    # over 15 minutes, NaN where undefined: the market's own scale (see `typical_scale`).
    scale_samples: NDArray[np.float64] | None = None


SCALE_MIN_SESSION_SAMPLES = 20  # minutes of the current session before it counts alone
SCALE_SESSION_WEIGHT_MAX = 0.33  # weight of the current session beside the history


def minute_scale_samples(
    sec_px: NDArray[np.int64],
    sec_vol: NDArray[np.int64],
    sec_delta: NDArray[np.int64],
    minutes: int,
) -> NDArray[np.float64]:
    """(minutes, 3): rolling 5-min range, 15-min range (ticks), |delta|/volume over 15 min.

    Minute m covers seconds [60 m, 60 m + 60); a window needs all its minutes in the session
    (the first 4 / 14 minutes are NaN) and at least one trade (else NaN).
    """
    return K.scale_rows(sec_px, sec_vol, sec_delta, 0, max(minutes, 0))


ScaleMedians = list[tuple[float | None, int]]


def scale_medians(samples: NDArray[np.float64] | None) -> ScaleMedians:
    """Per scale column: (median of the finite samples, or None below
    `SCALE_MIN_SESSION_SAMPLES` of them; how many there are)."""
    out: ScaleMedians = []
    for col in range(3):
        v = samples[:, col] if samples is not None and len(samples) else np.empty(0)
        v = np.sort(v[np.isfinite(v)])  # np.median's own result, without its overhead
        n = len(v)
        if n < SCALE_MIN_SESSION_SAMPLES:
            out.append((None, n))
        else:
            mid = n // 2
            out.append((float(v[mid]) if n % 2 else float((v[mid - 1] + v[mid]) / 2), n))
    return out


def blend_scale(history: ScaleMedians, session: ScaleMedians) -> list[float | None]:
    """The history's medians blended with the current session's (see `typical_scale`)."""
    result: list[float | None] = []
    for (hv, _), (cv, n) in zip(history, session, strict=True):
        if hv is not None and cv is not None and hv > 0 and cv > 0:
            w = min(SCALE_SESSION_WEIGHT_MAX, n / 180.0)
            result.append(float(np.exp((1 - w) * np.log(hv) + w * np.log(cv))))
        else:
            result.append(hv if hv is not None else cv)
    return result


def typical_scale(
    history: NDArray[np.float64] | None, session: NDArray[np.float64] | None
) -> list[float | None]:
    """Median of each scale column: the history's, blended with the current session's.

    The current session weighs in geometrically with up to `SCALE_SESSION_WEIGHT_MAX` (as its
    minutes accrue), so a quiet or wild day moves the scale without one regime of it defining
    it; with no history, the session alone once it has `SCALE_MIN_SESSION_SAMPLES` samples.
    """
    return blend_scale(scale_medians(history), scale_medians(session))


def minute_close_stats(
    sec_px: NDArray[np.int64], sec: int, last_row: int
) -> tuple[int | None, int | None, int | None, int | None, float | None]:
    """(change 15m, range 15m, change 30m, range 30m, variance ratio 15m) of minute closes.

    Minute m covers seconds [60 m, 60 m + 60); its close is the last trade's row in it,
    carried forward over minutes without trades; the current minute (`sec // 60`) closes at
    `last_row`. A 15- (30-) minute statistic needs 15 (30) whole minutes of the session before
    the current one and a trade at or before the first of them (else None).
    """
    k = sec // 60
    if k < 15 or last_row < 0:
        return None, None, None, None, None
    ok15, ch15, rg15, ok30, ch30, rg30, s1, s5 = K.minute_close_path(sec_px, k, last_row).tolist()
    vr: float | None = None
    if ok15 and s1 > 0:  # the means of 11 five-minute and 15 one-minute squared changes
        vr = round((s5 / 11) / (5.0 * (s1 / 15)), 4)
    if not ok15:
        ch15 = rg15 = None
    if not ok30:
        ch30 = rg30 = None
    return ch15, rg15, ch30, rg30, vr


class RecentTrades:
    """The trades of the last signal window, in arrival order, in one growing buffer: appended
    as they come, the front dropped past the window's horizon, read as views (no copy)."""

    def __init__(self, capacity: int = 4096) -> None:
        self._buf = self._allocate(capacity)
        self._start = 0
        self._stop = 0

    def append(self, trades: TradeBatch, horizon_ns: int) -> None:
        """Add trades, then drop those at or before `horizon_ns` from the front."""
        n = len(trades)
        if self._stop + n > len(self._buf):
            keep = self._stop - self._start
            size = max(len(self._buf), 2 * (keep + n))
            old = self._buf
            if size > len(old):
                self._buf = self._allocate(size)
            for name in ("ts", "price", "size", "side", "inferred"):
                dst = getattr(self._buf, name)
                dst[:keep] = getattr(old, name)[self._start : self._stop]
            self._start, self._stop = 0, keep
        a, b = self._stop, self._stop + n
        self._buf.ts[a:b] = trades.ts
        self._buf.price[a:b] = trades.price
        self._buf.size[a:b] = trades.size
        self._buf.side[a:b] = trades.side
        self._buf.inferred[a:b] = trades.inferred
        self._stop = b
        ts = self._buf.ts[self._start : self._stop]
        self._start += int(np.searchsorted(ts, horizon_ns, side="right"))

    def view(self) -> TradeBatch:
        return self._buf.slice(self._start, self._stop)

    @staticmethod
    def _allocate(capacity: int) -> TradeBatch:
        i64 = np.empty(3 * capacity, dtype=np.int64)  # ts, price, size side by side
        return TradeBatch(
            i64[:capacity],
            i64[capacity : 2 * capacity],
            i64[2 * capacity :],
            np.empty(capacity, dtype=np.int8),
            np.empty(capacity, dtype=np.bool_),
        )


class _SessionState:
    """Dense arrays and kernel state of the session in progress."""

    def __init__(
        self,
        index: int,
        session: Session,
        open_ns: int,
        close_ns: int,
        config: FeatureConfig,
        big_min: int,
    ) -> None:
        self.index = index
        self.session = session
        self.open_ns = open_ns
        self.close_ns = close_ns
        n_sec = max(1, (close_ns - open_ns + NS_PER_SEC - 1) // NS_PER_SEC)
        n_min = max(1, (close_ns - open_ns + NS_PER_MIN - 1) // NS_PER_MIN)
        self.st = K.new_state(
            open_ns,
            close_ns,
            config.developing_interval_ms * 1_000_000,
            config.poc_cross_tolerance_ticks,
            config.value_area_rows,
            big_min,
        )
        self.base: int | None = None  # tick price of row 0
        self.vol = np.zeros(0, dtype=np.int64)
        self.buy = np.zeros(0, dtype=np.int64)
        self.sell = np.zeros(0, dtype=np.int64)
        self.sec_vol = np.zeros(n_sec, dtype=np.int64)
        self.sec_delta = np.zeros(n_sec, dtype=np.int64)
        self.sec_time = np.zeros((n_sec, 3), dtype=np.int64)
        self.sec_px = np.full((n_sec, 4), -1, dtype=np.int64)  # high, low, first, last row
        self.minute_range = np.full(n_min, -1, dtype=np.int64)
        self.cross_ts = np.zeros(64, dtype=np.int64)
        self.big = np.zeros((64, 4), dtype=np.int64)
        self.closed = False
        self.record: SessionRecord | None = None
        self.scale_cache: tuple[int, list[float | None]] | None = None
        self.scale_rows: NDArray[np.float64] = np.empty((0, 3))  # minute_scale_samples so far
        self.scale_late = 0  # the engine's late_trades when scale_rows were computed
        self.open_text = format_ns(open_ns)
        self.close_text = format_ns(close_ns)

    def ensure_rows(self, lo_tick: int, hi_tick: int) -> None:
        """Grow the profile arrays so that [lo_tick, hi_tick] fits (re-basing row 0)."""
        if self.base is None:
            self.base = (lo_tick + hi_tick) // 2 - INITIAL_ROWS // 2
            size = max(INITIAL_ROWS, 2 * (hi_tick - lo_tick + 1))
            self.base = min(self.base, lo_tick - (size - (hi_tick - lo_tick + 1)) // 2)
            self.vol = np.zeros(size, dtype=np.int64)
            self.buy = np.zeros(size, dtype=np.int64)
            self.sell = np.zeros(size, dtype=np.int64)
            return
        size = len(self.vol)
        if lo_tick >= self.base and hi_tick < self.base + size:
            return
        new_lo = min(lo_tick, self.base)
        new_hi = max(hi_tick, self.base + size - 1)
        new_size = max(2 * size, 2 * (new_hi - new_lo + 1))
        new_base = new_lo - (new_size - (new_hi - new_lo + 1)) // 2
        shift = self.base - new_base
        for name in ("vol", "buy", "sell"):
            old = getattr(self, name)
            grown = np.zeros(new_size, dtype=np.int64)
            grown[shift : shift + size] = old
            setattr(self, name, grown)
        st = self.st
        for idx in (K.S_POC, K.S_VAL, K.S_VAH, K.S_LAST_ROW, K.S_HIGH, K.S_LOW):
            if st[idx] >= 0:
                st[idx] += shift
        nbig = int(st[K.S_NBIG])
        self.big[:nbig, 1] += shift
        self.sec_px[self.sec_px >= 0] += shift
        self.base = new_base

    def ensure_buffers(self, extra: int) -> None:
        need = int(self.st[K.S_NCROSS]) + extra
        if need > len(self.cross_ts):
            grown = np.zeros(max(need, 2 * len(self.cross_ts)), dtype=np.int64)
            grown[: len(self.cross_ts)] = self.cross_ts
            self.cross_ts = grown
        need = int(self.st[K.S_NBIG]) + extra
        if need > len(self.big):
            grown2 = np.zeros((max(need, 2 * len(self.big)), 4), dtype=np.int64)
            grown2[: len(self.big)] = self.big
            self.big = grown2


class FeatureEngine:
    """Order-flow features for one contract, incremental in event time."""

    def __init__(
        self,
        instrument: Contract | InstrumentSpec,
        config: FeatureConfig | None = None,
        calendar: CmeCalendar | None = None,
    ) -> None:
        self.contract = instrument if isinstance(instrument, Contract) else Contract(instrument)
        self.spec = self.contract.spec
        self.config = config or FeatureConfig()
        self.calendar = calendar or cme_calendar()
        self.kind = self.config.session
        self.big_min = big_print_threshold(self.spec.root, self.config)
        self.history: deque[SessionRecord] = deque(maxlen=self.config.range_percentile_sessions)
        self.prior: SessionRecord | None = None
        self.current: _SessionState | None = None
        self.clock_ns: int | None = None
        self.outside_session_trades = 0
        self.late_trades = 0
        self.closed_session_trades = 0
        self.total_trades = 0
        self._last_session_index = -1
        self.sessions_started = 0
        window = self.config.signal_window_sec * NS_PER_SEC
        self._window_ns = window
        self._recent_window = RecentTrades()
        self._pct = float(self.config.value_area_pct)
        self._history_scale: tuple[int, ScaleMedians] = (-1, scale_medians(None))

    # ------------------------------------------------------------------ ingestion
    def update(self, trades: TradeBatch) -> None:
        """Add time-ordered trades.

        A trade stamped before the engine's clock (live, after a snapshot taken at wall-clock
        time) still counts, as if it arrived at the clock; one that belongs to a session the
        engine has already closed is counted in `late_trades` and ignored.
        """
        if len(trades) == 0:
            return
        if self.clock_ns is not None and trades.ts[0] < self.clock_ns:
            self.late_trades += int((trades.ts < self.clock_ns).sum())
        cur = self.current
        if (
            cur is not None
            and not cur.closed
            and trades.ts[0] >= cur.open_ns
            and trades.ts[-1] < cur.close_ns
        ):
            self._ingest_run(cur.index, trades)  # the live fast path: all in this session
            self.total_trades += len(trades)
            self.clock_ns = max(self.clock_ns or 0, int(trades.ts[-1]))
            self._remember_recent(trades)
            return
        idx = self.calendar.locate(trades.ts, self.kind)
        change = np.flatnonzero(np.diff(idx)) + 1
        starts = np.concatenate(([0], change))
        stops = np.concatenate((change, [len(idx)]))
        for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
            sess = int(idx[a])
            if sess < 0:
                self.outside_session_trades += b - a
            elif sess < self._last_session_index or (
                self.current is not None and self.current.closed and sess == self.current.index
            ):
                self.closed_session_trades += b - a
            else:
                self._ingest_run(sess, trades.slice(a, b))
        self.total_trades += len(trades)
        last = int(trades.ts[-1])
        self.clock_ns = last if self.clock_ns is None else max(self.clock_ns, last)
        self._remember_recent(trades)

    def _ingest_run(self, sess: int, run: TradeBatch) -> None:
        if self.current is None or self.current.index != sess:
            self._start_session(sess)
        cur = self.current
        assert cur is not None
        cur.ensure_rows(int(run.price.min()), int(run.price.max()))
        cur.ensure_buffers(len(run))
        assert cur.base is not None
        rows = run.price - cur.base
        K.ingest(
            run.ts,
            rows,
            run.size,
            run.side,
            run.inferred,
            cur.st,
            self._pct,
            cur.vol,
            cur.buy,
            cur.sell,
            cur.sec_vol,
            cur.sec_delta,
            cur.sec_time,
            cur.sec_px,
            cur.minute_range,
            cur.cross_ts,
            cur.big,
        )

    def _start_session(self, sess: int) -> None:
        if self.current is not None:
            self._finish_session()
            if self.current.record is not None:
                self.history.append(self.current.record)
                self.prior = self.current.record
        self._last_session_index = sess
        self.sessions_started += 1
        session = self.calendar.session(sess)
        open_ns, close_ns = session.bounds(self.kind)
        self.current = _SessionState(sess, session, open_ns, close_ns, self.config, self.big_min)

    def _finish_session(self) -> None:
        """Close the current session at its end; it stays visible until the next one starts."""
        cur = self.current
        if cur is None or cur.closed:
            return
        K.advance(cur.st, self._pct, cur.vol, cur.sec_time, np.int64(cur.close_ns))
        cur.closed = True
        if cur.st[K.S_NTRADES] > 0:
            curve = np.maximum.accumulate(cur.minute_range)
            curve = np.where(curve < 0, 0, curve)
            minutes = len(cur.sec_vol) // 60
            cur.record = SessionRecord(
                trade_date=cur.session.trade_date.isoformat(),
                range_by_minute=curve,
                final_range=int(cur.st[K.S_HIGH] - cur.st[K.S_LOW]),
                levels=self._levels_dict(cur),
                scale_samples=minute_scale_samples(cur.sec_px, cur.sec_vol, cur.sec_delta, minutes),
            )

    def _remember_recent(self, trades: TradeBatch) -> None:
        """Keep the trades of the last signal window (see `RecentTrades`)."""
        self._recent_window.append(trades, int(trades.ts[-1]) - self._window_ns)

    @property
    def _recent(self) -> TradeBatch:
        return self._recent_window.view()

    def advance_to(self, at_ns: int) -> None:
        """Let market time pass without trades (closes a session whose end has passed)."""
        if self.clock_ns is not None and at_ns < self.clock_ns:
            at_ns = self.clock_ns  # the clock never goes back
        cur = self.current
        if cur is not None and not cur.closed:
            if at_ns >= cur.close_ns:
                self._finish_session()
            else:
                K.advance(cur.st, self._pct, cur.vol, cur.sec_time, np.int64(at_ns))
        self.clock_ns = at_ns

    # ------------------------------------------------------------------ snapshot
    def _px(self, row: int, cur: _SessionState) -> float | None:
        if row < 0 or cur.base is None:
            return None
        return self.spec.to_price(row + cur.base)

    def _levels_dict(self, cur: _SessionState) -> dict[str, object]:
        lv = self._profile(cur)
        return {
            "trade_date": cur.session.trade_date.isoformat(),
            "poc": lv.poc,
            "vah": lv.vah,
            "val": lv.val,
            "high": lv.high,
            "low": lv.low,
            "volume": lv.volume,
            "cvd": lv.cvd,
            "hvn": lv.hvn,
            "lvn": lv.lvn,
        }

    def _profile(self, cur: _SessionState) -> ProfileLevels:
        cfg = self.config
        lo, hi, poc, val, vah = profile_levels(cur.vol, self._pct, cfg.value_area_rows)
        hvn, lvn = volume_nodes(
            cur.vol,
            lo,
            hi,
            cfg.hvn_lvn_smoothing_rows,
            cfg.hvn_lvn_min_separation_ticks,
            cfg.hvn_lvn_prominence,
        )
        st = cur.st
        return ProfileLevels(
            poc=self._px(poc, cur),
            vah=self._px(vah, cur),
            val=self._px(val, cur),
            high=self._px(hi, cur),
            low=self._px(lo, cur),
            volume=int(st[K.S_VOLUME]),
            buy_volume=int(st[K.S_BUY]),
            sell_volume=int(st[K.S_SELL]),
            cvd=int(st[K.S_CVD]),
            hvn=[self.spec.to_price(int(r) + (cur.base or 0)) for r in hvn],
            lvn=[self.spec.to_price(int(r) + (cur.base or 0)) for r in lvn],
        )

    def snapshot(self, at_ns: int | None = None) -> FeatureSnapshot:
        """The features at `at_ns` (default: the last trade), which must not precede the clock."""
        at = self.clock_ns if at_ns is None else max(at_ns, self.clock_ns or at_ns)
        if at is None:
            return FeatureSnapshot(
                self.contract.symbol, 0, "", None, None, None, None, {}, None, None, None, None
            )
        self.advance_to(at)
        cur = self.current
        prior = self.prior.levels if self.prior is not None else None
        if cur is None or cur.st[K.S_NTRADES] == 0:
            return FeatureSnapshot(
                self.contract.symbol,
                at,
                format_ns(at),
                None,
                None,
                None,
                None,
                {},
                prior,
                None,
                None,
                None,
            )
        st = cur.st
        now = min(at, cur.close_ns)
        profile = self._profile(cur)
        last_row = int(st[K.S_LAST_ROW])
        price_ticks = last_row + (cur.base or 0)
        snap = FeatureSnapshot(
            symbol=self.contract.symbol,
            ts_ns=at,
            time=format_ns(at),
            price=self.spec.to_price(price_ticks),
            last_trade_time=format_ns(int(st[K.S_LAST_TS])),
            session=SessionInfo(
                trade_date=cur.session.trade_date.isoformat(),
                kind=str(self.kind),
                open=cur.open_text,
                close=cur.close_text,
                minutes_into_session=round((now - cur.open_ns) / NS_PER_MIN, 2),
                minutes_to_close=round((cur.close_ns - now) / NS_PER_MIN, 2),
                is_open=at < cur.close_ns,
                trades=int(st[K.S_NTRADES]),
            ),
            profile=profile,
            developing={
                "poc": self._px(int(st[K.S_POC]), cur),
                "vah": self._px(int(st[K.S_VAH]), cur),
                "val": self._px(int(st[K.S_VAL]), cur),
            },
            prior_session=prior,
            market_stats=self._market_stats(cur, now, profile, price_ticks),
            poc_cross_stats=self._poc_cross_stats(cur, now, last_row),
            orderflow=self._orderflow(now, cur),
        )
        return snap

    def _range_percentiles(
        self, cur: _SessionState, now: int
    ) -> tuple[float | None, float | None, int]:
        n = len(self.history)
        if n < self.config.range_percentile_min_sessions:
            return None, None, n
        current = int(cur.st[K.S_HIGH] - cur.st[K.S_LOW])
        minute = int((now - cur.open_ns) // NS_PER_MIN)
        same_time = np.array(
            [r.range_by_minute[min(minute, len(r.range_by_minute) - 1)] for r in self.history]
        )
        finals = np.array([r.final_range for r in self.history])

        def rank(values: NDArray[np.int64]) -> float:
            below = int((values < current).sum())
            equal = int((values == current).sum())
            return round((below + 0.5 * equal) / len(values), 4)

        return rank(same_time), rank(finals), n

    def _scale(self, cur: _SessionState, now: int) -> list[float | None]:
        """Typical 5- and 15-minute ranges and |15-minute CVD slope| (see `typical_scale`).

        Recomputed once a minute, incrementally: the history's medians once per session, and
        only the session's new minutes (each row depends on its own window of whole minutes,
        which only a late trade, stamped before the clock, can change: then all of them).
        """
        minutes = int((now - cur.open_ns) // NS_PER_MIN)
        if cur.scale_cache is not None and cur.scale_cache[0] == minutes:
            return cur.scale_cache[1]
        if self._history_scale[0] != self.sessions_started:
            parts = [r.scale_samples for r in self.history if r.scale_samples is not None]
            pooled = np.concatenate(parts) if parts else None
            self._history_scale = (self.sessions_started, scale_medians(pooled))
        if cur.scale_late != self.late_trades:
            cur.scale_rows, cur.scale_late = np.empty((0, 3)), self.late_trades
        done = len(cur.scale_rows)
        if minutes > done:
            new = K.scale_rows(cur.sec_px, cur.sec_vol, cur.sec_delta, done, minutes)
            cur.scale_rows = np.concatenate((cur.scale_rows, new)) if done else new
        own = cur.scale_rows[:minutes]
        value = blend_scale(self._history_scale[1], scale_medians(own))
        cur.scale_cache = (minutes, value)
        return value

    def _market_stats(
        self, cur: _SessionState, now: int, profile: ProfileLevels, price_ticks: int
    ) -> MarketStats:
        st = cur.st
        # snapshot() advanced the session clock to `now`: time is accrued up to it.
        totals = [int(st[K.S_T_ABOVE]), int(st[K.S_T_BELOW]), int(st[K.S_T_IN])]
        sec = (now - cur.open_ns) // NS_PER_SEC
        sums = K.window_sums(cur.sec_vol, cur.sec_delta, cur.sec_time, sec).tolist()
        moves = K.window_moves(cur.sec_px, sec, int(st[K.S_LAST_ROW])).tolist()
        win = sums[4:7]
        vol5, vol15 = sums[0], sums[2]
        slope5 = round(sums[1] / vol5, 4) if vol5 > 0 else None
        slope15 = round(sums[3] / vol15, 4) if vol15 > 0 else None
        pct_now, pct_final, n_hist = self._range_percentiles(cur, now)
        volume = int(st[K.S_VOLUME])
        typ5, typ15, typ_slope = self._scale(cur, now)
        ch15, rg15, ch30, rg30, vr15 = minute_close_stats(cur.sec_px, sec, int(st[K.S_LAST_ROW]))

        def dist(level: float | None) -> int | None:
            return None if level is None else price_ticks - self.spec.to_ticks(level)

        def px(row: int) -> float | None:
            return None if row < 0 else self._px(row, cur)

        return MarketStats(
            session_range_ticks=int(st[K.S_HIGH] - st[K.S_LOW]),
            session_range_percentile=pct_now,
            session_range_percentile_final=pct_final,
            sessions_in_percentile=n_hist,
            distance_to_poc_ticks=dist(profile.poc),
            distance_to_vah_ticks=dist(profile.vah),
            distance_to_val_ticks=dist(profile.val),
            time_above_value_sec=round(totals[0] / 1e9, 1),
            time_below_value_sec=round(totals[1] / 1e9, 1),
            time_in_value_sec=round(totals[2] / 1e9, 1),
            time_above_value_last_30min_sec=round(win[0] / 1e9, 1),
            time_below_value_last_30min_sec=round(win[1] / 1e9, 1),
            time_in_value_last_30min_sec=round(win[2] / 1e9, 1),
            cvd=int(st[K.S_CVD]),
            cvd_slope_5min=slope5,
            cvd_slope_15min=slope15,
            cvd_inferred_share=round(int(st[K.S_INF_VOL]) / volume, 4) if volume else 0.0,
            volume_last_5min=vol5,
            volume_last_15min=vol15,
            range_last_5min_ticks=moves[0],
            price_change_last_5min_ticks=moves[1],
            range_last_15min_ticks=moves[2],
            price_change_last_15min_ticks=moves[3],
            high_last_15min=px(moves[6]),
            low_last_15min=px(moves[7]),
            typical_range_5min_ticks=None if typ5 is None else round(typ5, 2),
            typical_range_15min_ticks=None if typ15 is None else round(typ15, 2),
            typical_cvd_slope_15min=None if typ_slope is None else round(typ_slope, 4),
            close_change_last_15min_ticks=ch15,
            close_range_last_15min_ticks=rg15,
            close_change_last_30min_ticks=ch30,
            close_range_last_30min_ticks=rg30,
            variance_ratio_15min=vr15,
        )

    def _poc_cross_stats(self, cur: _SessionState, now: int, last_row: int) -> PocCrossStats:
        st = cur.st
        n = int(st[K.S_NCROSS])
        crosses = cur.cross_ts[:n]

        def count(minutes: int) -> int:
            return n - int(np.searchsorted(crosses, now - minutes * NS_PER_MIN, side="right"))

        poc = int(st[K.S_POC])
        if poc < 0 or last_row == poc:
            side = "at_poc"
        else:
            side = "above_poc" if last_row > poc else "below_poc"
        return PocCrossStats(
            count_last_5min=count(5),
            count_last_15min=count(15),
            count_last_30min=count(30),
            time_since_last_cross_sec=round((now - int(crosses[-1])) / 1e9, 1) if n else None,
            current_side=side,
        )

    def _orderflow(self, now: int, cur: _SessionState) -> OrderflowSignals:
        window = self._window_ns
        recent = self._recent
        start = int(np.searchsorted(recent.ts, now - window, side="right"))
        stop = int(np.searchsorted(recent.ts, now, side="right"))
        w = recent.slice(start, stop)
        nbig = int(cur.st[K.S_NBIG])
        big = cur.big[:nbig]
        big = big[big[:, 0] > now - window]
        base = cur.base or 0
        recent_big = [
            BigPrint(
                format_ns(int(b[0])),
                self.spec.to_price(int(b[1]) + base),
                int(b[2]),
                "buy" if b[3] > 0 else ("sell" if b[3] < 0 else "unknown"),
            )
            for b in big[-5:]
        ]
        if self.config.bar_absorption_sec:  # bar data: read absorption from the last bar
            absorb = bar_absorption(
                w.ts, w.price, w.size, w.side, now, self.config.bar_absorption_sec * NS_PER_SEC
            )
        else:
            absorb = absorption(w.ts, w.price, w.size, w.side, now, window, self.config)
        exhaust = exhaustion(w.ts, w.price, w.size, w.side, now, window, self.config)
        for sig in (absorb, exhaust):
            if sig is not None:
                sig["price"] = self.spec.to_price(int(sig.pop("price_ticks")))
        return OrderflowSignals(
            window_sec=self.config.signal_window_sec,
            big_print_min_size=self.big_min,
            big_prints_count=len(big),
            big_prints_buy_volume=int(big[big[:, 3] > 0, 2].sum()),
            big_prints_sell_volume=int(big[big[:, 3] < 0, 2].sum()),
            recent_big_prints=recent_big,
            absorption=absorb,
            exhaustion=exhaust,
        )
