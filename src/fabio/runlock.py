"""One trading process per logs folder and per account: an OS file lock held for the process's life.

Two `fabio run` on one journal would both trade (double the exposure) and write the same trade
and order ids. `RunLock` takes an exclusive, non-blocking lock (`fcntl.flock`, or
`msvcrt.locking` on Windows) on `<logs>/fabio.lock`, and for a broker account also on
`<user cache>/fabio/locks/account-<id>.lock`, and writes its pid there. The OS releases the lock
when the process ends, however it ends (kill -9 included), so a stale lock file never blocks a
restart. A second process gets a one-line error naming the first one's pid.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from types import TracebackType
from typing import IO

import platformdirs

from fabio.errors import FabioError
from fabio.journal import make_private_dir

LOCK_NAME = "fabio.lock"


def _try_lock(fh: IO[str]) -> bool:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def account_lock_dir() -> Path:
    return Path(platformdirs.user_cache_dir("fabio")) / "locks"


class RunLock:
    """Exclusive locks for a trading process; use as a context manager or call `release`."""

    def __init__(
        self, log_dir: Path, account: str | None = None, lock_dir: Path | None = None
    ) -> None:
        self.paths = [log_dir / LOCK_NAME]
        if account:
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", account)[:64]
            self.paths.append((lock_dir or account_lock_dir()) / f"account-{safe}.lock")
        self._handles: list[IO[str]] = []
        self.what = [f"the logs folder {log_dir}"] + ([f"account {account}"] if account else [])

    def acquire(self) -> RunLock:
        for path, what in zip(self.paths, self.what, strict=True):
            make_private_dir(path.parent)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                self.release()
                raise FabioError(f"cannot create the lock file {path}: {exc}") from None
            fh = os.fdopen(fd, "r+", encoding="utf-8")
            if not _try_lock(fh):
                holder = fh.read().strip().split("\n", 1)[0] or "unknown"
                fh.close()
                self.release()
                raise FabioError(
                    f"another Fabio process (pid {holder}) is already trading on {what} "
                    f"(lock {path}); stop it first, or use another LOGS folder"
                )
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            self._handles.append(fh)
        return self

    def release(self) -> None:
        for fh in self._handles:
            fh.close()  # closing the descriptor releases the lock
        self._handles.clear()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
