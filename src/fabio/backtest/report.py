"""One self-contained HTML report of a backtest: summary, equity, daily P&L, price and trades,
regimes (against the truth on the synthetic market), strategy parameters, per-strategy tables.

Plotly.js is inlined once (the file works offline). Times are shown in America/Chicago. Long
series are downsampled (`MAX_POINTS`); trades are always drawn exactly. Every text that comes
from the data (strategy names, reasons, sources) is HTML-escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from fabio.backtest.runner import (
    SYNTHETIC_CAVEAT,
    BacktestResult,
    daily_pnl,
    is_synthetic,
    no_trades_reason,
)
from fabio.execution.types import ClosedTrade
from fabio.timeutil import CHICAGO, NS_PER_MIN, format_ns

NS = 1_000_000_000
MAX_POINTS = 20_000  # per drawn series (price and levels, regime bands)
MAX_CHANGE_ROWS = 200  # rows of the strategy change log
TZ_NOTE = "America/Chicago"

EQUITY_TITLE = "Equity curve: balance after each closed trade"
DAILY_TITLE = "Daily net P&L after costs"
PRICE_TITLE = "Price per minute with POC, VAH, VAL and trades"
REGIME_TITLE = "Regime timeline"
PARAMS_TITLE = "Strategy parameters over time"
PER_STRATEGY_TITLE = "Per-strategy results"
PER_REGIME_TITLE = "Per-regime results"

_REGIME_COLOURS = {"trend": "#2ca02c", "range": "#1f77b4", "chop": "#ff7f0e", "unknown": "#9e9e9e"}
_PALETTE = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#d62728")
_WIN, _LOSS, _LONG, _SHORT = "#2ca02c", "#d62728", "#1f77b4", "#ff7f0e"
_REGIME_ORDER = ("trend", "range", "chop")

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:1400px;padding:0 24px 48px;color:#222}
h1{margin:24px 0 4px}h2{margin:32px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h2 small{font-weight:normal;color:#666;font-size:0.6em}
.meta{color:#555;margin:0 0 16px}.note{color:#555}
table{border-collapse:collapse;margin:8px 0 16px;font-size:14px}
th,td{border:1px solid #ddd;padding:4px 10px;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left}th{background:#f4f4f4}
table.text td{text-align:left}.summary td{text-align:left}
.summary th{text-align:left;width:280px}ul.breaches{margin:0;padding-left:18px;color:#b00}
.caveat{background:#fff4d6;border:1px solid #e0b84c;padding:8px 12px;margin:8px 0 16px}
"""


class _Html(str):
    """Text that is already HTML (not escaped again)."""

    __slots__ = ()


def _esc(value: object) -> str:
    return value if isinstance(value, _Html) else html.escape(str(value), quote=True)


# ---------------------------------------------------------------- formatting
def _money(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"-${-v:,.2f}" if v < 0 else f"${v:,.2f}"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 100:.1f}%"


def _num(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:,.3f}".rstrip("0").rstrip(".") if abs(v) >= 1 else f"{v:.4g}"
    return str(v)


def _cell(key: str, v: Any) -> str:
    """A per-strategy/per-regime value, formatted by what its key says it is."""
    if isinstance(v, float | int) and not isinstance(v, bool):
        if "rate" in key:
            return _pct(float(v))
        if "pnl" in key or "drawdown" in key:
            return _money(float(v))
    return _num(v)


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], cls: str = "") -> str:
    """An HTML table; every cell is escaped unless it is `_Html`."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(title: str, body: str, note: str = "") -> str:
    small = f" <small>{_esc(note)}</small>" if note else ""
    return f"<section><h2>{_esc(title)}{small}</h2>{body}</section>"


def _fig_html(fig: go.Figure) -> str:
    fig.update_layout(
        template="plotly_white", margin={"l": 60, "r": 20, "t": 30, "b": 40}, hovermode="closest"
    )
    fig.update_xaxes(hoverformat="%Y-%m-%d %H:%M:%S")
    out: str = fig.to_html(
        full_html=False, include_plotlyjs=False, config={"displaylogo": False, "responsive": True}
    )
    return out


# ---------------------------------------------------------------- time and sampling
def _local(ns: Any) -> np.ndarray:
    """UTC ns to America/Chicago wall-clock milliseconds: what a plotly date axis shows.

    Numbers rather than date strings: plotly stores them as compact binary arrays."""
    arr = np.asarray(ns, dtype=np.int64)
    if arr.size == 0:
        return np.empty(0, dtype=np.float64)
    idx = pd.DatetimeIndex(pd.to_datetime(arr, unit="ns", utc=True)).tz_convert(CHICAGO)
    wall = idx.tz_localize(None).to_numpy().astype("datetime64[ms]").astype(np.int64)
    return wall.astype(np.float64)


def minmax_bucket(n: int, limit: int = MAX_POINTS) -> int:
    """How many points `minmax_indices` folds into one bucket (1: none folded)."""
    return 1 if n <= limit else math.ceil(n / max(limit // 2, 1))


def minmax_indices(values: np.ndarray, limit: int = MAX_POINTS) -> np.ndarray:
    """Indices keeping each bucket's lowest and highest value: at most `limit`, sorted."""
    n = len(values)
    if n <= limit:
        return np.arange(n)
    bucket = minmax_bucket(n, limit)
    buckets = math.ceil(n / bucket)
    padded = np.full(buckets * bucket, np.nan)
    padded[:n] = values
    grid = padded.reshape(buckets, bucket)
    filled = np.where(np.isnan(grid), np.inf, grid)
    lo = np.argmin(filled, axis=1)
    hi = np.argmax(np.where(np.isnan(grid), -np.inf, grid), axis=1)
    base = np.arange(buckets) * bucket
    keep = np.unique(np.concatenate([lo + base, hi + base]))
    return keep[keep < n]


def _gap_ns(step_ns: int) -> int:
    """Two points further apart than this belong to different sessions: break the line."""
    return max(30 * NS_PER_MIN, 3 * step_ns)


def _break_gaps(
    t_ns: np.ndarray, series: list[np.ndarray], gap_ns: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Insert a NaN after each gap so lines do not join sessions."""
    if len(t_ns) < 2:
        return t_ns, series
    cut = np.nonzero(np.diff(t_ns) > gap_ns)[0] + 1
    if len(cut) == 0:
        return t_ns, series
    return np.insert(t_ns, cut, t_ns[cut - 1]), [np.insert(s, cut, np.nan) for s in series]


def _rangebreaks(ns: np.ndarray) -> list[dict[str, Any]]:
    """Hide weekends and the daily hours no data covers (so sessions sit side by side)."""
    if ns.size == 0:
        return []
    idx = pd.DatetimeIndex(pd.to_datetime(ns, unit="ns", utc=True)).tz_convert(CHICAGO)
    minute_of_day = np.unique(np.asarray(idx.hour * 60 + idx.minute, dtype=np.int64))
    days = set(np.unique(np.asarray(idx.day_of_week)).tolist())
    out: list[dict[str, Any]] = []
    if 5 not in days:
        out.append({"bounds": ["sat", "sun" if 6 in days else "mon"]})
    covered = np.zeros(1440, dtype=bool)
    covered[minute_of_day] = True
    if covered.all():
        return out
    start, length = _longest_uncovered(covered)
    if length >= 60:
        end = (start + length) % 1440
        out.append({"pattern": "hour", "bounds": [start / 60, end / 60]})
    return out


def _longest_uncovered(covered: np.ndarray) -> tuple[int, int]:
    """Start minute and length of the longest circular run of uncovered minutes of the day."""
    first = int(np.argmax(covered))  # rotate so the day starts at a covered minute
    rolled = np.roll(covered, -first)
    best_start, best_len, run_start = 0, 0, -1
    for i, c in enumerate([*rolled.tolist(), True]):
        if not c and run_start < 0:
            run_start = i
        elif c and run_start >= 0:
            if i - run_start > best_len:
                best_start, best_len = run_start, i - run_start
            run_start = -1
    return (best_start + first) % 1440, best_len


def _axis_breaks(result: BacktestResult) -> list[dict[str, Any]]:
    tl = result.timeline or {}
    parts = [np.asarray(tl.get("minute_ts") or [], dtype=np.int64)]
    trades = result.closed_trades
    parts.append(
        np.asarray([t.entry_ns for t in trades] + [t.exit_ns for t in trades], dtype=np.int64)
    )
    if len(parts[0]) == 0:
        return []  # without the per-minute timeline the coverage is unknown: hide nothing
    return _rangebreaks(np.concatenate(parts))


# ---------------------------------------------------------------- header and summary
def _period(result: BacktestResult) -> str:
    minutes = (result.timeline or {}).get("minute_ts") or []
    times = list(minutes[:1]) + list(minutes[-1:])
    times += [t.entry_ns for t in result.closed_trades[:1]]
    times += [t.exit_ns for t in result.closed_trades[-1:]]
    if not times:
        return "no data"
    return f"{format_ns(min(times))[:16]} to {format_ns(max(times))[:16]} ({TZ_NOTE})"


def _header(result: BacktestResult) -> str:
    sources = result.sources[:5]
    more = f" and {len(result.sources) - 5:,} more" if len(result.sources) > 5 else ""
    generated = datetime.now(UTC).astimezone(CHICAGO).strftime("%Y-%m-%d %H:%M %Z")
    meta = (
        f"Brain <b>{_esc(result.brain)}</b>, learning {'on' if result.learning else 'off'}"
        f" &middot; {_esc(_period(result))}<br>Data: {_esc(', '.join(sources) or 'none')}"
        f"{_esc(more)}<br>Generated {_esc(generated)}"
    )
    banner = ""
    if is_synthetic(result.sources):
        banner = f'<p class="caveat"><b>SYNTHETIC DATA.</b> {_esc(SYNTHETIC_CAVEAT)}</p>'
    if not result.closed_trades:
        why = result.summary.get("no_trades_reason") or no_trades_reason(result)
        banner += f'<p class="caveat"><b>No trades.</b> {_esc(why)}</p>'
    title = (
        "Backtest report (synthetic data)" if is_synthetic(result.sources) else "Backtest report"
    )
    return f'<h1>{title}: {_esc(result.symbol)}</h1><p class="meta">{meta}</p>{banner}'


def _breaches_html(breaches: list[str], shown: int = 10, cap: int = 1000) -> _Html:
    """All breaches listed (a long list folded, at most `cap` items)."""
    if not breaches:
        return _Html("none")
    items = "".join(f"<li>{_esc(b)}</li>" for b in breaches[:cap])
    more = f"<li>... and {len(breaches) - cap:,} more</li>" if len(breaches) > cap else ""
    listing = f'<ul class="breaches">{items}{more}</ul>'
    if len(breaches) <= shown:
        return _Html(f"{len(breaches)}{listing}")
    return _Html(
        f"<details><summary>{len(breaches):,} breaches (click to list)</summary>{listing}</details>"
    )


def _llm_rows(result: BacktestResult, s: dict[str, Any]) -> list[tuple[str, object]]:
    brains: dict[str, int] = result.stats.get("brains") or {}
    by_brain = ", ".join(f"{k} {v:,}" for k, v in sorted(brains.items()))
    llm_calls = sum(v for k, v in brains.items() if k.startswith("llm:"))
    tokens = s.get("tokens") or {}
    return [
        ("Decisions", f"{s.get('decisions', 0):,}" + (f" ({by_brain})" if by_brain else "")),
        ("LLM calls (answers by an LLM)", f"{llm_calls:,}"),
        ("LLM fallbacks to the rules", f"{s.get('llm_fallbacks', 0):,}"),
        (
            "Tokens (prompt / completion / cached)",
            f"{tokens.get('prompt', 0):,} / {tokens.get('completion', 0):,} / "
            f"{tokens.get('cached', 0):,}",
        ),
        ("LLM cost", f"${float(s.get('llm_cost_usd') or 0.0):,.4f}"),
    ]


def _summary(result: BacktestResult) -> str:
    s = result.summary
    pf = s.get("profit_factor")
    rows: list[tuple[str, object]] = [
        (
            "Net P&L after costs",
            f"{_money(s.get('net_pnl_usd'))} (fees {_money(s.get('fees_usd'))})",
        ),
        (
            "Final balance",
            f"{_money(s.get('final_balance'))} (start {_money(result.starting_balance)})",
        ),
        ("Trades", f"{s.get('trades', 0):,} over {s.get('sessions_traded', 0):,} sessions"),
        ("Win rate", _pct(s.get("win_rate"))),
        ("Profit factor", _num(pf) if pf is not None else "n/a (no losing trade)"),
        ("Max drawdown", _money(s.get("max_drawdown_usd"))),
        ("Sharpe of daily P&L (annualised, sqrt 252)", _num(s.get("sharpe_daily"))),
        ("Rule breaches", _breaches_html(list(s.get("rule_breaches") or []))),
        ("Trading state at the end", _num(s.get("trading_state"))),
        ("Accepted strategy changes", f"{s.get('strategy_changes', 0):,}"),
        *_llm_rows(result, s),
    ]
    body = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows)
    return _section("Summary", f'<table class="summary"><tbody>{body}</tbody></table>')


# ---------------------------------------------------------------- equity and daily P&L
def _trade_hover(t: ClosedTrade) -> str:
    """Compact hover text of a trade (thousands of trades stay small)."""
    side = "long" if t.side > 0 else "short"
    r = f" R {t.r_multiple:.2f}" if t.r_multiple is not None else ""
    return (
        f"{_esc(t.trade_id)} {side} {t.qty} {_esc(t.strategy)} ({_esc(t.regime or '?')})"
        f"<br>{t.entry_price:.2f}&rarr;{t.exit_price:.2f} {_esc(t.exit_reason)}"
        f"<br>P&amp;L {_esc(_money(t.net_pnl_usd))}{r}"
    )


def _equity(result: BacktestResult, breaks: list[dict[str, Any]]) -> str:
    trades = sorted(result.closed_trades, key=lambda t: t.exit_ns)
    if not trades:
        return _section(
            EQUITY_TITLE,
            '<p class="note">No closed trades: the balance stayed at '
            f"{_esc(_money(result.starting_balance))}.</p>",
        )
    start_ns = trades[0].entry_ns
    minutes = (result.timeline or {}).get("minute_ts") or []
    if minutes:
        start_ns = min(start_ns, int(minutes[0]))
    x = _local([start_ns, *[t.exit_ns for t in trades]])
    y = result.starting_balance + np.cumsum([0.0, *[t.net_pnl_usd for t in trades]])
    hover = ["start", *[_trade_hover(t) for t in trades]]
    mode = "lines+markers" if len(trades) <= 500 else "lines"
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=y,
            mode=mode,
            line_shape="hv",
            hovertext=hover,
            name="balance",
            hovertemplate="%{hovertext}<br>balance $%{y:,.2f}<extra></extra>",
        )
    )
    fig.add_hline(y=result.starting_balance, line_dash="dot", line_color="#999")
    fig.update_layout(height=360, yaxis_title="balance (USD)", showlegend=False)
    fig.update_xaxes(type="date", rangebreaks=breaks, title_text=f"exit time ({TZ_NOTE})")
    return _section(EQUITY_TITLE, _fig_html(fig), f"{len(trades):,} trades")


def _daily(result: BacktestResult) -> str:
    days = daily_pnl(result.closed_trades)
    if not days:
        return _section(DAILY_TITLE, '<p class="note">No closed trades.</p>')
    values = list(days.values())
    fig = go.Figure(
        go.Bar(
            x=list(days),
            y=values,
            marker_color=[_WIN if v >= 0 else _LOSS for v in values],
            hovertemplate="%{x}<br>$%{y:,.2f}<extra></extra>",
        )
    )
    fig.update_layout(height=320, yaxis_title="net P&amp;L (USD)", showlegend=False)
    fig.update_xaxes(type="category", title_text="trade date")
    return _section(DAILY_TITLE, _fig_html(fig), f"{len(days):,} sessions with trades")


# ---------------------------------------------------------------- price and trades
def _trade_traces(trades: list[ClosedTrade]) -> list[go.Scatter]:
    """Entries coloured by side, exits by outcome, a dotted path between them."""
    out: list[go.Scatter] = []
    hover = {t.trade_id: _trade_hover(t) for t in trades}
    tmpl = "%{hovertext}<extra></extra>"
    groups = [
        ("long entry", [t for t in trades if t.side > 0], "entry", "triangle-up", _LONG),
        ("short entry", [t for t in trades if t.side < 0], "entry", "triangle-down", _SHORT),
        ("exit, win", [t for t in trades if t.net_pnl_usd > 0], "exit", "circle", _WIN),
        ("exit, loss", [t for t in trades if t.net_pnl_usd <= 0], "exit", "x", _LOSS),
    ]
    for name, ts, kind, symbol, colour in groups:
        if not ts:
            continue
        xs = [t.entry_ns if kind == "entry" else t.exit_ns for t in ts]
        ys = [t.entry_price if kind == "entry" else t.exit_price for t in ts]
        out.append(
            go.Scatter(
                x=_local(xs),
                y=ys,
                mode="markers",
                name=name,
                marker={
                    "symbol": symbol,
                    "color": colour,
                    "size": 11,
                    "line": {"width": 1, "color": "#333"},
                },
                hovertext=[hover[t.trade_id] for t in ts],
                hovertemplate=tmpl,
            )
        )
    if trades:
        px = np.full(3 * len(trades), np.nan)
        px[0::3] = _local([t.entry_ns for t in trades])
        px[1::3] = _local([t.exit_ns for t in trades])
        py = np.full(3 * len(trades), np.nan)
        py[0::3] = [t.entry_price for t in trades]
        py[1::3] = [t.exit_price for t in trades]
        out.append(
            go.Scatter(
                x=px,
                y=py,
                mode="lines",
                name="trade path",
                hoverinfo="skip",
                line={"color": "#555", "width": 1, "dash": "dot"},
            )
        )
    return out


def _price(result: BacktestResult, breaks: list[dict[str, Any]]) -> str:
    tl = result.timeline or {}
    t_all = np.asarray(tl.get("minute_ts") or [], dtype=np.int64)
    trades = result.closed_trades
    title = f"{PRICE_TITLE} ({len(trades):,} trades)"
    if len(t_all) == 0:
        return _section(
            title,
            '<p class="note">No per-minute timeline in this result '
            "(a merged sweep keeps only the trades).</p>",
        )
    price = np.asarray(tl["price"], dtype=float)
    keep = minmax_indices(price)
    n, shown = len(t_all), len(keep)
    step = minmax_bucket(n)
    levels = {
        k: np.asarray(tl.get(k) or [None] * n, dtype=float)[keep] for k in ("poc", "vah", "val")
    }
    t, ys = _break_gaps(t_all[keep], [price[keep], *levels.values()], _gap_ns(step * NS_PER_MIN))
    x = _local(t)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=x, y=ys[0], mode="lines", name="price", line={"color": "#222", "width": 1.2})
    )
    styles = {"poc": ("#d62728", "solid"), "vah": ("#9467bd", "dash"), "val": ("#9467bd", "dot")}
    for (name, (colour, dash)), y in zip(styles.items(), ys[1:], strict=True):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="lines",
                name=name.upper(),
                line={"color": colour, "width": 1, "dash": dash},
            )
        )
    for trace in _trade_traces(trades):
        fig.add_trace(trace)
    fig.update_layout(height=560, yaxis_title="price", legend={"orientation": "h", "y": 1.04})
    fig.update_xaxes(type="date", rangebreaks=breaks, title_text=f"time ({TZ_NOTE})")
    note = (
        f"downsampled: {shown:,} of {n:,} minutes shown (lowest and highest price per "
        f"{step}-minute bucket); trades exact"
        if shown < n
        else f"all {n:,} minutes"
    )
    return _section(title, _fig_html(fig), note)


# ---------------------------------------------------------------- regimes
def _decision_minutes(decisions: list[dict[str, Any]]) -> tuple[np.ndarray, list[str]]:
    """Each minute with a decision and the brain's regime at its last decision."""
    if not decisions:
        return np.empty(0, dtype=np.int64), []
    ts = np.fromiter((int(d["ts_ns"]) for d in decisions), dtype=np.int64, count=len(decisions))
    order = np.argsort(ts, kind="stable")
    minute = ts[order] // NS_PER_MIN * NS_PER_MIN
    last = np.r_[minute[1:] != minute[:-1], True]
    picked = order[last]
    return minute[last], [str(decisions[i].get("regime") or "unknown") for i in picked]


def _true_regimes(labels: dict[str, list[Any]], minutes: np.ndarray) -> list[str | None]:
    """The label of each minute (None where the labels do not cover it)."""
    lt = np.asarray(labels.get("minute_ts") or [], dtype=np.int64)
    names = labels.get("regime") or []
    if len(lt) == 0 or len(minutes) == 0:
        return [None] * len(minutes)
    order = np.argsort(lt, kind="stable")
    lt_sorted = lt[order]
    pos = np.clip(np.searchsorted(lt_sorted, minutes), 0, len(lt) - 1)
    hit = lt_sorted[pos] == minutes
    return [str(names[int(order[p])]) if h else None for p, h in zip(pos, hit, strict=True)]


def _colour(regime: str, known: list[str]) -> str:
    if regime in _REGIME_COLOURS:
        return _REGIME_COLOURS[regime]
    return _PALETTE[known.index(regime) % len(_PALETTE)] if regime in known else _PALETTE[0]


def _regime_order(*groups: Iterable[str | None]) -> list[str]:
    seen = {g for group in groups for g in group if g is not None}
    return [r for r in _REGIME_ORDER if r in seen] + sorted(seen - set(_REGIME_ORDER))


def _band_traces(
    t_ns: np.ndarray,
    regimes: Sequence[str | None],
    row: tuple[str, int],
    step_ns: int,
    order: list[str],
    shown: set[str],
) -> list[go.Scatter]:
    """One thick line per regime at height `row[1]`: a segment per run of equal regime within
    a session. `shown`: the regimes already in the legend (updated)."""
    n = len(t_ns)
    if n == 0:
        return []
    gap = _gap_ns(step_ns)
    runs: dict[str, tuple[list[int], list[int]]] = {}
    start = 0
    for i in range(n):
        joined = i + 1 < n and t_ns[i + 1] - t_ns[i] <= gap
        if joined and regimes[i + 1] == regimes[i]:
            continue
        name = regimes[i]
        if name is not None:
            # a session's last run ends within its last minute: not in hidden (rangebreak) time
            end = int(t_ns[i + 1]) if joined else int(t_ns[i]) + min(step_ns, NS_PER_MIN) - NS
            starts, ends = runs.setdefault(name, ([], []))
            starts.append(int(t_ns[start]))
            ends.append(end)
        start = i + 1
    out = []
    for name in order:
        if name not in runs:
            continue
        starts, ends = runs[name]
        x = np.full(3 * len(starts), np.nan)
        x[0::3], x[1::3] = _local(starts), _local(ends)
        y = np.full(3 * len(starts), row[1], dtype=np.int8)  # the NaN x breaks the line
        out.append(
            go.Scatter(
                x=x,
                y=y,
                mode="lines",
                name=_esc(name),
                legendgroup=name,
                showlegend=name not in shown,
                line={"color": _colour(name, order), "width": 28, "simplify": False},
                hovertemplate=f"{row[0]}: {_esc(name)}<br>%{{x}}<extra></extra>",
            )
        )
        shown.add(name)
    return out


def _accuracy(brain: list[str], truth: list[str | None]) -> tuple[str, str]:
    """The accuracy line and the confusion table (true regime per row, brain's per column)."""
    pairs = [(t, b) for b, t in zip(brain, truth, strict=True) if t is not None]
    if not pairs:
        return (
            '<p class="note">The labels cover none of the decision minutes: no regime '
            "accuracy.</p>",
            "",
        )
    hits = sum(1 for t, b in pairs if t == b)
    line = (
        f"<p><b>Regime accuracy: {hits / len(pairs) * 100:.1f}%</b> of {len(pairs):,} "
        "decision minutes (the brain's regime at the minute's last decision equals the "
        "true regime).</p>"
    )
    order = _regime_order([t for t, _ in pairs], [b for _, b in pairs])
    counts: dict[tuple[str, str], int] = {}
    for pair in pairs:
        counts[pair] = counts.get(pair, 0) + 1
    rows: list[list[object]] = []
    for t in order:
        total = sum(counts.get((t, b), 0) for b in order)
        cells: list[object] = [f"true {t}"]
        for b in order:
            c = counts.get((t, b), 0)
            cells.append(_Html(f"<b>{c:,}</b>") if t == b else f"{c:,}")
        cells += [f"{total:,}", _pct(counts.get((t, t), 0) / total if total else None)]
        rows.append(cells)
    table = _table(["true \\ brain", *[f"brain {b}" for b in order], "minutes", "recall"], rows)
    return line, '<p class="note">Confusion table (decision minutes):</p>' + table


def _regimes(result: BacktestResult, breaks: list[dict[str, Any]]) -> str:
    minutes, brain = _decision_minutes((result.timeline or {}).get("decisions") or [])
    if len(minutes) == 0:
        return _section(REGIME_TITLE, '<p class="note">No decisions recorded.</p>')
    labels = result.labels
    truth = _true_regimes(labels, minutes) if labels else None
    accuracy, confusion = _accuracy(brain, truth) if truth is not None else ("", "")
    n = len(minutes)
    stride = math.ceil(n / MAX_POINTS)
    keep = np.arange(0, n, stride)
    order = _regime_order(brain, truth or [])
    rows = ["true", "brain"] if truth is not None else ["brain"]
    shown: set[str] = set()
    traces = _band_traces(
        minutes[keep],
        [brain[i] for i in keep],
        ("brain", len(rows) - 1),
        stride * NS_PER_MIN,
        order,
        shown,
    )
    if truth is not None:
        traces += _band_traces(
            minutes[keep], [truth[i] for i in keep], ("true", 0), stride * NS_PER_MIN, order, shown
        )
    fig = go.Figure(traces)
    fig.update_layout(height=130 + 45 * len(rows), legend={"orientation": "h", "y": 1.25})
    fig.update_yaxes(
        tickvals=list(range(len(rows))),
        ticktext=rows,
        showgrid=False,
        zeroline=False,
        range=[-0.6, len(rows) - 0.4],
        fixedrange=True,
    )
    fig.update_xaxes(type="date", rangebreaks=breaks, title_text=f"time ({TZ_NOTE})")
    what = (
        "the brain's regime (top) and the true regime (bottom)"
        if truth is not None
        else "the brain's regime"
    )
    note = (
        f"{what} per decision minute; downsampled: 1 in {stride} of {n:,} minutes shown"
        if stride > 1
        else f"{what} per decision minute, {n:,} minutes"
    )
    return _section(REGIME_TITLE, accuracy + _fig_html(fig) + confusion, note)


# ---------------------------------------------------------------- strategy parameters
_PARAM_FIELDS = ("risk_fraction", "enabled")


def _param_steps(
    result: BacktestResult, t0: int, t1: int
) -> dict[str, dict[str, list[tuple[int, float, str]]]]:
    """Per strategy and field: (time, value, hover) steps from the initial value to the end."""
    changes = sorted(result.strategy_changes, key=lambda c: int(c.get("ts_ns", 0)))
    names = list(result.strategy_state) + [
        str(c.get("strategy")) for c in changes if c.get("strategy") not in result.strategy_state
    ]
    out: dict[str, dict[str, list[tuple[int, float, str]]]] = {}
    for name in dict.fromkeys(names):
        for fld in _PARAM_FIELDS:
            mine = [c for c in changes if c.get("strategy") == name and c.get("field") == fld]
            first = mine[0].get("old") if mine else result.strategy_state.get(name, {}).get(fld)
            if first is None:
                continue
            steps = [(t0, float(first), "initial value")]
            for c in mine:
                hover = (
                    f"{_esc(fld)}: {_esc(_num(c.get('old')))} &rarr; "
                    f"{_esc(_num(c.get('new')))}"
                    f"<br>{_esc(c.get('reason', ''))} ({_esc(c.get('source', ''))})"
                )
                steps.append((int(c["ts_ns"]), float(c.get("new") or 0), hover))
            steps.append((t1, steps[-1][1], "end"))
            out.setdefault(name, {})[fld] = steps
    return out


def _change_log(changes: list[dict[str, Any]]) -> str:
    shown = sorted(changes, key=lambda c: int(c.get("ts_ns", 0)))[-MAX_CHANGE_ROWS:]
    rows = [
        [
            format_ns(int(c.get("ts_ns", 0)))[:19],
            c.get("strategy", ""),
            c.get("field", ""),
            f"{_num(c.get('old'))} -> {_num(c.get('new'))}",
            c.get("reason", ""),
            c.get("source", ""),
        ]
        for c in shown
    ]
    note = (
        f"the last {len(shown):,} of {len(changes):,} accepted changes"
        if len(shown) < len(changes)
        else f"{len(changes):,} accepted changes"
    )
    return f'<p class="note">Change log ({_esc(note)}, {TZ_NOTE}):</p>' + _table(
        ["time", "strategy", "field", "change", "reason", "source"], rows, "text"
    )


def _params_table(state: dict[str, Any]) -> str:
    if not state:
        return '<p class="note">No strategy parameters recorded.</p>'
    keys = list(dict.fromkeys(k for v in state.values() for k in v))
    rows = [[name, *[_num(params.get(k)) for k in keys]] for name, params in state.items()]
    return _table(["strategy", *keys], rows)


def _params(result: BacktestResult, breaks: list[dict[str, Any]]) -> str:
    changes = result.strategy_changes
    if not changes:
        return _section(
            PARAMS_TITLE,
            '<p class="note">No accepted strategy changes: every '
            "strategy kept its initial parameters.</p>" + _params_table(result.strategy_state),
        )
    times = [int(c.get("ts_ns", 0)) for c in changes]
    minutes = (result.timeline or {}).get("minute_ts") or []
    t0 = min([*times, *minutes[:1]])
    t1 = max([*times, *minutes[-1:]])
    steps = _param_steps(result, t0, t1)
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=("risk_fraction", "enabled"),
    )
    for i, (name, fields) in enumerate(steps.items()):
        nudge = (i - (len(steps) - 1) / 2) * 0.03  # on/off lines of strategies stay apart
        first = True
        for row, fld in enumerate(_PARAM_FIELDS, start=1):
            pts = fields.get(fld)
            if not pts:
                continue
            fig.add_trace(
                go.Scatter(
                    x=_local([p[0] for p in pts]),
                    y=[p[1] + (nudge if row == 2 else 0) for p in pts],
                    mode="lines+markers",
                    line_shape="hv",
                    name=_esc(name),
                    legendgroup=name,
                    showlegend=first,
                    line={"color": _PALETTE[i % len(_PALETTE)]},
                    hovertext=[p[2] for p in pts],
                    hovertemplate=f"{_esc(name)}<br>%{{hovertext}}<br>%{{x}}<extra></extra>",
                ),
                row=row,
                col=1,
            )
            first = False
    fig.update_yaxes(tickvals=[0, 1], ticktext=["off", "on"], range=[-0.2, 1.2], row=2, col=1)
    fig.update_layout(height=520)
    fig.update_xaxes(type="date", rangebreaks=breaks)
    fig.update_xaxes(title_text=f"time ({TZ_NOTE})", row=2, col=1)
    note = f"{len(changes):,} accepted changes, from each strategy's initial value"
    return _section(
        PARAMS_TITLE,
        _fig_html(fig)
        + _change_log(changes)
        + '<p class="note">Final parameters:</p>'
        + _params_table(result.strategy_state),
        note,
    )


# ---------------------------------------------------------------- tables
def _dict_table(title: str, data: dict[str, dict[str, Any]], first: str) -> str:
    if not data:
        return _section(title, '<p class="note">No closed trades.</p>')
    keys = list(dict.fromkeys(k for v in data.values() for k in v))
    rows = [[name, *[_cell(k, v.get(k)) for k in keys]] for name, v in data.items()]
    return _section(title, _table([first, *[k.replace("_", " ") for k in keys]], rows))


def render_report(result: BacktestResult) -> str:
    """The report as one HTML string."""
    breaks = _axis_breaks(result)
    body = "".join(
        [
            _header(result),
            _summary(result),
            _equity(result, breaks),
            _daily(result),
            _price(result, breaks),
            _regimes(result, breaks),
            _params(result, breaks),
            _dict_table(PER_STRATEGY_TITLE, result.summary.get("per_strategy") or {}, "strategy"),
            _dict_table(PER_REGIME_TITLE, result.summary.get("per_regime") or {}, "regime"),
        ]
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Backtest report: {_esc(result.symbol)}</title><style>{_CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head>'
        f"<body>{body}</body></html>"
    )


def write_report(result: BacktestResult, path: Path) -> Path:
    """Write the self-contained HTML report of `result` to `path` (parents created)."""
    if not result.summary:
        from fabio.backtest.runner import summarise

        result.summary = summarise(result)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(result), encoding="utf-8")
    return path
