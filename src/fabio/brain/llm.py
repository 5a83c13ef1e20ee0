"""The LLM brain: OpenAI (or any OpenAI-compatible server) through the official async SDK.

One call per decision, bounded in time: each attempt has `timeout_sec`, the whole decision
`total_budget_sec`, and at most one retry (timeouts, 429 and 5xx only, and only if it fits in
the budget). Structured outputs first (a strict JSON schema derived from `Decision`); a server
that refuses `json_schema` is asked again in JSON mode, and one that refuses that too in plain
text, and the brain remembers the downgrade. Whatever the model says goes through
`parse_decision`, so the value policy is the same for every brain. Any failure (network, HTTP
error, refusal, invalid answer) hands the decision to the injected fallback brain, with the
reason, redacted: the SDK's 401 message quotes part of the API key.

Cost and failure control: a circuit breaker stops calling an endpoint that is not usable now
after `breaker_failures` consecutive failures that say so (connection refused or reset, timeouts,
HTTP 5xx, HTTP 429 once its Retry-After has been waited out), for a cool-off in market time that
doubles after every failed probe (one request per cool-off, never retried; a 429's Retry-After
is the shortest cool-off). A refused key
(HTTP 401/403) stops every call until restart. A per-session budget in dollars and/or tokens
hands the rest of the session to the fallback brain once spent. The first failure of an outage,
the breaker opening and closing, and a refused key are each said once (a logged warning, which
the CLI prints on stderr, and a note on the reply, which the journal keeps and the alerts read)
and show in `stats()`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Literal, Self

import openai
from openai import AsyncOpenAI
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from fabio.brain.base import Brain, BrainReply, ParseFailure, parse_decision
from fabio.brain.context import DecisionContext
from fabio.brain.prompt import default_system_prompt, user_prompt
from fabio.brain.schema import Decision
from fabio.clock import Deadlines, WallDeadlines
from fabio.config import Settings
from fabio.journal import redact

ResponseFormat = Literal["json_schema", "json_object", "text"]
_DOWNGRADE: dict[str, ResponseFormat] = {"json_schema": "json_object", "json_object": "text"}
# Keyless local servers (Ollama, vLLM, llama.cpp) ignore the key, but the SDK wants one.
LOCAL_PLACEHOLDER_KEY = "no-key"
_OPENAI_HOSTS = ("api.openai.com",)
OPENAI_BASE_URL = "https://api.openai.com/v1"
NS = 1_000_000_000
# Failures that say "this endpoint is not usable now": these open the circuit breaker.
BREAKER_KINDS = frozenset({"connection", "timeout", "server_error", "rate_limit"})
# A refused key (HTTP 401/403): nothing is sent again until restart.
REFUSED_KIND = "auth"
# The prefix of every breaker / key note on a reply (the alerts look for it).
LLM_NOTE = "LLM "
log = logging.getLogger(__name__)


class ModelPrice(BaseModel):
    """USD per 1M tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: float = Field(ge=0)
    cached_input: float = Field(ge=0)
    output: float = Field(ge=0)


# Standard-tier prices in USD per 1M tokens (input, cached input, output), from OpenAI's
# pricing page (https://platform.openai.com/docs/pricing) as of 2025-08. Re-check them there
# before trusting a cost report; a model missing here is reported as "cost not computed".
PRICES: dict[str, ModelPrice] = {
    "gpt-4o-mini": ModelPrice(input=0.15, cached_input=0.075, output=0.60),
    "gpt-4o": ModelPrice(input=2.50, cached_input=1.25, output=10.00),
    "gpt-4.1": ModelPrice(input=2.00, cached_input=0.50, output=8.00),
    "gpt-4.1-mini": ModelPrice(input=0.40, cached_input=0.10, output=1.60),
    "gpt-4.1-nano": ModelPrice(input=0.10, cached_input=0.025, output=0.40),
    "o4-mini": ModelPrice(input=1.10, cached_input=0.275, output=4.40),
    "o3": ModelPrice(input=2.00, cached_input=0.50, output=8.00),
    "o3-mini": ModelPrice(input=1.10, cached_input=0.55, output=4.40),
    "gpt-5": ModelPrice(input=1.25, cached_input=0.125, output=10.00),
    "gpt-5-mini": ModelPrice(input=0.25, cached_input=0.025, output=2.00),
    "gpt-5-nano": ModelPrice(input=0.05, cached_input=0.005, output=0.40),
}
_SNAPSHOT_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")
# Reasoning models refuse `temperature` (HTTP 400), so it is not sent to them.
_REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")


def price_for(model: str) -> ModelPrice | None:
    """The table's price of `model` or of a dated snapshot of it (`gpt-4o-2024-08-06`)."""
    return PRICES.get(_SNAPSHOT_SUFFIX.sub("", model))


def cost_usd(price: ModelPrice, prompt: int, completion: int, cached: int) -> float:
    """Cost of one call; cached prompt tokens are billed at the cached rate."""
    cached = min(cached, prompt)
    return (
        (prompt - cached) * price.input + cached * price.cached_input + completion * price.output
    ) / 1e6


def is_openai_url(base_url: str | None) -> bool:
    """Whether calls go to OpenAI itself (the only server the price table describes)."""
    if base_url is None:
        return True
    host = re.sub(r"^[a-z]+://", "", base_url.strip().lower()).split("/")[0].split(":")[0]
    return host in _OPENAI_HOSTS


class LlmConfig(BaseModel):
    """How to reach the model and how long a decision may take."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = "gpt-4o-mini"
    base_url: str | None = None
    api_key: SecretStr | None = None
    timeout_sec: float = Field(8.0, gt=0, le=600)  # one attempt
    total_budget_sec: float = Field(12.0, gt=0, le=600)  # the whole decision, retry included
    min_attempt_sec: float = Field(1.0, gt=0, le=600)  # a retry needs at least this much left
    retry_backoff_sec: float = Field(0.25, ge=0, le=60)  # wait before a retry without Retry-After
    temperature: float | None = Field(0.2, ge=0, le=2)
    max_completion_tokens: int = Field(900, ge=16, le=200_000)
    price: ModelPrice | None = None  # overrides the price table (e.g. a custom deployment)
    # Circuit breaker: this many consecutive failures that say "not usable now" open it ...
    breaker_failures: int = Field(3, ge=1, le=100)
    # ... for this long in market time; each failed probe doubles it, up to the maximum.
    breaker_cooloff_sec: float = Field(60.0, gt=0, le=86_400)
    breaker_max_cooloff_sec: float = Field(3600.0, gt=0, le=86_400)
    # Per-session budget (a session = one trade date's RTH): then the fallback brain decides.
    max_cost_per_session_usd: float | None = Field(None, ge=0, allow_inf_nan=False)
    max_tokens_per_session: int | None = Field(None, ge=0)

    def resolved_price(self) -> tuple[ModelPrice | None, str | None]:
        """(price, why there is none)."""
        if self.price is not None:
            return self.price, None
        if not is_openai_url(self.base_url):
            return None, "cost not computed: not an OpenAI server (set LlmConfig.price to bill it)"
        found = price_for(self.model)
        if found is None:
            return None, f"cost not computed: no price for model {self.model!r} in the table"
        return found, None


@dataclass(slots=True)
class LlmReply(BrainReply):
    """A BrainReply with what the journal should know about the call itself."""

    response_format: ResponseFormat | None = None


@dataclass(slots=True)
class LlmStats:
    """Running totals of one brain instance."""

    calls: int = 0  # decisions asked of this brain
    requests: int = 0  # HTTP requests sent (retries and format downgrades included)
    decisions: int = 0  # answers that became the decision
    fallbacks: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    response_format: ResponseFormat = "json_schema"
    fallback_reasons: dict[str, int] = field(default_factory=dict)
    breaker_state: Literal["closed", "open", "key_refused"] = "closed"
    breaker_opens: int = 0  # times the breaker opened (a failed probe re-opening it counts)
    breaker_skipped: int = 0  # decisions not sent because the breaker was open
    refused_skipped: int = 0  # decisions not sent because the key was refused (401/403)
    budget_skipped: int = 0  # decisions not sent because the session's budget was spent
    budget_sessions: int = 0  # sessions whose budget ran out
    session_cost_usd: float = 0.0
    session_tokens: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------ structured output


def _strict(node: Any) -> Any:
    """OpenAI strict mode: every property required, no extra keys, no `default`, no titles."""
    if isinstance(node, list):
        return [_strict(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("default", "title"):
            continue
        if key in ("properties", "$defs") and isinstance(value, dict):
            # a mapping of names to schemas: a property may be called "title" or "default"
            out[key] = {name: _strict(sub) for name, sub in value.items()}
        else:
            out[key] = _strict(value)
    if out.get("type") == "object" or "properties" in out:
        out["additionalProperties"] = False
        out["required"] = list(out.get("properties", {}))
    return out


@lru_cache(maxsize=1)
def _decision_schema_json() -> str:
    return json.dumps(_strict(Decision.model_json_schema()))


def decision_json_schema() -> dict[str, Any]:
    """`Decision`'s JSON schema in the form OpenAI's strict structured outputs accept.

    A fresh copy each time: the SDK edits the schema it is given in place.
    """
    schema: dict[str, Any] = json.loads(_decision_schema_json())
    return schema


class DecisionWire(BaseModel):
    """The response_format model handed to `chat.completions.parse`.

    Its schema is `Decision`'s, made strict. It accepts any answer on the Python side: the SDK
    must not throw an answer away before `parse_decision` reads `message.content`, which keeps
    one parser (with its precise messages and the value policy) for every mode and brain.
    """

    model_config = ConfigDict(extra="allow")

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return decision_json_schema()

    @classmethod
    def model_validate_json(cls, *args: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate_json(*args, **kwargs)
        except ValidationError:
            return super().model_validate({})


# ------------------------------------------------------------------ failures


class _Failed(Exception):
    """A call that cannot give a decision; `kind` groups reasons in the stats."""

    def __init__(self, kind: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.retry_after = retry_after  # the server's Retry-After, when it sent one


class _Retryable(_Failed):
    """A failure worth one more attempt (timeouts, 429, 5xx)."""


class _FormatRefused(_Failed):
    """HTTP 400 about response_format: the server does not support this mode."""


def _retry_after(headers: Any) -> float | None:
    """Seconds from `retry-after-ms` or a numeric `retry-after` (an HTTP date is ignored)."""
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _classify(exc: Exception, timeout: float) -> _Failed:
    """Map an SDK exception to a failure, retryable or not."""
    if isinstance(exc, (TimeoutError, openai.APITimeoutError)):
        return _Retryable("timeout", f"timeout after {timeout:.2f} s")
    if isinstance(exc, openai.RateLimitError):
        if exc.code == "insufficient_quota":
            return _Failed("rate_limit", f"HTTP 429, quota exhausted: {_short(exc.message)}")
        wait = _retry_after(exc.response.headers)
        return _Retryable("rate_limit", "rate limited (HTTP 429)", wait)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status >= 500:
            return _Retryable("server_error", f"server error (HTTP {status})")
        if status == 400 and re.search(r"response_format|json_schema|json_object", str(exc)):
            return _FormatRefused("format_refused", f"HTTP 400: {_short(exc.message)}")
        if status in (401, 403):
            return _Failed("auth", f"authentication failed (HTTP {status}): {_short(exc.message)}")
        return _Failed("http_error", f"HTTP {status}: {_short(exc.message)}")
    if isinstance(exc, openai.APIConnectionError):
        return _Failed("connection", f"connection error: {_short(str(exc))}")
    if isinstance(exc, openai.LengthFinishReasonError):
        return _Failed("truncated", "answer cut off at max_completion_tokens")
    if isinstance(exc, openai.ContentFilterFinishReasonError):
        return _Failed("content_filter", "answer stopped by the content filter")
    return _Failed("unexpected", f"unexpected error: {type(exc).__name__}: {_short(str(exc))}")


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def strip_fences(text: str) -> str:
    """Plain-text answers often come wrapped in a Markdown code fence."""
    match = _FENCE.match(text)
    return match.group(1) if match else text


@dataclass(slots=True)
class _Call:
    """What one decision's calls used and said, for the reply."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    raw: str | None = None
    notes: list[str] = field(default_factory=list)

    def add_usage(self, usage: Any) -> None:
        if usage is None:
            return
        self.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
        self.completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
        details = getattr(usage, "prompt_tokens_details", None)
        self.cached_tokens += int(getattr(details, "cached_tokens", 0) or 0)


# ------------------------------------------------------------------ breaker and budget


@dataclass(slots=True)
class CircuitBreaker:
    """Consecutive breaker failures (`BREAKER_KINDS`) open it for a cool-off (market time).

    Closed: every decision is sent. After `failures` consecutive breaker failures it opens for
    `cooloff_ns`; when that has passed, one decision is sent as a probe: success closes it, a
    failure re-opens it for twice as long (at most `max_cooloff_ns`), and never for less than
    the server's Retry-After. So a dead endpoint costs `failures` attempts, then one per cool-off.
    """

    failures: int
    cooloff_ns: int
    max_cooloff_ns: int
    consecutive: int = 0
    open_until_ns: int | None = None
    current_cooloff_ns: int = 0

    @property
    def is_open(self) -> bool:
        return self.open_until_ns is not None

    def allows(self, now_ns: int) -> bool:
        """Whether a request may go out now (closed, or open and due for a probe)."""
        return self.open_until_ns is None or now_ns >= self.open_until_ns

    def success(self) -> bool:
        """Record an answer; True if that closed an open breaker."""
        was_open = self.open_until_ns is not None
        self.consecutive = 0
        self.open_until_ns = None
        self.current_cooloff_ns = 0
        return was_open

    def failure(self, now_ns: int, at_least_ns: int = 0) -> bool:
        """Record a breaker failure; True if it (re-)opened the breaker. `at_least_ns`: the
        server's Retry-After, the shortest cool-off."""
        self.consecutive += 1
        if self.open_until_ns is not None:  # a failed probe: wait twice as long
            self.current_cooloff_ns = min(self.max_cooloff_ns, self.current_cooloff_ns * 2)
        elif self.consecutive >= self.failures:
            self.current_cooloff_ns = self.cooloff_ns
        else:
            return False
        self.current_cooloff_ns = max(self.current_cooloff_ns, at_least_ns)
        self.open_until_ns = now_ns + self.current_cooloff_ns
        return True


def session_key(context: DecisionContext) -> int:
    """The UTC day of the session's open: one key per trade date's RTH session."""
    open_ns = context.market_time_ns - int(context.session_minute * 60 * NS)
    return open_ns // (86_400 * NS)


# ------------------------------------------------------------------ the brain


class LlmBrain:
    """A Brain backed by a chat-completions model, with a fallback brain behind it."""

    def __init__(
        self,
        config: LlmConfig,
        fallback: Brain,
        system: str | None = None,
        *,
        deadlines: Deadlines | None = None,
    ) -> None:
        self.config = config
        # the clock of the time budget: the wall clock, unless a test moves time itself
        self.deadlines: Deadlines = deadlines or WallDeadlines()
        self.fallback = fallback
        self.name = f"llm:{config.model}"
        self.model = config.model
        self.system = system or default_system_prompt()
        self._secrets = [config.api_key.get_secret_value()] if config.api_key else []
        self._price, self._price_note = config.resolved_price()
        self._stats = LlmStats()
        self._client: AsyncOpenAI | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self.breaker = CircuitBreaker(
            config.breaker_failures,
            int(config.breaker_cooloff_sec * NS),
            int(max(config.breaker_max_cooloff_sec, config.breaker_cooloff_sec) * NS),
        )
        self._session: int | None = None
        self._budget_said = False
        self._refused: str | None = None  # why the key was refused (401/403): no more calls
        self._last_failure = ""  # the last breaker failure's reason (for the skip reason)

    @classmethod
    def from_settings(
        cls, settings: Settings, fallback: Brain, system: str | None = None, **overrides: Any
    ) -> LlmBrain | None:
        """The brain the settings describe, or None without OPENAI_API_KEY or OPENAI_BASE_URL."""
        key = settings.openai_api_key
        if key is not None and not key.get_secret_value().strip():
            key = None
        if key is None and not settings.openai_base_url:
            return None
        budget: dict[str, Any] = {
            "max_cost_per_session_usd": settings.llm_max_cost_per_session,
            "max_tokens_per_session": settings.llm_max_tokens_per_session,
        }
        config = LlmConfig(
            model=settings.openai_model,
            base_url=settings.openai_base_url,
            api_key=key,
            **{**budget, **overrides},
        )
        return cls(config, fallback, system)

    @property
    def response_format(self) -> ResponseFormat:
        return self._stats.response_format

    def stats(self) -> LlmStats:
        """A copy of the running totals."""
        s = self._stats
        s.breaker_state = (
            "key_refused" if self._refused else "open" if self.breaker.is_open else "closed"
        )
        return LlmStats(**{**asdict(s), "fallback_reasons": dict(s.fallback_reasons)})

    def _client_for_loop(self) -> AsyncOpenAI:
        """One client per event loop: an httpx pool must not outlive the loop it was made on."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            key = self._secrets[0] if self._secrets else LOCAL_PLACEHOLDER_KEY
            self._client = AsyncOpenAI(
                api_key=key,
                # explicit, so that the SDK does not read OPENAI_BASE_URL behind our back
                base_url=self.config.base_url or OPENAI_BASE_URL,
                timeout=self.config.timeout_sec,
                max_retries=0,
            )
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
            self._client_loop = None

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)

    # -------------------------------------------------------------- decide

    async def decide(self, context: DecisionContext) -> BrainReply:
        """Ask the model; on any failure, the fallback decides and the reply says why."""
        start = self.deadlines.now()
        self._stats.calls += 1
        call = _Call()
        if self._price_note:
            call.notes.append(self._price_note)
        now = context.market_time_ns
        skip = self._gate(context, call)
        if skip is not None:
            return await self._fall_back(context, call, start, skip[0], skip[1])
        messages = [
            {"role": "system", "content": self.system},
            {"role": "user", "content": user_prompt(context)},
        ]
        try:
            call.raw = await self._ask(messages, start, call)
            if self.breaker.success():
                self._say(call, f"LLM {self.model} answers again: circuit breaker closed")
            decision, rejections = parse_decision(strip_fences(call.raw), context)
        except ParseFailure as exc:
            return await self._fall_back(context, call, start, "invalid_answer", str(exc))
        except _Failed as exc:
            self._failure(exc, now, call)
            return await self._fall_back(context, call, start, exc.kind, exc.reason)
        except Exception as exc:  # never let a surprise from the SDK reach the agent
            failure = _classify(exc, self.config.timeout_sec)
            self._failure(failure, now, call)
            return await self._fall_back(context, call, start, failure.kind, failure.reason)
        cost = self._account(call)
        self._stats.decisions += 1
        return LlmReply(
            decision=decision,
            brain=self.name,
            requested_brain=self.name,
            raw_response=self._redact(call.raw),
            rejections=rejections,
            latency_ms=(self.deadlines.now() - start) * 1e3,
            prompt_tokens=call.prompt_tokens,
            completion_tokens=call.completion_tokens,
            cached_tokens=call.cached_tokens,
            cost_usd=cost,
            response_format=self.response_format,
            notes=[self._redact(n) for n in call.notes],
        )

    def _gate(self, context: DecisionContext, call: _Call) -> tuple[str, str] | None:
        """(kind, reason) when no request may go out: key refused, session budget spent,
        breaker open."""
        s = self._stats
        if self._refused is not None:
            s.refused_skipped += 1
            return REFUSED_KIND, f"the LLM key was refused ({self._refused}); not called again"
        key = session_key(context)
        if key != self._session:
            self._session = key
            s.session_cost_usd = 0.0
            s.session_tokens = 0
            self._budget_said = False
        spent = self.budget_spent()
        if spent is not None:
            s.budget_skipped += 1
            if not self._budget_said:
                self._budget_said = True
                s.budget_sessions += 1
                message = (
                    f"LLM budget for this session spent ({spent}): the fallback brain "
                    "decides until the next session"
                )
                call.notes.append(message)
                log.warning("%s", message)
            return "budget", f"session budget spent ({spent})"
        if not self.breaker.allows(context.market_time_ns):
            s.breaker_skipped += 1
            until = (self.breaker.open_until_ns or 0) - context.market_time_ns
            return "circuit_open", (
                f"circuit breaker open after {self.breaker.consecutive} consecutive failures "
                f"({self._last_failure}); next probe in {until / NS:.0f} s"
            )
        return None

    def budget_spent(self) -> str | None:
        """What exhausted the session's budget, or None while some is left."""
        c, s = self.config, self._stats
        if (
            c.max_cost_per_session_usd is not None
            and s.session_cost_usd >= c.max_cost_per_session_usd
        ):
            return f"${s.session_cost_usd:.4f} of ${c.max_cost_per_session_usd:g}"
        if c.max_tokens_per_session is not None and s.session_tokens >= c.max_tokens_per_session:
            return f"{s.session_tokens} of {c.max_tokens_per_session} tokens"
        return None

    def _say(self, call: _Call, message: str) -> None:
        """A state change of the LLM, said once: a logged warning (stderr) and a reply note
        (the journal's `call_notes`, which the alerts read)."""
        message = self._redact(message)
        call.notes.append(message)
        log.warning("%s", message)

    def _failure(self, exc: _Failed, now_ns: int, call: _Call) -> None:
        """Count a failed call against the breaker (or the key); say what changed."""
        reason = self._redact(exc.reason)
        if exc.kind == REFUSED_KIND:
            self._refused = reason
            self._say(
                call,
                f"LLM {self.model} refused the API key ({reason}): the fallback brain decides "
                "until restart; fix OPENAI_API_KEY",
            )
            return
        if exc.kind not in BREAKER_KINDS:
            return
        self._last_failure = reason
        first = not self.breaker.is_open
        if first and self.breaker.consecutive == 0:
            self._say(
                call,
                f"LLM {self.model} failed ({reason}): the fallback brain decides; the breaker "
                f"opens after {self.breaker.failures} consecutive failures",
            )
        at_least = int((exc.retry_after or 0.0) * NS)
        if not self.breaker.failure(now_ns, at_least):
            return
        self._stats.breaker_opens += 1
        if first:  # said once per outage; failed probes only lengthen the cool-off
            self._say(
                call,
                f"LLM circuit breaker open after {self.breaker.consecutive} consecutive "
                f"failures ({reason}): the fallback brain decides; one probe after "
                f"{self.breaker.current_cooloff_ns / NS:g} s of market time, doubling while it "
                "fails",
            )
        else:
            log.info(
                "LLM probe failed (%s): circuit breaker open for %g s",
                reason,
                self.breaker.current_cooloff_ns / NS,
            )

    def _account(self, call: _Call) -> float:
        s = self._stats
        s.session_tokens += call.prompt_tokens + call.completion_tokens
        s.prompt_tokens += call.prompt_tokens
        s.completion_tokens += call.completion_tokens
        s.cached_tokens += call.cached_tokens
        cost = 0.0
        if self._price is not None:
            cost = cost_usd(
                self._price, call.prompt_tokens, call.completion_tokens, call.cached_tokens
            )
        s.cost_usd += cost
        s.session_cost_usd += cost
        return cost

    async def _fall_back(
        self, context: DecisionContext, call: _Call, start: float, kind: str, reason: str
    ) -> BrainReply:
        """The fallback's decision, with this call's usage and the redacted reason."""
        cost = self._account(call)
        self._stats.fallbacks += 1
        self._stats.fallback_reasons[kind] = self._stats.fallback_reasons.get(kind, 0) + 1
        other = await self.fallback.decide(context)
        raw = call.raw if call.raw is not None else other.raw_response
        return LlmReply(
            decision=other.decision,
            brain=other.brain,
            requested_brain=self.name,
            raw_response=self._redact(raw) if raw is not None else None,
            rejections=other.rejections,
            latency_ms=(self.deadlines.now() - start) * 1e3,
            prompt_tokens=call.prompt_tokens + other.prompt_tokens,
            completion_tokens=call.completion_tokens + other.completion_tokens,
            cached_tokens=call.cached_tokens + other.cached_tokens,
            cost_usd=cost + other.cost_usd,
            fallback_reason=self._redact(reason),
            response_format=self.response_format,
            notes=[self._redact(n) for n in call.notes],
        )

    async def _ask(self, messages: list[dict[str, str]], start: float, call: _Call) -> str:
        """The answer's text, within the budget: one retry at most, format downgrades aside."""
        budget = self.config.total_budget_sec
        # A probe of an open breaker is one request: it is not retried.
        retried = self.breaker.is_open
        while True:
            left = budget - (self.deadlines.now() - start)
            if left <= 0:
                raise _Failed("timeout", f"decision budget of {budget:g} s used up")
            timeout = min(self.config.timeout_sec, left)
            try:
                return await self._attempt(messages, timeout, call)
            except _FormatRefused as exc:
                self._downgrade(exc, call)
            except _Retryable as exc:
                if retried:
                    detail = "" if self.breaker.is_open else ", after one retry"
                    raise _Failed(exc.kind, exc.reason + detail, exc.retry_after) from None
                wait = self._wait_or_give_up(exc, start)
                retried = True
                self._stats.retries += 1
                await self.deadlines.sleep(wait)

    def _wait_or_give_up(self, exc: _Retryable, start: float) -> float:
        """The wait before the retry; raise if the retry would not fit in the budget."""
        wait = exc.retry_after if exc.retry_after is not None else self.config.retry_backoff_sec
        left = self.config.total_budget_sec - (self.deadlines.now() - start) - wait
        if left < self.config.min_attempt_sec:
            detail = f"Retry-After {wait:g} s" if exc.retry_after is not None else "a retry"
            raise _Failed(
                exc.kind,
                f"{exc.reason}; {detail} does not fit in the "
                f"{self.config.total_budget_sec:g} s budget",
                exc.retry_after,
            ) from None
        return wait

    def _downgrade(self, exc: _FormatRefused, call: _Call) -> None:
        """Switch this brain to the next response format, or give up after plain text."""
        current = self._stats.response_format
        nxt = _DOWNGRADE.get(current)
        if nxt is None:
            raise _Failed("format_refused", f"the server refused every response format: {exc}")
        self._stats.response_format = nxt
        call.notes.append(
            f"the server refused response_format {current} ({exc.reason}); "
            f"this brain uses {nxt} from now on"
        )

    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"max_completion_tokens": self.config.max_completion_tokens}
        if self.config.temperature is not None and not _REASONING_MODEL.match(self.model):
            params["temperature"] = self.config.temperature
        return params

    async def _attempt(self, messages: list[dict[str, str]], timeout: float, call: _Call) -> str:
        """One request in the current response format; the message's raw text."""
        client = self._client_for_loop()
        mode = self._stats.response_format
        self._stats.requests += 1
        msgs: Any = messages
        try:
            async with self.deadlines.deadline(timeout):
                if mode == "json_schema":
                    completion: Any = await client.chat.completions.parse(
                        model=self.model,
                        messages=msgs,
                        response_format=DecisionWire,
                        timeout=timeout,
                        **self._params(),
                    )
                else:
                    extra: dict[str, Any] = {}
                    if mode == "json_object":
                        extra["response_format"] = {"type": "json_object"}
                    completion = await client.chat.completions.create(
                        model=self.model, messages=msgs, timeout=timeout, **extra, **self._params()
                    )
        except (openai.LengthFinishReasonError, openai.ContentFilterFinishReasonError) as exc:
            if exc.completion is not None:
                call.add_usage(exc.completion.usage)
            raise _classify(exc, timeout) from None
        except Exception as exc:
            raise _classify(exc, timeout) from None
        call.add_usage(completion.usage)
        return self._content(completion)

    @staticmethod
    def _content(completion: Any) -> str:
        if not completion.choices:
            raise _Failed("empty", "the response has no choices")
        choice = completion.choices[0]
        message = choice.message
        if getattr(message, "refusal", None):
            raise _Failed("refusal", f"the model refused: {_short(str(message.refusal))}")
        if choice.finish_reason == "length":
            raise _Failed("truncated", "answer cut off at max_completion_tokens")
        content = message.content
        if not content or not content.strip():
            raise _Failed("empty", "empty answer")
        return str(content)


def llm_brain_of(brain: object) -> LlmBrain | None:
    """The LlmBrain a brain is or wraps (a recording CachedBrain), if any."""
    if isinstance(brain, LlmBrain):
        return brain
    inner = getattr(brain, "llm", None)
    return inner if isinstance(inner, LlmBrain) else None


def llm_status(brain: object) -> tuple[str, str]:
    """(level, plain text) of the LLM behind `brain` for a summary: ('', '') without an LLM;
    level 'failure' (key refused, breaker open), 'warning' (budget spent, some decisions fell
    back) or 'ok'. Never "ok" while decisions fell back."""
    llm = llm_brain_of(brain)
    if llm is None:
        return "", ""
    st = llm.stats()
    fell = ""
    if st.fallbacks:
        reasons = ", ".join(
            f"{kind} {n}" for kind, n in sorted(st.fallback_reasons.items(), key=lambda kv: -kv[1])
        )
        fell = f"; fell back {st.fallbacks} of {st.calls} ({reasons})"
    if st.breaker_state == "key_refused":
        return "failure", f"LLM key refused: rules decide until restart{fell}"
    if st.breaker_state == "open":
        return "failure", f"LLM breaker open ({st.breaker_skipped} skipped){fell}"
    if llm.budget_spent() is not None:
        return "warning", f"LLM budget spent: rules decide{fell}"
    if st.fallbacks:
        return "warning", f"LLM answering{fell}"
    return "ok", f"LLM ok, cached {st.cached_tokens} tok"


def failure_summary(stats: LlmStats) -> str | None:
    """One line naming how the LLM failed over a run, or None when it never did."""
    if not stats.fallbacks:
        return None
    reasons = ", ".join(
        f"{kind} {n}" for kind, n in sorted(stats.fallback_reasons.items(), key=lambda kv: -kv[1])
    )
    parts = [f"the LLM did not decide {stats.fallbacks} of {stats.calls} times ({reasons})"]
    if stats.breaker_opens:
        parts.append(
            f"circuit breaker opened {stats.breaker_opens} times and saved "
            f"{stats.breaker_skipped} requests"
        )
    if stats.budget_sessions:
        parts.append(f"session budget spent in {stats.budget_sessions} sessions")
    return "; ".join(parts)
