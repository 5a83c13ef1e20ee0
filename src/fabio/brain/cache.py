"""A replay cache of LLM answers, so that a backtest with the LLM brain can be run again for free.

Keyed by sha256 of (model, system prompt, user prompt): the same model shown the same prompt
gets the same recorded answer back. `record` wraps an `LlmBrain`, asks it and stores each
answer it decided with (never a fallback); `replay` (`--brain cache`) answers from the file
only, and hands a miss to the fallback brain. A record keeps the decision as parsed (the value
policy already applied, its texts capped) with what the policy rejected, and the raw answer cut
at 16 KB (with its length and sha256): a hostile model's 50 KB notes do not fill the disk. A
record written before that (no `decision`) is parsed again from its raw answer through
`parse_decision`, as it was live. Storage is one append-only JSON Lines file, read whole at
start (a torn last line is reported and skipped).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from fabio.brain.base import Brain, BrainReply, ParseFailure, parse_decision
from fabio.brain.context import DecisionContext
from fabio.brain.exchange import bounded_raw
from fabio.brain.llm import LlmBrain, strip_fences
from fabio.brain.prompt import default_system_prompt, user_prompt
from fabio.brain.schema import Decision, Rejection
from fabio.journal import Journal, read_journal

RECORD_TYPE = "llm_cache"
DEFAULT_PATH = Path("logs") / "llm_cache.jsonl"
CACHE_BRAIN = "cache"


def cache_key(model: str, system: str, user: str) -> str:
    """sha256 of the three texts, JSON-encoded so that no concatenation is ambiguous."""
    blob = json.dumps([model, system, user], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class CacheEntry:
    key: str
    model: str
    raw_response: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    latency_ms: float = 0.0  # how long the model took when recorded
    decision: dict[str, Any] | None = None  # as parsed when recorded (None: an older record)
    rejections: tuple[dict[str, Any], ...] = ()

    @staticmethod
    def from_record(rec: dict[str, Any]) -> CacheEntry | None:
        key, raw = rec.get("key"), rec.get("raw_response")
        if not isinstance(key, str) or not isinstance(raw, str):
            return None
        return CacheEntry(
            key=key,
            model=str(rec.get("model", "")),
            raw_response=raw,
            prompt_tokens=int(rec.get("prompt_tokens") or 0),
            completion_tokens=int(rec.get("completion_tokens") or 0),
            cached_tokens=int(rec.get("cached_tokens") or 0),
            latency_ms=_latency(rec.get("latency_ms")),
            decision=rec["decision"] if isinstance(rec.get("decision"), dict) else None,
            rejections=tuple(r for r in rec.get("rejections") or () if isinstance(r, dict)),
        )


def _latency(value: Any) -> float:
    """A recorded latency in ms (0 when absent or not a finite non-negative number)."""
    try:
        ms = float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0
    return ms if math.isfinite(ms) and ms >= 0 else 0.0


@dataclass(slots=True)
class CacheStats:
    entries: int = 0
    hits: int = 0
    misses: int = 0
    stored: int = 0
    not_stored: int = 0  # fallbacks in record mode
    stale: int = 0  # cached answers that no longer parse


class CachedBrain:
    """Record LLM answers, or replay them; see the module docstring."""

    def __init__(
        self,
        path: str | Path,
        mode: Literal["record", "replay"],
        model: str,
        system: str,
        fallback: Brain,
        llm: LlmBrain | None = None,
    ) -> None:
        if mode == "record" and llm is None:
            raise ValueError("record mode needs the LLM brain to record")
        self.path = Path(path)
        self.mode = mode
        self.model = model
        self.system = system
        self.fallback = fallback
        self.llm = llm
        self.name = llm.name if mode == "record" and llm is not None else CACHE_BRAIN
        read = read_journal(self.path)
        self.problems = read.problems  # torn or unreadable lines, for the caller to report
        self.entries: dict[str, CacheEntry] = {}
        for rec in read.records:
            entry = CacheEntry.from_record(rec) if rec.get("type") == RECORD_TYPE else None
            if entry is not None:
                self.entries[entry.key] = entry  # a later answer to the same prompt wins
        self._stats = CacheStats(entries=len(self.entries))
        self._journal = Journal(self.path) if mode == "record" else None

    @classmethod
    def record(cls, path: str | Path, llm: LlmBrain) -> CachedBrain:
        """Ask `llm` every time and store what it decided with."""
        return cls(path, "record", llm.model, llm.system, llm.fallback, llm)

    @classmethod
    def replay(
        cls, path: str | Path, model: str, fallback: Brain, system: str | None = None
    ) -> CachedBrain:
        """Answer from the file only; `model` and `system` must match the recording."""
        return cls(path, "replay", model, system or default_system_prompt(), fallback)

    def stats(self) -> CacheStats:
        s = self._stats
        return CacheStats(s.entries, s.hits, s.misses, s.stored, s.not_stored, s.stale)

    def key_for(self, context: DecisionContext) -> str:
        return cache_key(self.model, self.system, user_prompt(context))

    async def decide(self, context: DecisionContext) -> BrainReply:
        if self.mode == "record":
            return await self._record(context)
        return await self._replay(context)

    async def _record(self, context: DecisionContext) -> BrainReply:
        assert self.llm is not None and self._journal is not None
        reply = await self.llm.decide(context)
        if reply.fell_back or reply.raw_response is None:
            self._stats.not_stored += 1
            return reply
        key = self.key_for(context)
        self._journal.append(
            {
                "type": RECORD_TYPE,
                "key": key,
                "model": self.model,
                "symbol": context.symbol,
                "market_time_ns": context.market_time_ns,
                **bounded_raw(reply.raw_response),
                "decision": reply.decision.model_dump(mode="json"),
                "rejections": [r.to_dict() for r in reply.rejections],
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens,
                "cached_tokens": reply.cached_tokens,
                "cost_usd": reply.cost_usd,
                "latency_ms": round(reply.latency_ms, 3),
            }
        )
        self.entries[key] = CacheEntry(
            key,
            self.model,
            str(bounded_raw(reply.raw_response)["raw_response"]),
            reply.prompt_tokens,
            reply.completion_tokens,
            reply.cached_tokens,
            round(reply.latency_ms, 3),
            reply.decision.model_dump(mode="json"),
            tuple(r.to_dict() for r in reply.rejections),
        )
        self._stats.stored += 1
        self._stats.entries = len(self.entries)
        return reply

    async def _replay(self, context: DecisionContext) -> BrainReply:
        entry = self.entries.get(self.key_for(context))
        if entry is None:
            self._stats.misses += 1
            return await self._fall_back(context, "cache miss")
        try:
            decision, rejections = self._stored(entry, context)
        except ParseFailure as exc:
            self._stats.stale += 1
            return await self._fall_back(context, f"cached answer no longer parses: {exc}")
        self._stats.hits += 1
        return BrainReply(
            decision=decision,
            brain=CACHE_BRAIN,
            requested_brain=CACHE_BRAIN,
            raw_response=entry.raw_response,
            rejections=rejections,
            # the recorded latency: a replayed backtest applies the decision as late as live
            latency_ms=entry.latency_ms,
            prompt_tokens=entry.prompt_tokens,
            completion_tokens=entry.completion_tokens,
            cached_tokens=entry.cached_tokens,
            cost_usd=0.0,
        )

    @staticmethod
    def _stored(entry: CacheEntry, context: DecisionContext) -> tuple[Decision, list[Rejection]]:
        """The recorded decision, or (an older record) its raw answer parsed again."""
        if entry.decision is None:
            return parse_decision(strip_fences(entry.raw_response), context)
        try:
            decision = Decision.model_validate(entry.decision)
            rejections = [Rejection(**r) for r in entry.rejections]
        except (ValidationError, TypeError) as exc:
            raise ParseFailure(f"the stored decision no longer validates: {exc}") from None
        return decision, rejections

    async def _fall_back(self, context: DecisionContext, reason: str) -> BrainReply:
        other = await self.fallback.decide(context)
        return BrainReply(
            decision=other.decision,
            brain=other.brain,
            requested_brain=CACHE_BRAIN,
            raw_response=other.raw_response,
            rejections=other.rejections,
            latency_ms=other.latency_ms,  # no call was made: only the fallback's own time
            prompt_tokens=other.prompt_tokens,
            completion_tokens=other.completion_tokens,
            cached_tokens=other.cached_tokens,
            cost_usd=other.cost_usd,
            fallback_reason=reason,
        )
