from __future__ import annotations

import json
from pathlib import Path

from fabio.journal import Journal, read_journal, redact


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
    j = Journal(path)  # reopening finishes the torn line, so the next record stays whole
    j.append({"i": 2})
    read = read_journal(path)
    assert [r["i"] for r in read.records] == [0, 2]
    assert "unreadable line skipped" in read.problems[0]  # reported, not silently dropped


def test_secrets_never_reach_the_journal(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.jsonl", secrets=["hunter2-password"])
    j.append({"error": "Incorrect API key provided: sk-proj-abcdefghijklmnop1234",
              "echo": "login with hunter2-password", "auth": "Bearer eyJhbGciOiJIUzI1NiJ9x"})
    text = j.path.read_text()
    assert "hunter2" not in text and "sk-proj" not in text and "eyJhbGci" not in text
    assert text.count("[redacted]") == 3
    assert redact("nothing secret here") == "nothing secret here"


def test_missing_journal_reads_empty(tmp_path: Path) -> None:
    assert read_journal(tmp_path / "none.jsonl").records == []
