"""Append-only JSON Lines journals under `logs/` (`llm_exchanges.jsonl` first among them).

Every record is one line, written whole and flushed before `append` returns, so a crash loses
at most the line being written. Reading back tolerates a torn last line (reported, not fatal);
an unreadable line elsewhere is reported with its line number and skipped, never silently.
No secret reaches a journal: `Journal` redacts any configured secret value and anything that
looks like an API key before writing.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
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


class Journal:
    """One append-only JSON Lines file."""

    def __init__(self, path: str | Path, secrets: Iterable[str] = (), fsync: bool = False) -> None:
        self.path = Path(path)
        self.secrets = tuple(s for s in secrets if s)
        self.fsync = fsync
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FabioError(f"cannot create the log folder {self.path.parent}: {exc}") from None
        self._repair_torn_tail()

    def _repair_torn_tail(self) -> None:
        """Finish a torn last line with a newline so that the next record starts clean."""
        try:
            with self.path.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                if fh.tell() == 0:
                    return
                fh.seek(-1, os.SEEK_END)
                last = fh.read(1)
        except FileNotFoundError:
            return
        if last != b"\n":
            with self.path.open("ab") as fh:
                fh.write(b"\n")

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), default=str, ensure_ascii=False)
        line = redact(line, self.secrets)
        try:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
                fh.flush()
                if self.fsync:
                    os.fsync(fh.fileno())
        except OSError as exc:
            raise FabioError(f"cannot write the journal {self.path}: {exc}") from None


@dataclass(slots=True)
class JournalRead:
    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    torn_tail: bool = False


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
                result.problems.append(f"{p}:{i + 1}: unreadable line skipped: {exc}")
            continue
        result.records.append(record)
    return result


def iter_records(path: str | Path, record_type: str | None = None) -> Iterator[dict[str, Any]]:
    for record in read_journal(path).records:
        if record_type is None or record.get("type") == record_type:
            yield record
