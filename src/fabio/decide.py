"""`fabio decide`: one decision at a moment of a data file, journaled like the agent's."""

from __future__ import annotations

import asyncio
from typing import Any

from fabio.brain.context import build_context
from fabio.brain.decide import make_brain, secret_values
from fabio.brain.exchange import exchange_record
from fabio.brain.notes import load_notes
from fabio.config import FeatureConfig, Settings
from fabio.errors import FabioError
from fabio.features.engine import FeatureEngine
from fabio.features.replay import snapshot_at
from fabio.journal import LLM_EXCHANGES, Journal
from fabio.playbook.setups import detect_setups
from fabio.ports import MarketFeed
from fabio.strategies import load_strategies
from fabio.timeutil import format_ns
from fabio.wiring import read_state


def decide_at(
    feed: MarketFeed,
    config: FeatureConfig,
    settings: Settings,
    brain_kind: str,
    at_ns: int | None,
) -> dict[str, Any]:
    """Snapshot at `at_ns`, ask the brain, journal the exchange; return the journal record."""
    brain = make_brain(brain_kind, settings)
    engine = FeatureEngine(feed.contract, config)
    snap = snapshot_at(engine, feed, at_ns)
    if snap.session is None or snap.market_stats is None:
        when = format_ns(at_ns) if at_ns is not None else "the end of the data"
        raise FabioError(
            f"no trades in a {config.session.value.upper()} session up to {when}: "
            "nothing to decide on (try another --at, or --eth)"
        )
    spec = feed.contract.spec
    # Strategy state, results and notes as the journal left them, read without writing.
    journaled = read_state(
        feed.contract,
        settings.log_dir,
        settings.risk_config(),
        load_strategies(settings.strategies_file),
    ).ledger
    strategy_state = journaled.book.strategy_state
    setups = detect_setups(snap, strategy_state, spec.tick_size)
    journal_path = settings.log_dir / LLM_EXCHANGES
    notes = load_notes(
        journal_path,
        snap.symbol,
        snap.ts_ns,
        strategies={s.strategy for s in setups},
        closed_trades=journaled.closed,
    )
    context = build_context(
        snap,
        spec.tick_size,
        strategy_state,
        journaled.performance(),
        notes,
        triggered_setups=setups,
        trigger="manual",
    )
    reply = asyncio.run(brain.decide(context))
    record = exchange_record(context, reply)
    Journal(journal_path, secrets=secret_values(settings)).append(record)
    record["journal"] = str(journal_path)
    return record
