"""The dashboard server through real sockets: python-socketio client, httpx."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

from fabio.dashboard.security import ControlToken, control_token
from fabio.dashboard.server import DashboardServer
from fabio.errors import FabioError
from tests.dashboard.conftest import (
    NS,
    T0,
    TOKEN,
    exchange,
    hub_for,
    journal_records,
    running,
    session_start,
    trade_records,
    write,
)


class Recorder:
    """A python-socketio client that keeps every event it receives, in order."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, dict[str, Any]]] = []
        for name in ("snapshot", "trade_update", "decision", "risk", "status"):
            self.client.on(name, self._keep(name))

    def _keep(self, name: str) -> Any:
        async def handler(data: dict[str, Any]) -> None:
            self.events.append((name, data))

        return handler

    async def wait_for(self, predicate: Any, timeout: float = 60.0) -> tuple[str, dict[str, Any]]:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            for event in self.events:
                if predicate(event):
                    return event
            await asyncio.sleep(0.02)
        raise AssertionError(f"no matching event in {[n for n, _ in self.events]}")


def test_snapshot_on_connect_then_events_in_order_and_reconnect(tmp_path: Path) -> None:
    write(tmp_path / "execution.jsonl", [session_start(), *trade_records()[:2]])
    write(tmp_path / "llm_exchanges.jsonl", [exchange(T0, 4735.0, notes=["watch the VAH"])])

    async def go() -> None:
        async with running(tmp_path) as server:
            rec = Recorder()
            await rec.client.connect(server.url.rstrip("/"), transports=["websocket"])
            _, snap = await rec.wait_for(lambda e: e[0] == "snapshot")
            es = snap["symbols"]["ESH4"]
            assert es["trade_update"]["position"]["side"] == "long"
            assert es["trade_update"]["position"]["qty"] == 2
            assert es["trade_update"]["position"]["entry"] == 4735.0
            assert es["decisions"][-1]["notes_to_future_self"] == ["watch the VAH"]
            assert es["status"]["price"] == 4735.0
            first_seq = snap["seq"]

            # the journal grows: the exit fill, then another decision
            write(tmp_path / "execution.jsonl", trade_records()[2:])
            write(
                tmp_path / "llm_exchanges.jsonl",
                [exchange(T0 + 120 * NS, 4738.5, regime="range", reasoning="back in value")],
            )
            _, update = await rec.wait_for(
                lambda e: e[0] == "trade_update" and e[1].get("fill", {}).get("kind") == "exit"
            )
            assert update["position"] == {}
            # spec fields the dashboard code reads
            for key in (
                "symbol",
                "position",
                "pnl",
                "strategy_performance",
                "active_strategies",
                "market_assessment",
            ):
                assert key in update
            assert update["pnl"]["realized_today_usd"] == pytest.approx(10 * 12.5 * 2 - 5.0)
            await rec.wait_for(
                lambda e: e[0] == "decision" and e[1]["decision"]["regime"] == "range"
            )
            seqs = [d["seq"] for n, d in rec.events if n != "snapshot"]
            assert seqs == list(range(first_seq + 1, first_seq + 1 + len(seqs)))
            names = [n for n, _ in rec.events if n in ("trade_update", "decision")]
            assert names.index("trade_update") < names.index("decision")  # journal order
            await rec.client.disconnect()

            again = Recorder()  # a page opened late sees everything
            await again.client.connect(server.url.rstrip("/"), transports=["websocket"])
            _, snap2 = await again.wait_for(lambda e: e[0] == "snapshot")
            es2 = snap2["symbols"]["ESH4"]
            assert es2["trade_update"]["pnl"]["closed_trades"] == 1
            assert es2["trade_update"]["market_assessment"]["regime"] == "range"
            assert [m["kind"] for m in es2["markers"]] == ["entry", "exit"]
            assert snap2["seq"] >= seqs[-1]
            await again.client.disconnect()

    asyncio.run(go())


def test_two_symbols_and_a_torn_line(tmp_path: Path) -> None:
    write(
        tmp_path / "execution.jsonl",
        [session_start(), session_start("NQH4"), *trade_records("NQH4", entry=67000, exit_=67010)],
    )
    with (tmp_path / "execution.jsonl").open("a") as fh:
        fh.write('{"type": "fill", "ts_ns": 1\n')  # torn mid-file line, then a good one
    write(
        tmp_path / "llm_exchanges.jsonl",
        [exchange(T0, 4735.0), exchange(T0, 16750.0, symbol="NQH4")],
    )

    async def go() -> None:
        async with running(tmp_path) as server, httpx.AsyncClient() as http:
            snap = (await http.get(server.url + "api/snapshot")).json()
            assert sorted(snap["symbols"]) == ["ESH4", "NQH4"]
            nq = snap["symbols"]["NQH4"]["trade_update"]
            assert nq["pnl"]["realized_today_usd"] == pytest.approx(10 * 5.0 * 2 - 5.0)
            assert any("unreadable line skipped" in p for p in snap["problems"])

    asyncio.run(go())


def test_controls_need_the_token_and_validate_input(tmp_path: Path) -> None:
    write(tmp_path / "execution.jsonl", [session_start()])

    async def go() -> None:
        async with running(tmp_path) as server, httpx.AsyncClient() as http:
            kill = server.url + "api/kill"
            r = await http.post(kill, json={"reason": "x"})
            assert r.status_code == 401
            # the token is checked before the body: no token, a bad body -> 401, input not echoed
            for bad_body in ({"other": "<script>x</script>"}, {"reason": "a" * 201}):
                r = await http.post(kill, json=bad_body)
                assert r.status_code == 401, r.text
                assert "script" not in r.text and "aaaa" not in r.text
            r = await http.post(kill, content=b"not json at all")
            assert r.status_code == 401
            r = await http.post(
                kill,
                json={"reason": "x"},
                headers={"Authorization": "Bearer wrong-token-123456789"},
            )
            assert r.status_code == 403
            journal = tmp_path / "execution.jsonl"
            assert journal_records(journal, "kill_switch") == []
            auth = {"Authorization": f"Bearer {TOKEN}"}
            for bad in (
                {"reason": "a" * 201},
                {"reason": "line\nbreak"},
                {"other": 1},
                {"reason": ""},
            ):
                r = await http.post(kill, json=bad, headers=auth)
                assert r.status_code == 422, bad
                assert "aaaa" not in r.text and "break" not in r.text
            r = await http.post(kill, json={"reason": "news in 2 min"}, headers=auth)
            assert r.status_code == 200
            [engaged] = journal_records(journal, "kill_switch")
            assert engaged["engaged"] and engaged["source"] == "dashboard"
            assert engaged["reason"] == "news in 2 min"
            snap = (await http.get(server.url + "api/snapshot")).json()
            risk = snap["symbols"]["ESH4"]["risk"]
            assert risk["trading_state"] == "kill_switch"
            assert risk["kill_switch"]["engaged"]
            r = await http.post(server.url + "api/release", json={"reason": "ok"}, headers=auth)
            assert r.status_code == 200
            assert not journal_records(journal, "kill_switch")[-1]["engaged"]
            snap = (await http.get(server.url + "api/snapshot")).json()
            assert snap["symbols"]["ESH4"]["risk"]["trading_state"] == "active"
            # the token never reaches the page or the snapshot
            for path in ("", "api/snapshot", "static/app.js", "healthz"):
                body = (await http.get(server.url + path)).text
                assert TOKEN not in body

    asyncio.run(go())


def test_headers_hosts_static_and_health(tmp_path: Path) -> None:
    async def go() -> None:
        async with running(tmp_path) as server, httpx.AsyncClient() as http:
            page = await http.get(server.url)
            assert page.status_code == 200
            csp = page.headers["content-security-policy"]
            assert "script-src 'self';" in csp and "unsafe-eval" not in csp
            assert "frame-ancestors 'none'" in csp
            assert page.headers["x-frame-options"] == "DENY"
            assert "server" not in page.headers
            assert "<script" in page.text and "http" not in page.text.split("<body>")[0]
            assert "unsafe-inline" not in csp
            js = await http.get(server.url + "static/uPlot.iife.min.js")
            assert js.status_code == 200 and js.content.startswith(b"/* Vendored")
            assert (await http.get(server.url + "static/..%2Fserver.py")).status_code == 404
            assert (await http.get(server.url + "static/index.html")).status_code == 404
            rebound = await http.get(server.url, headers={"Host": "attacker.example"})
            assert rebound.status_code == 421
            # no agent yet: nothing fresh to report, so a monitor sees 503
            health = await http.get(server.url + "healthz")
            assert health.status_code == 503 and health.json()["status"] == "degraded"
            server.hub.on_event(
                {
                    "type": "heartbeat",
                    "symbol": "ESH4",
                    "ts_ns": T0,
                    "market_ts_ns": T0,
                    "last_price": 4735.25,
                }
            )
            health = await http.get(server.url + "healthz")
            assert health.status_code == 200
            body = health.json()["symbols"]["ESH4"]
            assert body["risk_state"] == "active" and body["tick_age_sec"] < 5
            server.hub.on_event(
                {
                    "type": "connection_state",
                    "symbol": "ESH4",
                    "ts_ns": T0,
                    "component": "venue",
                    "status": "disconnected",
                }
            )
            health = await http.get(server.url + "healthz")
            assert health.status_code == 503
            assert health.json()["symbols"]["ESH4"]["venue"] == "disconnected"

    asyncio.run(go())


def test_public_bind_needs_a_token() -> None:
    with pytest.raises(FabioError, match="DASHBOARD_TOKEN"):
        control_token(None, "0.0.0.0")
    with pytest.raises(FabioError, match="too short"):
        control_token("short", "0.0.0.0")
    assert control_token(TOKEN, "0.0.0.0").value == TOKEN
    local = control_token(None, "127.0.0.1")
    assert local.generated and len(local.value) >= 16
    assert local.value not in repr(local)


def test_an_account_wide_kill_switch_record_reaches_every_symbol(tmp_path: Path) -> None:
    kill = {
        "type": "kill_switch",
        "ts_ns": T0,
        "symbol": None,
        "engaged": True,
        "reason": "fomc",
        "source": "cli",
    }
    write(tmp_path / "execution.jsonl", [session_start(), kill, session_start("NQH4")])

    async def go() -> None:
        async with running(tmp_path) as server, httpx.AsyncClient() as http:
            snap = (await http.get(server.url + "api/snapshot")).json()
            for symbol in ("ESH4", "NQH4"):
                risk = snap["symbols"][symbol]["risk"]
                assert risk["trading_state"] == "kill_switch"
                assert risk["kill_switch"]["source"] == "cli"
                assert risk["reason"] == "fomc"

    asyncio.run(go())


def test_a_busy_port_is_one_clear_error(tmp_path: Path) -> None:
    async def go() -> None:
        async with running(tmp_path) as first:
            second = DashboardServer(
                hub_for(tmp_path), ControlToken(TOKEN), lambda *a: None, "127.0.0.1", first.port
            )
            with pytest.raises(FabioError, match=r"cannot listen on 127\.0\.0\.1"):
                await second.start()

    asyncio.run(go())
