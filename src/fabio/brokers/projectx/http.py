"""The gateway's REST API over httpx (async).

Every call is a POST with a Bearer token, except `Status/ping`. HTTP 200 is not success: the
`success` / `errorCode` envelope is checked on every answer. Tokens are renewed with `validate`
well before their 24 h life ends and on a 401; a validate that fails falls back to a fresh
login. A sliding-window limiter per credential keeps us under 200 calls / 60 s (50 / 30 s for
bars).

Money-moving calls (`Order/place`, `modify`, `cancel`, `Position/close*`) are never retried after
a timeout, 5xx, 429 or an uncertain error code: they raise `OrderUncertain` and the caller looks
the order up by its `customTag` before doing anything else. Only a 401 (the gateway did not
look at the request) is retried once, after renewing the token.

Login and validate are retried on a 429, a 5xx or a network error, with jittered exponential
backoff that honours `Retry-After`: for `login_retry_sec` (2 min) at start-up, then a one-line
error; indefinitely once the session runs (a re-login), saying so at most once a minute. Only a
refusal of the key, the username or the account (`success: false` with its error code, HTTP
401/403) is final.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from fabio.brokers.projectx.config import ProjectXConfig
from fabio.brokers.projectx.errors import (
    AuthError,
    GatewayError,
    OrderUncertain,
    RateLimited,
    VenueUnavailable,
)
from fabio.brokers.projectx.models import (
    LOGIN_ERRORS,
    PLACE_ERRORS,
    PLACE_UNCERTAIN_CODES,
    PxAccount,
    PxContract,
    PxFill,
    PxOrder,
    PxPosition,
)
from fabio.brokers.projectx.parsing import (
    parse_account,
    parse_contract,
    parse_fill,
    parse_order,
    parse_position,
)

log = logging.getLogger("fabio.projectx.http")

READ_RETRIES = 4
LOGIN_BACKOFF_INITIAL_SEC = 1.0
LOGIN_BACKOFF_MAX_SEC = 30.0
LOGIN_REPORT_EVERY_SEC = 60.0

StateCallback = Callable[[str, str], None]  # (status, detail), as the hubs report


class _Transient(Exception):
    """A login or validate answer worth retrying: 429, 5xx, a network error."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class SlidingWindowLimiter:
    """At most `limit` acquisitions in any `window_sec` (monotonic clock)."""

    def __init__(self, limit: int, window_sec: float, margin_sec: float = 0.05) -> None:
        self.limit = limit
        self.window = window_sec + margin_sec
        self._stamps: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                while self._stamps and now - self._stamps[0] >= self.window:
                    self._stamps.popleft()
                if len(self._stamps) < self.limit:
                    self._stamps.append(now)
                    return
                await asyncio.sleep(self.window - (now - self._stamps[0]))


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ProjectXHttp:
    """One authenticated session against the gateway's REST API."""

    def __init__(
        self,
        config: ProjectXConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_state: StateCallback | None = None,
    ) -> None:
        self.config = config
        self._client = httpx.AsyncClient(
            base_url=config.api_url,
            timeout=config.request_timeout_sec,
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self._token: str | None = None
        self._token_at = 0.0
        self._auth_lock = asyncio.Lock()
        self._monotonic = monotonic
        self._sleep = sleep  # injectable with `monotonic`: the retry tests do not really wait
        self._on_state = on_state
        self._limiter = SlidingWindowLimiter(config.requests_per_minute, 60.0)
        self._bars_limiter = SlidingWindowLimiter(config.bars_per_30s, 30.0)
        self.calls: dict[str, int] = {}

    async def aclose(self) -> None:
        await self._client.aclose()

    # ------------------------------------------------------------------ auth
    @property
    def has_token(self) -> bool:
        return self._token is not None

    async def token(self) -> str:
        """The current token, renewed first when it is old (used before every hub connect)."""
        if self._token is None:
            await self.login()
        elif self._monotonic() - self._token_at > self.config.revalidate_every_sec:
            await self.renew()
        assert self._token is not None
        return self._token

    async def login(self) -> None:
        """Log in at start-up: a busy or unreachable gateway is retried for
        `login_retry_sec`, a refused key, username or account fails at once."""
        async with self._auth_lock:
            await self._login_locked(self.config.login_retry_sec)

    async def _login_locked(self, budget_sec: float | None) -> None:
        """`budget_sec`: how long to keep retrying a transient failure (None: for ever)."""
        token = await self._retrying("Auth/loginKey", self._login_once, budget_sec)
        self._token = token
        self._token_at = self._monotonic()
        log.info("logged in to %s", self.config.api_url)

    async def _login_once(self) -> str:
        body = {
            "userName": self.config.username,
            "apiKey": self.config.api_key.get_secret_value(),
        }
        try:
            resp = await self._client.post("/api/Auth/loginKey", json=body)
        except httpx.HTTPError as exc:
            raise _Transient(_net_reason(exc)) from None
        _raise_transient(resp)
        if resp.status_code != 200:
            raise AuthError("Auth/loginKey", f"login refused (HTTP {resp.status_code})")
        data = _json(resp, "Auth/loginKey")
        if not data.get("success") or not data.get("token"):
            code = data.get("errorCode")
            why = LOGIN_ERRORS.get(code, "login refused") if isinstance(code, int) else "refused"
            raise AuthError("Auth/loginKey", f"login failed: {why}", code)
        return str(data["token"])

    async def _validate_once(self, token: str) -> str | None:
        """A new token from `validate`, or None when the gateway refuses the session."""
        try:
            resp = await self._client.post(
                "/api/Auth/validate", headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.HTTPError as exc:
            raise _Transient(_net_reason(exc)) from None
        _raise_transient(resp)
        if resp.status_code != 200:
            return None
        try:
            data = _json(resp, "Auth/validate")
        except GatewayError:
            return None
        new = data.get("newToken") if data.get("success") else None
        return str(new) if new else None

    async def _retrying(
        self, name: str, attempt: Callable[[], Awaitable[Any]], budget_sec: float | None
    ) -> Any:
        """`attempt()` until it answers, retrying `_Transient` failures with jittered
        exponential backoff (at least `Retry-After`); at most `budget_sec` (None: for ever,
        reported at most once a minute). Any other error is raised at once."""
        start = self._monotonic()
        reported: float | None = None
        failures = 0
        while True:
            try:
                result = await attempt()
            except _Transient as exc:
                failures += 1
                now = self._monotonic()
                waited = now - start
                delay = _login_delay(failures, exc.retry_after)
                if budget_sec is not None and waited + delay > budget_sec:
                    self._report("disconnected", f"{name}: {exc.reason}; gave up")
                    raise VenueUnavailable(
                        name,
                        f"gave up after {failures} attempts in {_duration(waited)}: "
                        f"{exc.reason}; try again later",
                    ) from None
                if reported is None or now - reported >= LOGIN_REPORT_EVERY_SEC:
                    reported = now
                    detail = f"{name}: {exc.reason}; retrying"
                    if waited > 0:
                        detail += f" (for {_duration(waited)} so far)"
                    log.warning("%s", detail)
                    self._report("retrying", detail)
                await self._sleep(delay)
                continue
            if failures:
                log.info("%s answered after %d failed attempts", name, failures)
                self._report("connected", "")
            return result

    def _report(self, status: str, detail: str) -> None:
        if self._on_state is not None:
            self._on_state(status, detail)

    async def renew(self, stale: str | None = None) -> None:
        """`validate` the session (new token); a refused validate falls back to a fresh login.

        `stale`: the token a caller saw refused; if another task has renewed since, do nothing.
        """
        async with self._auth_lock:
            if stale is not None and self._token != stale:
                return
            if self._token is None:
                await self._login_locked(self.config.login_retry_sec)
                return
            # Mid-session: a busy or unreachable gateway is waited for as long as it takes.
            current = self._token
            new = await self._retrying(
                "Auth/validate", lambda: self._validate_once(current), budget_sec=None
            )
            if new:
                self._token = new
                self._token_at = self._monotonic()
                return
            log.info("session validate refused: logging in again")
            await self._login_locked(None)

    # ------------------------------------------------------------------ transport
    async def _post(
        self,
        path: str,
        body: dict[str, Any],
        *,
        money: bool = False,
        bars: bool = False,
    ) -> dict[str, Any]:
        """POST with the token; returns the envelope's body or raises a GatewayError."""
        name = path.removeprefix("/api/")
        self.calls[name] = self.calls.get(name, 0) + 1
        attempt = 0
        renewed = False
        while True:
            await (self._bars_limiter if bars else self._limiter).acquire()
            token = await self.token()
            timeout = self.config.order_timeout_sec if money else self.config.request_timeout_sec
            try:
                resp = await self._client.post(
                    path,
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=timeout,
                )
            except httpx.HTTPError as exc:
                if money:
                    raise OrderUncertain(name, f"no answer ({_net_reason(exc)})") from None
                if attempt >= READ_RETRIES:
                    raise VenueUnavailable(name, _net_reason(exc)) from None
                attempt += 1
                await asyncio.sleep(_backoff(attempt))
                continue
            if resp.status_code == 401 and not renewed:
                renewed = True
                await self.renew(stale=token)
                continue
            if resp.status_code == 401:
                raise AuthError(name, "the session was refused after renewing it (HTTP 401)")
            if resp.status_code == 429 or resp.status_code >= 500:
                what = (
                    "rate limited (HTTP 429)"
                    if resp.status_code == 429
                    else (f"HTTP {resp.status_code}")
                )
                if money:
                    raise OrderUncertain(name, what)
                if attempt >= READ_RETRIES:
                    cls = RateLimited if resp.status_code == 429 else VenueUnavailable
                    raise cls(name, what)
                attempt += 1
                await asyncio.sleep(_retry_after(resp) or _backoff(attempt))
                continue
            if resp.status_code != 200:
                raise GatewayError(name, f"HTTP {resp.status_code}")
            data = _json(resp, name)
            _check_envelope(data, name, money=money and path == "/api/Order/place")
            return data

    # ------------------------------------------------------------------ endpoints
    async def ping(self) -> bool:
        try:
            resp = await self._client.get("/api/Status/ping", timeout=5.0)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    async def accounts(self, only_active: bool = True) -> list[PxAccount]:
        data = await self._post("/api/Account/search", {"onlyActiveAccounts": only_active})
        return [parse_account(a) for a in _list(data, "accounts", "Account/search")]

    async def search_contracts(self, text: str, live: bool | None = None) -> list[PxContract]:
        body = {"searchText": text, "live": self.config.live_data if live is None else live}
        data = await self._post("/api/Contract/search", body)
        return [parse_contract(c) for c in _list(data, "contracts", "Contract/search")]

    async def contract_by_id(self, contract_id: str) -> PxContract:
        data = await self._post("/api/Contract/searchById", {"contractId": contract_id})
        rec = data.get("contract")
        if rec is None and isinstance(data.get("contracts"), list) and data["contracts"]:
            rec = data["contracts"][0]
        if not isinstance(rec, dict):
            raise GatewayError("Contract/searchById", f"no contract {contract_id}")
        return parse_contract(rec)

    async def place_order(self, body: dict[str, Any]) -> int:
        """Place; the venue's order id. OrderUncertain when the outcome is unknown."""
        data = await self._post("/api/Order/place", body, money=True)
        oid = data.get("orderId")
        if not isinstance(oid, int):
            raise OrderUncertain("Order/place", "success without an orderId")
        return oid

    async def modify_order(self, account_id: int, order_id: int, **fields: Any) -> None:
        body: dict[str, Any] = {"accountId": account_id, "orderId": order_id}
        body.update({k: v for k, v in fields.items() if v is not None})
        await self._post("/api/Order/modify", body, money=True)

    async def cancel_order(self, account_id: int, order_id: int) -> None:
        await self._post(
            "/api/Order/cancel", {"accountId": account_id, "orderId": order_id}, money=True
        )

    async def close_position(self, account_id: int, contract_id: str) -> None:
        await self._post(
            "/api/Position/closeContract",
            {"accountId": account_id, "contractId": contract_id},
            money=True,
        )

    async def open_orders(self, account_id: int) -> list[PxOrder]:
        data = await self._post("/api/Order/searchOpen", {"accountId": account_id})
        return [parse_order(o) for o in _list(data, "orders", "Order/searchOpen")]

    async def search_orders(
        self, account_id: int, since: datetime, until: datetime | None = None
    ) -> list[PxOrder]:
        body: dict[str, Any] = {"accountId": account_id, "startTimestamp": _iso(since)}
        if until is not None:
            body["endTimestamp"] = _iso(until)
        data = await self._post("/api/Order/search", body)
        return [parse_order(o) for o in _list(data, "orders", "Order/search")]

    async def find_by_tag(self, account_id: int, tag: str, since: datetime) -> PxOrder | None:
        """The order carrying `customTag` = tag, or None (after an unknown outcome)."""
        for order in await self.search_orders(account_id, since - timedelta(minutes=1)):
            if order.custom_tag == tag:
                return order
        return None

    async def positions(self, account_id: int) -> list[PxPosition]:
        data = await self._post("/api/Position/searchOpen", {"accountId": account_id})
        return [parse_position(p) for p in _list(data, "positions", "Position/searchOpen")]

    async def fills(self, account_id: int, since: datetime) -> list[PxFill]:
        body = {"accountId": account_id, "startTimestamp": _iso(since)}
        data = await self._post("/api/Trade/search", body)
        return [parse_fill(t) for t in _list(data, "trades", "Trade/search")]


def _check_envelope(data: dict[str, Any], name: str, *, money: bool) -> None:
    """HTTP 200 is not success: raise on `success: false` (uncertain codes on a placement)."""
    if data.get("success", False):
        return
    code = data.get("errorCode")
    msg = str(data.get("errorMessage") or "refused")
    if money and code in PLACE_UNCERTAIN_CODES:
        raise OrderUncertain(name, f"{PLACE_ERRORS.get(code, msg)}: {msg}", code)
    raise GatewayError(name, msg, code if isinstance(code, int) else None)


def _list(data: dict[str, Any], key: str, endpoint: str) -> list[dict[str, Any]]:
    """A success envelope's list; an absent or null list is not proof of an empty set."""
    value = data.get(key)
    if not isinstance(value, list):
        raise GatewayError(endpoint, f"the answer has no '{key}' list; not treating it as empty")
    return [v for v in value if isinstance(v, dict)]


def _json(resp: httpx.Response, endpoint: str) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        raise GatewayError(endpoint, "the answer is not JSON") from None
    if not isinstance(data, dict):
        raise GatewayError(endpoint, "the answer is not a JSON object")
    return data


def _net_reason(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect (is the gateway address right and reachable?)"
    return type(exc).__name__


def _raise_transient(resp: httpx.Response) -> None:
    """429 and 5xx answers to login or validate are worth another try."""
    if resp.status_code == 429:
        raise _Transient("rate limited (HTTP 429)", _retry_after(resp))
    if resp.status_code >= 500:
        raise _Transient(f"HTTP {resp.status_code}", _retry_after(resp))


def _login_delay(failures: int, retry_after: float | None) -> float:
    """Jittered exponential backoff (1 s, 2 s, 4 s … 30 s, each ×0.5–1.5), never shorter
    than the gateway's `Retry-After` (plus up to 10 % so that clients do not return in step)."""
    base = min(LOGIN_BACKOFF_MAX_SEC, LOGIN_BACKOFF_INITIAL_SEC * 2 ** (failures - 1))
    delay = base * (0.5 + random.random())
    if retry_after is not None:
        delay = max(delay, retry_after * (1.0 + 0.1 * random.random()))
    return delay


def _duration(sec: float) -> str:
    return f"{sec / 60:.0f} min" if sec >= 90 else f"{sec:.0f} s"


def _backoff(attempt: int) -> float:
    return min(8.0, 0.25 * 2**attempt) * (0.5 + random.random())


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    try:
        return min(60.0, float(value)) if value is not None else None
    except ValueError:
        return None
