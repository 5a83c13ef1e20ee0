"""Login and validate ride out a busy or unreachable gateway; only a refused key is final.

The retry policy runs on a fake clock (the injected `sleep` advances `monotonic`), so these
tests do not wait; one test goes through the simulator's sockets with its login faults.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from fabio.brokers.projectx.errors import AuthError, VenueUnavailable
from fabio.brokers.projectx.http import ProjectXHttp
from fabio.brokers.projectx.session import ProjectXSession
from fabio.brokers.projectx.sim.run import SimServer, build_sim, open_feeds
from fabio.brokers.projectx.sim.server import SimFaults

from .harness import sim_config

SECRET = "the-secret-api-key-123"

Answer = Callable[[httpx.Request], httpx.Response]


@dataclass
class FakeClock:
    """`monotonic` and `sleep` for the client: sleeping moves the clock, nothing waits."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, sec: float) -> None:
        self.sleeps.append(sec)
        self.now += sec


def ok_login(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"success": True, "errorCode": 0, "token": "tok-1"})


def status(code: int, retry_after: str | None = None) -> Answer:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return lambda request: httpx.Response(code, headers=headers)


def network_down(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


class Gateway:
    """Answers each endpoint from its script (the last answer repeats) and counts calls."""

    def __init__(self, **scripts: list[Answer]) -> None:
        self.scripts = {k.replace("_", "/"): v for k, v in scripts.items()}
        self.calls: dict[str, int] = {}
        self.bodies: list[bytes] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        name = request.url.path.removeprefix("/api/")
        n = self.calls.get(name, 0)
        self.calls[name] = n + 1
        self.bodies.append(request.content)
        script = self.scripts[name]
        return script[min(n, len(script) - 1)](request)


def client(
    gateway: Gateway,
    clock: FakeClock,
    states: list[tuple[str, str]] | None = None,
    **config: Any,
) -> ProjectXHttp:
    cfg = sim_config("http://gateway.test", api_key=SECRET, **config)
    return ProjectXHttp(
        cfg,
        transport=httpx.MockTransport(gateway),
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        on_state=None if states is None else lambda s, d: states.append((s, d)),
    )


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_three_429s_then_a_token_logs_in_honouring_retry_after() -> None:
    gateway = Gateway(Auth_loginKey=[*[status(429, "7")] * 3, ok_login])
    clock = FakeClock()
    states: list[tuple[str, str]] = []

    async def go() -> str:
        http = client(gateway, clock, states)
        await http.login()
        token = await http.token()
        await http.aclose()
        return token

    assert run(go()) == "tok-1"
    assert gateway.calls["Auth/loginKey"] == 4
    assert len(clock.sleeps) == 3 and all(7.0 <= s <= 7.7 + 1e-9 for s in clock.sleeps)
    assert states[0][0] == "retrying" and "HTTP 429" in states[0][1]
    assert states[-1] == ("connected", "")  # said once it got in


def test_5xx_and_network_errors_back_off_exponentially_with_jitter() -> None:
    gateway = Gateway(
        Auth_loginKey=[status(503), network_down, status(500), network_down, status(502), ok_login]
    )
    clock = FakeClock()

    async def go() -> None:
        http = client(gateway, clock)
        await http.login()
        await http.aclose()

    run(go())
    assert gateway.calls["Auth/loginKey"] == 6
    # 1 s, 2 s, 4 s, 8 s, 16 s, each jittered ×0.5–1.5
    for n, sleep in enumerate(clock.sleeps):
        assert 0.5 * 2**n <= sleep <= 1.5 * 2**n, clock.sleeps


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            lambda r: httpx.Response(
                200, json={"success": False, "errorCode": 3, "errorMessage": None}
            ),
            "login failed: invalid credentials",
        ),
        (
            lambda r: httpx.Response(
                200, json={"success": False, "errorCode": 9, "errorMessage": None}
            ),
            "no API subscription",
        ),
        (status(401), "login refused (HTTP 401)"),
        (status(403), "login refused (HTTP 403)"),
    ],
)
def test_a_refused_key_fails_at_once_without_retry(answer: Answer, expected: str) -> None:
    gateway = Gateway(Auth_loginKey=[answer])
    clock = FakeClock()

    async def go() -> str:
        http = client(gateway, clock)
        try:
            with pytest.raises(AuthError) as info:
                await http.login()
        finally:
            await http.aclose()
        return str(info.value)

    message = run(go())
    assert expected in message
    assert gateway.calls["Auth/loginKey"] == 1 and clock.sleeps == []
    assert SECRET not in message and "\n" not in message
    assert SECRET.encode() in gateway.bodies[0]  # the key was sent, and only there


def test_start_up_gives_up_after_about_two_minutes_with_one_clear_line() -> None:
    gateway = Gateway(Auth_loginKey=[status(429, "5"), status(503), network_down])
    clock = FakeClock()
    states: list[tuple[str, str]] = []

    async def go() -> str:
        http = client(gateway, clock, states)
        try:
            with pytest.raises(VenueUnavailable) as info:
                await http.login()
        finally:
            await http.aclose()
        return str(info.value)

    message = run(go())
    waited = sum(clock.sleeps)
    assert 60 <= waited <= 120, clock.sleeps  # bounded by login_retry_sec (120 s)
    assert gateway.calls["Auth/loginKey"] == len(clock.sleeps) + 1 >= 5
    assert "Auth/loginKey" in message and "try again later" in message
    assert "cannot connect" in message  # the last failure's reason
    assert "\n" not in message and SECRET not in message
    # said when it started retrying, and at most once a minute after that
    retrying = [d for s, d in states if s == "retrying"]
    assert 1 <= len(retrying) <= 2 and all(SECRET not in d for _, d in states)


def test_mid_session_relogin_retries_as_long_as_it_takes_saying_so_once_a_minute() -> None:
    """A refused session (validate) while running: the re-login meets a gateway that is down
    for 10 minutes, and keeps trying (never giving up as at start-up)."""
    refused_validate = lambda r: httpx.Response(  # noqa: E731
        200, json={"success": False, "errorCode": 0, "newToken": None}
    )
    clock = FakeClock()
    down_until = clock.now + 600.0

    def login(request: httpx.Request) -> httpx.Response:
        if clock.now < down_until:
            return httpx.Response(503)
        return ok_login(request)

    gateway = Gateway(Auth_loginKey=[ok_login, login], Auth_validate=[refused_validate])
    states: list[tuple[str, str]] = []

    async def go() -> str:
        http = client(gateway, clock, states)
        await http.login()
        await http.renew()
        token = await http.token()
        await http.aclose()
        return token

    assert run(go()) == "tok-1"
    assert sum(clock.sleeps) >= 600  # far beyond the start-up budget
    retrying = [d for s, d in states if s == "retrying"]
    # about once a minute over ten minutes (attempts are 15-45 s apart by then), not per attempt
    assert 5 <= len(retrying) <= 11 < gateway.calls["Auth/loginKey"], retrying
    assert "so far" in retrying[-1]
    assert states[-1] == ("connected", "")


def test_validate_is_retried_on_429_and_5xx_before_any_relogin() -> None:
    new_token = lambda r: httpx.Response(  # noqa: E731
        200, json={"success": True, "errorCode": 0, "newToken": "tok-2"}
    )
    gateway = Gateway(
        Auth_loginKey=[ok_login],
        Auth_validate=[status(429, "3"), status(500), network_down, new_token],
    )
    clock = FakeClock()

    async def go() -> str:
        http = client(gateway, clock)
        await http.login()
        await http.renew()
        token = await http.token()
        await http.aclose()
        return token

    assert run(go()) == "tok-2"
    assert gateway.calls == {"Auth/loginKey": 1, "Auth/validate": 4}
    assert clock.sleeps[0] >= 3.0  # Retry-After honoured


def test_the_simulator_answers_429_three_times_and_the_session_logs_in() -> None:
    """Over sockets: `fabio gateway-sim` refuses the first three logins with 429 and
    `Retry-After: 2`; the session waits as told (the injected sleep records it and waits a
    moment only) and connects."""
    sleeps: list[float] = []

    async def short_sleep(sec: float) -> None:
        sleeps.append(sec)
        await asyncio.sleep(0.01)

    async def go() -> tuple[int, int]:
        feeds = open_feeds([], ["ES"], days=1, seed=7)
        faults = SimFaults(login_failures=(429, 429, 429), login_retry_after_sec=2.0)
        sim = build_sim(feeds, 1.0, faults, replay=False)
        async with SimServer(sim) as server:
            cfg = sim_config(server.url)
            session = ProjectXSession(cfg, http=ProjectXHttp(cfg, sleep=short_sleep))
            try:
                await session.connect(["ES"])
                return sim.counters["fault_login"], sim.counters["login"]
            finally:
                await asyncio.wait_for(session.close(), 30)

    faults, logins = run(go())
    assert (faults, logins) == (3, 1)
    assert len(sleeps) == 3 and all(s >= 2.0 for s in sleeps)
