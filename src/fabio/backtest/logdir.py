"""Claim a folder for a backtest's journals without ever deleting what Fabio did not write."""

from __future__ import annotations

import shutil
from pathlib import Path

from fabio.errors import FabioError

MARKER = ".fabio-backtest"
# What a backtest writes into its folder; only these are cleared before a rerun.
BACKTEST_OUTPUTS = ("execution.jsonl", "llm_exchanges.jsonl")
BACKTEST_SUBDIRS = ("jobs", "results")


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
    for name in BACKTEST_OUTPUTS:
        (resolved / name).unlink(missing_ok=True)
    for name in BACKTEST_SUBDIRS:
        sub = resolved / name
        if sub.is_dir() and not sub.is_symlink():
            shutil.rmtree(sub)
