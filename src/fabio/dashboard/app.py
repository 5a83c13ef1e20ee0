"""Build the dashboard from the settings (`fabio serve` and `fabio run --dashboard`)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from fabio.brain.decide import secret_values
from fabio.config import Settings
from fabio.dashboard.alerts import Alerter, parse_urls
from fabio.dashboard.security import control_token
from fabio.dashboard.server import (
    AlertWatcher,
    DashboardServer,
    Hub,
    HubConfig,
    KillAction,
    Source,
)
from fabio.errors import FabioError
from fabio.journal import redact
from fabio.killswitch import request_kill_switch
from fabio.strategies import load_strategies


def journaled_kill_switch(settings: Settings) -> KillAction:
    """Journal the kill-switch change (source `dashboard`) and leave the request a running agent
    takes (the same path as `fabio kill`)."""
    secrets = tuple(secret_values(settings))

    def act(engage: bool, reason: str, source: Source) -> None:
        request_kill_switch(settings.log_dir, engage, redact(reason, secrets), source, secrets)

    return act


def build_dashboard(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    kill: KillAction | None = None,
) -> DashboardServer:
    """The server over `settings.log_dir`; refuses a public bind without DASHBOARD_TOKEN."""
    host = host or settings.dashboard_host
    port = settings.dashboard_port if port is None else port
    configured = settings.dashboard_token.get_secret_value() if settings.dashboard_token else None
    token = control_token(configured, host)
    return DashboardServer(
        build_hub(settings),
        token,
        kill or journaled_kill_switch(settings),
        host,
        port,
        alerter=build_alerter(settings),
    )


def build_hub(settings: Settings) -> Hub:
    return Hub(
        HubConfig(
            log_dir=settings.log_dir,
            risk=settings.risk_config(),
            strategies=load_strategies(settings.strategies_file),
        )
    )


def build_alert_watcher(settings: Settings) -> AlertWatcher | None:
    """Alerts for a run without the dashboard; None when ALERT_URLS is unset."""
    alerter = build_alerter(settings)
    return None if alerter is None else AlertWatcher(build_hub(settings), alerter)


def build_alerter(settings: Settings) -> Alerter | None:
    """ALERT_URLS as an `Alerter`, or None when unset; a URL apprise rejects is an error."""
    if settings.alert_urls is None:
        return None
    urls = parse_urls(settings.alert_urls.get_secret_value())
    if not urls:
        return None
    alerter = Alerter(
        urls,
        settings.alert_min_interval_sec,
        settings.alert_disconnect_sec,
        secrets=secret_values(settings),
    )
    if alerter.bad_urls:
        raise FabioError(
            f"ALERT_URLS: {len(alerter.bad_urls)} of {len(urls)} URLs are not "
            "valid apprise URLs (see https://github.com/caronc/apprise/wiki)"
        )
    return alerter


def announce(server: DashboardServer, write: Callable[[str], Any] | None = None) -> None:
    """Say where the page is; print a generated token once (it is not stored anywhere)."""
    say = write or (lambda text: print(text, file=sys.stderr, flush=True))
    say(f"dashboard: {server.url} (healthz: {server.url}healthz)")
    if server.token.generated:
        say(
            f"dashboard control token (kill/release; set DASHBOARD_TOKEN to choose one): "
            f"{server.token.value}"
        )


async def serve_until_signal(
    server: DashboardServer, on_start: Callable[[], Awaitable[None] | None] | None = None
) -> None:
    """`fabio serve`: run until SIGTERM or SIGINT, then close the sockets and return."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    if on_start is not None:
        result = on_start()
        if result is not None:
            await result
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await server.stop()
