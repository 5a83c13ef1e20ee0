"""The archive of an account's journals (`fabio new-account`, fabio.accounts) and the repair
of one a crash interrupted: `recover_partial`, which `fabio new-account` and every paper/live
start (fabio.wiring, under the folder's RunLock) call, so an interrupted switch is finished
(committed) or undone (not committed) before anything trades. See fabio.accounts for the steps.
"""

from __future__ import annotations

import filecmp
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from fabio.journal import LLM_EXCHANGES, read_journal
from fabio.killswitch import EXECUTION_JOURNAL, KILL_FILE

ACCOUNTS_DIR = "accounts"
PARTIAL = ".partial"
NEW_JOURNAL = EXECUTION_JOURNAL + ".new-account"
# The account's files: moved into the archive. Other files of the folder (the LLM cache, the
# recorded tape, backtests, the lock) are not the account's and stay.
ACCOUNT_FILES = (EXECUTION_JOURNAL, LLM_EXCHANGES, KILL_FILE)
ACCOUNT_SUFFIXES = (".torn", ".corrupt", ".bak")


def stamp(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def account_files(log_dir: Path) -> list[Path]:
    files = [log_dir / name for name in ACCOUNT_FILES]
    for name in (EXECUTION_JOURNAL, LLM_EXCHANGES):
        files += sorted(log_dir.glob(f"{name}*"))
    seen: dict[Path, None] = {}
    for path in files:
        base = path.name
        keep = base in ACCOUNT_FILES or any(base.endswith(s) for s in ACCOUNT_SUFFIXES)
        if keep and path.is_file() and path.name != NEW_JOURNAL:
            seen.setdefault(path, None)
    return list(seen)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory descriptors
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _carried_archive(log_dir: Path) -> str | None:
    """The archive the current journal's `learning_carry` names (its first records)."""
    for rec in read_journal(log_dir / EXECUTION_JOURNAL).records[:50]:
        if rec.get("type") == "learning_carry" and rec.get("archive"):
            return str(rec["archive"])
    return None


def recover_partial(log_dir: Path) -> list[str]:
    """Finish or undo a `new-account` a crash interrupted (call under the folder's RunLock)."""
    done: list[str] = []
    accounts = log_dir / ACCOUNTS_DIR
    stray = log_dir / NEW_JOURNAL
    if stray.exists():  # written but never committed: the old account is still in place
        stray.unlink()
        done.append(f"removed the uncommitted {stray.name}")
    if not accounts.is_dir():
        return done
    committed = _carried_archive(log_dir)
    for partial in sorted(accounts.glob(f"*{PARTIAL}")):
        final = partial.with_name(partial.name[: -len(PARTIAL)])
        if committed == f"{ACCOUNTS_DIR}/{final.name}":
            finish(log_dir, partial, final)
            done.append(f"finished archiving into {final}")
        else:  # never committed: its files are extra names of data still in place
            shutil.rmtree(partial)
            done.append(f"dropped the uncommitted archive {partial.name}")
    return done


def finish(log_dir: Path, partial: Path, final: Path) -> list[str]:
    """After the commit: the originals leave the folder (only when they are still the data the
    archive holds), then the archive gets its final name."""
    moved = []
    for archived in sorted(partial.iterdir()):
        original = log_dir / archived.name
        if archived.name == EXECUTION_JOURNAL or not original.exists():
            continue
        if _same(original, archived):
            original.unlink()  # its data lives on under the archive
            moved.append(archived.name)
    fsync_dir(log_dir)
    os.replace(partial, final)
    fsync_dir(final.parent)
    return moved


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b) or filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False
