"""What `llm_exchanges.jsonl` keeps: full records where they matter, a summary of the rest.

A full `llm_exchange` record (the context sent, the answer, what was accepted, the cost) is kept
for every LLM call (any brain but the deterministic rule brain, and every fallback), every decision
that acts (a trade decision, a strategy tweak, a rejected value) and every answer dropped as stale.
The rule brain's other decisions change nothing and can be recomputed from the data, so consecutive
ones with the same assessment are folded into one `decision_summary` record: the span, how many
decisions, the regime and market state, the first and last price, and the notes to the future self
of its first decision (the rule brain notes a regime change, which is where a run starts; a restart
reads them back like any note). That keeps a nine-year bar backtest's journals small
(bench/journal_size.py) while the spec's greps (`grep strategy_tweaks`, `grep poc_cross_stats`,
...) still find every record that acted, and `grep market_assessment` also finds the summaries.

A summary is written when the assessment changes, before the next full record, and when a session
closes (`flush`); a crash loses at most the summary being accumulated, never a full record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fabio.brain.base import BrainReply
from fabio.brain.context import DecisionContext
from fabio.brain.exchange import SUMMARY_TYPE, exchange_record
from fabio.events import SCHEMA_VERSION
from fabio.journal import Journal
from fabio.timeutil import format_ns

SUMMARISED_BRAIN = "rules"  # deterministic and offline: its quiet decisions can be recomputed


def needs_full_record(reply: BrainReply, dropped: str | None, acted: bool = True) -> bool:
    """An LLM call, a fallback, a stale answer, or a decision that acts: a trade decision that
    was carried out (`acted`), a strategy tweak or a rejected value. A rule-brain entry the
    engine refused (e.g. the risk engine is halted) acted on nothing: execution.jsonl journals
    the refusal and the summary counts it."""
    d = reply.decision
    return bool(
        reply.brain != SUMMARISED_BRAIN
        or reply.fell_back
        or dropped
        or (d.trade_decisions and acted)
        or d.strategy_updates.strategy_tweaks
        or reply.rejections
        or reply.prompt_tokens
        or reply.completion_tokens
    )


@dataclass(slots=True)
class _Run:
    """Consecutive quiet decisions with one assessment."""

    symbol: str
    brain: str
    regime: str
    market_state: str
    first_ns: int
    last_ns: int
    first_price: float
    last_price: float
    notes: list[str]
    decisions: int = 1
    refused: int = 0  # trade decisions the engine refused

    def key(self) -> tuple[str, str, str, str]:
        return (self.symbol, self.brain, self.regime, self.market_state)

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": SUMMARY_TYPE,
            "schema_version": SCHEMA_VERSION,
            "symbol": self.symbol,
            "brain": self.brain,
            "market_time": format_ns(self.first_ns),
            "market_time_ns": self.first_ns,
            "last_market_time_ns": self.last_ns,
            "decisions": self.decisions,
            "market_assessment": {"regime": self.regime, "market_state": self.market_state},
            "price": [self.first_price, self.last_price],
        }
        if self.notes:
            out["notes_to_future_self"] = self.notes
        if self.refused:
            out["trade_decisions_refused"] = self.refused
        return out


class ExchangeJournal:
    """Writes decisions to `llm_exchanges.jsonl`: full records or folded summaries."""

    def __init__(self, journal: Journal | None) -> None:
        self.journal = journal
        self._run: _Run | None = None
        self.full_records = 0
        self.summarised_decisions = 0

    def record(
        self,
        ctx: DecisionContext,
        reply: BrainReply,
        dropped: str | None = None,
        acted: bool = True,
    ) -> dict[str, Any] | None:
        """Journal one decision; the full record when one was written, else None. `acted`: a
        trade decision of it was carried out (callers that do not know keep the default)."""
        if needs_full_record(reply, dropped, acted):
            self.flush()
            record = exchange_record(ctx, reply)
            if dropped:
                record["dropped"] = dropped
            if self.journal is not None:
                self.journal.append(record)
            self.full_records += 1
            return record
        d = reply.decision
        ma = d.market_assessment
        run = _Run(
            ctx.symbol,
            reply.brain,
            str(ma.regime),
            str(ma.market_state),
            ctx.market_time_ns,
            ctx.market_time_ns,
            ctx.price,
            ctx.price,
            list(d.notes_to_future_self),
        )
        run.refused = len(d.trade_decisions)
        self.summarised_decisions += 1
        # A decision with notes starts a run of its own, so a note keeps its own time.
        if self._run is not None and self._run.key() == run.key() and not run.notes:
            self._run.decisions += 1
            self._run.refused += run.refused
            self._run.last_ns = run.last_ns
            self._run.last_price = run.last_price
            return None
        self.flush()
        self._run = run
        return None

    def flush(self) -> None:
        """Write the summary being accumulated (at a session's close, before a full record)."""
        if self._run is not None and self.journal is not None:
            self.journal.append(self._run.record())
        self._run = None
