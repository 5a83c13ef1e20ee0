"""Alerts through apprise to a local webhook receiver (json:// on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from fabio.dashboard.alerts import Alerter, AlertRules, parse_urls
from tests.dashboard.conftest import (
    NS,
    T0,
    TOKEN,
    running,
    session_start,
    trade_records,
    write,
)

API_KEY = "sk-live-abcdefghijklmnop1234"


class Receiver:
    """A webhook endpoint that keeps what it is sent."""

    def __init__(self) -> None:
        received = self.received = []  # type: list[dict[str, Any]]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


async def _until(predicate: Any, timeout: float = 60.0) -> None:  # bounds a hang only
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_rate_limit_holds_back_and_counts() -> None:
    now = [0.0]
    alerter = Alerter(["json://127.0.0.1:9/x"], min_interval_sec=60, clock=lambda: now[0])
    fill = {
        "symbol": "ESH4",
        "pnl": {},
        "fill": {"side": 1, "qty": 1, "price": 4700.0, "kind": "entry", "reason": "entry"},
    }

    async def go() -> list[Any]:
        for t in (0.0, 10.0, 20.0, 61.0):
            now[0] = t
            alerter.on_event("trade_update", fill)
        return [alerter._queue.get_nowait() for _ in range(alerter._queue.qsize())]

    queued = asyncio.run(go())
    assert len(queued) == 2
    assert "+2 similar held back" in queued[1].body


def test_rules_for_state_kill_disconnect_breaker_and_summary() -> None:
    rules = AlertRules(disconnect_sec=30)
    risk = {"symbol": "ESH4", "trading_state": "active", "kill_switch": {"engaged": False}}
    assert rules.alerts("risk", risk, 0) == []
    halted = {**risk, "trading_state": "halted", "reason": "daily loss limit"}
    [a] = rules.alerts("risk", halted, 1)
    assert a.title == "ESH4: risk halted" and a.level == "failure"
    killed = {**halted, "kill_switch": {"engaged": True, "reason": "news"}}
    [a] = rules.alerts("risk", killed, 2)
    assert "ENGAGED" in a.title and a.body == "news"
    down = {"symbol": "ESH4", "connections": {"venue": "reconnecting"}}
    assert rules.alerts("status", down, 100) == []
    assert rules.alerts("status", down, 129) == []
    [a] = rules.alerts("status", down, 131)
    assert "venue reconnecting" in a.title
    assert rules.alerts("status", down, 200) == []  # once per outage
    [a] = rules.alerts("status", {"symbol": "ESH4", "connections": {"venue": "connected"}}, 201)
    assert "reconnected" in a.title
    breaker = {"symbol": "ESH4", "decision": {"fallback_reason": "circuit breaker open"}}
    [a] = rules.alerts("decision", breaker, 0)
    assert "LLM breaker" in a.title
    [a] = rules.alerts(
        "session",
        {
            "symbol": "ESH4",
            "event": "end",
            "trade_date": "2024-01-02",
            "trades": 3,
            "realized_usd": 120.5,
            "balance_usd": 50120.5,
            "trading_state": "active",
        },
        0,
    )
    assert "3 trades" in a.body and "$120.50" in a.body
    assert parse_urls(" json://a/b,  ntfy://topic\ntgram://x/y ") == [
        "json://a/b",
        "ntfy://topic",
        "tgram://x/y",
    ]


def test_alerts_reach_a_local_webhook_without_secrets(tmp_path: Path, receiver: Receiver) -> None:
    write(tmp_path / "execution.jsonl", [session_start(), *trade_records()])  # history

    async def go() -> None:
        alerter = Alerter(
            [receiver.url], min_interval_sec=0.0, disconnect_sec=0.3, secrets=[TOKEN, API_KEY]
        )
        async with running(tmp_path, alerter=alerter) as server, httpx.AsyncClient() as http:
            await asyncio.sleep(0.5)
            assert receiver.received == []  # the history sends nothing
            write(tmp_path / "execution.jsonl", trade_records(trade="T2", ts=T0 + 600 * NS))
            await _until(lambda: len(receiver.received) >= 2)
            titles = [m["title"] for m in receiver.received]
            assert titles[:2] == ["ESH4: entry fill", "ESH4: exit fill"]
            r = await http.post(
                server.url + "api/kill",
                json={"reason": f"key {API_KEY} token {TOKEN}"},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert r.status_code == 200
            await _until(
                lambda: any("kill switch ENGAGED" in m["title"] for m in receiver.received)
            )
            server.hub.on_event(
                {
                    "type": "connection_state",
                    "symbol": "ESH4",
                    "ts_ns": T0,
                    "component": "venue",
                    "status": "disconnected",
                }
            )
            await _until(lambda: any("venue disconnected" in m["title"] for m in receiver.received))
        text = json.dumps(receiver.received)
        assert API_KEY not in text and TOKEN not in text and "[redacted]" in text
        assert alerter.failures == 0

    asyncio.run(go())


def test_a_dead_receiver_costs_a_logged_failure_only(tmp_path: Path) -> None:
    async def go() -> None:
        alerter = Alerter(["json://127.0.0.1:9/nobody"], min_interval_sec=0.0)
        async with running(tmp_path, alerter=alerter) as server:
            server.hub.on_event(
                {
                    "type": "kill_switch",
                    "symbol": "ESH4",
                    "ts_ns": T0,
                    "engaged": True,
                    "reason": "x",
                    "source": "cli",
                }
            )
            await _until(lambda: alerter.failures >= 1)
            assert (await asyncio.to_thread(httpx.get, server.url + "api/snapshot")).is_success

    asyncio.run(go())


def test_a_run_without_the_dashboard_still_alerts(tmp_path: Path, receiver: Receiver) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DASHBOARD_"))}
    env.update(
        {
            "LOG_DIR": str(tmp_path / "logs"),
            "ALERT_URLS": receiver.url,
            "ALERT_MIN_INTERVAL_SEC": "0",
        }
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fabio.cli",
            "run",
            "--speed",
            "300",
            "--duration",
            "90m",
            "--brain",
            "rules",
            "--quiet",
            "--json",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    titles = [m["title"] for m in receiver.received]
    assert "ESH4: entry fill" in titles, titles
    assert receiver.url not in json.dumps(receiver.received)
