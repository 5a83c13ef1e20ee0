"""What `fabio backtest` does, kept out of the CLI module: feeds, progress, sweep, report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fabio.backtest.logdir import claim_backtest_dir
from fabio.backtest.runner import (
    BacktestResult,
    label_data_source,
    run_backtest,
    summarise,
    synthetic_labels,
)
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
    policy: str = "expectancy"
    ray_address: str | None = None
    force_symbol: bool = False
    accounts: str = "continuous"


def run_cli_backtest(settings: Settings, req: BacktestRequest, console: Console) -> dict[str, Any]:
    from fabio.brain.decide import make_brain
    from fabio.data.synthetic import SyntheticConfig, SyntheticFeed
    from fabio.strategies import load_strategies

    first, last = _date_range(req.start, req.end)
    per_file = _account_model(req)
    # Refuse a user's folder or the paper/live journal before anything runs; a sweep resumes.
    claim_backtest_dir(req.log_dir, protected=settings.log_dir, clear=False)
    if per_file:
        for p in req.data:  # a conflicting --symbol fails here, before any worker starts
            open_feed(p, symbol=req.symbol, force_symbol=req.force_symbol)
        summary = _sweep(req, console)
        return label_data_source(summary, [str(p) for p in req.data])
    feeds: list[MarketFeed]
    if req.data:
        feeds = [
            open_feed(p, symbol=req.symbol, force_symbol=req.force_symbol)
            for p in _chronological(req.data)
        ]
    else:
        root = parse_symbol(req.symbol or settings.symbol).spec.root
        synthetic = SyntheticFeed(SyntheticConfig(symbol=root, days=req.days, seed=req.seed))
        feeds = [synthetic]
    brain = make_brain(req.brain, settings, req.policy if req.learning else "off")
    fed = [0]
    days_seen = [0]
    piped = not console.is_terminal  # no live bar: a plain line per trade date instead

    def entered(feed: MarketFeed, day: date) -> None:
        days_seen[0] += 1
        if piped:
            console.print(
                f"backtest: {_feed_name(feed)} trade date {day} (session {days_seen[0]}), "
                f"{fed[0]:,} trades replayed",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )

    def advance(n: int) -> None:
        fed[0] += n
        progress.advance(task, n)

    with Progress(
        TextColumn("[bold]backtest"),
        BarColumn(),
        TextColumn("{task.completed:,} trades"),
        TimeElapsedColumn(),
        console=console,
        disable=req.quiet or piped,
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
            progress=advance,
            on_trade_date=entered,
        )
    skipped = report_skipped_rows(feeds, console)
    if fed[0] == 0 and (first or last):
        raise FabioError(f"{_range_text(req)}: the data holds no trade in this range")
    if not req.data:
        result.labels = synthetic_labels(feeds[0])
    summary = label_data_source(result.summary, result.sources)
    summary.update(skipped)
    summary["journal"] = str(req.log_dir)
    if req.report is not None:
        from fabio.backtest.report import write_report

        summary["report"] = str(write_report(result, req.report))
    return summary


def _feed_name(feed: MarketFeed) -> str:
    report = getattr(feed, "report", None)
    source = str(getattr(report, "source", "") or "")
    return Path(source).name if source else "synthetic market"


def report_skipped_rows(feeds: list[MarketFeed], console: Console) -> dict[str, Any]:
    """Rows the readers skipped (count and reasons): said on `console`, returned for the JSON."""
    total = 0
    reasons: dict[str, int] = {}
    for feed in feeds:
        report = getattr(feed, "report", None)
        if report is None or not report.skipped:
            continue
        total += report.skipped_total
        for reason, n in report.skipped.items():
            reasons[reason] = reasons.get(reason, 0) + n
        console.print(f"note: {report.summary()}", markup=False, highlight=False, soft_wrap=True)
        for reason, example in report.examples.items():
            console.print(
                f"  first '{reason}': {example}", markup=False, highlight=False, soft_wrap=True
            )
    return {"skipped_rows": total, "skipped_by_reason": reasons}


def _sweep_skipped_rows(results: list[dict[str, Any]], console: Console) -> dict[str, Any]:
    total = 0
    reasons: dict[str, int] = {}
    for r in results:
        report = r.get("load_report") or {}
        skipped: dict[str, int] = report.get("skipped") or {}
        if not skipped:
            continue
        total += sum(skipped.values())
        for reason, n in skipped.items():
            reasons[reason] = reasons.get(reason, 0) + n
        text = ", ".join(f"{n} {k}" for k, n in sorted(skipped.items()))
        console.print(
            f"note: {report.get('source')}: skipped {sum(skipped.values())} rows ({text})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return {"skipped_rows": total, "skipped_by_reason": reasons}


def _date_range(start: str | None, end: str | None) -> tuple[date | None, date | None]:
    """--from/--to as dates; a reversed range, or one without a CME trade date, is an error."""
    from fabio.sessions import cme_calendar

    first, last = _date(start, "--from"), _date(end, "--to")
    if first and last:
        if first > last:
            raise FabioError(f"--from {first} is after --to {last}: the range is empty")
        dates = cme_calendar().next_trade_dates(first, 1)
        if not dates or dates[0] > last:
            raise FabioError(f"--from {first} --to {last}: no CME trade date in this range")
    return first, last


def _range_text(req: BacktestRequest) -> str:
    return " ".join(
        x for x in (req.start and f"--from {req.start}", req.end and f"--to {req.end}") if x
    )


def _account_model(req: BacktestRequest) -> bool:
    """True for one account per file. --jobs only parallelises that; it never changes results."""
    if req.accounts not in ("continuous", "per-file"):
        raise FabioError(f"--accounts {req.accounts}: choose continuous or per-file")
    per_file = req.accounts == "per-file" and bool(req.data)
    if (req.jobs > 1 or req.executor != "local") and not per_file:
        if not req.data:
            raise FabioError(
                "--jobs/--executor run data files in parallel: give the files "
                "and --accounts per-file"
            )
        raise FabioError(
            f"--jobs {req.jobs}/--executor {req.executor} runs files in parallel, which only "
            "independent accounts allow: add --accounts per-file (one continuous account runs "
            "its files in order)"
        )
    return per_file


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
            req.force_symbol,
            policy=req.policy,
            carry=req.learning,
        )
        for p in paths
    ]
    out = req.log_dir / "results"
    piped = not console.is_terminal
    with Progress(
        TextColumn("[bold]sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=req.quiet or piped,
    ) as progress:
        done = sum(1 for j in sweep_jobs if (out / f"{Path(j.data).name}.json").exists())
        task = progress.add_task("files", total=len(sweep_jobs), completed=done)
        finished = [done]

        def file_done(job: SweepJob, _result: dict[str, Any]) -> None:
            progress.advance(task)
            finished[0] += 1
            if piped:  # no live bar: a plain line per file
                console.print(
                    f"sweep: {finished[0]}/{len(sweep_jobs)} files done ({Path(job.data).name})",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )

        results = run_sweep(
            sweep_jobs,
            out,
            req.jobs,
            req.executor,
            on_done=file_done,
            ray_address=req.ray_address,
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
    summary.update(_sweep_skipped_rows(results, console))
    summary["journal"] = str(req.log_dir)
    summary["files"] = len(results)
    summary["note"] = (
        "each file is its own account; learning carries from file to file in time order"
        if req.learning
        else "each file is an independent account, strategy state frozen"
    )
    if req.report is not None:
        from fabio.backtest.report import write_report

        merged.summary = summary
        summary["report"] = str(write_report(merged, req.report))
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
        "entries_proposed",
    )
    summed: dict[str, Any] = {k: sum(s.get(k, 0) for s in stats) for k in keys}
    refused: dict[str, int] = {}
    brains: dict[str, int] = {}
    for s in stats:
        for reason, n in (s.get("entries_refused") or {}).items():
            refused[reason] = refused.get(reason, 0) + n
        for brain, n in (s.get("brains") or {}).items():
            brains[brain] = brains.get(brain, 0) + n
    summed["entries_refused"] = refused
    summed["brains"] = brains
    return summed
