"""The dashboard in a real headless browser (Debian chromium driven by Playwright).

A real paper run (`fabio run --dashboard`) in a subprocess; the page is opened, watched through
a fill, the kill switch is pressed without and with the token, the page is reloaded, and the
agent is stopped with SIGTERM. Skips where chromium or Playwright is missing; fails in CI.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.dashboard.conftest import TOKEN, chromium_path, require

SPEED = "150"  # an RTH session lasts about 160 s of wall time: room for every step below


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(predicate: Any, timeout: float, what: str, proc: subprocess.Popen[str]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"the agent exited ({proc.returncode}) while waiting for {what}")
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _records(path: Path, kind: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # the line being written
        if rec.get("type") == kind:
            out.append(rec)
    return out


def _healthz(url: str) -> bool:
    try:
        return httpx.get(url + "healthz", timeout=1).status_code in (200, 503)
    except httpx.HTTPError:
        return False


def test_paper_run_watched_and_killed_from_the_page(tmp_path: Path) -> None:
    require(importlib.util.find_spec("playwright") is not None, "Playwright is not installed")
    executable = chromium_path()
    require(executable is not None, "Debian chromium is missing (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    logs = tmp_path / "logs"
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DASHBOARD_"))}
    env.update({"LOG_DIR": str(logs), "DASHBOARD_TOKEN": TOKEN, "MODE": "test"})
    cmd = [
        sys.executable,
        "-m",
        "fabio.cli",
        "run",
        "--speed",
        SPEED,
        "--brain",
        "rules",
        "--dashboard",
        "--port",
        str(port),
        "--json",
    ]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    problems: list[str] = []
    try:
        _wait(lambda: _healthz(url), 60, "the dashboard to listen", proc)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)  # waits bound a hang; a busy machine is slower
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']", timeout=60_000)

            # the price, then a fill rendered within seconds of being journaled
            page.wait_for_function(
                "() => /\\d/.test(document.querySelector('[data-symbol] .price')?.textContent)",
                timeout=60_000,
            )
            execution = logs / "execution.jsonl"
            _wait(lambda: _records(execution, "fill"), 90, "a fill in the journal", proc)
            page.wait_for_function(
                "() => Number(document.querySelector('[data-symbol] .chart')?.dataset.markers)"
                " >= 1",
                timeout=60_000,
            )
            symbol = page.get_attribute("[data-symbol]", "data-symbol")
            assert symbol == "ESH4"

            # the kill switch without a token: refused, the agent keeps running
            seq_before = int(page.get_attribute("body", "data-seq") or 0)
            page.fill("#token", "")
            page.click("#kill")
            page.wait_for_function(
                "() => document.getElementById('message').textContent.includes('401')"
            )
            assert _records(execution, "kill_switch") == []
            assert page.get_attribute(".risk-state", "data-state") == "active"
            page.wait_for_function(f"() => Number(document.body.dataset.seq) > {seq_before}")
            assert proc.poll() is None

            # with the token: engaged, the page shows it, the agent halts and goes flat
            page.fill("#token", TOKEN)
            page.fill("#reason", "browser test")
            page.click("#kill")
            page.wait_for_function(
                "() => document.getElementById('message').textContent.includes('engaged')"
            )
            page.wait_for_selector(".risk-state[data-state='kill_switch']", timeout=60_000)
            [kill] = _records(execution, "kill_switch")
            assert kill["engaged"] and kill["source"] == "dashboard"
            assert kill["reason"] == "browser test"
            page.wait_for_function(
                "() => document.querySelector('[data-field=side]').textContent === 'flat'",
                timeout=60_000,
            )
            killed_at = time.monotonic()
            entries_at_kill = len(_records(execution, "entry"))
            fills = len(_records(execution, "fill"))
            page.wait_for_function(  # the chart redraws a moment after the last fill
                f"() => document.querySelector('.chart').dataset.markers === '{fills}'",
                timeout=60_000,
            )
            closed = page.inner_text("[data-field=closed_trades]")

            # a reload shows the same state
            page.reload()
            page.wait_for_selector("body[data-ready='1']", timeout=60_000)
            assert page.get_attribute(".risk-state", "data-state") == "kill_switch"
            assert page.inner_text("[data-field=closed_trades]") == closed
            assert page.inner_text("[data-field=side]") == "flat"
            page.wait_for_function(
                f"() => document.querySelector('.chart').dataset.markers === '{fills}'",
                timeout=60_000,
            )
            assert page.inner_text("[data-field=risk_reason]").startswith("browser test")
            browser.close()
        # halted: market time went on (3 s of wall time is 7.5 min of market) with no entry
        time.sleep(max(0.0, 3.0 - (time.monotonic() - killed_at)))
        assert proc.poll() is None
        assert len(_records(execution, "entry")) == entries_at_kill

        proc.send_signal(signal.SIGTERM)  # graceful: journal, exit 0
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert json.loads(out)["symbol"] == "ESH4"
        assert _records(execution, "shutdown")
        assert TOKEN not in err  # a configured token is never printed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not [p for p in problems if "Content Security Policy" in p], problems
    expected = "the server responded with a status of 401"  # the refused kill, logged by chromium
    assert not [p for p in problems if expected not in p], problems


def test_two_symbols_side_by_side_and_hostile_text_stays_text(tmp_path: Path) -> None:
    require(importlib.util.find_spec("playwright") is not None, "Playwright is not installed")
    executable = chromium_path()
    require(executable is not None, "Debian chromium is missing (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    from tests.dashboard.conftest import T0, exchange, session_start, trade_records, write

    logs = tmp_path / "logs"
    hostile = '<img src=x onerror="document.body.dataset.pwned=1">'
    write(
        logs / "execution.jsonl",
        [
            session_start(),
            session_start("NQH4"),
            *trade_records(),
            *trade_records("NQH4", entry=67000, exit_=67010),
        ],
    )
    write(
        logs / "llm_exchanges.jsonl",
        [
            exchange(T0, 4735.0, reasoning=hostile, notes=[hostile]),
            exchange(T0, 16750.0, symbol="NQH4", regime="range"),
        ],
    )
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DASHBOARD_"))}
    env["LOG_DIR"] = str(logs)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fabio.cli", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    problems: list[str] = []
    try:
        _wait(lambda: _healthz(url), 60, "fabio serve to listen", proc)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(60_000)
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']", timeout=60_000)
            page.wait_for_selector("[data-symbol='NQH4'] .chart canvas")
            es = page.locator("[data-symbol='ESH4']").bounding_box()
            nq = page.locator("[data-symbol='NQH4']").bounding_box()
            assert es is not None and nq is not None
            assert abs(es["y"] - nq["y"]) < 1 and nq["x"] > es["x"] + es["width"] / 2
            assert page.inner_text("[data-symbol='NQH4'] [data-field=closed_trades]") == "1"
            reasoning = page.inner_text("[data-symbol='ESH4'] .decision .reasoning")
            assert reasoning == hostile  # shown as text
            assert page.locator(".decisions img").count() == 0
            assert page.get_attribute("body", "data-pwned") is None
            browser.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert not problems, problems
