"""`llm_exchanges.jsonl` keeps full records for LLM calls and acting decisions only (issue 9)."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

from fabio.backtest.runner import run_backtest
from fabio.brain.notes import NoteStore
from fabio.brain.rules import RuleBrain
from fabio.data.synthetic import SyntheticConfig, SyntheticFeed
from fabio.exchange_journal import ExchangeJournal, needs_full_record
from fabio.journal import Journal, read_journal

SPEC_GREPS = (
    "poc_cross_stats",
    "strategy_tweaks",
    "strategy_performance",
    "market_assessment",
    "strategy_updates",
)


def _backtest(tmp_path: Path) -> tuple[list[dict], str, int]:  # type: ignore[type-arg]
    feed = SyntheticFeed(SyntheticConfig(symbol="ES", days=3, seed=3, eth=False, rth_trades=80_000))
    result = run_backtest([feed], RuleBrain(), tmp_path / "bt")
    path = tmp_path / "bt" / "llm_exchanges.jsonl"
    read = read_journal(path)
    assert read.problems == []
    return read.records, path.read_text(), int(result.summary["decisions"])


def test_quiet_rule_decisions_are_summarised_and_acting_ones_kept_in_full(tmp_path: Path) -> None:
    records, text, decisions = _backtest(tmp_path)
    full = [r for r in records if r["type"] == "llm_exchange"]
    summaries = [r for r in records if r["type"] == "decision_summary"]
    assert full and summaries
    assert len(full) + sum(s["decisions"] for s in summaries) == decisions
    for r in full:  # a rule-brain record in full is one that acted
        d = r["decision"]
        assert (
            d["trade_decisions"]
            or d["strategy_updates"]["strategy_tweaks"]
            or d["notes_to_future_self"]
            or r["rejected"]
        )
    # Summaries are in time order with the full records and never overlap.
    times = [
        (r["market_time_ns"], r.get("last_market_time_ns", r["market_time_ns"])) for r in records
    ]
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(times))
    # The spec's greps still find the records that acted.
    for key in SPEC_GREPS:
        assert any(key in line for line in text.splitlines()), key
    # About a tenth of a full record per decision (every decision in full was ~6.6 kB).
    assert len(text.encode()) / decisions < 1_000


def _reply_and_context(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real quiet rule-brain decision and its context, from a real backtest journal."""
    import asyncio

    from fabio.wiring import AgentOptions, build_agent

    feed = SyntheticFeed(SyntheticConfig(symbol="ES", days=2, seed=5, eth=False, rth_trades=50_000))
    agent = build_agent(feed.contract, RuleBrain(), AgentOptions(log_dir=None))
    found = []

    async def go() -> None:
        for batch in feed.batches():
            await agent.feed(batch.trades)
            snap = agent.features.snapshot(int(batch.trades.ts[-1]))
            ctx = agent.context(snap, "test")
            if ctx is not None:
                reply = await agent.brain.decide(ctx)
                if not needs_full_record(reply, None):
                    found.append((ctx, reply))
                    return

    asyncio.run(go())
    assert found
    return found[0]


def test_llm_calls_fallbacks_and_stale_answers_are_always_full(tmp_path: Path) -> None:
    ctx, quiet = _reply_and_context(tmp_path)
    journal = ExchangeJournal(Journal(tmp_path / "x.jsonl"))
    assert journal.record(ctx, quiet) is None
    assert journal.record(ctx, quiet) is None  # folded into the same summary
    llm = dataclasses.replace(
        quiet,
        brain="llm:gpt-4o-mini",
        requested_brain="llm:gpt-4o-mini",
        prompt_tokens=1200,
        completion_tokens=150,
    )
    fallback = dataclasses.replace(
        quiet, requested_brain="llm:gpt-4o-mini", fallback_reason="timeout after 12 s"
    )
    for reply, dropped in ((llm, None), (fallback, None), (quiet, "stale: 12 s old")):
        assert journal.record(ctx, reply, dropped) is not None
    noted = dataclasses.replace(
        quiet,
        decision=quiet.decision.model_copy(
            update={"notes_to_future_self": ["fade the open when VA is narrow"]}
        ),
    )
    assert journal.record(ctx, noted) is None  # a rule-brain note: in a summary of its own
    journal.flush()
    lines = [json.loads(x) for x in (tmp_path / "x.jsonl").read_text().splitlines()]
    kinds = [r["type"] for r in lines]
    assert kinds == ["decision_summary", *["llm_exchange"] * 3, "decision_summary"]
    assert lines[0]["decisions"] == 2 and lines[-1]["decisions"] == 1
    assert lines[-1]["notes_to_future_self"] == ["fade the open when VA is narrow"]
    # A restart reads the note back from the summary.
    store = NoteStore(ctx.symbol)
    for r in lines:
        store.add_record(r)
    notes = store.select(ctx.market_time_ns + 1, None, set())
    assert [n.text for n in notes] == ["fade the open when VA is narrow"]
