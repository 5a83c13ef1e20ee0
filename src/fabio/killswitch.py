"""The kill switch between processes: `fabio kill` journals the change and leaves a request.

The journal (`execution.jsonl`) is the record: `fabio kill` appends a `kill_switch` event (reason,
time, source `cli`) at once, so the change is journaled even when no agent runs, survives
restarts, and `fabio state` shows it. A running agent learns of it from the request file
`logs/KILL` (the event as JSON, with a request id): it polls the file, folds the event into its
state without journaling it a second time, and removes the file. The risk engine itself does no
file I/O. An old plain-text `KILL` file (before the kill switch was journaled) is read as an
engage request from the CLI and journaled by the agent that finds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from pathlib import Path

from fabio.errors import FabioError
from fabio.events import KillSource, KillSwitchEvent, parse_record
from fabio.journal import Journal

KILL_FILE = "KILL"
EXECUTION_JOURNAL = "execution.jsonl"


def request_kill_switch(
    log_dir: Path,
    engaged: bool,
    reason: str,
    source: KillSource = "cli",
    secrets: tuple[str, ...] = (),
    now_ns: int | None = None,
) -> KillSwitchEvent:
    """Journal a kill-switch change and leave the request for a running agent."""
    event = KillSwitchEvent(
        ts_ns=time.time_ns() if now_ns is None else now_ns,
        symbol=None,
        engaged=engaged,
        reason=(reason.strip() or ("kill switch engaged" if engaged else "released"))[:300],
        source=source,
        request_id=uuid.uuid4().hex,
    )
    Journal(log_dir / EXECUTION_JOURNAL, secrets=secrets).append(event.to_record())
    path = log_dir / KILL_FILE
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(event.to_record()) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise FabioError(f"cannot write the kill-switch request {path}: {exc}") from None
    return event


class KillSwitchMailbox:
    """The request file a running agent polls (cheaply: one `stat` per poll)."""

    def __init__(self, log_dir: Path) -> None:
        self.path = log_dir / KILL_FILE

    def take(self) -> KillSwitchEvent | None:
        """The pending request (the file is removed), or None."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
            mtime_ns = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        except OSError as exc:  # present but unreadable: the safe reading is "engaged"
            return KillSwitchEvent(
                ts_ns=time.time_ns(),
                engaged=True,
                source="cli",
                reason=f"kill-switch file unreadable ({exc})",
            )
        event = _parse(text, mtime_ns)
        with contextlib.suppress(OSError):
            self.path.unlink()
        return event


def _parse(text: str, mtime_ns: int) -> KillSwitchEvent:
    try:
        record = json.loads(text)
        event = parse_record(record) if isinstance(record, dict) else None
        if isinstance(event, KillSwitchEvent):
            return event
    except (ValueError, FabioError):
        pass
    # A legacy plain-text file: its text is the reason; nobody journaled it yet.
    return KillSwitchEvent(
        ts_ns=mtime_ns,
        engaged=True,
        source="cli",
        reason=text.strip()[:300] or "kill switch engaged",
    )
