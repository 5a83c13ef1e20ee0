"""Per-file sweeps: learning carried from account to account in time order, and the Ray
executor on a local Ray instance giving the same results as local processes (`--jobs`)."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import pytest

from fabio.backtest.sweep import SweepJob, run_sweep, state_path
from fabio.data.synthetic import write_synthetic
from fabio.journal import read_journal


def synth_files(folder: Path) -> list[str]:
    """Two small synthetic ES files, the second's dates after the first's."""
    out = []
    for i, start in enumerate((date(2024, 1, 2), date(2024, 1, 8))):
        path = folder / f"s{i}.parquet"
        write_synthetic(path, "ES", 2, 11 + i, start=start, rth_trades=30_000)
        out.append(str(path))
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return synth_files(tmp_path_factory.mktemp("sweep"))


def jobs(files: list[str], log: Path, learning: bool) -> list[SweepJob]:
    return [
        SweepJob(
            f, None, "rules", learning, None, None, str(log / Path(f).name), None, carry=learning
        )
        for f in files
    ]


def test_learning_carries_from_file_to_file_in_time_order(files: list[str], tmp_path: Path) -> None:
    results = run_sweep(jobs(files, tmp_path / "logs", True), tmp_path / "out", 2)
    assert len(results) == 2
    first, second = (
        read_journal(tmp_path / "logs" / Path(f).name / "execution.jsonl").records for f in files
    )
    assert all(r["type"] != "learning_carry" for r in first)
    carried = [r for r in second if r["type"] == "learning_carry"]
    assert len(carried) == 1 and len(carried[0]["trades"]) == len(results[0]["closed_trades"])
    state = json.loads(state_path(tmp_path / "out", files[1]).read_text())
    assert len(state["trades"]) == sum(len(r["closed_trades"]) for r in results)
    # each file is its own account: the second starts from the starting balance again
    assert results[1]["starting_balance"] == results[0]["starting_balance"]
    assert "learning_state" not in results[0]


def test_ray_executor_gives_the_same_results_as_local_processes(
    files: list[str], tmp_path: Path
) -> None:
    try:
        import ray
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("CI installs fabio[ray]: the Ray executor must be tested there")
        pytest.skip("Ray is not installed (pip install 'fabio[ray]')")
    local = run_sweep(jobs(files, tmp_path / "l", False), tmp_path / "local", 2)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={
            "env_vars": {
                "PYTHONPATH": os.pathsep.join(
                    [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]
                )
            }
        },
    )
    try:
        remote = run_sweep(jobs(files, tmp_path / "r", False), tmp_path / "ray", 2, executor="ray")
    finally:
        ray.shutdown()
    assert len(remote) == len(local) == 2
    for a, b in zip(local, remote, strict=True):
        assert a["closed_trades"] == b["closed_trades"]
        assert a["summary"] == b["summary"]
    assert any(r["closed_trades"] for r in local)
