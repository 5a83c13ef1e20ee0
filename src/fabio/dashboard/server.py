"""The dashboard server: FastAPI + python-socketio on one uvicorn, in the agent's process or not.

`Hub` keeps one `SymbolBoard` per symbol, fed by the journals under the logs folder (every agent,
running or finished) and, in the agent's process, by the event bus. Socket.IO events:
`snapshot` (everything, on connect), `trade_update`, `decision`, `risk`, `status`; each carries
a `seq` that increases by one per event so a client can tell it missed none. Control actions
(kill, release) are HTTP POSTs that need the token; viewing is open on localhost.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import socketio
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fabio.dashboard.alerts import Alerter
from fabio.dashboard.board import SymbolBoard
from fabio.dashboard.journals import JournalFollower
from fabio.dashboard.security import SECURITY_HEADERS, ControlToken, allowed_hosts
from fabio.errors import FabioError
from fabio.events import Event
from fabio.execution.risk import RiskConfig
from fabio.instruments import parse_symbol
from fabio.listen import bind_listener
from fabio.strategies import StrategyParams

POLL_SEC = 0.2
STATUS_SEC = 1.0
STALE_TICK_SEC = 120.0
Source = Literal["dashboard", "cli", "risk"]
KillAction = Callable[[bool, str, Source], Awaitable[None] | None]
Sink = Callable[[str, dict[str, Any]], None]


def _static_files() -> dict[str, tuple[Path, str]]:
    here = Path(str(resources.files("fabio.dashboard") / "static"))
    js, css = "text/javascript; charset=utf-8", "text/css; charset=utf-8"
    return {
        "app.js": (here / "app.js", js),
        "app.css": (here / "app.css", css),
        "socket.io.min.js": (here / "socket.io.min.js", js),
        "uPlot.iife.min.js": (here / "uPlot.iife.min.js", js),
        "uPlot.min.css": (here / "uPlot.min.css", css),
    }


class ControlRequest(BaseModel):
    """A kill or release from the page (or any HTTP client holding the token)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field("dashboard", min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]*$")


@dataclass(slots=True)
class HubConfig:
    log_dir: Path
    risk: RiskConfig
    strategies: dict[str, StrategyParams]
    stale_tick_sec: float = STALE_TICK_SEC


@dataclass(slots=True)
class Hub:
    """The boards and the order in which their events leave."""

    config: HubConfig
    boards: dict[str, SymbolBoard] = field(default_factory=dict)
    seq: int = 0
    sinks: list[Sink] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    _follower: JournalFollower | None = None
    _account_records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    catching_up: bool = False

    def __post_init__(self) -> None:
        self._follower = JournalFollower(self.config.log_dir)

    def board(self, label: str, symbol: str) -> SymbolBoard | None:
        key = f"{label}/{symbol}" if label else symbol
        board = self.boards.get(key)
        if board is None:
            try:
                spec = parse_symbol(symbol).spec
            except Exception as exc:  # a foreign or garbled symbol: report, do not crash
                self.problems.append(f"record for unknown symbol {symbol!r} skipped: {exc}")
                return None
            board = SymbolBoard(key, spec, self.config.risk, self.config.strategies, label)
            board.quiet = self.catching_up
            board.ledger.symbol = symbol
            self.boards[key] = board
            for record in self._account_records.get(label, []):
                board.apply(record)  # account-wide history (kill switch) before its first event
        return board

    def ingest(self, record: dict[str, Any], label: str = "", wall: float | None = None) -> None:
        """Fold one record (journal line or bus event) and send what it changes."""
        symbol = record.get("symbol")
        if symbol is None and record.get("type") != "llm_exchange":
            self._account_record(record, label, wall)
            return
        if not isinstance(symbol, str) or not symbol:
            return
        board = self.board(label, symbol)
        if board is None:
            return
        for name, payload in board.apply(record, wall):
            self.send(name, payload)

    def _account_record(self, record: dict[str, Any], label: str, wall: float | None) -> None:
        """A record for the whole account (e.g. the kill switch): every symbol of its folder."""
        self._account_records.setdefault(label, []).append(record)
        for board in self.boards.values():
            if board.source == label:
                for name, payload in board.apply(record, wall):
                    self.send(name, payload)

    def on_event(self, event: Event | dict[str, Any]) -> None:
        """An event bus subscriber (in the agent's process): fold it, stamped with now.

        A journaled event is left to the journal (read a moment later) so that it is folded
        once; the bus adds what is never journaled: prices, heartbeats, connection states.
        """
        if isinstance(event, Event):
            if event.journaled:
                return
            record = event.to_record()
        else:
            record = event
        self.ingest(record, "", time.time())

    def send(self, name: str, payload: dict[str, Any]) -> None:
        self.seq += 1
        payload["seq"] = self.seq
        for sink in self.sinks:
            sink(name, payload)

    def poll(self, catch_up: bool = False) -> int:
        """Read what the journals gained; the number of records read.

        `catch_up`: the history at start-up, folded without building events nobody awaits.
        """
        assert self._follower is not None
        n = 0
        self.catching_up = catch_up
        for label, record in self._follower.poll():
            self.ingest(record, label)
            n += 1
        self.catching_up = False
        for board in self.boards.values():
            board.quiet = False
        return n

    def status_events(self) -> Iterator[tuple[str, dict[str, Any]]]:
        now = time.time()
        for board in self.boards.values():
            yield "status", board.status_tick(now)

    def snapshot(self) -> dict[str, Any]:
        follower_problems = self._follower.problems[-5:] if self._follower else []
        return {
            "seq": self.seq,
            "server_time": time.time(),
            "symbols": {k: b.snapshot() for k, b in sorted(self.boards.items())},
            "problems": (self.problems + follower_problems)[-10:],
        }

    def health(self) -> tuple[bool, dict[str, Any]]:
        now = time.time()
        symbols = {}
        healthy = bool(self.boards)
        for key, b in self.boards.items():
            age = b.tick_age_sec(now)
            risk = b.risk()
            connections = b.agent_status.connections
            venue = connections.get("venue") or next(iter(connections.values()), None)
            stale = age is None or age > self.config.stale_tick_sec
            if stale or venue == "disconnected":
                healthy = False
            symbols[key] = {
                "tick_age_sec": None if age is None else round(age, 1),
                "venue": venue,
                "risk_state": risk["trading_state"],
                "position": b.position() or None,
            }
        return healthy, {
            "status": "ok" if healthy else "degraded",
            "symbols": symbols,
            "stale_after_sec": self.config.stale_tick_sec,
        }


async def follow(hub: Hub) -> None:
    """Poll the journals and send the once-a-second status, until cancelled."""
    last_status = 0.0
    while True:
        try:
            hub.poll()
        except Exception as exc:  # a view must never take the agent down
            hub.problems.append(f"journal poll failed: {type(exc).__name__}: {exc}")
        now = time.monotonic()
        if now - last_status >= STATUS_SEC:
            last_status = now
            for name, payload in list(hub.status_events()):
                hub.send(name, payload)
        await asyncio.sleep(POLL_SEC)


class AlertWatcher:
    """Alerts without a dashboard (`fabio run` with ALERT_URLS and no `--dashboard`)."""

    def __init__(self, hub: Hub, alerter: Alerter) -> None:
        self.hub = hub
        self.alerter = alerter
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.hub.poll(catch_up=True)  # the history sends nothing
        self.hub.sinks.append(self.alerter.on_event)
        self.alerter.start()
        self._task = asyncio.get_running_loop().create_task(follow(self.hub))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.hub.poll()  # what the agent journaled last (its shutdown, a final fill)
        await self.alerter.stop()


class NoSignalServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the process decides what SIGTERM means."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class DashboardServer:
    """The ASGI app (FastAPI + Socket.IO), its poller and its uvicorn server."""

    def __init__(
        self,
        hub: Hub,
        token: ControlToken,
        kill: KillAction,
        host: str = "127.0.0.1",
        port: int = 8765,
        alerter: Alerter | None = None,
    ) -> None:
        self.hub = hub
        self.token = token
        self.kill_action = kill
        self.host = host
        self.port = port
        self.sio = socketio.AsyncServer(async_mode="asgi", logger=False, engineio_logger=False)
        self.api = self._build_api()
        self.app = socketio.ASGIApp(self.sio, other_asgi_app=self.api, socketio_path="socket.io")
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.server: uvicorn.Server | None = None
        hub.sinks.append(lambda name, payload: self._queue.put_nowait((name, payload)))
        self.alerter = alerter
        self.sio.on("connect", self._on_connect)

    # ---------------------------------------------------------------- socket.io
    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        if not self._host_ok(_header(environ, "HTTP_HOST")):
            return False
        await self.sio.emit("snapshot", self.hub.snapshot(), to=sid)
        return True

    def _host_ok(self, host: str | None) -> bool:
        allowed = allowed_hosts(self.host, self.port)
        return not allowed or (host or "") in allowed

    async def _broadcast(self) -> None:
        while True:
            name, payload = await self._queue.get()
            await self.sio.emit(name, payload)

    async def _poll(self) -> None:
        await follow(self.hub)

    # ---------------------------------------------------------------- http
    def _build_api(self) -> FastAPI:
        api = FastAPI(title="Fabio dashboard", docs_url=None, redoc_url=None, openapi_url=None)
        static = _static_files()
        index = Path(str(resources.files("fabio.dashboard") / "static" / "index.html"))

        @api.middleware("http")
        async def guard(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            if not self._host_ok(request.headers.get("host")):
                response: Response = JSONResponse({"error": "host not allowed"}, 421)
            else:
                response = await call_next(request)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        @api.get("/")
        async def page() -> FileResponse:
            return FileResponse(index, media_type="text/html; charset=utf-8")

        @api.get("/static/{name}")
        async def asset(name: str) -> Response:
            entry = static.get(name)
            if entry is None:
                return JSONResponse({"error": "not found"}, 404)
            response = FileResponse(entry[0], media_type=entry[1])
            response.headers["Cache-Control"] = "private, max-age=3600"
            return response

        @api.get("/healthz")
        async def healthz() -> JSONResponse:
            healthy, body = self.hub.health()
            return JSONResponse(body, 200 if healthy else 503)

        @api.get("/api/snapshot")
        async def snapshot() -> JSONResponse:
            return JSONResponse(self.hub.snapshot())

        @api.post("/api/kill")
        async def kill(request: Request) -> JSONResponse:
            return await self._control(request, True)

        @api.post("/api/release")
        async def release(request: Request) -> JSONResponse:
            return await self._control(request, False)

        return api

    async def _control(self, request: Request, engage: bool) -> JSONResponse:
        """The token first (401/403 before the body is read), then the body (422, not echoed)."""
        presented = request.headers.get("authorization", "")
        token = (
            presented.removeprefix("Bearer ").strip() if presented.startswith("Bearer ") else None
        )
        if token is None:
            return JSONResponse({"error": "a token is required (Authorization: Bearer …)"}, 401)
        if not self.token.matches(token):
            return JSONResponse({"error": "wrong token"}, 403)
        raw = await request.body()
        try:
            body = ControlRequest.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            fields = sorted({".".join(map(str, e["loc"])) or "body" for e in exc.errors()})
            return JSONResponse(
                {"error": f"invalid request: {', '.join(fields)} (a JSON object {{reason}})"}, 422
            )
        result = self.kill_action(engage, body.reason, "dashboard")
        if result is not None:
            await result
        self.hub.poll()
        return JSONResponse({"ok": True, "kill_switch": "engaged" if engage else "released"})

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Serve on host:port until `stop` (the port is bound when this returns)."""
        self.hub.poll(catch_up=True)  # the history first: alerts are for what happens from now on
        if self.alerter is not None:
            self.hub.sinks.append(self.alerter.on_event)
            self.alerter.start()
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="auto",
            server_header=False,
        )
        self.server = NoSignalServer(config)
        sock = self._bind()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._broadcast()),
            loop.create_task(self._poll()),
            loop.create_task(self.server.serve(sockets=[sock])),
        ]
        while not self.server.started:
            if self._tasks[2].done():
                await self.stop()
                raise FabioError(f"the dashboard could not start on {self.host}:{self.port}")
            await asyncio.sleep(0.02)

    def _bind(self) -> socket.socket:
        """The listening socket, bound here so that a busy port is one clear error."""
        sock = bind_listener(self.host, self.port, "the dashboard")
        self.port = int(sock.getsockname()[1])
        return sock

    async def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        for task in self._tasks[:2]:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, SystemExit):
                await task
        self._tasks = []
        if self.alerter is not None:
            self.hub.poll()  # what the agent journaled last (its shutdown, a final fill)
            await self.alerter.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"


def _header(environ: dict[str, Any], key: str) -> str | None:
    value = environ.get(key)
    return value if isinstance(value, str) else None
