"""The brain's notes to its future self, read back from the journal: bounded, most relevant first.

Relevance: notes written in the current regime first, then about the strategies in play, then
the most recent; identical notes (ignoring case and spacing) collapse into the newest one. Each
note carries its later outcome: what the strategy it was about did after it was written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fabio.brain.context import MAX_NOTES_IN_CONTEXT, NoteView
from fabio.brain.exchange import RECORD_TYPE
from fabio.execution.types import ClosedTrade
from fabio.journal import read_journal
from fabio.sessions import cme_calendar


def _key(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def _outcome(strategy: str | None, since_ns: int, now_ns: int,
             closed: list[ClosedTrade]) -> str | None:
    """What the strategy the note was about did after it: trades and net P&L."""
    if strategy is None:
        return None
    after = [t for t in closed if t.strategy == strategy and since_ns <= t.exit_ns < now_ns]
    if not after:
        return None
    net = sum(t.net_pnl_usd for t in after)
    wins = sum(1 for t in after if t.net_pnl_usd > 0)
    return f"{strategy} after this note: {len(after)} trades, {wins} won, net ${net:,.0f}"


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
    cal = cme_calendar()
    today = cal.trade_date_of(now_ns)
    today_index = cal.index_on(today) if today is not None else None
    latest: dict[str, tuple[int, NoteView]] = {}
    for rec in records:
        if rec.get("type") != RECORD_TYPE or rec.get("symbol") != symbol:
            continue
        ts = int(rec.get("market_time_ns") or 0)
        if ts >= now_ns:
            continue
        decision = rec.get("decision") or {}
        assessment = decision.get("market_assessment") or {}
        day = cal.trade_date_of(ts)
        day_index = cal.index_on(day) if day is not None else None
        ago = 0
        if today_index is not None and day_index is not None:
            ago = max(0, today_index - day_index)
        for text in decision.get("notes_to_future_self") or []:
            if not isinstance(text, str) or not text.strip():
                continue
            view = NoteView(
                text=text.strip(),
                regime=assessment.get("regime"),
                strategy=assessment.get("chosen_model"),
                sessions_ago=ago,
                outcome=_outcome(assessment.get("chosen_model"), ts, now_ns,
                                 closed_trades or []),
            )
            key = _key(text)
            if key not in latest or latest[key][0] <= ts:
                latest[key] = (ts, view)
    wanted = strategies or set()

    def rank(item: tuple[int, NoteView]) -> tuple[int, int, int]:
        ts, note = item
        return (
            0 if regime is not None and note.regime == regime else 1,
            0 if note.strategy in wanted else 1,
            -ts,
        )

    return [note for _, note in sorted(latest.values(), key=rank)[:limit]]


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
