"""What `llm_exchanges.jsonl` keeps: full records where they matter, a summary of the rest.

A full `llm_exchange` record (the context sent, the answer, what was accepted, the cost) is kept
for every LLM call (any brain but the deterministic rule brain, and every fallback), every
decision that acts (a trade decision, a strategy tweak, a note to the future self, a rejected
value) and every answer dropped as stale. The rule brain's other decisions change nothing and can
be recomputed from the data, so consecutive ones with the same assessment are folded into one
`decision_summary` record: the span, how many decisions, the regime and market state, the first
and last price. That keeps a nine-year bar backtest's journals small (bench/journal_size.py)
while the spec's greps (`grep strategy_tweaks`, `grep poc_cross_stats`, ...) still find every
record that acted, and `grep market_assessment` also finds the summaries.

A summary is written when the assessment changes, before the next full record, and when a
session closes (`flush`); a crash loses at most the summary being accumulated, never a full
record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fabio.brain.base import BrainReply
from fabio.brain.context import DecisionContext
from fabio.brain.exchange import exchange_record
from fabio.journal import Journal
from fabio.timeutil import format_ns

SUMMARY_TYPE = "decision_summary"
SUMMARISED_BRAIN = "rules"  # deterministic and offline: its quiet decisions can be recomputed


def needs_full_record(reply: BrainReply, dropped: str | None) -> bool:
    """An LLM call, a fallback, a stale answer, or a decision that acts."""
    d = reply.decision
    return bool(
        reply.brain != SUMMARISED_BRAIN
        or reply.fell_back
        or dropped
        or d.trade_decisions
        or d.strategy_updates.strategy_tweaks
        or d.notes_to_future_self
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
    decisions: int = 1

    def key(self) -> tuple[str, str, str, str]:
        return (self.symbol, self.brain, self.regime, self.market_state)

    def record(self) -> dict[str, Any]:
        return {
            "type": SUMMARY_TYPE,
            "symbol": self.symbol,
            "brain": self.brain,
            "market_time": format_ns(self.first_ns),
            "market_time_ns": self.first_ns,
            "last_market_time_ns": self.last_ns,
            "decisions": self.decisions,
            "market_assessment": {"regime": self.regime, "market_state": self.market_state},
            "price": [self.first_price, self.last_price],
        }


class ExchangeJournal:
    """Writes decisions to `llm_exchanges.jsonl`: full records or folded summaries."""

    def __init__(self, journal: Journal | None) -> None:
        self.journal = journal
        self._run: _Run | None = None
        self.full_records = 0
        self.summarised_decisions = 0

    def record(
        self, ctx: DecisionContext, reply: BrainReply, dropped: str | None = None
    ) -> dict[str, Any] | None:
        """Journal one decision; the full record when one was written, else None."""
        if needs_full_record(reply, dropped):
            self.flush()
            record = exchange_record(ctx, reply)
            if dropped:
                record["dropped"] = dropped
            if self.journal is not None:
                self.journal.append(record)
            self.full_records += 1
            return record
        ma = reply.decision.market_assessment
        run = _Run(
            ctx.symbol,
            reply.brain,
            str(ma.regime),
            str(ma.market_state),
            ctx.market_time_ns,
            ctx.market_time_ns,
            ctx.price,
            ctx.price,
        )
        self.summarised_decisions += 1
        if self._run is not None and self._run.key() == run.key():
            self._run.decisions += 1
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
