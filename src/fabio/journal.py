"""Append-only JSON Lines journals under `logs/` (`llm_exchanges.jsonl` first among them).

Every record is one line, written whole and flushed to the OS before `append` returns, so a
kill -9 loses at most the line being written. A write that fails (disk full, a quota, an I/O
error) leaves nothing of its record: a partly written line is cut back off at once, the journal
refuses every later record (`JournalWriteError`, one line naming the file and the cause) and
closing it never raises, so the process can stop cleanly and the next start, with space again,
continues from the last whole record. State records (orders, fills, positions: every
type not in `buffered_types`) are also fsynced, so that a power cut or an OS crash cannot lose
them; `group()` defers the fsync to the end of a block (group commit). Decision records stay in
the OS's buffers (a crash loses at most the last few, never the state).

Reading back tolerates a torn last line (reported, not fatal); reopening a journal for writing
cuts a torn tail off (its bytes are kept in `<name>.torn`) so the next record starts clean. An
unreadable line anywhere else is corruption: `JournalRead.corrupt` names each, and
`raise_if_corrupt` stops a start-up with the file, the line and how to repair it
(`fabio journal-repair`, docs/execution.md).

The log folder is created 0700 and journals 0600: only the user can read them. No secret reaches
a journal: `Journal` redacts any configured secret value and anything that looks like an API key
before writing.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fabio.errors import FabioError

LLM_EXCHANGES = "llm_exchanges.jsonl"
_KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|Bearer\s+[A-Za-z0-9._\-]{8,})")
REDACTED = "[redacted]"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove secret values and API-key-looking strings from `text`."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return _KEY_PATTERN.sub(REDACTED, text)


LOG_DIR_MODE = 0o700
JOURNAL_MODE = 0o600
REPAIR_HINT = (
    "stop Fabio, review the line, then run `fabio journal-repair {path}` (it keeps a backup "
    "and moves unreadable lines to {path}.corrupt; see docs/execution.md)"
)


# Failures that mean "no room": the halt reason says "disk full".
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def write_failure(exc: OSError) -> str:
    """What stopped a journal write, in a few words: "disk full (...)" or the OS's reason."""
    detail = exc.strerror or str(exc)
    if exc.errno in _NO_ROOM:
        return f"disk full ({detail})"
    return detail


class JournalWriteError(FabioError):
    """A journal record could not be written: none of it was kept, and the journal takes no
    more records. `reason` ("journal write failed: disk full (...)") is what halts trading."""

    def __init__(self, path: Path, cause: str) -> None:
        self.path = path
        self.cause = cause
        self.reason = f"journal write failed: {cause}"
        super().__init__(f"cannot write the journal {path}: {cause}")


def make_private_dir(path: Path) -> None:
    """Create a folder (and its parents) readable by the user only (0700)."""
    try:
        path.mkdir(mode=LOG_DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise FabioError(f"cannot create the log folder {path}: {exc}") from None


class Journal:
    """One append-only JSON Lines file."""

    def __init__(
        self,
        path: str | Path,
        secrets: Iterable[str] = (),
        fsync: bool = False,
        buffered_types: Iterable[str] = (),
    ) -> None:
        """`fsync=True`: every record whose type is not in `buffered_types` is fsynced."""
        self.path = Path(path)
        self.secrets = tuple(s for s in secrets if s)
        self.fsync = fsync
        self.buffered_types = frozenset(buffered_types)
        self.fsyncs = 0
        self._group_depth = 0
        self._dirty = False
        self.failed: JournalWriteError | None = None  # set by the first write that failed
        # The system call that writes a record's bytes (a test injects a full disk here).
        self.os_write: Callable[[int, bytes], int] = os.write
        self._fd = -1
        make_private_dir(self.path.parent)
        self._fd = self._open()
        self._repair_torn_tail()

    def _open(self) -> int:
        """An unbuffered append-only descriptor: a record reaches the OS in `append` or not at
        all, and nothing is left in a buffer for `close` (or the garbage collector) to write."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, JOURNAL_MODE)
        except OSError as exc:
            raise FabioError(f"cannot write the journal {self.path}: {exc}") from None
        try:
            if os.fstat(fd).st_mode & 0o077:  # written by an older version: make it private
                os.fchmod(fd, JOURNAL_MODE)
        except OSError as exc:
            os.close(fd)
            raise FabioError(f"cannot write the journal {self.path}: {exc}") from None
        return fd

    def _repair_torn_tail(self) -> None:
        """Cut a torn last line off (kept in `<name>.torn`) so the next record starts clean."""
        with self.path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            if size == 0:
                return
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) == b"\n":
                return
            back = min(size, 1 << 20)
            fh.seek(size - back)
            tail = fh.read(back)
        cut = tail.rfind(b"\n") + 1  # 0: the whole (last MiB of the) file is one torn line
        keep = size - back + cut
        torn = tail[cut:]
        try:
            fd = os.open(
                self.path.with_name(self.path.name + ".torn"),
                os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                JOURNAL_MODE,
            )
            with os.fdopen(fd, "ab") as side:
                side.write(torn + b"\n")
            os.truncate(self.path, keep)
        except OSError as exc:
            raise FabioError(f"cannot repair the torn last line of {self.path}: {exc}") from None

    def append(self, record: dict[str, Any]) -> None:
        """Write one record whole, or raise `JournalWriteError` having kept none of it."""
        if self.failed is not None:
            raise self.failed
        data = redact(dumps_record(record), self.secrets).encode("utf-8") + b"\n"
        durable = self.fsync and record.get("type") not in self.buffered_types
        start = -1
        written = 0
        try:
            start = os.fstat(self._fd).st_size
            while written < len(data):
                n = self.os_write(self._fd, data[written:])
                if n <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                written += n
            if durable:
                if self._group_depth:
                    self._dirty = True
                else:
                    self._sync()
        except OSError as exc:
            if written:  # a torn or unsynced record: cut it back off
                self._cut(start, written)
            raise self._fail(exc) from None

    def _cut(self, start: int, written: int) -> None:
        """Take back the `written` bytes of a failed record (unless another writer followed)."""
        with contextlib.suppress(OSError):
            if start >= 0 and os.fstat(self._fd).st_size == start + written:
                os.ftruncate(self._fd, start)

    def _fail(self, exc: OSError) -> JournalWriteError:
        self.failed = JournalWriteError(self.path, write_failure(exc))
        return self.failed

    def _sync(self) -> None:
        os.fsync(self._fd)
        self.fsyncs += 1
        self._dirty = False

    @contextmanager
    def group(self) -> Iterator[None]:
        """Group commit: the records appended inside the block are fsynced once, at its end."""
        self._group_depth += 1
        try:
            yield
        finally:
            self._group_depth -= 1
            if not self._group_depth and self._dirty and self.failed is None:
                try:
                    self._sync()
                except OSError as exc:
                    raise self._fail(exc) from None

    def close(self) -> None:
        """Close the file; never raises (every record was already written by `append`)."""
        fd, self._fd = getattr(self, "_fd", -1), -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def dumps_record(record: dict[str, Any]) -> str:
    """One compact line of standard JSON (NaN and infinities, which JSON lacks, become null)."""
    try:
        return json.dumps(
            record, separators=(",", ":"), default=str, ensure_ascii=False, allow_nan=False
        )
    except ValueError:
        return json.dumps(
            to_json_safe(record),
            separators=(",", ":"),
            default=str,
            ensure_ascii=False,
            allow_nan=False,
        )


def to_json_safe(value: Any) -> Any:
    """A copy of `value` where NaN and infinities are None: JSON output is always standard."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: to_json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_safe(v) for v in value]
    return value


@dataclass(slots=True)
class JournalRead:
    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    torn_tail: bool = False
    lines: list[int] = field(default_factory=list)  # the file line of each record
    corrupt: list[int] = field(default_factory=list)  # unreadable lines before the last

    def raise_if_corrupt(self, path: str | Path) -> None:
        """Refuse to rebuild a state from a journal with a corrupt record inside it."""
        if self.corrupt:
            more = f" (and {len(self.corrupt) - 1} more)" if len(self.corrupt) > 1 else ""
            raise FabioError(
                f"{path}:{self.corrupt[0]}: corrupt journal record{more}; refusing to start on a "
                f"state rebuilt without it: {REPAIR_HINT.format(path=path)}"
            )


def read_journal(path: str | Path) -> JournalRead:
    """All records of a journal; torn or unreadable lines are reported in `problems`."""
    result = JournalRead()
    p = Path(path)
    if not p.exists():
        return result
    lines = p.read_bytes().split(b"\n")
    last_index = len(lines) - 1
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            is_tail = i == last_index or all(not x.strip() for x in lines[i + 1 :])
            if is_tail:
                result.torn_tail = True
                result.problems.append(f"{p}:{i + 1}: torn last line ignored ({len(raw)} bytes)")
            else:
                result.corrupt.append(i + 1)
                result.problems.append(f"{p}:{i + 1}: unreadable line skipped: {exc}")
            continue
        result.records.append(record)
        result.lines.append(i + 1)
    return result


def repair_journal(path: str | Path) -> tuple[Path, Path, list[int]]:
    """Move a journal's unreadable lines (not a torn last line) to `<name>.corrupt`.

    The original is first copied to `<name>.bak`. Returns (backup, quarantine, line numbers).
    """
    p = Path(path)
    read = read_journal(p)
    backup = p.with_name(p.name + ".bak")
    quarantine = p.with_name(p.name + ".corrupt")
    if not read.corrupt:
        return backup, quarantine, []
    data = p.read_bytes()
    bad = set(read.corrupt)
    lines = data.split(b"\n")
    kept = [raw for i, raw in enumerate(lines, start=1) if i not in bad]
    moved = [b"line %d: " % i + lines[i - 1] for i in read.corrupt]
    try:
        shutil.copy2(p, backup)
        with quarantine.open("ab") as fh:
            fh.write(b"\n".join(moved) + b"\n")
        os.chmod(quarantine, JOURNAL_MODE)
        tmp = p.with_name(p.name + ".repair")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, JOURNAL_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(b"\n".join(kept))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except OSError as exc:
        raise FabioError(f"cannot repair {p}: {exc}") from None
    return backup, quarantine, read.corrupt


def iter_records(path: str | Path, record_type: str | None = None) -> Iterator[dict[str, Any]]:
    for record in read_journal(path).records:
        if record_type is None or record.get("type") == record_type:
            yield record
