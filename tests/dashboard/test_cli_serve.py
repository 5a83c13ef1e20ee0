"""`fabio serve` and `fabio run --dashboard` as a user starts them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.dashboard.conftest import session_start, trade_records, write
from tests.dashboard.test_browser import _free_port


def _env(logs: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DASHBOARD_"))}
    env.update({"LOG_DIR": str(logs), **extra})
    return env


def test_serve_reads_the_journals_prints_a_token_and_stops_on_sigterm(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write(logs / "execution.jsonl", [session_start(), *trade_records()])
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fabio.cli", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=_env(logs),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 120  # bounds a hang: the process starts, then listens
        while True:
            try:
                snap = httpx.get(url + "api/snapshot", timeout=30).json()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError("fabio serve did not answer") from None
                time.sleep(0.1)
        assert snap["symbols"]["ESH4"]["trade_update"]["pnl"]["closed_trades"] == 1
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert f"dashboard: {url}" in err
        token = err.split("choose one): ")[1].split()[0]
        assert len(token) >= 16  # printed once, since DASHBOARD_TOKEN is unset
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_public_bind_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    for cmd in (
        ["serve", "--host", "0.0.0.0"],
        ["run", "--dashboard", "--host", "0.0.0.0", "--quiet"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "fabio.cli", *cmd],
            cwd=tmp_path,
            env=_env(tmp_path / "logs"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert "DASHBOARD_TOKEN" in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) <= 2
