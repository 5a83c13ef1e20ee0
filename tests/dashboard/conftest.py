"""Shared helpers: a small journal written the way an agent writes it, a server on a free port."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from fabio.dashboard.alerts import Alerter
from fabio.dashboard.security import ControlToken
from fabio.dashboard.server import DashboardServer, Hub, HubConfig, Source
from fabio.execution.risk import RiskConfig
from fabio.killswitch import request_kill_switch
from fabio.strategies import load_strategies

TOKEN = "test-token-0123456789abcdef"
T0 = 1_704_207_000_000_000_000  # 2024-01-02 14:50 UTC, inside the RTH session
NS = 1_000_000_000


def require(condition: bool, reason: str) -> None:
    """Skip where a system package is missing; fail instead in CI (CI=true), which has it."""
    if condition:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: .ci/run installs it, so this must not skip)")
    pytest.skip(reason)


def chromium_path() -> str | None:
    return (
        os.environ.get("FABIO_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


def exchange(
    ts: int,
    price: float,
    symbol: str = "ESH4",
    regime: str = "trend",
    reasoning: str = "trend holds above value",
    notes: list[str] | None = None,
    prompt_tokens: int = 0,
    cost: float = 0.0,
    brain: str = "rules",
) -> dict[str, Any]:
    return {
        "type": "llm_exchange",
        "market_time": "2024-01-02 08:50:00 CST",
        "market_time_ns": ts,
        "wall_time": "2026-12-02T03:00:00.000+00:00",
        "symbol": symbol,
        "brain": brain,
        "trigger": "interval_outside",
        "context": {
            "price": price,
            "profile": {"poc": price - 2, "vah": price + 1, "val": price - 3},
        },
        "decision": {
            "market_assessment": {
                "regime": regime,
                "market_state": "balanced",
                "confidence": 0.7,
                "reasoning": reasoning,
            },
            "trade_decisions": [],
            "strategy_updates": {
                "active_strategies": ["MeanReversionPOC_v2"],
                "strategy_tweaks": [],
            },
            "notes_to_future_self": notes or [],
        },
        "rejected": [],
        "tokens": {"prompt": prompt_tokens, "completion": 0, "cached": 0},
        "cost_usd": cost,
    }


def trade_records(
    symbol: str = "ESH4", trade: str = "T1", ts: int = T0, entry: int = 18940, exit_: int = 18950
) -> list[dict[str, Any]]:
    """A long of 2 from `entry` to `exit_` ticks (its entry, entry fill and target fill)."""
    tid = f"{symbol}-{trade}"
    return [
        {
            "type": "entry",
            "ts_ns": ts,
            "trade_id": tid,
            "strategy": "MeanReversionPOC_v2",
            "regime": "range",
            "side": 1,
            "qty": 2,
            "entry_type": "market",
            "entry_ref_ticks": entry,
            "stop_ticks": entry - 8,
            "target_ticks": exit_,
            "risk_ticks": 8,
            "risk_usd": 200.0,
            "trade_date": "2024-01-02",
            "orders": [f"{tid}-1"],
            "symbol": symbol,
        },
        {
            "type": "fill",
            "ts_ns": ts + NS,
            "trade_id": tid,
            "order_id": f"{tid}-1",
            "side": 1,
            "qty": 2,
            "price_ticks": entry,
            "commission_usd": 2.5,
            "role": "entry",
            "strategy": "MeanReversionPOC_v2",
            "symbol": symbol,
        },
        {
            "type": "fill",
            "ts_ns": ts + 60 * NS,
            "trade_id": tid,
            "order_id": f"{tid}-3",
            "side": -1,
            "qty": 2,
            "price_ticks": exit_,
            "commission_usd": 2.5,
            "role": "target",
            "reason": "target",
            "strategy": "MeanReversionPOC_v2",
            "symbol": symbol,
        },
    ]


def session_start(symbol: str = "ESH4") -> dict[str, Any]:
    return {
        "type": "session",
        "event": "start",
        "trade_date": "2024-01-02",
        "ts_ns": T0 - 600 * NS,
        "symbol": symbol,
    }


def write(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")


def hub_for(log_dir: Path) -> Hub:
    return Hub(HubConfig(log_dir=log_dir, risk=RiskConfig(), strategies=load_strategies(None)))


def journal_records(path: Path, kind: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # the line being written
        if rec.get("type") == kind:
            out.append(rec)
    return out


@asynccontextmanager
async def running(
    log_dir: Path, host: str = "127.0.0.1", alerter: Alerter | None = None
) -> AsyncIterator[DashboardServer]:
    """A dashboard on a free port whose kill switch journals in `log_dir` (as `fabio kill`)."""

    def kill(engage: bool, reason: str, source: Source) -> None:
        request_kill_switch(log_dir, engage, reason, source)

    server = DashboardServer(hub_for(log_dir), ControlToken(TOKEN), kill, host, 0, alerter)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
