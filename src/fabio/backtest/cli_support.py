"""What `fabio backtest` does, kept out of the CLI module: feeds, progress, sweep, report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fabio.backtest.logdir import claim_backtest_dir
from fabio.backtest.runner import BacktestResult, run_backtest, summarise, synthetic_labels
from fabio.backtest.sweep import SweepJob, run_sweep
from fabio.config import Settings
from fabio.data import open_feed
from fabio.data.base import MarketFeed
from fabio.errors import FabioError
from fabio.execution.types import ClosedTrade
from fabio.instruments import parse_symbol


def _date(text: str | None, flag: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise FabioError(f"{flag} '{text}': expected a date YYYY-MM-DD") from None


def _chronological(paths: list[Path]) -> list[Path]:
    """Contract files in expiry order (ESH15 before ESM15 before ESH16), others by name."""

    def key(p: Path) -> tuple[int, str]:
        try:
            contract = parse_symbol(p.name.split(".")[0], 2000)
        except FabioError:
            return (0, p.name)
        month = contract.expiry_month
        return ((month.year * 100 + month.month) if month else 0, p.name)

    return sorted(paths, key=key)


@dataclass(frozen=True, slots=True)
class BacktestRequest:
    """What `fabio backtest` was asked for."""

    data: list[Path]
    brain: str
    start: str | None
    end: str | None
    symbol: str | None
    learning: bool
    report: Path | None
    jobs: int
    executor: str
    days: int
    seed: int
    log_dir: Path
    quiet: bool


def run_cli_backtest(settings: Settings, req: BacktestRequest, console: Console) -> dict[str, Any]:
    from fabio.brain.decide import make_brain
    from fabio.data.synthetic import SyntheticConfig, SyntheticFeed
    from fabio.strategies import load_strategies

    first, last = _date(req.start, "--from"), _date(req.end, "--to")
    # Refuse a user's folder or the paper/live journal before anything runs; a sweep resumes.
    claim_backtest_dir(req.log_dir, protected=settings.log_dir, clear=False)
    if req.jobs > 1 or req.executor != "local":
        if not req.data:
            raise FabioError("--jobs/--executor run data files in parallel: give the files")
        return _sweep(req, console)
    feeds: list[MarketFeed]
    if req.data:
        feeds = [open_feed(p, symbol=req.symbol) for p in _chronological(req.data)]
    else:
        root = parse_symbol(req.symbol or settings.symbol).spec.root
        synthetic = SyntheticFeed(SyntheticConfig(symbol=root, days=req.days, seed=req.seed))
        feeds = [synthetic]
    brain = make_brain(req.brain, settings)
    with Progress(
        TextColumn("[bold]backtest"),
        BarColumn(),
        TextColumn("{task.completed:,} trades"),
        TimeElapsedColumn(),
        console=console,
        disable=req.quiet,
    ) as progress:
        task = progress.add_task("trades", total=None)
        result = run_backtest(
            feeds,
            brain,
            req.log_dir,
            feature_config=settings.feature_config(),
            risk_config=settings.risk_config(),
            strategies=load_strategies(settings.strategies_file),
            learning=req.learning,
            start=first,
            end=last,
            progress=lambda n: progress.advance(task, n),
        )
    if not req.data:
        result.labels = synthetic_labels(feeds[0])
    summary = dict(result.summary)
    summary["journal"] = str(req.log_dir)
    if req.report is not None:
        from fabio.backtest.report import write_report

        summary["report"] = str(write_report(result, req.report))
    return summary


def _sweep(req: BacktestRequest, console: Console) -> dict[str, Any]:
    paths = _chronological(req.data)
    sweep_jobs = [
        SweepJob(
            str(p),
            req.symbol,
            req.brain,
            req.learning,
            req.start,
            req.end,
            str(req.log_dir / "jobs" / p.name),
            None,
        )
        for p in paths
    ]
    out = req.log_dir / "results"
    with Progress(
        TextColumn("[bold]sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=req.quiet,
    ) as progress:
        done = sum(1 for j in sweep_jobs if (out / f"{Path(j.data).name}.json").exists())
        task = progress.add_task("files", total=len(sweep_jobs), completed=done)
        results = run_sweep(
            sweep_jobs, out, req.jobs, req.executor, on_done=lambda _j, _r: progress.advance(task)
        )
    trades = [ClosedTrade(**t) for r in results for t in r["closed_trades"]]
    trades.sort(key=lambda t: t.exit_ns)
    merged = BacktestResult(
        symbol=", ".join(sorted({r["symbol"] for r in results})),
        brain=req.brain,
        learning=req.learning,
        sources=[s for r in results for s in r["sources"]],
        starting_balance=results[0]["starting_balance"] if results else 0.0,
        closed_trades=trades,
        strategy_changes=[c for r in results for c in r["strategy_changes"]],
        timeline={},
        stats=_sum_stats([r["stats"] for r in results]),
        risk=results[0]["risk"] if results else {},
        strategy_state={},
    )
    summary = summarise(merged)
    # Each file is its own account: breaches are judged per account, not on the merged trades.
    summary["rule_breaches"] = [
        f"{Path(r['sources'][0]).name}: {b}" for r in results for b in r["summary"]["rule_breaches"]
    ]
    summary["max_drawdown_usd_worst_account"] = max(
        (r["summary"]["max_drawdown_usd"] for r in results), default=0.0
    )
    summary.pop("max_drawdown_usd", None)  # the merged equity of separate accounts means nothing
    summary["journal"] = str(req.log_dir)
    summary["files"] = len(results)
    summary["note"] = "each file is an independent backtest and account (req.learning restarts)"
    return summary


def _sum_stats(stats: list[dict[str, Any]]) -> dict[str, Any]:
    keys = (
        "decisions",
        "fallbacks",
        "stale_dropped",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "cost_usd",
    )
    return {k: sum(s.get(k, 0) for s in stats) for k in keys}
