from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from fabio.errors import FabioError
from fabio.journal import Journal, read_journal, redact, repair_journal


def test_append_and_read_back(tmp_path: Path) -> None:
    j = Journal(tmp_path / "logs" / "llm_exchanges.jsonl")
    for i in range(3):
        j.append({"type": "llm_exchange", "i": i, "market_stats": {"cvd": i}})
    read = read_journal(j.path)
    assert [r["i"] for r in read.records] == [0, 1, 2]
    assert read.problems == [] and not read.torn_tail
    # One record per line: grep-able as the spec's debug commands expect.
    lines = j.path.read_text().splitlines()
    assert len(lines) == 3 and all("market_stats" in line for line in lines)


def test_torn_last_line_is_tolerated_and_repaired(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text(json.dumps({"i": 0}) + "\n" + '{"i": 1, "trunc')
    read = read_journal(path)
    assert [r["i"] for r in read.records] == [0]
    assert read.torn_tail and "torn last line" in read.problems[0]
    j = Journal(path)  # reopening cuts the torn tail off, so the next record stays whole
    j.append({"i": 2})
    read = read_journal(path)
    assert [r["i"] for r in read.records] == [0, 2]
    assert read.problems == [] and read.corrupt == []  # a later start-up does not halt on it
    # The torn bytes are kept, not silently dropped.
    assert (tmp_path / "j.jsonl.torn").read_text() == '{"i": 1, "trunc\n'


def test_secrets_never_reach_the_journal(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.jsonl", secrets=["hunter2-password"])
    j.append(
        {
            "error": "Incorrect API key provided: sk-proj-abcdefghijklmnop1234",
            "echo": "login with hunter2-password",
            "auth": "Bearer eyJhbGciOiJIUzI1NiJ9x",
        }
    )
    text = j.path.read_text()
    assert "hunter2" not in text and "sk-proj" not in text and "eyJhbGci" not in text
    assert text.count("[redacted]") == 3
    assert redact("nothing secret here") == "nothing secret here"


def test_missing_journal_reads_empty(tmp_path: Path) -> None:
    assert read_journal(tmp_path / "none.jsonl").records == []


def test_corrupt_line_inside_the_journal_halts_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "execution.jsonl"
    path.write_text('{"i": 0}\n{"i": 1, "garbage\n{"i": 2}\n')
    read = read_journal(path)
    assert read.corrupt == [2] and [r["i"] for r in read.records] == [0, 2]
    with pytest.raises(FabioError) as info:
        read.raise_if_corrupt(path)
    message = str(info.value)
    assert f"{path}:2: corrupt journal record" in message and "\n" not in message
    assert "fabio journal-repair" in message
    # The documented repair keeps a backup and moves the line aside; the journal then reads.
    backup, quarantine, lines = repair_journal(path)
    assert lines == [2] and backup.read_text().count("\n") == 3
    assert quarantine.read_text() == 'line 2: {"i": 1, "garbage\n'
    again = read_journal(path)
    assert again.corrupt == [] and [r["i"] for r in again.records] == [0, 2]


def test_log_folder_0700_and_journals_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        j = Journal(tmp_path / "logs" / "execution.jsonl")
        j.append({"type": "fill"})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "logs").stat().st_mode) == 0o700
    assert stat.S_IMODE(j.path.stat().st_mode) == 0o600
    legacy = tmp_path / "legacy.jsonl"  # written world-readable by an older version
    legacy.write_text("")
    legacy.chmod(0o644)
    Journal(legacy)
    assert stat.S_IMODE(legacy.stat().st_mode) == 0o600


def test_state_records_are_fsynced_decisions_buffered_group_commit(tmp_path: Path) -> None:
    j = Journal(tmp_path / "execution.jsonl", fsync=True, buffered_types={"decision"})
    j.append({"type": "decision"})
    assert j.fsyncs == 0
    j.append({"type": "fill"})
    assert j.fsyncs == 1
    with j.group():
        for _ in range(5):
            j.append({"type": "order_event"})
        assert j.fsyncs == 1
    assert j.fsyncs == 2  # five records, one fsync
    assert len(read_journal(j.path).records) == 7


def test_non_finite_numbers_become_null_standard_json(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.jsonl")
    j.append({"x": float("inf"), "y": [float("nan"), 1.5], "z": {"w": -float("inf")}})
    line = j.path.read_text()
    assert "Infinity" not in line and "NaN" not in line
    assert json.loads(line) == {"x": None, "y": [None, 1.5], "z": {"w": None}}
