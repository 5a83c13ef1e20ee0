"""The simulator's HTTP side: the gateway's REST endpoints, the SignalR hubs, faults, /sim/*.

Hubs speak SignalR's JSON protocol over WebSockets: `POST …/negotiate`, the handshake
(`{"protocol":"json","version":1}` answered by `{}`), invocations (type 1), completions (3),
pings (6) both ways and close (7); records end with 0x1e. Tokens come in `?access_token=` or an
`Authorization: Bearer` header, on the negotiate and the socket.

Faults (`SimFaults`), each independent: hubs dropped every N seconds; HTTP 429 / 500 on a share of
authenticated REST calls (a 500 on Order/place happens before the order is taken); order
placements accepted but their answer lost (held, then a 504, so the client times out); tokens
expiring N seconds after issue (REST 401, hub sockets closed, negotiate 401); a share of orders
rejected; Position-Brackets mode (bracket orders refused).

Test-only endpoints (`/sim/*`, served by the simulator alone, never by a gateway):
- `GET /sim/orders`: every order with its tag, origin, status and fills, and `duplicate_tags`.
- `GET /sim/state`: account, positions, counters, replay progress.
- `POST /sim/close {"contractId"}`: a trader closes the contract's position at market by hand in
  the platform; the order is untagged (none of the agent's) and announced on the user hub like
  any order (GatewayUserOrder, GatewayUserTrade, GatewayUserPosition, GatewayUserAccount).
- `POST /sim/cancel {"orderId"}` or `{"contractId"}`: cancel that order, or every working stop
  order of the contract (the venue or a trader cancelling the agent's stop); GatewayUserOrder.
- `POST /sim/pause`, `POST /sim/resume`: hold the replay (market time stops, nothing matches)
  and let it go on from where it stopped, e.g. to compare the venue with a client's books.
Python hooks: `GatewaySim.observers` are called with every user-hub event (target, payload) as
the venue makes it, before any client hears of it (the chaos harness kills the agent there).
The replay and the matching go on whether or not a client is connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from fabio.brokers.projectx.parsing import format_ts
from fabio.brokers.projectx.sim.replay import Print, Replay
from fabio.brokers.projectx.sim.venue import (
    PlaceRefused,
    SimAccount,
    SimContract,
    SimVenue,
)

log = logging.getLogger("fabio.gateway_sim")

RS = "\x1e"
Observer = Callable[[str, dict[str, Any]], None]  # (user-hub target, payload)
PING = json.dumps({"type": 6}) + RS


@dataclass(frozen=True, slots=True)
class SimFaults:
    disconnect_every_sec: float | None = None
    http_429_rate: float = 0.0
    http_500_rate: float = 0.0
    lose_order_response_rate: float = 0.0
    lost_response_hold_sec: float = 10.0
    token_expiry_sec: float | None = None
    reject_rate: float = 0.0
    position_brackets: bool = False
    # A thin book: a resting limit order fills at most this many contracts per print (None:
    # up to the print's volume), so partial fills happen whatever the tape's print sizes.
    limit_fill_per_print: int | None = None
    # The first logins are answered with these HTTP statuses, in order (a 429 carries
    # `Retry-After: login_retry_after_sec`); the next ones as usual.
    login_failures: tuple[int, ...] = ()
    login_retry_after_sec: float = 1.0
    seed: int = 1


@dataclass(slots=True, eq=False)
class HubConn:
    ws: WebSocket
    hub: str
    token: str
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    accounts: set[int] = field(default_factory=set)  # SubscribeOrders/Positions/Trades
    account_events: bool = False  # SubscribeAccounts
    quotes: set[str] = field(default_factory=set)
    trades: set[str] = field(default_factory=set)
    depth: set[str] = field(default_factory=set)


class GatewaySim:
    """State of one simulated gateway: the venue, tokens, hub connections, faults, replay."""

    def __init__(
        self,
        contracts: list[SimContract],
        replay: Replay | None,
        faults: SimFaults | None = None,
        *,
        account_name: str = "PRAC-V2-SIM-50K",
        account_id: int = 11001,
        balance: float = 50_000.0,
        required_key: str | None = None,
    ) -> None:
        self.faults = faults or SimFaults()
        self.rng = random.Random(self.faults.seed)
        self.venue = SimVenue(
            contracts,
            SimAccount(account_id, account_name, balance),
            self._emit,
            auto_oco=not self.faults.position_brackets,
            limit_fill_per_print=self.faults.limit_fill_per_print,
        )
        self.replay = replay
        self.required_key = required_key
        self.tokens: dict[str, float] = {}  # token -> monotonic expiry
        self.conns: set[HubConn] = set()
        self.counters: Counter[str] = Counter()
        self._tasks: list[asyncio.Task[Any]] = []
        self.closing = asyncio.Event()  # set by `stop`: held responses are let go
        self.observers: list[Observer] = []  # see the module's docstring
        self.decoys = [
            SimContract("CON.F.US.JY6.Z26", "6JZ6", "Japanese Yen", 0.0000005, 6.25, "F.US.JY6"),
            SimContract("CON.F.US.FVA.Z26", "FVAZ6", "Volatility index", 0.05, 5.0, "F.US.FVA"),
        ]

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.replay is not None:
            self._tasks.append(loop.create_task(self.replay.run(self.on_prints)))
        if self.faults.disconnect_every_sec:
            self._tasks.append(loop.create_task(self._disconnector()))
        if self.faults.token_expiry_sec:
            self._tasks.append(loop.create_task(self._expirer()))

    async def stop(self) -> None:
        self.closing.set()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for conn in list(self.conns):
            with contextlib.suppress(Exception):
                await conn.ws.close()

    async def _disconnector(self) -> None:
        assert self.faults.disconnect_every_sec
        while True:
            await asyncio.sleep(self.faults.disconnect_every_sec)
            self.counters["fault_disconnect"] += 1
            await self.drop_connections("fault: disconnect")

    async def drop_connections(self, why: str) -> None:
        for conn in list(self.conns):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1011, reason=why[:100])

    async def _expirer(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            now = time.monotonic()
            for conn in list(self.conns):
                if self.tokens.get(conn.token, 0) <= now:
                    self.counters["fault_token_expired_socket"] += 1
                    with contextlib.suppress(Exception):
                        await conn.ws.close(code=1008, reason="token expired")

    # ------------------------------------------------------------------ market
    async def on_prints(self, prints: list[Print]) -> None:
        by_contract: dict[str, list[dict[str, Any]]] = {}
        quotes: dict[str, dict[str, Any]] = {}
        for ts, cid, price, size, side in prints:
            c = self.venue.contracts[cid]
            before = (c.bid, c.ask)
            bid, ask = (
                (price - 1, price)
                if side > 0
                else ((price, price + 1) if side < 0 else (c.bid or price - 1, c.ask or price + 1))
            )
            self.venue.on_quote(cid, bid, ask, ts)
            self.venue.on_trade(cid, price, size, ts)
            by_contract.setdefault(cid, []).append(
                {
                    "symbolId": c.symbol_id,
                    "price": price * c.tick_size,
                    "timestamp": format_ts(ts),
                    "type": 0 if side > 0 else (1 if side < 0 else None),
                    "volume": size,
                }
            )
            q = quotes.setdefault(cid, {"symbol": c.symbol_id})
            if (bid, ask) != before:
                q["bestBid"] = bid * c.tick_size
                q["bestAsk"] = ask * c.tick_size
            q["lastPrice"] = price * c.tick_size
            q["volume"] = c.volume
            q["timestamp"] = format_ts(ts)
            q["lastUpdated"] = format_ts(ts)
        for conn in list(self.conns):
            if conn.hub != "market":
                continue
            for cid, recs in by_contract.items():
                if cid in conn.quotes:
                    self._send(conn, "GatewayQuote", [cid, quotes[cid]])
                if cid in conn.trades:
                    self._send(conn, "GatewayTrade", [cid, recs])

    def _emit(self, target: str, key: Any, payload: dict[str, Any]) -> None:
        for observer in list(self.observers):
            observer(target, payload)
        for conn in list(self.conns):
            if conn.hub != "user":
                continue
            if target == "GatewayUserAccount":
                if conn.account_events:
                    self._send(conn, target, [payload])
            elif key in conn.accounts:
                self._send(conn, target, [payload])

    @staticmethod
    def _send(conn: HubConn, target: str, arguments: list[Any]) -> None:
        conn.queue.put_nowait(
            json.dumps({"type": 1, "target": target, "arguments": arguments}) + RS
        )

    # ------------------------------------------------------------------ auth
    def issue_token(self) -> str:
        token = secrets.token_urlsafe(24)
        life = self.faults.token_expiry_sec or 24 * 3600.0
        self.tokens[token] = time.monotonic() + life
        return token

    def token_ok(self, token: str | None) -> bool:
        return token is not None and self.tokens.get(token, 0) > time.monotonic()


def _bearer(headers: Any) -> str | None:
    value = headers.get("authorization") or ""
    return value[7:] if value.lower().startswith("bearer ") else None


def _ok(**fields: Any) -> JSONResponse:
    return JSONResponse({"success": True, "errorCode": 0, "errorMessage": None, **fields})


def _fail(code: int, message: str, **fields: Any) -> JSONResponse:
    return JSONResponse({"success": False, "errorCode": code, "errorMessage": message, **fields})


class _Api:
    """The simulator's endpoints (REST, hubs, /sim/*) over one GatewaySim."""

    def __init__(self, sim: GatewaySim) -> None:
        self.sim = sim

    async def body_of(self, request: Request) -> dict[str, Any]:
        try:
            data = await request.json()
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    async def login(self, request: Request) -> Response:
        body = await self.body_of(request)
        f = self.sim.faults
        attempt = self.sim.counters["login_attempt"]
        self.sim.counters["login_attempt"] += 1
        if attempt < len(f.login_failures):
            self.sim.counters["fault_login"] += 1
            status = f.login_failures[attempt]
            retry = {"Retry-After": f"{f.login_retry_after_sec:g}"} if status == 429 else {}
            return Response(status_code=status, headers=retry)
        user, key = body.get("userName"), body.get("apiKey")
        required = self.sim.required_key
        if not user or not key or (required is not None and key != required):
            self.sim.counters["login_refused"] += 1
            return _fail(3, "Invalid credentials", token=None)
        self.sim.counters["login"] += 1
        return _ok(token=self.sim.issue_token())

    async def validate(self, request: Request) -> Response:
        token = _bearer(request.headers)
        if not self.sim.token_ok(token):
            return Response(status_code=401)
        self.sim.counters["validate"] += 1
        return _ok(newToken=self.sim.issue_token())

    async def ping(self, request: Request) -> Response:
        return JSONResponse("pong")

    async def guarded(self, request: Request) -> tuple[dict[str, Any], Response | None]:
        """Auth and the injected HTTP faults shared by every authenticated endpoint."""
        if not self.sim.token_ok(_bearer(request.headers)):
            self.sim.counters["http_401"] += 1
            return {}, Response(status_code=401)
        f = self.sim.faults
        if f.http_429_rate and self.sim.rng.random() < f.http_429_rate:
            self.sim.counters["fault_429"] += 1
            return {}, Response(status_code=429, headers={"Retry-After": "0.2"})
        if f.http_500_rate and self.sim.rng.random() < f.http_500_rate:
            self.sim.counters["fault_500"] += 1
            return {}, Response(status_code=500)
        return await self.body_of(request), None

    async def accounts(self, request: Request) -> Response:
        _, refused = await self.guarded(request)
        return refused or _ok(accounts=[self.sim.venue.account.to_wire()])

    async def contract_search(self, request: Request) -> Response:
        body, refused = await self.guarded(request)
        if refused:
            return refused
        if body.get("live") is True:  # practice data tier: the live tier is empty, not an error
            return _ok(contracts=[])
        text = str(body.get("searchText") or "").upper()
        pool = [*self.sim.venue.contracts.values(), *self.sim.decoys]
        found = [
            c.to_wire()
            for c in pool
            if not text
            or text in c.name.upper()
            or text[:1] in c.product
            or text in c.description.upper()
        ]
        return _ok(contracts=found)

    async def contract_by_id(self, request: Request) -> Response:
        body, refused = await self.guarded(request)
        if refused:
            return refused
        c = self.sim.venue.contracts.get(str(body.get("contractId")))
        return _ok(contract=c.to_wire()) if c else _fail(1, "Contract not found", contract=None)

    async def place(self, request: Request) -> Response:
        body, refused = await self.guarded(request)
        if refused:
            return refused
        self.sim.counters["place"] += 1
        f = self.sim.faults
        if f.reject_rate and self.sim.rng.random() < f.reject_rate:
            self.sim.counters["fault_reject"] += 1
            return _fail(2, "Order rejected by risk (simulated)", orderId=None)
        try:
            order = self.sim.venue.place(body)
        except PlaceRefused as exc:
            return _fail(exc.code, exc.message, orderId=exc.order_id)
        if f.lose_order_response_rate and self.sim.rng.random() < f.lose_order_response_rate:
            self.sim.counters["fault_lost_response"] += 1
            order.response_lost = True
            # Held until the hold ends or the simulator stops (a shutdown does not wait for it).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.sim.closing.wait(), f.lost_response_hold_sec)
            return Response(status_code=504)
        return _ok(orderId=order.id)

    def simple(self, action: str) -> Any:
        async def handler(request: Request) -> Response:
            body, refused = await self.guarded(request)
            if refused:
                return refused
            try:
                getattr(self.sim.venue, action)(body)
            except PlaceRefused as exc:
                return _fail(exc.code, exc.message)
            return _ok()

        return handler

    async def search_open(self, request: Request) -> Response:
        body, refused = await self.guarded(request)
        if refused:
            return refused
        if body.get("accountId") != self.sim.venue.account.id:
            return _fail(1, "Account not found", orders=None)
        self.sim.counters["order_search_open"] += 1
        return _ok(
            orders=[
                self.sim.venue.order_wire(o)
                for o in self.sim.venue.orders.values()
                if o.status == 1
            ]
        )  # excludes Suspended children, like the gateway

    async def search_orders(self, request: Request) -> Response:
        body, refused = await self.guarded(request)
        if refused:
            return refused
        if body.get("accountId") != self.sim.venue.account.id:
            return _fail(1, "Account not found", orders=None)
        if "startTimestamp" not in body:  # the wrong field name is silently dropped: nothing
            return _ok(orders=[])
        self.sim.counters["order_search"] += 1
        return _ok(orders=[self.sim.venue.order_wire(o) for o in self.sim.venue.orders.values()])

    async def positions(self, request: Request) -> Response:
        body, refused = await self.guarded(request)
        if refused:
            return refused
        if body.get("accountId") != self.sim.venue.account.id:
            return _fail(1, "Account not found", positions=None)
        self.sim.counters["position_search"] += 1
        return _ok(positions=self.sim.venue.open_positions())

    async def trades(self, request: Request) -> Response:
        body, refused = await self.guarded(request)
        if refused:
            return refused
        if body.get("accountId") != self.sim.venue.account.id:
            return _fail(1, "Account not found", trades=None)
        self.sim.counters["trade_search"] += 1
        return _ok(trades=list(self.sim.venue.trades))

    async def sim_orders(self, request: Request) -> Response:
        log_ = self.sim.venue.order_log()
        tags = Counter(o["customTag"] for o in log_ if o["customTag"])
        return JSONResponse(
            {
                "orders": log_,
                "duplicate_tags": sorted(t for t, n in tags.items() if n > 1),
            }
        )

    async def sim_state(self, request: Request) -> Response:
        replay = self.sim.replay.stats if self.sim.replay else None
        return JSONResponse(
            {
                "account": self.sim.venue.account.to_wire(),
                "positions": self.sim.venue.open_positions(),
                "trades": len(self.sim.venue.trades),
                "counters": dict(self.sim.counters),
                "connections": len(self.sim.conns),
                "replay": None
                if replay is None
                else {"prints": replay.prints, "market_ts": replay.market_ns, "done": replay.done},
            }
        )

    async def sim_close(self, request: Request) -> Response:
        body = await self.body_of(request)
        try:
            order = self.sim.venue.manual_close(str(body.get("contractId")))
        except PlaceRefused as exc:
            return _fail(exc.code, exc.message, orderId=None)
        self.sim.counters["sim_close"] += 1
        return _ok(orderId=order.id)

    async def sim_cancel(self, request: Request) -> Response:
        body = await self.body_of(request)
        order_id, contract_id = body.get("orderId"), body.get("contractId")
        if order_id is not None and not isinstance(order_id, int):
            return _fail(2, "orderId must be an integer", cancelled=[])
        try:
            done = self.sim.venue.manual_cancel(
                order_id, None if contract_id is None else str(contract_id)
            )
        except PlaceRefused as exc:
            return _fail(exc.code, exc.message, cancelled=[])
        self.sim.counters["sim_cancel"] += len(done)
        return _ok(cancelled=done)

    async def sim_pause(self, request: Request) -> Response:
        if self.sim.replay is None:
            return _fail(2, "no replay")
        self.sim.replay.pause()
        return _ok()

    async def sim_resume(self, request: Request) -> Response:
        if self.sim.replay is None:
            return _fail(2, "no replay")
        self.sim.replay.resume()
        return _ok()

    async def negotiate(self, request: Request) -> Response:
        token = request.query_params.get("access_token") or _bearer(request.headers)
        if not self.sim.token_ok(token):
            self.sim.counters["negotiate_401"] += 1
            return Response(status_code=401)
        cid = uuid.uuid4().hex
        return JSONResponse(
            {
                "connectionId": cid,
                "connectionToken": cid,
                "negotiateVersion": 1,
                "availableTransports": [
                    {"transport": "WebSockets", "transferFormats": ["Text", "Binary"]}
                ],
            }
        )

    async def user_hub(self, ws: WebSocket) -> None:
        await _hub(self.sim, ws, "user")

    async def market_hub(self, ws: WebSocket) -> None:
        await _hub(self.sim, ws, "market")


def create_app(sim: GatewaySim) -> Starlette:
    """The ASGI app of a simulated gateway."""
    api = _Api(sim)
    routes = [
        Route("/api/Auth/loginKey", api.login, methods=["POST"]),
        Route("/api/Auth/validate", api.validate, methods=["POST"]),
        Route("/api/Status/ping", api.ping, methods=["GET"]),
        Route("/api/Account/search", api.accounts, methods=["POST"]),
        Route("/api/Contract/search", api.contract_search, methods=["POST"]),
        Route("/api/Contract/searchById", api.contract_by_id, methods=["POST"]),
        Route("/api/Order/place", api.place, methods=["POST"]),
        Route("/api/Order/modify", api.simple("modify"), methods=["POST"]),
        Route("/api/Order/cancel", api.simple("cancel"), methods=["POST"]),
        Route("/api/Order/searchOpen", api.search_open, methods=["POST"]),
        Route("/api/Order/search", api.search_orders, methods=["POST"]),
        Route("/api/Position/searchOpen", api.positions, methods=["POST"]),
        Route("/api/Position/closeContract", api.simple("close_contract"), methods=["POST"]),
        Route("/api/Trade/search", api.trades, methods=["POST"]),
        Route("/sim/orders", api.sim_orders, methods=["GET"]),
        Route("/sim/state", api.sim_state, methods=["GET"]),
        Route("/sim/close", api.sim_close, methods=["POST"]),
        Route("/sim/cancel", api.sim_cancel, methods=["POST"]),
        Route("/sim/pause", api.sim_pause, methods=["POST"]),
        Route("/sim/resume", api.sim_resume, methods=["POST"]),
        Route("/hubs/user/negotiate", api.negotiate, methods=["POST"]),
        Route("/hubs/market/negotiate", api.negotiate, methods=["POST"]),
        WebSocketRoute("/hubs/user", api.user_hub),
        WebSocketRoute("/hubs/market", api.market_hub),
    ]
    return Starlette(routes=routes)


async def _hub(sim: GatewaySim, ws: WebSocket, hub: str) -> None:
    token = ws.query_params.get("access_token") or _bearer(ws.headers)
    if not sim.token_ok(token):
        sim.counters["hub_401"] += 1
        await ws.close(code=1008)
        return
    assert token is not None
    await ws.accept()
    try:
        raw = await asyncio.wait_for(ws.receive_text(), timeout=10)
        hello = json.loads(raw.split(RS)[0])
        if hello.get("protocol") != "json":
            await ws.send_text(json.dumps({"error": "only the json protocol is supported"}) + RS)
            await ws.close()
            return
    except (TimeoutError, ValueError, WebSocketDisconnect, AttributeError):
        with contextlib.suppress(Exception):
            await ws.close()
        return
    await ws.send_text("{}" + RS)
    conn = HubConn(ws, hub, token)
    sim.conns.add(conn)
    sim.counters[f"{hub}_hub_connects"] += 1
    writer = asyncio.get_running_loop().create_task(_writer(conn))
    try:
        while True:
            raw = await ws.receive_text()
            for part in raw.split(RS):
                if not part:
                    continue
                msg = json.loads(part)
                kind = msg.get("type")
                if kind == 7:
                    return
                if kind == 1:
                    result = _invoke(sim, conn, msg.get("target", ""), msg.get("arguments") or [])
                    if msg.get("invocationId") is not None:
                        reply: dict[str, Any] = {"type": 3, "invocationId": msg["invocationId"]}
                        if result:
                            reply["error"] = result
                        conn.queue.put_nowait(json.dumps(reply) + RS)
    except (WebSocketDisconnect, RuntimeError, ValueError, asyncio.CancelledError):
        return
    finally:
        sim.conns.discard(conn)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer


async def _writer(conn: HubConn) -> None:
    last_ping = time.monotonic()
    while True:
        try:
            text = await asyncio.wait_for(conn.queue.get(), timeout=5.0)
        except TimeoutError:
            text = ""
        if time.monotonic() - last_ping > 10.0:
            await conn.ws.send_text(PING)
            last_ping = time.monotonic()
        if text:
            await conn.ws.send_text(text)


def _invoke(sim: GatewaySim, conn: HubConn, target: str, args: list[Any]) -> str | None:
    """Apply a hub invocation; the error text, or None."""
    user = {"SubscribeOrders", "SubscribePositions", "SubscribeTrades"}
    market = {
        "SubscribeContractQuotes": conn.quotes,
        "SubscribeContractTrades": conn.trades,
        "SubscribeContractMarketDepth": conn.depth,
    }
    if conn.hub == "user" and target == "SubscribeAccounts":
        conn.account_events = True
        return None
    if conn.hub == "user" and target in user:
        if not args or args[0] != sim.venue.account.id:
            return "Account not found"
        conn.accounts.add(int(args[0]))
        return None
    if conn.hub == "market" and target in market:
        if not args or str(args[0]) not in sim.venue.contracts:
            return "Contract not found"
        market[target].add(str(args[0]))
        return None
    if target.startswith("Unsubscribe"):
        return None
    return f"Unknown hub method '{target}'"
