"""Backtests in parallel: one process per data file (`--jobs N`), results written as they finish.

Each job is an independent backtest of one file (its strategy learning starts from the
configured state, not from the previous file's). A job's result goes to
`<out>/<file name>.json` the moment it finishes, and a rerun skips files whose result exists, so
an interrupted sweep resumes where it stopped. `executor="ray"` runs the jobs on a Ray cluster
(`pip install 'fabio[ray]'`; `RAY_ADDRESS` selects the cluster).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fabio.errors import FabioError


@dataclass(frozen=True, slots=True)
class SweepJob:
    data: str
    symbol: str | None
    brain: str
    learning: bool
    start: str | None
    end: str | None
    log_dir: str
    env_file: str | None
    force_symbol: bool = False


def result_path(out: Path, data: str) -> Path:
    return out / f"{Path(data).name}.json"


def run_job(job: SweepJob) -> dict[str, Any]:
    """One file's backtest in a worker process; returns the result as a dict."""
    from datetime import date

    from fabio.backtest.runner import run_backtest
    from fabio.brain.decide import make_brain
    from fabio.config import load_settings
    from fabio.data import open_feed
    from fabio.strategies import load_strategies

    settings = load_settings(job.env_file)
    feed = open_feed(job.data, symbol=job.symbol, force_symbol=job.force_symbol)
    result = run_backtest(
        [feed], make_brain(job.brain, settings), Path(job.log_dir),
        feature_config=settings.feature_config(), risk_config=settings.risk_config(),
        strategies=load_strategies(settings.strategies_file), learning=job.learning,
        start=date.fromisoformat(job.start) if job.start else None,
        end=date.fromisoformat(job.end) if job.end else None,
    )
    out = result.to_dict()
    out.pop("timeline", None)  # a sweep keeps trades and summaries, not minute series
    return out


def run_sweep(
    jobs: list[SweepJob],
    out: Path,
    workers: int,
    executor: str = "local",
    on_done: Callable[[SweepJob, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the jobs not yet done; return every job's result (done before or now)."""
    out.mkdir(parents=True, exist_ok=True)
    todo = [j for j in jobs if not result_path(out, j.data).exists()]
    if executor == "ray":
        _run_ray(todo, out, on_done)
    elif executor == "local":
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {pool.submit(run_job, j): j for j in todo}
            for fut in as_completed(futures):
                job = futures[fut]
                _save(out, job, fut.result(), on_done)
    else:
        raise FabioError(f"--executor {executor}: choose local or ray")
    return [json.loads(result_path(out, j.data).read_text()) for j in jobs]


def _save(out: Path, job: SweepJob, result: dict[str, Any],
          on_done: Callable[[SweepJob, dict[str, Any]], None] | None) -> None:
    path = result_path(out, job.data)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, default=str))
    tmp.replace(path)  # atomic: a killed sweep never leaves half a result behind
    if on_done is not None:
        on_done(job, result)


def _run_ray(todo: list[SweepJob], out: Path,
             on_done: Callable[[SweepJob, dict[str, Any]], None] | None) -> None:
    try:
        import ray
    except ImportError:
        raise FabioError(
            "--executor ray needs Ray: pip install 'fabio[ray]' (and RAY_ADDRESS for a cluster)"
        ) from None
    ray.init(ignore_reinit_error=True)
    remote = ray.remote(run_job)
    pending = {remote.remote(j): j for j in todo}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            _save(out, pending.pop(ref), ray.get(ref), on_done)
