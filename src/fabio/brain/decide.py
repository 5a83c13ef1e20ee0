"""One decision at a moment of a data file (what `fabio decide` runs), and the brain factory."""

from __future__ import annotations

import asyncio
from typing import Any

from fabio.brain.base import Brain
from fabio.brain.context import build_context
from fabio.brain.exchange import exchange_record
from fabio.brain.notes import load_notes
from fabio.brain.thresholds import LearningRules, RegimeThresholds
from fabio.config import FeatureConfig, Settings
from fabio.data.base import MarketFeed
from fabio.errors import FabioError
from fabio.execution.engine import ExecutionEngine
from fabio.features.engine import FeatureEngine
from fabio.features.replay import snapshot_at
from fabio.journal import LLM_EXCHANGES, Journal
from fabio.playbook.setups import detect_setups
from fabio.strategies import load_strategies
from fabio.timeutil import format_ns

BRAINS = ("rules", "llm", "cache")
CACHE_FILE = "llm_cache.jsonl"


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold, for redaction."""
    secrets = (settings.openai_api_key, settings.topstep_password, settings.topstep_api_key,
               settings.dashboard_token, settings.alert_urls)
    return [s.get_secret_value() for s in secrets if s is not None]


def make_brain(kind: str, settings: Settings) -> Brain:
    """The brain `--brain` names; the rule brain always stands behind the others."""
    from fabio.brain.cache import CachedBrain
    from fabio.brain.llm import LlmBrain
    from fabio.brain.rules import RuleBrain

    if kind not in BRAINS:
        raise FabioError(f"--brain {kind}: choose one of {', '.join(BRAINS)}")
    rules = RuleBrain(RegimeThresholds(), LearningRules())
    if kind == "rules":
        return rules
    cache_path = settings.log_dir / CACHE_FILE
    if kind == "cache":
        return CachedBrain.replay(cache_path, model=settings.openai_model, fallback=rules)
    llm = LlmBrain.from_settings(settings, fallback=rules)
    if llm is None:
        raise FabioError(
            "--brain llm needs OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (an OpenAI-compatible "
            "server such as Ollama); set one in the environment or .env, or use --brain rules"
        )
    return CachedBrain.record(cache_path, llm)


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
    # Strategy state, results and notes as the journal left them (issue: restart from the logs).
    execution = ExecutionEngine.open(feed.contract, settings.log_dir, settings.risk_config(),
                                     defaults=load_strategies(settings.strategies_file),
                                     secrets=tuple(secret_values(settings)))
    strategy_state = execution.strategy_state
    setups = detect_setups(snap, strategy_state, spec.tick_size)
    journal_path = settings.log_dir / LLM_EXCHANGES
    notes = load_notes(
        journal_path, snap.symbol, snap.ts_ns, strategies={s.strategy for s in setups},
        closed_trades=execution.ledger.closed,
    )
    context = build_context(
        snap, spec.tick_size, strategy_state, execution.get_performance_stats(), notes,
        triggered_setups=setups, trigger="manual",
    )
    reply = asyncio.run(brain.decide(context))
    record = exchange_record(context, reply)
    Journal(journal_path, secrets=secret_values(settings)).append(record)
    record["journal"] = str(journal_path)
    return record
