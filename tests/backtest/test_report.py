"""The HTML backtest report: self-contained, complete, escaped, fine on empty and long results."""

from __future__ import annotations

import dataclasses
import html
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fabio.backtest.report import MAX_POINTS, minmax_indices, write_report
from fabio.backtest.runner import BacktestResult, run_backtest, summarise, synthetic_labels
from fabio.brain.rules import RuleBrain
from fabio.data.synthetic import SyntheticConfig, SyntheticFeed

EVIL = "<script>alert(1)</script>"
CHART_TITLES = (
    "Summary",
    "Equity curve: balance after each closed trade",
    "Daily net P&L after costs",
    "Price per minute with POC, VAH, VAL and trades",
    "Regime timeline",
    "Strategy parameters over time",
    "Per-strategy results",
    "Per-regime results",
)


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> BacktestResult:
    """A real backtest: two synthetic sessions through the rules brain, with true regimes."""
    feed = SyntheticFeed(SyntheticConfig(symbol="ES", days=2, seed=7))
    log_dir = tmp_path_factory.mktemp("report") / "logs"
    res = run_backtest([feed], RuleBrain(), log_dir, labels=synthetic_labels(feed))
    assert res.closed_trades, "the fixture needs trades to draw"
    return res


def _variant(res: BacktestResult, **changes: Any) -> BacktestResult:
    out = dataclasses.replace(res, **changes)
    out.summary = summarise(out)
    return out


def _write(res: BacktestResult, tmp_path: Path, name: str = "report.html") -> str:
    path = write_report(res, tmp_path / "sub" / name)
    assert path.exists()
    return path.read_text(encoding="utf-8")


def _changes(res: BacktestResult, strategy: str, reason: str) -> list[dict[str, Any]]:
    t0 = int(res.timeline["minute_ts"][10])
    t1 = int(res.timeline["minute_ts"][-10])
    base = {
        "type": "strategy_change",
        "strategy": strategy,
        "accepted": True,
        "reason": reason,
        "source": "llm:test",
    }
    return [
        {
            **base,
            "ts_ns": t0,
            "field": "risk_fraction",
            "old": 0.005,
            "proposed": 0.003,
            "new": 0.003,
        },
        {**base, "ts_ns": t1, "field": "enabled", "old": True, "proposed": False, "new": False},
    ]


def test_report_is_self_contained_and_complete(result: BacktestResult, tmp_path: Path) -> None:
    text = _write(result, tmp_path)
    assert text.startswith("<!DOCTYPE html>")
    assert '<script src="http' not in text and "<script src=" not in text
    assert "Plotly.newPlot" in text and "plotly.js" in text.lower()
    for title in CHART_TITLES:
        assert html.escape(title) in text, title
    s = result.summary
    net = s["net_pnl_usd"]
    assert (f"-${-net:,.2f}" if net < 0 else f"${net:,.2f}") in text  # a loss reads -$268.30
    assert f"{s['trades']:,} over {s['sessions_traded']:,} sessions" in text
    assert f"({s['trades']:,} trades)" in text  # the price chart counts the trades it draws
    assert f"{s['win_rate'] * 100:.1f}%" in text
    assert f"${s['max_drawdown_usd']:,.2f}" in text
    assert f"{s['profit_factor']:.3f}".rstrip("0").rstrip(".") in text
    assert f"{s['sharpe_daily']:.3f}".rstrip("0").rstrip(".") in text
    assert f"{s['decisions']:,}" in text
    assert "Rule breaches" in text and "LLM cost" in text
    assert "America/Chicago" in text
    assert "all " in text and "downsampled" not in text  # two sessions: every minute drawn


def test_regime_accuracy_only_with_labels(result: BacktestResult, tmp_path: Path) -> None:
    with_labels = _write(result, tmp_path, "labels.html")
    match = re.search(r"Regime accuracy: (\d+\.\d)%", with_labels)
    assert match and 0.0 <= float(match.group(1)) <= 100.0
    assert "Confusion table" in with_labels and "true trend" in with_labels
    without = _write(_variant(result, labels=None), tmp_path, "nolabels.html")
    assert "Regime accuracy" not in without and "Confusion table" not in without
    assert "Regime timeline" in without


def test_data_text_is_escaped(result: BacktestResult, tmp_path: Path) -> None:
    trades = [
        dataclasses.replace(t, strategy=EVIL, exit_reason="<b>stop</b>")
        for t in result.closed_trades
    ]
    state = {EVIL: {"enabled": True, "risk_fraction": 0.005}}
    evil = _variant(
        result,
        closed_trades=trades,
        strategy_state=state,
        strategy_changes=_changes(result, EVIL, "<img src=x onerror=alert(2)>"),
        sources=["<i>data</i>.dbn"],
    )
    text = _write(evil, tmp_path)
    assert EVIL not in text
    assert "<img src=x" not in text and "<i>data</i>" not in text and "<b>stop</b>" not in text
    assert html.escape(EVIL) in text  # shown, as text, in the tables


def test_strategy_parameters_chart_and_table(result: BacktestResult, tmp_path: Path) -> None:
    name = next(iter(result.strategy_state))
    changed = _write(
        _variant(result, strategy_changes=_changes(result, name, "too many losses")),
        tmp_path,
        "changes.html",
    )
    assert "Change log (2 accepted changes" in changed
    assert "too many losses" in changed and "0.005 -&gt; 0.003" in changed
    unchanged = _write(result, tmp_path, "no_changes.html")
    assert "No accepted strategy changes" in unchanged and html.escape(name) in unchanged


def test_empty_result_renders(result: BacktestResult, tmp_path: Path) -> None:
    empty = _variant(result, closed_trades=[], strategy_changes=[])
    text = _write(empty, tmp_path)
    assert "No closed trades" in text and "(0 trades)" in text
    assert "$0.00" in text and "Regime accuracy" in text
    bare = _variant(
        result, closed_trades=[], strategy_changes=[], timeline={}, strategy_state={}, labels=None
    )  # e.g. a merged sweep: no timeline
    text = _write(bare, tmp_path, "bare.html")
    assert "No per-minute timeline" in text and "No decisions recorded" in text


def test_long_timeline_is_downsampled(result: BacktestResult, tmp_path: Path) -> None:
    n = 3 * MAX_POINTS
    start = int(result.timeline["minute_ts"][0])
    minutes = (start + np.arange(n, dtype=np.int64) * 60_000_000_000).tolist()
    price = (4800 + np.cumsum(np.random.default_rng(0).normal(0, 0.25, n))).tolist()
    decisions = [
        {
            "ts_ns": m + 5_000_000_000,
            "regime": "range",
            "market_state": "balanced",
            "price": 0.0,
            "entries": 0,
        }
        for m in minutes
    ]
    timeline = {
        "minute_ts": minutes,
        "price": price,
        "poc": price,
        "vah": price,
        "val": price,
        "decisions": decisions,
    }
    text = _write(_variant(result, timeline=timeline, labels=None), tmp_path)
    assert re.search(r"downsampled: [\d,]+ of 60,000 minutes shown", text)
    assert "trades exact" in text
    assert "1 in 3 of 60,000 minutes shown" in text
    assert len(text) < 8_000_000


def test_minmax_indices_keeps_extremes() -> None:
    values = np.random.default_rng(1).normal(size=100_000)
    keep = minmax_indices(values, 1_000)
    assert len(keep) <= 1_000 and np.all(np.diff(keep) > 0)
    assert int(np.argmax(values)) in keep and int(np.argmin(values)) in keep
    assert len(minmax_indices(values[:10], 1_000)) == 10
