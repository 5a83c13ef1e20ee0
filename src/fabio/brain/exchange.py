"""One exchange with a brain as a journal record (`logs/llm_exchanges.jsonl`).

The record carries the spec's names so its debug commands work on the file:
`grep poc_cross_stats`, `grep strategy_performance` (in `context`), `grep market_assessment`,
`grep strategy_updates`, `grep strategy_tweaks` (in `decision`).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from fabio.brain.base import BrainReply
from fabio.brain.context import DecisionContext
from fabio.events import SCHEMA_VERSION
from fabio.timeutil import format_ns

RECORD_TYPE = "llm_exchange"
SUMMARY_TYPE = "decision_summary"  # quiet rule-brain decisions folded (fabio.exchange_journal)
# A stored raw answer is cut here (a hostile model's 50 KB notes would fill the disk); the parsed
# decision, whose texts the value policy caps, is what is acted on and replayed.
MAX_RAW_CHARS = 16_384


def bounded_raw(raw: str | None) -> dict[str, Any]:
    """`raw_response` for a journal, cut at MAX_RAW_CHARS; a cut one keeps its full length
    (`raw_response_chars`) and the sha256 of its UTF-8 text (`raw_response_sha256`)."""
    if raw is None or len(raw) <= MAX_RAW_CHARS:
        return {"raw_response": raw}
    return {
        "raw_response": raw[:MAX_RAW_CHARS],
        "raw_response_truncated": True,
        "raw_response_chars": len(raw),
        "raw_response_sha256": hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest(),
    }


def exchange_record(
    context: DecisionContext, reply: BrainReply, wall_time: datetime | None = None
) -> dict[str, Any]:
    """The journal record of one decision: context sent, answer, what was accepted, cost."""
    d = reply.decision
    wall = wall_time or datetime.now(UTC)
    return {
        "type": RECORD_TYPE,
        "schema_version": SCHEMA_VERSION,
        "market_time": format_ns(context.market_time_ns),
        "market_time_ns": context.market_time_ns,
        "wall_time": wall.isoformat(timespec="milliseconds"),
        "symbol": context.symbol,
        "brain": reply.brain,
        "requested_brain": reply.requested_brain,
        "fallback_reason": reply.fallback_reason,
        "response_format": getattr(reply, "response_format", None),
        "call_notes": reply.notes,
        "trigger": context.trigger,
        "context": context.prompt_dict(),
        **bounded_raw(reply.raw_response),
        "decision": d.model_dump(),
        "accepted": {
            "trade_decisions": len(d.trade_decisions),
            "strategy_tweaks": len(d.strategy_updates.strategy_tweaks),
            "importance_zones": len(d.importance_zones),
            "notes_to_future_self": len(d.notes_to_future_self),
        },
        "rejected": [r.to_dict() for r in reply.rejections],
        "latency_ms": round(reply.latency_ms, 2),
        "tokens": {
            "prompt": reply.prompt_tokens,
            "completion": reply.completion_tokens,
            "cached": reply.cached_tokens,
        },
        "cost_usd": round(reply.cost_usd, 6),
    }
