"""Backtests in parallel: one process per data file (`--jobs N`), results written as they finish.

Each job is a backtest of one file with its own account. With learning frozen the jobs are
independent and run in parallel. With learning on, each account inherits what the previous
file's account learned (strategy statistics, strategy state, shadow trades, notes: a trader's
next combine keeps them), so the files run one after another in time order, each job reading
the learning state the previous one wrote (`<out>/<file name>.learning.json`). A job's result
goes to
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
    policy: str = "expectancy"  # the rule brain's learning policy
    carry: bool = False  # inherit the previous job's learning state (a chain in time order)


def state_path(out: Path, data: str) -> Path:
    return out / f"{Path(data).name}.learning.json"


def result_path(out: Path, data: str) -> Path:
    return out / f"{Path(data).name}.json"


def run_job(job: SweepJob, carry: dict[str, Any] | None = None) -> dict[str, Any]:
    """One file's backtest in a worker process; returns the result as a dict (its learning
    state under `learning_state`, for the next job of a chain)."""
    from datetime import date

    from fabio.backtest.runner import run_backtest
    from fabio.brain.decide import make_brain
    from fabio.config import load_settings
    from fabio.data import open_feed
    from fabio.strategies import load_strategies

    settings = load_settings(job.env_file)
    feed = open_feed(job.data, symbol=job.symbol, force_symbol=job.force_symbol)
    result = run_backtest(
        [feed],
        make_brain(job.brain, settings, job.policy if job.learning else "off"),
        Path(job.log_dir),
        feature_config=settings.feature_config(),
        risk_config=settings.risk_config(),
        strategies=load_strategies(settings.strategies_file),
        learning=job.learning,
        start=date.fromisoformat(job.start) if job.start else None,
        end=date.fromisoformat(job.end) if job.end else None,
        carry=carry,
    )
    out = result.to_dict()
    out.pop("timeline", None)  # a sweep keeps trades and summaries, not minute series
    report = getattr(feed, "report", None)
    out["load_report"] = report.to_dict() if report is not None else None  # skipped rows
    return out


def run_sweep(
    jobs: list[SweepJob],
    out: Path,
    workers: int,
    executor: str = "local",
    on_done: Callable[[SweepJob, dict[str, Any]], None] | None = None,
    ray_address: str | None = None,
) -> list[dict[str, Any]]:
    """Run the jobs not yet done; return every job's result (done before or now)."""
    out.mkdir(parents=True, exist_ok=True)
    todo = [j for j in jobs if not result_path(out, j.data).exists()]
    if any(j.carry for j in jobs):
        _run_chain(jobs, out, on_done)
    elif executor == "ray":
        _run_ray(todo, out, on_done, ray_address)
    elif executor == "local":
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {pool.submit(run_job, j): j for j in todo}
            for fut in as_completed(futures):
                job = futures[fut]
                _save(out, job, fut.result(), on_done)
    else:
        raise FabioError(f"--executor {executor}: choose local or ray")
    return [json.loads(result_path(out, j.data).read_text()) for j in jobs]


def _run_chain(
    jobs: list[SweepJob], out: Path, on_done: Callable[[SweepJob, dict[str, Any]], None] | None
) -> None:
    """Jobs in order, each inheriting the learning state the previous one wrote (resumable)."""
    carry: dict[str, Any] | None = None
    for job in jobs:
        done = result_path(out, job.data)
        state = state_path(out, job.data)
        if done.exists() and state.exists():
            carry = json.loads(state.read_text())
            continue
        result = run_job(job, carry if job.carry else None)
        carry = result.get("learning_state")
        _write(state, carry)
        _save(out, job, result, on_done)


def _write(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, default=str))
    tmp.replace(path)  # atomic: a killed sweep never leaves half a file behind


def _save(
    out: Path,
    job: SweepJob,
    result: dict[str, Any],
    on_done: Callable[[SweepJob, dict[str, Any]], None] | None,
) -> None:
    result.pop("learning_state", None)  # kept beside it when a chain needs it
    path = result_path(out, job.data)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, default=str))
    tmp.replace(path)  # atomic: a killed sweep never leaves half a result behind
    if on_done is not None:
        on_done(job, result)


def _run_ray(
    todo: list[SweepJob],
    out: Path,
    on_done: Callable[[SweepJob, dict[str, Any]], None] | None,
    address: str | None = None,
) -> None:
    """Each job a Ray task: on the cluster at `address` (`ray://host:10001` or `host:6379`),
    else RAY_ADDRESS, else a local Ray instance started here. Results come back to this
    machine and are written as on the local executor; the data files and the env file must be
    readable at the same paths on the workers."""
    try:
        import ray
    except ImportError:
        raise FabioError(
            "--executor ray needs Ray: pip install 'fabio[ray]' (and --ray-address or RAY_ADDRESS "
            "for a cluster)"
        ) from None
    if not ray.is_initialized():
        try:
            ray.init(
                address=address,
                ignore_reinit_error=True,
                include_dashboard=False,
                log_to_driver=False,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise FabioError(
                f"cannot reach the Ray cluster at {address or 'RAY_ADDRESS'}: {exc}"
            ) from None
    remote = ray.remote(run_job)
    pending = {remote.remote(j): j for j in todo}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            _save(out, pending.pop(ref), ray.get(ref), on_done)
