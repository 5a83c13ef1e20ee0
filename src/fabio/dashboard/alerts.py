"""Alerts for a trader away from the screen, sent through apprise (one `ALERT_URLS` setting).

The alerter listens to the same events the page receives: fills and stops hit, risk state and
kill switch changes, a venue connection down for longer than `ALERT_DISCONNECT_SEC`, the LLM's
state changes (first failure, breaker open and closed, key refused), and a summary when a trade
date ends. Each kind of alert per symbol is sent at most once per `ALERT_MIN_INTERVAL_SEC`; what
is held back is counted and mentioned in the next one. Nothing secret leaves: every text is
redacted against the configured secrets (and anything that looks like a key) before it is sent,
and a failed send is logged as one line, never retried in a loop and never raised into the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import apprise

from fabio.journal import redact

log = logging.getLogger("fabio.alerts")
QUEUE_LIMIT = 200


def parse_urls(text: str | None) -> list[str]:
    """ALERT_URLS: apprise URLs separated by spaces, commas or new lines."""
    return [u for u in re.split(r"[\s,]+", text or "") if u]


@dataclass(slots=True)
class Alert:
    key: str  # rate-limit key: kind and symbol
    title: str
    body: str
    level: str = "info"  # info, success, warning, failure (apprise's NotifyType values)


@dataclass(slots=True)
class AlertRules:
    """Turns dashboard events into alerts (pure: no I/O, no clock of its own)."""

    disconnect_sec: float = 30.0
    _risk: dict[str, tuple[str, bool]] = field(default_factory=dict)
    _down_since: dict[str, float] = field(default_factory=dict)
    _down_sent: set[str] = field(default_factory=set)

    def alerts(self, name: str, payload: dict[str, Any], now: float) -> list[Alert]:
        symbol = str(payload.get("symbol") or "")
        if name == "trade_update" and payload.get("fill"):
            return [self._fill(symbol, payload["fill"], payload.get("pnl") or {})]
        if name == "risk":
            return self._risk_change(symbol, payload)
        if name == "status":
            return self._connection(symbol, payload.get("connections") or {}, now)
        if name == "decision":
            return self._llm(symbol, payload.get("decision") or {})
        if name == "session" and payload.get("event") == "end":
            return [self._summary(symbol, payload)]
        return []

    def _llm(self, symbol: str, decision: dict[str, Any]) -> list[Alert]:
        """The LLM's state changes, said once by the brain in the decision's `call_notes`
        (first failure, breaker open, closed, key refused), else a breaker-open fallback."""
        out = []
        for note in decision.get("call_notes") or []:
            text = str(note)
            if not text.startswith("LLM "):
                continue
            if "refused the API key" in text:
                out.append(
                    Alert(f"llm_key:{symbol}", f"{symbol}: LLM key refused", text, "failure")
                )
            elif "circuit breaker open" in text:
                out.append(
                    Alert(f"llm_breaker:{symbol}", f"{symbol}: LLM breaker open", text, "warning")
                )
            elif "circuit breaker closed" in text:
                out.append(
                    Alert(f"llm_closed:{symbol}", f"{symbol}: LLM answers again", text, "success")
                )
            elif " failed (" in text:
                out.append(Alert(f"llm_failed:{symbol}", f"{symbol}: LLM failing", text, "warning"))
        if "call_notes" in decision:  # the notes say each change once; skipped calls are quiet
            return out
        reason = str(decision.get("fallback_reason") or "")  # a record without notes
        if "breaker" in reason.lower():
            return [
                Alert(
                    f"llm_breaker:{symbol}",
                    f"{symbol}: LLM breaker open",
                    f"the rule brain decides until the LLM recovers: {reason}",
                    "warning",
                )
            ]
        return []

    def _fill(self, symbol: str, fill: dict[str, Any], pnl: dict[str, Any]) -> Alert:
        side = "buy" if int(fill.get("side") or 0) > 0 else "sell"
        reason = str(fill.get("reason") or fill.get("kind") or "")
        text = (
            f"{side} {fill.get('qty')} @ {fill.get('price')} ({reason}, "
            f"{fill.get('strategy') or ''}); realised today "
            f"${float(pnl.get('realized_today_usd') or 0):,.2f}"
        )
        if reason == "stop":
            return Alert(f"stop:{symbol}", f"{symbol}: stop hit", text, "warning")
        return Alert(f"fill:{symbol}", f"{symbol}: {fill.get('kind')} fill", text, "info")

    def _risk_change(self, symbol: str, payload: dict[str, Any]) -> list[Alert]:
        state = str(payload.get("trading_state") or "")
        kill = bool((payload.get("kill_switch") or {}).get("engaged"))
        before = self._risk.get(symbol)
        self._risk[symbol] = (state, kill)
        if before is None:  # the first look is the starting state, not a change
            return [] if state == "active" else [self._state(symbol, state, payload)]
        out = []
        if kill != before[1]:
            reason = (payload.get("kill_switch") or {}).get("reason") or ""
            out.append(
                Alert(
                    f"kill:{symbol}",
                    f"{symbol}: kill switch {'ENGAGED' if kill else 'released'}",
                    reason or "—",
                    "failure" if kill else "success",
                )
            )
        elif state != before[0]:
            out.append(self._state(symbol, state, payload))
        return out

    def _state(self, symbol: str, state: str, payload: dict[str, Any]) -> Alert:
        level = "success" if state == "active" else "warning" if state == "reducing" else "failure"
        return Alert(
            f"risk:{symbol}", f"{symbol}: risk {state}", str(payload.get("reason") or state), level
        )

    def _connection(self, symbol: str, connections: dict[str, Any], now: float) -> list[Alert]:
        out = []
        for component, status in connections.items():
            key = f"{symbol}:{component}"
            if status == "connected":
                self._down_since.pop(key, None)
                if key in self._down_sent:
                    self._down_sent.discard(key)
                    out.append(
                        Alert(
                            f"conn:{key}",
                            f"{symbol}: {component} reconnected",
                            "connection restored",
                            "success",
                        )
                    )
                continue
            since = self._down_since.setdefault(key, now)
            if now - since >= self.disconnect_sec and key not in self._down_sent:
                self._down_sent.add(key)
                out.append(
                    Alert(
                        f"conn:{key}",
                        f"{symbol}: {component} {status}",
                        f"{status} for {now - since:.0f} s",
                        "failure",
                    )
                )
        return out

    def _summary(self, symbol: str, payload: dict[str, Any]) -> Alert:
        return Alert(
            f"summary:{symbol}:{payload.get('trade_date')}",
            f"{symbol}: {payload.get('trade_date')} summary",
            f"{payload.get('trades', 0)} trades, realised "
            f"${float(payload.get('realized_usd') or 0):,.2f}, balance "
            f"${float(payload.get('balance_usd') or 0):,.2f}, risk "
            f"{payload.get('trading_state')}",
        )


class Alerter:
    """Rate-limited, redacted delivery of `AlertRules`' alerts through apprise."""

    def __init__(
        self,
        urls: Iterable[str],
        min_interval_sec: float = 60.0,
        disconnect_sec: float = 30.0,
        secrets: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.urls = list(urls)
        self.secrets = tuple(s for s in (*secrets, *self.urls) if s)
        self.min_interval = min_interval_sec
        self.rules = AlertRules(disconnect_sec)
        self.clock = clock
        self.apprise = apprise.Apprise()
        self.bad_urls = [u for u in self.urls if not self.apprise.add(u)]
        self.sent: list[Alert] = []
        self.failures = 0
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(QUEUE_LIMIT)
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return len(self.apprise) > 0

    def on_event(self, name: str, payload: dict[str, Any]) -> None:
        """A hub sink: decide, rate-limit and queue (never blocks, never raises)."""
        if not self.enabled:
            return
        now = self.clock()
        for alert in self.rules.alerts(name, payload, now):
            last = self._last.get(alert.key)
            if last is not None and now - last < self.min_interval:
                self._held[alert.key] = self._held.get(alert.key, 0) + 1
                continue
            self._last[alert.key] = now
            held = self._held.pop(alert.key, 0)
            if held:
                alert.body += f" (+{held} similar held back by the rate limit)"
            alert.title = redact(alert.title, self.secrets)
            alert.body = redact(alert.body, self.secrets)
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(alert)

    async def _deliver(self) -> None:
        while True:
            alert = await self._queue.get()
            try:
                await self.send(alert)
            finally:
                self._queue.task_done()

    async def send(self, alert: Alert) -> bool:
        try:
            ok = bool(
                await self.apprise.async_notify(
                    body=alert.body, title=alert.title, notify_type=alert.level
                )
            )
        except Exception as exc:  # a broken notifier must not touch trading
            log.warning("alert not sent: %s", redact(f"{type(exc).__name__}: {exc}", self.secrets))
            ok = False
        if ok:
            self.sent.append(alert)
        else:
            self.failures += 1
            log.warning("alert not sent (%s): %s", alert.key, alert.title)
        return ok

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._deliver())

    async def stop(self, drain_sec: float = 5.0) -> None:
        """Send what is queued (up to `drain_sec`), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), drain_sec)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
