"""Run the agent over data files (or the synthetic market) and summarise what happened."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from fabio.agent import Agent
from fabio.backtest.logdir import claim_backtest_dir
from fabio.brain.base import Brain
from fabio.brain.cadence import Cadence
from fabio.brain.llm import failure_summary, llm_brain_of
from fabio.config import FeatureConfig
from fabio.execution.broker import SimBrokerConfig
from fabio.execution.performance import performance_by_strategy
from fabio.execution.risk import RiskConfig
from fabio.journal import iter_records
from fabio.orders import ClosedTrade
from fabio.ports import MarketFeed
from fabio.sessions import cme_calendar
from fabio.strategies import StrategyParams
from fabio.timeutil import CHICAGO, datetime_to_ns
from fabio.wiring import AgentOptions, build_agent

Progress = Callable[[int], None]


@dataclass(slots=True)
class BacktestResult:
    """Everything a summary or a report needs."""

    symbol: str
    brain: str
    learning: bool
    sources: list[str]
    starting_balance: float
    closed_trades: list[ClosedTrade]
    strategy_changes: list[dict[str, Any]]
    timeline: dict[str, Any]
    stats: dict[str, Any]
    risk: dict[str, Any]
    strategy_state: dict[str, Any]
    labels: dict[str, list[Any]] | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    # What the agent learned, for the next account to inherit (`run_backtest(carry=...)`).
    learning_state: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["closed_trades"] = [t.to_dict() for t in self.closed_trades]
        return out


def _date_bounds(start: date | None, end: date | None) -> tuple[int | None, int | None]:
    from datetime import datetime, time

    lo = datetime_to_ns(datetime.combine(start, time(0, 0), CHICAGO)) if start else None
    hi = None
    if end:
        nxt = end.toordinal() + 1
        hi = datetime_to_ns(datetime.combine(date.fromordinal(nxt), time(0, 0), CHICAGO))
    return lo, hi


async def _replay(
    agent: Agent,
    feeds: Iterable[MarketFeed],
    lo: int | None,
    hi: int | None,
    progress: Progress | None,
    on_trade_date: Callable[[MarketFeed, date], None] | None = None,
) -> None:
    calendar = cme_calendar() if on_trade_date is not None else None
    current: date | None = None
    for feed in feeds:
        for batch in feed.batches():
            trades = batch.trades
            if len(trades) == 0:
                continue
            if lo is not None and trades.ts[-1] < lo:
                continue
            if hi is not None and trades.ts[0] >= hi:
                break
            if lo is not None or hi is not None:
                keep = np.ones(len(trades), dtype=np.bool_)
                if lo is not None:
                    keep &= trades.ts >= lo
                if hi is not None:
                    keep &= trades.ts < hi
                trades = trades.take(keep)
            if calendar is not None and on_trade_date is not None:
                day = calendar.trade_date_of(int(trades.ts[0]))
                if day is not None and day != current:
                    current = day
                    on_trade_date(feed, day)
            await agent.feed(trades)
            if progress is not None:
                progress(len(trades))
    await agent.close_session()


def run_backtest(
    feeds: list[MarketFeed],
    brain: Brain,
    log_dir: Path,
    feature_config: FeatureConfig | None = None,
    risk_config: RiskConfig | None = None,
    strategies: dict[str, StrategyParams] | None = None,
    cadence: Cadence | None = None,
    learning: bool = True,
    start: date | None = None,
    end: date | None = None,
    progress: Progress | None = None,
    labels: dict[str, list[Any]] | None = None,
    carry: dict[str, Any] | None = None,
    broker_config: SimBrokerConfig | None = None,
    durable: bool = False,
    on_trade_date: Callable[[MarketFeed, date], None] | None = None,
) -> BacktestResult:
    """Replay `feeds` (one contract) through a fresh agent journaling into `log_dir`.

    `carry` is an earlier account's `learning_state`: a new account (fresh balance and risk
    limits) that keeps the strategy statistics, strategy state, shadow trades and notes.
    `on_trade_date(feed, date)` is called as the replay enters each trade date (progress).
    `durable`: fsync state records as paper and live trading do (a backtest, which can be rerun,
    does not by default; the agent benchmark measures the difference).
    """
    claim_backtest_dir(log_dir)  # a backtest starts from nothing, deleting only its own files
    if not learning:
        _freeze(brain)
    contract = feeds[0].contract
    resolution = max((_resolution_sec(f) for f in feeds), default=0.0)
    agent = build_agent(
        contract,
        brain,
        AgentOptions(
            mode="backtest",
            log_dir=log_dir,
            feature_config=feature_config or FeatureConfig(),
            risk_config=risk_config or RiskConfig(),
            strategies=strategies,
            cadence=cadence,
            learning=learning,
            resolution_sec=resolution,
            broker_config=broker_config,
            durable=durable,
        ),
    )
    execution = agent.execution
    risk = execution.ledger.risk
    if carry is not None:  # a new account inherits what the earlier ones learned
        agent.inherit(carry)
    lo, hi = _date_bounds(start, end)
    asyncio.run(_replay(agent, feeds, lo, hi, progress, on_trade_date))
    changes = [
        r for r in iter_records(log_dir / "execution.jsonl", "strategy_change") if r.get("accepted")
    ]
    t = agent.timeline
    stats = asdict(agent.stats)
    policy = getattr(getattr(brain, "learning", None), "name", None) or getattr(
        getattr(getattr(brain, "fallback", None), "learning", None), "name", None
    )
    stats["learning_policy"] = policy
    llm = llm_brain_of(brain)
    if llm is not None:
        llm_stats = llm.stats()
        stats["llm"] = {**llm_stats.as_dict(), "failure": failure_summary(llm_stats)}
    result = BacktestResult(
        symbol=contract.symbol,
        brain=brain.name,
        learning=learning,
        sources=[f.report.source for f in feeds],
        starting_balance=risk.account.starting_balance,
        closed_trades=list(execution.ledger.closed),
        strategy_changes=changes,
        timeline={
            "minute_ts": t.minute_ts,
            "price": t.price,
            "poc": t.poc,
            "vah": t.vah,
            "val": t.val,
            "decisions": t.decisions,
        },
        stats=stats,
        risk=risk.to_dict(),
        strategy_state={k: v.model_dump() for k, v in execution.strategy_state.items()},
        labels=labels,
        learning_state={**execution.ledger.learning_state(), "notes": agent.notes.export()},
    )
    result.summary = summarise(result)
    return result


def _freeze(brain: Brain) -> None:
    """A frozen run: the rule brain (also behind an LLM) stops judging and blocking strategies."""
    from fabio.brain.learning import FrozenPolicy

    for b in (
        brain,
        getattr(brain, "fallback", None),
        getattr(getattr(brain, "llm", None), "fallback", None),
    ):
        if b is not None and hasattr(b, "learning"):
            b.learning = FrozenPolicy()


def _resolution_sec(feed: MarketFeed) -> float:
    """The data's time resolution: a bar file's bar length, else 0 (tick data)."""
    from fabio.data.sierra import SierraBarFeed

    if isinstance(feed, SierraBarFeed):
        return (feed.bar_length_ns or 300 * 1_000_000_000) / 1e9
    return 0.0


def daily_pnl(trades: list[ClosedTrade]) -> dict[str, float]:
    days: dict[str, float] = {}
    for t in trades:
        days[t.trade_date] = days.get(t.trade_date, 0.0) + t.net_pnl_usd
    return dict(sorted(days.items()))


def summarise(result: BacktestResult) -> dict[str, Any]:
    """Net P&L after costs, trades, win rate, profit factor, drawdown, Sharpe, breaches, tables."""
    trades = result.closed_trades
    pnls = [t.net_pnl_usd for t in trades]
    equity = np.cumsum([0.0, *pnls])
    peak = np.maximum.accumulate(equity)
    days = daily_pnl(trades)
    daily = np.array(list(days.values()), dtype=float)
    sharpe = (
        float(daily.mean() / daily.std(ddof=1) * math.sqrt(252))
        if len(daily) > 1 and daily.std(ddof=1) > 0
        else None
    )
    wins = [p for p in pnls if p > 0]
    losses = [-p for p in pnls if p < 0]
    by_regime: dict[str, list[ClosedTrade]] = {}
    for t in trades:
        by_regime.setdefault(t.regime or "unknown", []).append(t)
    risk_state = result.risk
    stats = result.stats
    out: dict[str, Any] = {
        "symbol": result.symbol,
        "brain": result.brain,
        "learning": result.learning,
        "learning_policy": result.stats.get("learning_policy") if result.learning else None,
        "sessions_traded": len(days),
        "trades": len(trades),
        "net_pnl_usd": round(float(sum(pnls)), 2),
        "fees_usd": round(sum(t.fees_usd for t in trades), 2),
        "win_rate": round(len(wins) / len(trades), 4) if trades else None,
        "profit_factor": round(sum(wins) / sum(losses), 3) if losses else None,
        "max_drawdown_usd": round(float((peak - equity).max()), 2),
        "sharpe_daily": round(sharpe, 3) if sharpe is not None else None,
        "rule_breaches": rule_breaches(result),
        "final_balance": round(result.starting_balance + float(sum(pnls)), 2),
        "trading_state": risk_state.get("state"),
        "per_strategy": {
            k: v.model_dump(exclude={"by_regime", "trades_this_session"})
            for k, v in performance_by_strategy(trades).items()
        },
        "per_regime": {
            regime: {
                "trades": len(ts),
                "net_pnl_usd": round(sum(t.net_pnl_usd for t in ts), 2),
                "win_rate": round(sum(1 for t in ts if t.net_pnl_usd > 0) / len(ts), 4),
            }
            for regime, ts in sorted(by_regime.items())
        },
        "per_year": per_year(result),
        "strategy_changes": len(result.strategy_changes),
        "decisions": stats.get("decisions", 0),
        "llm_fallbacks": stats.get("fallbacks", 0),
        "tokens": {
            "prompt": stats.get("prompt_tokens", 0),
            "completion": stats.get("completion_tokens", 0),
            "cached": stats.get("cached_tokens", 0),
        },
        "llm_cost_usd": round(float(stats.get("cost_usd", 0.0)), 4),
        **_llm_summary(stats.get("llm")),
    }
    if not trades:
        out["no_trades_reason"] = no_trades_reason(result)
    return out


def _llm_summary(llm: dict[str, Any] | None) -> dict[str, Any]:
    """What the LLM brain itself went through: requests, breaker, budget, how it failed."""
    if not llm:
        return {}
    return {
        "llm": {
            k: llm.get(k)
            for k in (
                "requests",
                "decisions",
                "fallbacks",
                "fallback_reasons",
                "breaker_opens",
                "breaker_skipped",
                "budget_skipped",
                "budget_sessions",
                "cached_tokens",
            )
        },
        "llm_failure": llm.get("failure"),
    }


SYNTHETIC_CAVEAT = (
    "Synthetic market: this P&L says nothing about an edge. The synthetic order flow is far more "
    "persistent than real ES (5-minute imbalance autocorrelation 0.67 against 0.09), which makes "
    "its trends easy to follow; it is for checking mechanics (regimes, learning, risk), not "
    "profitability (docs/evaluation.md)."
)


def is_synthetic(sources: list[str]) -> bool:
    # Both generators: "synthetic:ES …" and "synthetic-msv:NQ …".
    return bool(sources) and all(
        str(s).startswith(("synthetic:", "synthetic-msv:")) for s in sources
    )


def label_data_source(summary: dict[str, Any], sources: list[str]) -> dict[str, Any]:
    """`data_source` (synthetic or files) and, for synthetic data, the caveat, first in line."""
    synthetic = is_synthetic(sources)
    head: dict[str, Any] = {"data_source": "synthetic" if synthetic else "files"}
    if synthetic:
        head["caveat"] = SYNTHETIC_CAVEAT
    return {**head, **summary}


def no_trades_reason(result: BacktestResult) -> str:
    """Why a backtest closed no trade, from what the agent and the risk engine saw."""
    stats = result.stats
    decisions = int(stats.get("decisions", 0))
    proposed = int(stats.get("entries_proposed", 0))
    refused: dict[str, int] = stats.get("entries_refused") or {}
    risk_state = result.risk.get("state")
    halted = (result.risk.get("account") or {}).get("halted_reason")
    parts = []
    if decisions == 0:
        parts.append(
            "the brain was never asked: no regular-hours session in the data or the "
            "--from/--to range"
        )
    elif proposed == 0:
        parts.append(f"no setup fired: {decisions:,} decisions, none proposed an entry")
    else:
        top = sorted(refused.items(), key=lambda kv: -kv[1])[:3]
        listed = "; ".join(f"{n:,}x {reason}" for reason, n in top)
        example = (stats.get("refusal_examples") or {}).get(top[0][0]) if top else None
        if example:
            listed += f"; e.g. '{example}'"
        parts.append(
            f"{sum(refused.values()):,} of {proposed:,} proposed entries were refused"
            + (f" ({listed})" if listed else "")
        )
    if risk_state and risk_state != "active":
        parts.append(f"risk engine {risk_state}" + (f": {halted}" if halted else ""))
    return "; ".join(parts)


def per_year(result: BacktestResult) -> dict[str, dict[str, Any]]:
    """Net P&L, trades, win rate, profit factor and max drawdown by calendar year."""
    years: dict[str, list[ClosedTrade]] = {}
    for t in result.closed_trades:
        years.setdefault(t.trade_date[:4], []).append(t)
    out = {}
    for year, ts in sorted(years.items()):
        pnls = [t.net_pnl_usd for t in ts]
        equity = np.cumsum([0.0, *pnls])
        wins = sum(p for p in pnls if p > 0)
        losses = -sum(p for p in pnls if p < 0)
        out[year] = {
            "trades": len(ts),
            "net_pnl_usd": round(float(sum(pnls)), 2),
            "win_rate": round(sum(1 for p in pnls if p > 0) / len(ts), 4),
            "profit_factor": round(wins / losses, 3) if losses else None,
            "max_drawdown_usd": round(float((np.maximum.accumulate(equity) - equity).max()), 2),
        }
    return out


def rule_breaches(result: BacktestResult) -> list[str]:
    """Prop-firm rules broken, judged from the trades alone (independent of the risk engine)."""
    from fabio.execution.risk import PRESETS

    preset = (
        PRESETS[str(result.risk.get("config", {}).get("preset", "50K"))]
        if isinstance(result.risk.get("config"), dict)
        else PRESETS["50K"]
    )
    out = []
    balance = eod_high = result.starting_balance
    for day, pnl in daily_pnl(result.closed_trades).items():
        if pnl <= -preset.daily_loss_usd:
            out.append(
                f"{day}: daily loss ${-pnl:,.2f} reached the ${preset.daily_loss_usd:,.0f} limit"
            )
        balance += pnl
        floor = min(eod_high - preset.max_loss_usd, result.starting_balance)
        if balance <= floor:
            out.append(
                f"{day}: balance ${balance:,.2f} at or below the maximum-loss floor ${floor:,.2f}"
            )
        eod_high = max(eod_high, balance)
    return out


def synthetic_labels(feed: Any) -> dict[str, list[Any]] | None:
    labels = getattr(feed, "labels", None)
    if labels is None:
        return None
    return {"minute_ts": labels.minute_ts.tolist(), "regime": labels.names()}
