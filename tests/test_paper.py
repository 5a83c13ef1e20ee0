"""`fabio run` as a process: kill -9 with a position open, restart, and two runs at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from fabio.journal import read_journal

FABIO = [sys.executable, "-c", "from fabio.cli import main; main()"]
ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "TOPSTEP_", "LOGS", "LOG_DIR"))
    }
    env["PYTHONPATH"] = str(ROOT)
    return env


def start_run(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*FABIO, "run", "--quiet", "--brain", "rules", *args],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def open_position(journal: Path) -> str | None:
    """The trade id of a filled, not yet closed position in the journal, if any."""
    net: dict[str, int] = defaultdict(int)
    for rec in read_journal(journal).records:
        if rec.get("type") == "fill":
            net[rec["trade_id"]] += rec["side"] * rec["qty"]
    return next((t for t, q in net.items() if q != 0), None)


def test_kill_dash_nine_with_a_position_open_then_restart_next_day_is_flat(tmp_path: Path) -> None:
    journal = tmp_path / "logs" / "execution.jsonl"
    proc = start_run(tmp_path, "--speed", "800")
    deadline = time.monotonic() + 240
    trade_id = None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.exists() and (trade_id := open_position(journal)):
                break
            time.sleep(0.02)
        assert trade_id, "no position opened before the deadline"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    records = read_journal(journal).records
    first_day = next(r["trade_date"] for r in records if r.get("type") == "session")
    assert open_position(journal) == trade_id  # the crash left it open
    # Restart (the lock file of the killed process is still there: it must not block).
    again = start_run(tmp_path, "--speed", "3000", "--duration", "10m", "--json")
    _, stderr = again.communicate(timeout=240)
    assert again.returncode == 0, stderr
    records = read_journal(journal).records
    days = [
        r["trade_date"] for r in records if r.get("type") == "session" and r.get("event") == "start"
    ]
    assert days[-1] > first_day  # a later trade date
    [stale] = [r for r in records if r.get("type") == "stale_position"]
    assert stale["trade_id"] == trade_id and stale["trade_date"] == first_day
    assert "flattened at once" in stale["reason"]
    exits = [
        r
        for r in records
        if r.get("type") == "fill" and r["trade_id"] == trade_id and r["role"] == "exit"
    ]
    assert exits and exits[0]["reason"].startswith("restart:")
    # It was closed at the new session's first prints, not carried or re-protected for days.
    start_ns = next(
        r["ts_ns"]
        for r in records
        if r.get("type") == "session" and r.get("trade_date") == days[-1]
    )
    assert exits[0]["ts_ns"] - start_ns < 60 * 1_000_000_000
    assert open_position(journal) is None
    state = subprocess.run(
        [*FABIO, "state", "--symbol", "ESH4", "--json"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert state.returncode == 0, state.stderr
    summary = json.loads(state.stdout)
    assert summary["open_trades"] == [] and summary["closed_trades"] >= 1


def test_a_second_run_on_the_same_logs_folder_refuses_naming_the_first_pid(tmp_path: Path) -> None:
    first = start_run(tmp_path, "--speed", "1")
    try:
        lock = tmp_path / "logs" / "fabio.lock"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None:
            if lock.exists() and lock.read_text().strip() == str(first.pid):
                break
            time.sleep(0.05)
        assert lock.read_text().strip() == str(first.pid)
        second = start_run(tmp_path, "--speed", "1", "--duration", "1s")
        _, stderr = second.communicate(timeout=120)
        assert second.returncode == 2
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and f"pid {first.pid}" in lines[0], stderr
        assert "Traceback" not in stderr
        assert first.poll() is None  # the first keeps trading
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
