"""Graceful SIGTERM (PM2, systemd): stop new entries, keep the stops, journal, exit 0; a restart
continues from the journal and re-protects the open position."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _records(path: Path) -> list[dict[str, Any]]:
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # the line being written
    return out


def _open_trades(path: Path) -> list[str]:
    qty: dict[str, int] = {}
    for r in _records(path):
        if r.get("type") == "fill":
            qty[r["trade_id"]] = qty.get(r["trade_id"], 0) + r["side"] * r["qty"]
    return [k for k, v in qty.items() if v != 0]


def test_sigterm_keeps_the_position_protected_and_a_restart_reprotects_it(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DASHBOARD_"))}
    env["LOG_DIR"] = str(logs)
    cmd = [sys.executable, "-m", "fabio.cli", "run", "--brain", "rules", "--quiet", "--json"]
    proc = subprocess.Popen(
        [*cmd, "--speed", "300"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    journal = logs / "execution.jsonl"
    try:
        deadline = time.monotonic() + 120
        while not _open_trades(journal):
            assert proc.poll() is None and time.monotonic() < deadline, "no position opened"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert json.loads(out)["symbol"] == "ESH4"
    records = _records(journal)
    shutdown = [r for r in records if r.get("type") == "shutdown"]
    assert len(shutdown) == 1 and shutdown[0]["reason"] == "SIGTERM"
    held = shutdown[0]["open_trade"]
    assert held is not None  # not flattened: the stops stay with the position
    after = records[records.index(shutdown[0]) + 1 :]
    assert not [r for r in after if r.get("type") in ("fill", "entry")]

    done = subprocess.run(
        [*cmd, "--speed", "3000", "--duration", "20m"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    restarted = _records(journal)[len(records) :]
    assert any(r.get("event") == "reprotected" and r.get("trade_id") == held for r in restarted)
