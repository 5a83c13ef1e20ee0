"""A scripted OpenAI-compatible server on 127.0.0.1 for testing the LLM brain with the real SDK.

`POST /v1/chat/completions` answers with the next scripted behaviour (then the default one),
and every request is recorded, so tests can check what the client sent and how often.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fabio.brain.base import BrainReply
from fabio.brain.context import DecisionContext
from fabio.brain.schema import Decision


@dataclass
class Behaviour:
    """One scripted reply: status, body (dict as JSON, str as is), headers, delay first."""

    status: int = 200
    body: dict[str, Any] | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Script = Behaviour | Callable[[dict[str, Any]], Behaviour]
# A delay that lasts until the server stops (at most HANG_BOUND_SEC): the client must give up.
HANG = float("inf")
HANG_BOUND_SEC = 60.0


class VirtualDeadlines:
    """The LLM brain's budget clock, moved by the test instead of the machine.

    Time stands still while the brain waits for an answer, however slow the machine is, so an
    answer is never "too late" by accident; a hung request (`hung`) moves time to the brain's
    next deadline, which times the attempt out at once. Thread-safe: the scripted server moves
    time from its own thread."""

    def __init__(self) -> None:
        self._now = 0.0
        self._lock = threading.Lock()
        self._pending: list[tuple[float, asyncio.AbstractEventLoop, asyncio.Timeout]] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
            self._fire_due()

    async def sleep(self, seconds: float) -> None:
        """A wait that takes no wall time: the clock moves on by `seconds`."""
        self.advance(seconds)
        await asyncio.sleep(0)

    def to_next_deadline(self) -> None:
        """Move time to the earliest pending deadline (nothing happens until then)."""
        with self._lock:
            if self._pending:
                self._now = max(self._now, min(at for at, _, _ in self._pending))
            self._fire_due()

    def _fire_due(self) -> None:
        due = [p for p in self._pending if p[0] <= self._now]
        self._pending = [p for p in self._pending if p[0] > self._now]
        for _, loop, timeout in due:
            loop.call_soon_threadsafe(_expire, loop, timeout)

    @contextlib.asynccontextmanager
    async def deadline(self, seconds: float) -> AsyncIterator[object]:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(None) as timeout:
            entry = (self.now() + seconds, loop, timeout)
            with self._lock:
                self._pending.append(entry)
                self._fire_due()
            try:
                yield timeout
            finally:
                with self._lock:
                    if entry in self._pending:
                        self._pending.remove(entry)


def _expire(loop: asyncio.AbstractEventLoop, timeout: asyncio.Timeout) -> None:
    with contextlib.suppress(RuntimeError):  # the block has ended meanwhile
        timeout.reschedule(loop.time())


def hung(deadlines: VirtualDeadlines | None = None) -> Script:
    """A request the server never answers (until it stops): the client's deadline passes."""

    def behave(request: dict[str, Any]) -> Behaviour:
        if deadlines is not None:
            deadlines.to_next_deadline()
        return Behaviour(200, {}, delay=HANG)

    return behave


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float  # time.perf_counter() on arrival


def completion(
    content: str | None,
    *,
    finish_reason: str = "stop",
    refusal: str | None = None,
    prompt_tokens: int = 1500,
    completion_tokens: int = 200,
    cached_tokens: int | None = 1024,
    delay: float = 0.0,
) -> Behaviour:
    """A chat completion whose message holds `content`."""
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if cached_tokens is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": refusal}
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "test-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": usage,
    }
    return Behaviour(200, body, delay=delay)


def empty_choices() -> Behaviour:
    b = completion("{}")
    assert isinstance(b.body, dict)
    b.body["choices"] = []
    return b


def error(
    status: int,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    code: str | None = None,
    param: str | None = None,
) -> Behaviour:
    """An OpenAI-style error body."""
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }
    return Behaviour(status, body, headers or {})


def always_500() -> Behaviour:
    """An endpoint that is up but broken: HTTP 500 to everything."""
    return error(500, "The server had an error while processing your request.")


def rate_limited(retry_after_sec: float = 2.0) -> Behaviour:
    """HTTP 429 with a Retry-After header (seconds)."""
    return error(
        429,
        "Rate limit reached for requests",
        headers={"retry-after": f"{retry_after_sec:g}"},
        code="rate_limit_exceeded",
    )


def unauthorized(status: int = 401) -> Behaviour:
    """A refused key (401) or a forbidden project (403); the message quotes part of the key, as
    OpenAI's does, so a test can check it is redacted."""
    return error(
        status,
        "Incorrect API key provided: sk-test-*****************abcd. You can find your API key "
        "at https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


FAULTS: dict[str, Callable[[], Behaviour]] = {
    "500": always_500,
    "429": rate_limited,
    "401": unauthorized,
    "403": lambda: unauthorized(403),
}


def refuse_formats(refused: set[str], then: Behaviour) -> Callable[[dict[str, Any]], Behaviour]:
    """Answer 400 to the response_format types in `refused` (as many local servers do)."""

    def behave(request: dict[str, Any]) -> Behaviour:
        fmt = (request.get("response_format") or {}).get("type", "text")
        if fmt in refused:
            return error(
                400,
                f"Invalid value for 'response_format.type': {fmt} is not supported",
                param="response_format",
            )
        return then

    return behave


def decision_dict(price: float, **overrides: Any) -> dict[str, Any]:
    """A sound decision for a market at `price` (an ES-like tick grid)."""
    d: dict[str, Any] = {
        "market_assessment": {
            "regime": "range",
            "market_state": "balanced",
            "location": "in_value",
            "poc_side": "above_poc",
            "confidence": 0.62,
            "reasoning": "rotation inside value, POC crossed three times in 30 min",
            "chosen_model": "MeanReversionPOC_v2",
        },
        "trade_decisions": [
            {
                "action": "enter",
                "side": "long",
                "entry_condition_id": "MeanReversionPOC_v2",
                "order_type": "market",
                "limit_price": None,
                "stop_price": price - 3.0,
                "target_price": price + 6.0,
                "risk_fraction": 0.004,
                "invalidation": "acceptance below VAL",
                "reason": "failed auction below value, back toward the POC",
            }
        ],
        "strategy_updates": {
            "active_strategies": ["MeanReversionPOC_v2", "AbsorptionFade_v1"],
            "strategy_tweaks": [],
        },
        "importance_zones": [
            {
                "id": "poc",
                "center_price": price - 1.0,
                "priority": 3,
                "inner_band_ticks": 4,
                "outer_band_ticks": 12,
                "reason": "developing POC",
            }
        ],
        "notes_to_future_self": [],
    }
    d.update(overrides)
    return d


class FakeOpenAI:
    """The server: `url` for the SDK's base_url, `script(...)` to queue behaviours."""

    def __init__(self, default: Script | None = None, port: int = 0) -> None:
        self.default: Script = default or completion("{}")
        self._queue: list[Script] = []
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._released = threading.Event()  # set by `stop`: delayed answers go out
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def script(self, *behaviours: Script) -> None:
        with self._lock:
            self._queue.extend(behaviours)

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def _next(self, request: dict[str, Any]) -> Behaviour:
        with self._lock:
            item = self._queue.pop(0) if self._queue else self.default
        return item(request) if callable(item) else item

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_unparsed": raw.decode("utf-8", "replace")}
                with server._lock:
                    server.requests.append(
                        Recorded(self.path, dict(self.headers.items()), body, time.perf_counter())
                    )
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(error(404, f"no route {self.path}"))
                    return
                self._send(server._next(body))

            def _send(self, b: Behaviour) -> None:
                if b.delay:
                    server._released.wait(min(b.delay, HANG_BOUND_SEC))
                payload = b.body if isinstance(b.body, str) else json.dumps(b.body or {})
                data = payload.encode("utf-8")
                try:
                    self.send_response(b.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in b.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        return Handler


class FixedBrain:
    """A fallback brain for tests: a fixed, valid 'stand aside' decision (a dependency of the
    brains under test, not the thing tested)."""

    name = "fixed"

    def __init__(self) -> None:
        self.calls = 0

    async def decide(self, context: DecisionContext) -> BrainReply:
        self.calls += 1
        decision = Decision.model_validate(
            {
                "market_assessment": {
                    "regime": "chop",
                    "market_state": "balanced",
                    "location": "in_value",
                    "poc_side": "at_poc",
                    "confidence": 0.1,
                    "reasoning": "fixed fallback",
                }
            }
        )
        return BrainReply(decision=decision, brain=self.name, requested_brain=self.name)


def main(argv: list[str] | None = None) -> None:
    """Serve a fault mode on a fixed port for manual runs:
    `python -m tests.brain.llm_server --fault 500 --port 8999`, then
    `OPENAI_BASE_URL=http://127.0.0.1:8999/v1 fabio backtest --brain llm --days 3`.
    Prints the number of requests received when stopped (Ctrl-C)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--fault", choices=sorted(FAULTS), default="500")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = FakeOpenAI(FAULTS[args.fault](), port=args.port).start()
    print(f"serving fault {args.fault} at {server.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        print(f"{len(server.requests)} requests", flush=True)


if __name__ == "__main__":
    main()
