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


def test_the_engine_halts_entries_and_keeps_the_stop_when_its_journal_fails(
    tmp_path: Path,
) -> None:
    from fabio.execution.engine import EXECUTION_JOURNAL
    from fabio.execution.risk import RiskConfig
    from fabio.orders import OrderRole
    from fabio.wiring import open_execution
    from tests.execution.test_engine import ES, P, ct, engine_at, enter, tape

    e = engine_at(tmp_path)
    e.on_trades(tape(ct(9, 0), [P] * 3))
    assert e.process_trade_decision(enter(), ct(9, 0, 5), P).accepted
    e.on_trades(tape(ct(9, 0, 6), [P, P + 1]))  # the entry fills: long with its stop
    [trade] = e.ledger.open_trades.values()
    assert trade.qty == 1
    path = tmp_path / EXECUTION_JOURNAL
    size = path.stat().st_size
    orders = dict(e.broker.orders)
    assert e.journal is not None

    def full_disk(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    e.journal.os_write = full_disk
    with pytest.raises(JournalWriteError):  # the refusal of this one cannot be journaled
        e.process_trade_decision(enter(side="short"), ct(9, 1), P + 1)
    assert e.journal_failure == "journal write failed: disk full (No space left on device)"
    e.journal.os_write = os.write
    # From now on: no new order, no flattening (not even at the flat time), nothing journaled.
    later = e.process_trade_decision(enter(side="short"), ct(9, 2), P + 1)
    assert not later.accepted and later.reason == e.journal_failure
    e.on_trades(tape(ct(15, 10), [P + 2] * 3))
    assert dict(e.broker.orders) == orders
    assert e.ledger.open_trades[trade.trade_id].qty == 1
    stops = [o for o in e.broker.open_orders() if o.role is OrderRole.STOP]
    assert stops, "the open position lost its stop"
    assert path.stat().st_size == size
    assert not [r for r in read_journal(path).records if r["ts_ns"] >= ct(9, 1)]
    e.journal.close()
    # The next start (space again) reads the journal whole and protects the position again.
    restarted = open_execution(ES, tmp_path, RiskConfig())
    assert not any("torn" in p for p in restarted.problems)
    assert restarted.ledger.open_trades[trade.trade_id].qty == 1
    assert [o for o in restarted.broker.open_orders() if o.role is OrderRole.STOP]
    restarted.on_trades(tape(ct(9, 3), [P - 20, P - 30]))
    assert restarted.ledger.closed and restarted.ledger.closed[-1].exit_reason == "stop"
