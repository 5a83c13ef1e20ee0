"""The brain's notes to its future self, read back from the journal: bounded, most relevant first.

Notes are data, not instructions: each is capped (MAX_NOTE_CHARS), a note flagged by
`flag_note` (an instruction, or an attempt to change a limit) is never given back, and the prompt
hands them to the model as quoted, untrusted text.

Relevance: notes written in the current regime first, then about the strategies in play, then
the most recent; identical notes (ignoring case and spacing) collapse into the newest one. Each
note carries its later outcome: what the strategy it was about did after it was written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fabio.brain.context import MAX_NOTES_IN_CONTEXT, NoteView
from fabio.brain.exchange import RECORD_TYPE, SUMMARY_TYPE
from fabio.brain.schema import MAX_NOTE_CHARS, flag_note
from fabio.journal import read_journal
from fabio.orders import ClosedTrade
from fabio.sessions import cme_calendar


def _key(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def _outcome(
    strategy: str | None, since_ns: int, now_ns: int, closed: list[ClosedTrade]
) -> str | None:
    """What the strategy the note was about did after it: trades and net P&L."""
    if strategy is None:
        return None
    after = [t for t in closed if t.strategy == strategy and since_ns <= t.exit_ns < now_ns]
    if not after:
        return None
    net = sum(t.net_pnl_usd for t in after)
    wins = sum(1 for t in after if t.net_pnl_usd > 0)
    return f"{strategy} after this note: {len(after)} trades, {wins} won, net ${net:,.0f}"


@dataclass(slots=True)
class _Note:
    ts: int
    session: int | None
    text: str
    regime: str | None
    strategy: str | None


class NoteStore:
    """Notes indexed as they arrive: deduplicated, bounded to the newest `capacity`."""

    def __init__(self, symbol: str, capacity: int = 500) -> None:
        self.symbol = symbol
        self.capacity = capacity
        self._notes: dict[str, _Note] = {}
        self._cal = cme_calendar()
        self.flagged = 0

    def add_record(self, rec: dict[str, Any]) -> None:
        """Take the notes of one `llm_exchange` record, or of a `decision_summary` (the rule
        brain's quiet decisions folded together); other records and symbols are skipped."""
        if rec.get("type") not in (RECORD_TYPE, SUMMARY_TYPE) or rec.get("symbol") != self.symbol:
            return
        decision = rec.get("decision") or rec
        assessment = decision.get("market_assessment") or {}
        ts = int(rec.get("market_time_ns") or 0)
        for text in decision.get("notes_to_future_self") or []:
            if isinstance(text, str) and text.strip():
                self.add(ts, text, assessment.get("regime"), assessment.get("chosen_model"))

    def export(self) -> list[dict[str, Any]]:
        """The notes, oldest first, as plain records (what a new account inherits)."""
        return [
            {"ts": n.ts, "text": n.text, "regime": n.regime, "strategy": n.strategy}
            for n in self._notes.values()
        ]

    def add_exported(self, notes: list[dict[str, Any]]) -> None:
        """Take notes `export` wrote (any contract of the product)."""
        for n in notes:
            if isinstance(n, dict) and isinstance(n.get("text"), str) and n["text"].strip():
                self.add(int(n.get("ts") or 0), n["text"], n.get("regime"), n.get("strategy"))

    def add(self, ts: int, text: str, regime: str | None, strategy: str | None) -> None:
        """Index one note; a note flagged as an instruction (journals written before notes were
        checked, or edited by hand) is counted in `flagged` and never shown to a brain."""
        if flag_note(text):
            self.flagged += 1
            return
        text = text.strip()[:MAX_NOTE_CHARS]
        key = _key(text)
        old = self._notes.get(key)
        if old is not None and old.ts > ts:
            return
        day = self._cal.trade_date_of(ts)
        session = self._cal.index_on(day) if day is not None else None
        self._notes.pop(key, None)  # re-insert: dict order is recency order
        self._notes[key] = _Note(ts, session, text.strip(), regime, strategy)
        while len(self._notes) > self.capacity:
            self._notes.pop(next(iter(self._notes)))

    def select(
        self,
        now_ns: int,
        regime: str | None = None,
        strategies: set[str] | None = None,
        limit: int = MAX_NOTES_IN_CONTEXT,
        closed_trades: list[ClosedTrade] | None = None,
    ) -> list[NoteView]:
        """The `limit` most relevant notes written before `now_ns`, with their outcome."""
        wanted = strategies or set()
        day = self._cal.trade_date_of(now_ns)
        today = self._cal.index_on(day) if day is not None else None
        candidates = [n for n in self._notes.values() if n.ts < now_ns]
        candidates.sort(
            key=lambda n: (
                0 if regime is not None and n.regime == regime else 1,
                0 if n.strategy in wanted else 1,
                -n.ts,
            )
        )
        return [
            NoteView(
                text=n.text,
                regime=n.regime,
                strategy=n.strategy,
                sessions_ago=max(0, today - n.session)
                if today is not None and n.session is not None
                else 0,
                outcome=_outcome(n.strategy, n.ts, now_ns, closed_trades or []),
            )
            for n in candidates[:limit]
        ]


def notes_from_records(
    records: list[dict[str, Any]],
    symbol: str,
    now_ns: int,
    regime: str | None = None,
    strategies: set[str] | None = None,
    limit: int = MAX_NOTES_IN_CONTEXT,
    closed_trades: list[ClosedTrade] | None = None,
) -> list[NoteView]:
    """Select notes from `llm_exchange` records written before `now_ns`, with their outcome."""
    store = NoteStore(symbol, capacity=max(500, len(records)))
    for rec in records:
        store.add_record(rec)
    return store.select(now_ns, regime, strategies, limit, closed_trades)


def load_notes(
    journal: str | Path,
    symbol: str,
    now_ns: int,
    regime: str | None = None,
    strategies: set[str] | None = None,
    limit: int = MAX_NOTES_IN_CONTEXT,
    closed_trades: list[ClosedTrade] | None = None,
) -> list[NoteView]:
    return notes_from_records(
        read_journal(journal).records, symbol, now_ns, regime, strategies, limit, closed_trades
    )
