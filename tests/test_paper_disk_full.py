"""`fabio run` on a full disk (issue 22, item 5): one line, exit 2, no traceback, no torn line;
the next start with space continues from the journal.

The disk fills for real in the child: RLIMIT_FSIZE a few KB above the journals' size, SIGXFSZ
ignored (a write past the limit fails with EFBIG, as one on a full file system fails with
ENOSPC). Compiled kernels are not cached in that child (the limit would stop numba first).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import fabio
from fabio.journal import read_journal

SRC = Path(fabio.__file__).resolve().parents[1]
JOURNALS = ("execution.jsonl", "llm_exchanges.jsonl")
# A child that runs `fabio` with its files limited to argv[1] bytes (0: no limit).
CHILD = """
import resource, signal, sys
limit = int(sys.argv[1])
if limit:
    import numba.core.caching
    numba.core.caching.Cache.save_overload = lambda self, sig, data: None
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.argv = ["fabio", *sys.argv[2:]]
from fabio.cli import main
main()
"""
# The pacer's notice when the machine holds the replay back (wrapped by the console).
PACER = re.compile(
    r"the replay runs at \S+, not \S+: the brain or the machine sets the pace "
    r"\(the market waits for every decision, as a backtest does\)"
)


def fabio_run(cwd: Path, limit: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "TOPSTEP_", "LOGS", "LOG_DIR", "FABIO_DEBUG"))
    }
    env["PYTHONPATH"] = str(SRC)
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(limit), "run", "--quiet", "--brain", "rules", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def whole(logs: Path) -> dict[str, list[dict[str, object]]]:
    """Every journal's records, asserting that none has a torn or unreadable line."""
    out = {}
    for name in JOURNALS:
        path = logs / name
        assert path.read_bytes().endswith(b"\n"), f"{name} ends in a torn line"
        read = read_journal(path)
        assert not read.problems, read.problems
        out[name] = read.records
    return out


def test_a_full_disk_stops_the_run_with_one_line_and_the_next_start_continues(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    first = fabio_run(tmp_path, 0, "--speed", "3000", "--duration", "30m")
    assert first.returncode == 0, first.stderr
    biggest = max((logs / n).stat().st_size for n in (*JOURNALS, "paper_market.json"))
    full = fabio_run(tmp_path, biggest + 4000, "--speed", "3000", "--duration", "6h")
    # Exit 2, as every one-line error (docs/execution.md, "When the disk is full").
    assert full.returncode == 2, full.stderr
    assert "Traceback" not in full.stderr and "Exception ignored" not in full.stderr
    [line] = [x for x in full.stderr.splitlines() if x.startswith("error:")]
    assert re.search(
        r"cannot write the journal logs/(execution|llm_exchanges)\.jsonl: disk full", line
    )
    assert "trading stopped, no new entry" in line and "run again" in line
    rest = " ".join(full.stderr.replace(line, "").split())
    assert not PACER.sub("", rest).strip(), full.stderr  # nothing but that one line
    stopped = whole(logs)
    # What the line says about the position is what the journal holds.
    net: dict[str, int] = defaultdict(int)
    for rec in stopped["execution.jsonl"]:
        if rec.get("type") == "fill":
            net[str(rec["trade_id"])] += int(rec["side"]) * int(rec["qty"])  # type: ignore[call-overload]
    held = [t for t, q in net.items() if q]
    if held:
        assert f"{held[0]} (" in line and "keeps its stop and target" in line
    last_ns = max(int(r["ts_ns"]) for r in stopped["execution.jsonl"])  # type: ignore[call-overload]
    # Space again: the next start reads the journals and continues the market from there.
    again = fabio_run(tmp_path, 0, "--speed", "3000", "--duration", "30m", "--json")
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr and "torn" not in again.stderr
    summary = json.loads(again.stdout)
    assert summary["trading_state"] == "active"
    after = whole(logs)
    new = after["execution.jsonl"][len(stopped["execution.jsonl"]) :]
    assert new and min(int(r["ts_ns"]) for r in new) >= last_ns  # type: ignore[call-overload]
    assert after["execution.jsonl"][: len(stopped["execution.jsonl"])] == stopped["execution.jsonl"]
    if held:
        # The position left open was taken over: it ends closed, not forgotten.
        assert any(
            r.get("type") == "fill" and r.get("trade_id") == held[0] and r.get("role") != "entry"
            for r in new
        )
