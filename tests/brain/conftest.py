"""Brain fixtures: a real feature snapshot of a synthetic ES session, its decision context, and
a scripted OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from fabio.brain.context import DecisionContext, NoteView, PositionView, build_context
from fabio.brain.schema import ImportanceZone
from fabio.data.synthetic import SyntheticConfig, front_contract, iter_sessions
from fabio.features.engine import FeatureEngine
from fabio.features.snapshot import FeatureSnapshot
from fabio.playbook.base import SetupCandidate
from fabio.strategies import (
    MEAN_REVERSION,
    TREND_PULLBACK,
    StrategyPerformance,
    initialize_default_strategies,
)
from tests.brain.llm_server import FakeOpenAI

MINUTES_INTO_SESSION = 150


@pytest.fixture(scope="session")
def snapshot() -> FeatureSnapshot:
    """Features 150 minutes into the second of two synthetic ES RTH sessions (seed 0)."""
    sessions = list(iter_sessions(SyntheticConfig(rth_trades=50_000, eth=False, days=2)))
    engine = FeatureEngine(front_contract("ES", sessions[0].session.trade_date))
    engine.update(sessions[0].trades)
    today = sessions[1]
    cut = today.session.rth_open_ns + MINUTES_INTO_SESSION * 60 * 1_000_000_000
    engine.update(today.trades.slice(0, int(np.searchsorted(today.trades.ts, cut))))
    return engine.snapshot()


@pytest.fixture(scope="session")
def decision_context(snapshot: FeatureSnapshot) -> DecisionContext:
    """A plain context: default strategies, no results, no notes, flat."""
    return build_context(snapshot, 0.25, initialize_default_strategies())


@pytest.fixture(scope="session")
def rich_context(snapshot: FeatureSnapshot) -> DecisionContext:
    """A context as it looks mid-session: results, notes, a zone, a setup, a position."""
    assert snapshot.price is not None and snapshot.profile is not None
    price = snapshot.price
    poc = snapshot.profile.poc
    assert poc is not None
    perf = {
        MEAN_REVERSION: StrategyPerformance(
            trades=34,
            wins=21,
            win_rate=0.618,
            net_pnl=1837.5,
            avg_pnl=54.04,
            avg_r=0.41,
            profit_factor=1.62,
            max_drawdown=612.5,
            trades_this_session=1,
        ),
        TREND_PULLBACK: StrategyPerformance(
            trades=12,
            wins=4,
            win_rate=0.333,
            net_pnl=-450.0,
            avg_pnl=-37.5,
            avg_r=-0.22,
            profit_factor=0.71,
            max_drawdown=900.0,
            trades_this_session=0,
        ),
    }
    notes = [
        NoteView(
            text="ES range, balanced midday: fading VAH worked when cvd_slope_5min turned "
            "negative within two minutes",
            regime="range",
            strategy=MEAN_REVERSION,
            sessions_ago=1,
            outcome="win",
        ),
        NoteView(
            text="Trend pullbacks failed on low-range days: wait for range percentile above 0.6",
            regime="trend",
            strategy=TREND_PULLBACK,
            sessions_ago=3,
        ),
    ]
    zones = [
        ImportanceZone(
            id="poc",
            center_price=poc,
            priority=3,
            inner_band_ticks=4,
            outer_band_ticks=12,
            reason="developing POC",
        )
    ]
    setups = [
        SetupCandidate(
            strategy=MEAN_REVERSION,
            side="long",
            entry_price=price,
            stop_price=price - 3.0,
            target_price=price + 6.0,
            rr=2.0,
            reason="failed auction below VAL, back inside value",
        )
    ]
    position = PositionView(
        side="long",
        size=2,
        entry_price=price - 1.0,
        stop_price=price - 4.0,
        target_price=price + 5.0,
        strategy=MEAN_REVERSION,
        unrealized_ticks=4.0,
    )
    return build_context(
        snapshot,
        0.25,
        initialize_default_strategies(),
        perf,
        notes,
        position,
        zones,
        setups,
        trigger="setup",
    )


@pytest.fixture
def llm_server() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    try:
        yield server
    finally:
        server.stop()
