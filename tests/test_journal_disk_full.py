"""Disk full (issue 22, item 5): a journal write that fails keeps nothing of its record, says one
line, never a traceback (not even at interpreter exit), and the journal reads back whole.

The full disk is real where it matters: RLIMIT_FSIZE in a child process (SIGXFSZ ignored, so a
write past the limit returns EFBIG, possibly after a partial write, as ENOSPC does on a full
file system). It needs no root and no tmpfs, so it runs anywhere.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fabio
from fabio.journal import Journal, JournalWriteError, read_journal

SRC = Path(fabio.__file__).resolve().parents[1]

# A child that journals 1 KB records into a file limited to 2,500 bytes and ends without closing
# the journal: its file descriptor is left for the garbage collector at interpreter exit.
CHILD = textwrap.dedent(
    """
    import resource, signal, sys
    from fabio.journal import Journal, JournalWriteError
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2500, 2500))
    j = Journal(sys.argv[1], fsync=True)
    for i in range(10):
        try:
            j.append({"type": "fill", "i": i, "pad": "x" * 1000})
        except JournalWriteError as exc:
            print(f"error: {exc}", file=sys.stderr)
            print(i)
            break
    try:
        j.append({"type": "fill", "i": 99})
    except JournalWriteError:
        pass
    """
)


def test_a_full_file_keeps_no_torn_line_and_exits_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "execution.jsonl"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"  # two records fit in 2,500 bytes, the third does not
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr  # no "Exception ignored in Journal.__del__"
    assert str(path) in lines[0] and "disk full" in lines[0]
    assert "Traceback" not in done.stderr
    data = path.read_bytes()
    assert data.endswith(b"\n")  # the partial third record was cut back off
    read = read_journal(path)
    assert not read.torn_tail and not read.problems
    assert [r["i"] for r in read.records] == [0, 1]  # nothing after the failure either
    # With space again, the next start continues from the last whole record.
    again = Journal(path)
    again.append({"type": "fill", "i": 2})
    again.close()
    assert [r["i"] for r in read_journal(path).records] == [0, 1, 2]


def test_a_partial_write_is_cut_back_and_later_records_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "execution.jsonl"
    journal = Journal(path)
    journal.append({"type": "fill", "i": 0})
    calls: list[int] = []

    def full_disk(fd: int, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return os.write(fd, data[:7])  # a part of the record reaches the file
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    journal.os_write = full_disk
    with pytest.raises(JournalWriteError) as failed:
        journal.append({"type": "fill", "i": 1})
    assert failed.value.reason == "journal write failed: disk full (No space left on device)"
    assert path.read_bytes().count(b"\n") == 1 and path.read_bytes().endswith(b"\n")
    journal.os_write = os.write  # space again: this process still takes no more records
    with pytest.raises(JournalWriteError):
        journal.append({"type": "fill", "i": 2})
    assert len(calls) == 2
    journal.close()
    journal.close()  # twice: still no error
    assert [r["i"] for r in read_journal(path).records] == [0]
    assert json.loads(path.read_bytes())["i"] == 0
