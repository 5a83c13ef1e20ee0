"""Claim a folder for a backtest's journals without ever deleting what Fabio did not write."""

from __future__ import annotations

from pathlib import Path

from fabio.errors import FabioError

MARKER = ".fabio-backtest"
# What a backtest writes into its folder; only these are cleared before a rerun.
BACKTEST_OUTPUTS = ("execution.jsonl", "llm_exchanges.jsonl")


def claim_backtest_dir(path: Path, protected: Path | None = None, clear: bool = True) -> None:
    """Make `path` a backtest journal folder, clearing only a previous backtest's own files.

    A folder is ours when it is missing, empty, or carries the marker a backtest leaves. Anything
    else (a user's folder, the paper or live journal in `protected`) is refused, never deleted.
    """
    resolved = path.resolve()
    if protected is not None and resolved == protected.resolve():
        raise FabioError(
            f"--log-dir {path}: that is the paper/live journal folder; "
            "a backtest needs a folder of its own"
        )
    if resolved.exists() and not resolved.is_dir():
        raise FabioError(f"--log-dir {path}: not a folder")
    if resolved.exists() and any(resolved.iterdir()) and not (resolved / MARKER).is_file():
        raise FabioError(
            f"--log-dir {path}: the folder holds files that are not a Fabio backtest journal; "
            "give an empty or new folder (nothing was deleted)"
        )
    resolved.mkdir(parents=True, exist_ok=True)
    (resolved / MARKER).write_text("written by fabio backtest; its journals may be replaced\n")
    if not clear:
        return
    _clear_outputs(resolved)


def _clear_outputs(folder: Path) -> None:
    """Delete the journals a backtest wrote in `folder` and a sweep's per-file jobs and results.

    A job folder `jobs/<file>` is a sweep's when it carries the marker; its results are
    `results/<file>.json` and `results/<file>.learning.json` (and their `.tmp` while written).
    Anything else under `jobs/` or `results/` (a user's file) stays, and so do their folders.
    """
    for name in BACKTEST_OUTPUTS:
        (folder / name).unlink(missing_ok=True)
    jobs, results = folder / "jobs", folder / "results"
    ours: list[str] = []
    if jobs.is_dir() and not jobs.is_symlink():
        for job in sorted(jobs.iterdir()):
            if job.is_dir() and not job.is_symlink() and (job / MARKER).is_file():
                _clear_outputs(job)
                (job / MARKER).unlink()
                _remove_if_empty(job)
                ours.append(job.name)
    if results.is_dir() and not results.is_symlink():
        for name in ours:
            for suffix in (".json", ".learning.json", ".tmp", ".learning.tmp"):
                (results / f"{name}{suffix}").unlink(missing_ok=True)
    for sub in (jobs, results):
        _remove_if_empty(sub)


def _remove_if_empty(path: Path) -> None:
    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        path.rmdir()
