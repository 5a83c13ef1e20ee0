"""Follow the journals of every agent under the logs folder, a few new lines at a time.

An agent's folder holds `execution.jsonl` and `llm_exchanges.jsonl`; the logs folder itself and
each folder directly under it are looked at. A file is read from where the last read stopped and
only whole lines are taken, so a line being written is picked up on the next pass; a line that
is not JSON is reported once and skipped, never fatal.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fabio.journal import LLM_EXCHANGES

EXECUTION = "execution.jsonl"
JOURNALS = (EXECUTION, LLM_EXCHANGES)


@dataclass(slots=True)
class _Tail:
    path: Path
    offset: int = 0
    line_no: int = 0
    inode: int | None = None


@dataclass(slots=True)
class JournalFollower:
    """Yields (folder label, record) for every new whole line in the agents' journals."""

    log_dir: Path
    problems: list[str] = field(default_factory=list)
    _tails: dict[Path, _Tail] = field(default_factory=dict)

    def folders(self) -> list[tuple[str, Path]]:
        found: list[tuple[str, Path]] = []
        if not self.log_dir.is_dir():
            return found
        if any((self.log_dir / name).exists() for name in JOURNALS):
            found.append(("", self.log_dir))
        for sub in sorted(p for p in self.log_dir.iterdir() if p.is_dir()):
            if any((sub / name).exists() for name in JOURNALS):
                found.append((sub.name, sub))
        return found

    def poll(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """New records since the last poll, execution journal first within a folder."""
        for label, folder in self.folders():
            for name in JOURNALS:
                path = folder / name
                if path.exists():
                    for record in self._read(path):
                        yield label, record

    def _read(self, path: Path) -> Iterator[dict[str, Any]]:
        tail = self._tails.setdefault(path, _Tail(path))
        try:
            stat = path.stat()
            if tail.inode is not None and (stat.st_ino != tail.inode or stat.st_size < tail.offset):
                tail.offset = tail.line_no = 0  # replaced or truncated: start over
                self.problems.append(f"{path}: file replaced; reading it again from the start")
            tail.inode = stat.st_ino
            if stat.st_size == tail.offset:
                return
            with path.open("rb") as fh:
                fh.seek(tail.offset)
                chunk = fh.read(stat.st_size - tail.offset)
        except OSError as exc:
            self.problems.append(f"{path}: cannot read: {exc}")
            return
        end = chunk.rfind(b"\n")
        if end < 0:
            return  # no whole line yet
        tail.offset += end + 1
        for raw in chunk[:end].split(b"\n"):
            tail.line_no += 1
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError as exc:
                self.problems.append(f"{path}:{tail.line_no}: unreadable line skipped: {exc}")
                continue
            if isinstance(record, dict):
                yield record
