"""The rule brain's regime for every RTH minute of a market, and its score against labels.

`regime_timeline(feed)` replays a feed through the feature engine (RTH sessions) and, at the
end of every RTH minute, builds the decision context and asks one `RuleBrain` for the regime
(in order, so its hysteresis works as in a backtest). `read_labels(path)` reads a label file
(`ts, regime`: the minute's start and trend / range / chop), `score_timeline` gives balanced
accuracy, per-class recall, the confusion matrix and accuracy by minutes since the true regime
last switched. `fabio regime` and `bench/regime_accuracy.py` both use these functions.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from fabio.brain.context import build_context
from fabio.brain.rules import REGIMES, RuleBrain
from fabio.config import FeatureConfig
from fabio.data.base import MarketFeed
from fabio.domain import TradeBatch
from fabio.errors import DataError
from fabio.features.engine import FeatureEngine
from fabio.instruments import Contract
from fabio.sessions import SessionKind
from fabio.strategies import initialize_default_strategies
from fabio.timeutil import NS_PER_MIN

CODE: dict[str, int] = {name: i for i, name in enumerate(REGIMES)}
SINCE_BUCKETS = ((0, 5), (5, 10), (10, 15), (15, 20), (20, 30), (30, 60), (60, 100_000))
I64 = NDArray[np.int64]
TIMELINE_COLUMNS = ["ts", "trade_date", "regime", "confidence", "score_trend", "score_range",
                    "score_chop", "price"]  # fmt: skip


@dataclass(slots=True)
class Timeline:
    """One row per RTH minute after the warm-up sessions (minute start, UTC ns)."""

    symbol: str
    minute_ts: list[int] = field(default_factory=list)
    trade_date: list[str] = field(default_factory=list)
    regime: list[str] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)
    scores: list[tuple[float, float, float]] = field(default_factory=list)
    price: list[float] = field(default_factory=list)
    warmup_dates: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.minute_ts)

    def codes(self) -> I64:
        return np.asarray([CODE[r] for r in self.regime], dtype=np.int64)

    def rows(self) -> Iterable[dict[str, Any]]:
        for i in range(len(self)):
            trend, rng, chop = self.scores[i]
            yield {
                "ts": _iso(self.minute_ts[i]),
                "trade_date": self.trade_date[i],
                "regime": self.regime[i],
                "confidence": self.confidence[i],
                "score_trend": trend,
                "score_range": rng,
                "score_chop": chop,
                "price": self.price[i],
            }

    def write_csv_to(self, fh: IO[str]) -> None:
        writer = csv.DictWriter(fh, fieldnames=TIMELINE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows())

    def write_csv(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="", encoding="utf-8") as fh:
                self.write_csv_to(fh)
        except OSError as exc:
            raise DataError(f"{path}: cannot write the timeline ({exc.strerror or exc})") from None


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Builder:
    """Feeds the engine minute by minute and asks the brain at the end of each RTH minute."""

    def __init__(self, contract: Contract, warmup: int, brain: RuleBrain) -> None:
        self.engine = FeatureEngine(contract, FeatureConfig(session=SessionKind.RTH))
        self.brain = brain
        self.tick = contract.spec.tick_size
        self.state = initialize_default_strategies()
        self.warmup = warmup
        self.out = Timeline(symbol=contract.symbol)
        self.dates: list[str] = []
        self.pending: int | None = None  # minute index (ts // NS_PER_MIN) not yet reported

    def report(self, minute: int) -> None:
        snap = self.engine.snapshot((minute + 1) * NS_PER_MIN - 1)
        sess = snap.session
        if sess is None or not sess.is_open or snap.market_stats is None or snap.price is None:
            return
        if not self.dates or self.dates[-1] != sess.trade_date:
            self.dates.append(sess.trade_date)
        if len(self.dates) <= self.warmup:
            return
        assessment, _ = self.brain.assess(build_context(snap, self.tick, self.state))
        sc = self.brain.last_scores
        out = self.out
        out.minute_ts.append(minute * NS_PER_MIN)
        out.trade_date.append(sess.trade_date)
        out.regime.append(assessment.regime)
        out.confidence.append(assessment.confidence)
        out.scores.append((sc.trend, sc.range, sc.chop) if sc else (0.0, 0.0, 0.0))
        out.price.append(snap.price)

    def flush_until(self, minute: int) -> None:
        """Report every minute from the pending one up to `minute` (excluded) in its session."""
        if self.pending is None:
            return
        cur = self.engine.current
        close_min = cur.close_ns // NS_PER_MIN if cur is not None else self.pending + 1
        for m in range(self.pending, min(minute, close_min + 1)):
            self.report(m)
        self.pending = None

    def add(self, trades: TradeBatch) -> None:
        minutes = trades.ts // NS_PER_MIN
        cuts = np.flatnonzero(np.diff(minutes)) + 1
        for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), len(trades)], strict=True):
            m = int(minutes[a])
            if self.pending is not None and m != self.pending:
                self.flush_until(m)
            self.engine.update(trades.slice(a, b))
            cur = self.engine.current
            if cur is not None and not cur.closed and cur.open_ns <= int(trades.ts[a]):
                self.pending = m


def regime_timeline(
    feed: MarketFeed,
    warmup_sessions: int = 0,
    brain: RuleBrain | None = None,
    contract: Contract | None = None,
) -> Timeline:
    """The brain's regime at the end of every RTH minute, from the session after the warm-up.

    A minute is reported from the first trade of its session to the session's close (minutes
    without trades in between are reported too); the first `warmup_sessions` trade dates only
    feed the engine (range percentile and typical-range history).
    """
    builder = _Builder(contract or feed.contract, warmup_sessions, brain or RuleBrain())
    for batch in feed.batches():
        if len(batch.trades):
            builder.add(batch.trades)
    if builder.pending is not None:
        builder.flush_until(builder.pending + 1)
    builder.out.warmup_dates = builder.dates[:warmup_sessions]
    return builder.out


# ---------------------------------------------------------------- labels and scores


@dataclass(frozen=True, slots=True)
class Labels:
    minute_ts: I64
    regime: I64  # codes 0 trend, 1 range, 2 chop


def _parse_ts(text: str) -> int:
    t = text.strip()
    if t.lstrip("-").isdigit():
        return int(t)
    dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError("an ISO-8601 time needs a UTC offset or Z")
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def _label_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the labels ({exc.strerror or exc})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: broken gzip ({exc})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path}: the labels are not UTF-8 text") from None


def read_labels(path: Path) -> Labels:
    """A label file: `ts, regime` (the minute's start; ISO-8601 with offset, or UTC ns).

    Generator files' `minute_start_ts` is accepted for `ts`. A bad row stops with a one-line
    error naming the line; duplicate minutes must agree.
    """
    reader = csv.reader(io.StringIO(_label_text(path)))
    header = next(reader, None)
    if not header:
        raise DataError(f"{path}: the labels file is empty")
    cols = [h.strip().lower() for h in header]
    ts_col = next((cols.index(c) for c in ("ts", "minute_start_ts", "time") if c in cols), None)
    if ts_col is None or "regime" not in cols:
        raise DataError(f"{path}: labels need the columns ts, regime (found {', '.join(cols)})")
    reg_col = cols.index("regime")
    seen: dict[int, int] = {}
    for line, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        minute, code = _label_row(path, line, row, len(cols), ts_col, reg_col)
        if seen.get(minute, code) != code:
            raise DataError(f"{path}:{line}: minute {_iso(minute)} labelled twice, differently")
        seen[minute] = code
    if not seen:
        raise DataError(f"{path}: no labels in the file")
    keys = np.asarray(sorted(seen), dtype=np.int64)
    return Labels(keys, np.asarray([seen[int(k)] for k in keys], dtype=np.int64))


def _label_row(
    path: Path, line: int, row: list[str], ncols: int, ts_col: int, reg_col: int
) -> tuple[int, int]:
    if len(row) <= max(ts_col, reg_col):
        raise DataError(f"{path}:{line}: expected {ncols} columns, got {len(row)}")
    try:
        ts = _parse_ts(row[ts_col])
    except ValueError as exc:
        raise DataError(f"{path}:{line}: bad ts '{row[ts_col]}' ({exc})") from None
    name = row[reg_col].strip().lower()
    if name not in CODE:
        raise DataError(f"{path}:{line}: regime '{row[reg_col]}' is not trend, range or chop")
    return ts - ts % NS_PER_MIN, CODE[name]


def confusion(truth: I64, pred: I64) -> NDArray[np.int64]:
    m = np.zeros((3, 3), dtype=np.int64)
    np.add.at(m, (truth, pred), 1)
    return m


def scores(truth: I64, pred: I64) -> dict[str, Any]:
    """Balanced accuracy (mean recall over the classes present), recall, confusion."""
    m = confusion(truth, pred)
    rows = m.sum(axis=1)
    recall = [float(m[i, i] / rows[i]) if rows[i] else None for i in range(3)]
    present = [r for r in recall if r is not None]
    return {
        "minutes": len(truth),
        "balanced_accuracy": float(np.mean(present)) if present else None,
        "accuracy": float(np.mean(truth == pred)) if len(truth) else None,
        "recall": dict(zip(REGIMES, recall, strict=True)),
        "confusion": m.tolist(),
    }


def minutes_since_switch(truth: I64, session_id: I64) -> I64:
    """Minutes since the true regime last changed (or the session began), per row."""
    out = np.zeros(len(truth), dtype=np.int64)
    for i in range(1, len(truth)):
        same = truth[i] == truth[i - 1] and session_id[i] == session_id[i - 1]
        out[i] = out[i - 1] + 1 if same else 0
    return out


def by_since(truth: I64, pred: I64, since: I64) -> dict[str, dict[str, Any]]:
    result = {}
    for a, b in SINCE_BUCKETS:
        sel = (since >= a) & (since < b)
        result[f"{a}-{b}" if b < 100_000 else f"{a}+"] = {
            "share": float(sel.mean()) if len(sel) else 0.0,
            "balanced_accuracy": scores(truth[sel], pred[sel])["balanced_accuracy"],
        }
    sel = since >= 15
    result["15+"] = {
        "share": float(sel.mean()) if len(sel) else 0.0,
        "balanced_accuracy": scores(truth[sel], pred[sel])["balanced_accuracy"],
    }
    return result


def matched(timeline: Timeline, labels: Labels) -> tuple[I64, I64, I64, int]:
    """(truth, pred, since-switch) over the timeline minutes that have a label, and unlabelled."""
    ts = np.asarray(timeline.minute_ts, dtype=np.int64)
    idx = np.searchsorted(labels.minute_ts, ts)
    safe = np.clip(idx, 0, max(len(labels.minute_ts) - 1, 0))
    hit = (idx < len(labels.minute_ts)) & (labels.minute_ts[safe] == ts)
    truth = labels.regime[safe][hit]
    pred = timeline.codes()[hit]
    _, session_id = np.unique(np.asarray(timeline.trade_date)[hit], return_inverse=True)
    since = minutes_since_switch(truth, session_id.astype(np.int64))
    return truth, pred, since, int((~hit).sum())


def score_timeline(timeline: Timeline, labels: Labels) -> dict[str, Any]:
    """The timeline scored against labels: overall, and by minutes since a true switch."""
    truth, pred, since, unlabelled = matched(timeline, labels)
    if len(truth) == 0:
        raise DataError(
            "no timeline minute has a label: check that the labels' ts are minute starts in "
            "UTC and belong to the same market and sessions (after the warm-up)"
        )
    result = scores(truth, pred)
    result["unlabelled_minutes"] = unlabelled
    result["by_minutes_since_switch"] = by_since(truth, pred, since)
    return result
