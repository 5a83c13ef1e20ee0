"""`fabio run` regressions: a new market every trade date; the live view and the kill switch."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from fabio.config import Settings
from fabio.data.base import MarketFeed
from fabio.paper import WARMUP_SESSIONS, PaperSession, RunOptions, _synthetic


def _traded_prices(feed: MarketFeed, trade_from: int) -> np.ndarray:
    prices = [b.trades.price[b.trades.ts >= trade_from] for b in feed.batches()]
    return np.concatenate(prices)


def test_each_trade_date_gets_its_own_synthetic_market() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    options = RunOptions(seed=1)
    first, t1 = _synthetic(settings, date(2024, 1, 2), options)
    again, t1b = _synthetic(settings, date(2024, 1, 2), options)
    nxt, t2 = _synthetic(settings, date(2024, 1, 3), options)
    a, b, c = _traded_prices(first, t1), _traded_prices(again, t1b), _traded_prices(nxt, t2)
    assert np.array_equal(a, b)  # the same date and seed: the same market
    n = min(len(a), len(c))
    # The next day is not the same day shifted in time: its path differs.
    assert not np.array_equal(np.diff(a[:n]), np.diff(c[:n]))
    assert WARMUP_SESSIONS > 0


def test_live_view_never_says_risk_active_with_the_kill_switch_engaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fabio.killswitch import request_kill_switch

    monkeypatch.chdir(tmp_path)
    logs = tmp_path / "logs"
    settings = Settings(_env_file=None, log_dir=logs)  # type: ignore[call-arg]
    request_kill_switch(logs, True, "desk says stop", "cli", ())
    session = PaperSession(settings, RunOptions(speed=1e6, duration_sec=600, live_view=False))
    asyncio.run(session.run())

    def shown() -> str:
        console = Console(record=True, width=300)
        console.print(session._view(session.agent.status, None))
        return console.export_text()

    text = shown()
    assert "risk active" not in text
    assert "KILL SWITCH ENGAGED" in text and "desk says stop" in text
