"""The brain port: any brain turns a DecisionContext into a validated BrainReply."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError

from fabio.brain.context import DecisionContext
from fabio.brain.schema import Decision, Rejection, check_decision


@dataclass(slots=True)
class BrainReply:
    """What a brain decided, who decided it, and what it cost."""

    decision: Decision
    brain: str  # who actually decided: "rules", "llm:<model>", "cache", ...
    requested_brain: str  # who was asked
    raw_response: str | None = None
    rejections: list[Rejection] = field(default_factory=list)
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    fallback_reason: str | None = None  # why the requested brain did not decide
    notes: list[str] = field(default_factory=list)  # about the call itself, for the journal

    @property
    def fell_back(self) -> bool:
        return self.fallback_reason is not None


@runtime_checkable
class Brain(Protocol):
    """Decides from a context. Never raises for a bad answer: it falls back and says why."""

    name: str

    async def decide(self, context: DecisionContext) -> BrainReply: ...


class ParseFailure(Exception):
    """An answer that is not a valid decision at all (bad JSON, schema violation)."""


def parse_decision(
    raw: str | dict[str, Any], context: DecisionContext
) -> tuple[Decision, list[Rejection]]:
    """Parse an answer and apply the value policy; ParseFailure if it is not a decision."""
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except (json.JSONDecodeError, TypeError) as exc:
        raise ParseFailure(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ParseFailure(f"expected a JSON object, got {type(data).__name__}")
    try:
        decision = Decision.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ParseFailure(f"schema violation: {problems}") from None
    return check_decision(decision, context.check_context())
