"""A SignalR hub connection (pysignalr, JSON protocol) under our own supervisor.

pysignalr bakes the token into its client and stops for good after 10 failures over its whole
life (PROJECTX.md §6). So every connection attempt builds a fresh client with the current token
(`?access_token=` and the Authorization header), and the supervisor owns the retry loop: backoff
with jitter, a new token after an auth failure, resubscription on every open, and (market hub
only) a staleness watchdog that reconnects when no message has come for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from pysignalr.client import SignalRClient
from pysignalr.exceptions import AuthorizationError

log = logging.getLogger("fabio.projectx.hub")

Handler = Callable[[list[Any]], Awaitable[None]]
StateCallback = Callable[[str, str], None]  # (status, detail)


class HubSupervisor:
    """Keeps one hub connected; `subscriptions` are (method, args) invoked on every open."""

    def __init__(
        self,
        name: str,
        url: str,
        token: Callable[[], Awaitable[str]],
        renew: Callable[[str], Awaitable[None]],
        *,
        stale_after_sec: float | None,
        connect_timeout_sec: float = 10.0,
        backoff_initial_sec: float = 0.5,
        backoff_max_sec: float = 30.0,
        max_frame_bytes: int = 16 * 1024 * 1024,
        on_state: StateCallback | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self._token = token
        self._renew = renew
        self.stale_after = stale_after_sec
        self.connect_timeout = connect_timeout_sec
        self.backoff_initial = backoff_initial_sec
        self.backoff_max = backoff_max_sec
        self.max_frame = max_frame_bytes
        self._on_state = on_state
        self._handlers: dict[str, Handler] = {}
        self.subscriptions: list[tuple[str, list[Any]]] = []
        self._client: SignalRClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._closing: set[asyncio.Task[Any]] = set()  # old sockets' closing handshakes
        self.connected = asyncio.Event()
        self.last_message = time.monotonic()
        self.connects = 0
        self.disconnects = 0
        self.resubscribe_ms: list[float] = []  # lost → resubscribed, per reconnect
        self.status = "disconnected"

    def on(self, event: str, handler: Handler) -> None:
        self._handlers[event] = handler

    def subscribe(self, method: str, *args: Any) -> None:
        """Remember a subscription (sent now if connected, and again on every open)."""
        self.subscriptions.append((method, list(args)))
        if self.connected.is_set() and self._client is not None:
            client = self._client
            asyncio.get_running_loop().create_task(self._send_quiet(client, method, list(args)))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """End the connection and its client's tasks (the supervisor notices `_stop` within
        50 ms; it is cancelled if it has not ended after 2 s), never hanging a stop."""
        self._stop.set()
        task = self._task
        if task is not None and not task.done():
            done, _ = await asyncio.wait({task}, timeout=2.0)
            if not done:
                task.cancel()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait({task}, timeout=5.0)
        if task is not None and task.done() and not task.cancelled():
            task.exception()  # retrieved: a failure at stop is not worth a warning
        if self._closing:  # the sockets' closing handshakes end before the loop does
            await asyncio.wait(set(self._closing), timeout=self.connect_timeout)
        self._set("disconnected", "stopped")

    def _set(self, status: str, detail: str = "") -> None:
        self.status = status
        if self._on_state is not None:
            self._on_state(status, detail)

    async def _send_quiet(self, client: SignalRClient, method: str, args: list[Any]) -> None:
        with contextlib.suppress(Exception):
            await client.send(method, args)

    async def _run(self) -> None:
        attempt = 0
        lost_at: float | None = None
        while not self._stop.is_set():
            self._set("connecting" if self.connects == 0 else "reconnecting")
            try:
                token = await self._token()
            except Exception as exc:  # login refused or gateway down: keep trying, say why
                log.warning("%s hub: no token (%s)", self.name, exc)
                attempt += 1
                await self._sleep(attempt)
                continue
            opened = asyncio.Event()
            closed = asyncio.Event()
            client = SignalRClient(
                f"{self.url}?access_token={quote(token, safe='')}",
                access_token_factory=lambda t=token: t,  # type: ignore[misc]
                max_size=self.max_frame,
                retry_count=1,
                connection_timeout=int(max(1, self.connect_timeout)),
            )
            for event, handler in self._handlers.items():
                client.on(event, self._wrap(handler))

            async def _open(ev: asyncio.Event = opened) -> None:
                ev.set()

            async def _close(ev: asyncio.Event = closed) -> None:
                ev.set()

            client.on_open(_open)
            client.on_close(_close)
            runner = asyncio.get_running_loop().create_task(client.run())
            try:
                why = await self._wait_open(runner, opened)
                if why is None:
                    self._client = client
                    self.connects += 1
                    attempt = 0
                    self.last_message = time.monotonic()
                    for method, args in self.subscriptions:
                        await self._send_quiet(client, method, args)
                    self.connected.set()
                    if lost_at is not None:
                        self.resubscribe_ms.append((time.monotonic() - lost_at) * 1000)
                    self._set("connected")
                    why = await self._watch(runner, closed)
                    lost_at = time.monotonic()
                    if not self._stop.is_set():  # a stop is no disconnect
                        self.disconnects += 1
            finally:  # also when this supervisor is cancelled: the client never outlives it
                self.connected.clear()
                self._client = None
                await self._retire(runner)
            if self._stop.is_set():
                break
            if why == "auth":
                with contextlib.suppress(Exception):
                    await self._renew(token)
            log.warning("%s hub: %s; reconnecting", self.name, why)
            self._set("reconnecting", why)
            attempt += 1
            await self._sleep(attempt)

    async def _retire(self, runner: asyncio.Task[None]) -> None:
        """End a client; a stop waits for its socket's closing handshake, a reconnect not."""
        for closing in await _end(runner):
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    async def _wait_open(self, runner: asyncio.Task[None], opened: asyncio.Event) -> str | None:
        waiter = asyncio.ensure_future(opened.wait())
        try:
            done, _ = await asyncio.wait(
                {runner, waiter}, timeout=self.connect_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
        if opened.is_set():
            return None
        if runner in done:
            return _failure(runner)
        return "connect timed out"

    async def _watch(self, runner: asyncio.Task[None], closed: asyncio.Event) -> str:
        while True:
            if closed.is_set():
                return "connection closed"
            if runner.done():
                return _failure(runner)
            if self._stop.is_set():
                return "stopped"
            if (
                self.stale_after is not None
                and time.monotonic() - self.last_message > self.stale_after
            ):
                return f"no message for {self.stale_after:.0f} s (stale feed)"
            await asyncio.sleep(0.05)

    def _wrap(self, handler: Handler) -> Callable[[Any], Awaitable[None]]:
        async def call(arguments: Any) -> None:
            self.last_message = time.monotonic()
            try:
                await handler(arguments if isinstance(arguments, list) else [arguments])
            except Exception:  # a bad payload costs that payload, never the connection
                log.exception("%s hub: handler failed", self.name)

        return call

    async def _sleep(self, attempt: int) -> None:
        if attempt <= 1:  # the first retry is quick: most drops are one-off
            delay = 0.1 * random.random()
        else:  # jitter: many clients must not reconnect in step
            delay = min(self.backoff_max, self.backoff_initial * 2 ** (attempt - 2))
            delay *= 0.5 + random.random()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=delay)

    def touch(self) -> None:
        self.last_message = time.monotonic()


_TOKEN_RE = re.compile(r"(access_token=)[^&\s'\"]+", re.IGNORECASE)


def redact(text: str) -> str:
    """A message without the session token (it rides in the hub URL's query)."""
    return _TOKEN_RE.sub(r"\1***", text)


def quiet_cancelled_sockets(loop: asyncio.AbstractEventLoop) -> None:
    """Drop the loop's noise about websockets' send contexts closed by a cancelled client."""
    previous = loop.get_exception_handler()

    def handler(lp: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, RuntimeError) and "aclose()" in str(exc):
            return
        if previous is not None:
            previous(lp, context)
        else:
            lp.default_exception_handler(context)

    loop.set_exception_handler(handler)


async def _end(runner: asyncio.Task[None]) -> set[asyncio.Task[Any]]:
    """Cancel a pysignalr client's task and wait for it; the tasks closing its socket.

    pysignalr iterates websockets' connection generator and leaves it suspended when cancelled;
    the event loop then closes it in a task of its own (`aclose()`, which waits for the closing
    handshake). Those tasks are returned so that a stop can wait for them: none may outlive
    the loop ("Task was destroyed but it is pending!" at exit). A reconnect does not wait.
    """
    before = asyncio.all_tasks()
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await runner
    await asyncio.sleep(0)  # the loop's finalizer hook schedules the generator's aclose()
    return {
        t
        for t in asyncio.all_tasks() - before
        if type(t.get_coro()).__name__ == "async_generator_athrow"
    }


def _failure(runner: asyncio.Task[None]) -> str:
    if runner.cancelled():
        return "cancelled"
    exc = runner.exception()
    if exc is None:
        return "connection ended"
    if isinstance(exc, AuthorizationError):
        return "auth"
    text = redact(str(exc))
    if "401" in text or "403" in text:
        return "auth"
    return f"{type(exc).__name__}: {text[:120]}"
