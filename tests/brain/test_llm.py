"""The LLM brain against a scripted OpenAI-compatible server, through the real `openai` SDK.

Every bad answer must end in a reply with the fallback's decision and a reason, never an
exception; no reply may carry the API key; retries are one at most and stay in the budget.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import asdict
from typing import Any

import pytest
from pydantic import SecretStr

from fabio.brain.base import BrainReply
from fabio.brain.context import DecisionContext
from fabio.brain.llm import (
    PRICES,
    DecisionWire,
    LlmBrain,
    LlmConfig,
    LlmReply,
    ModelPrice,
    cost_usd,
    decision_json_schema,
    is_openai_url,
    price_for,
)
from fabio.brain.prompt import user_prompt
from fabio.brain.schema import Decision
from fabio.config import Settings
from tests.brain.llm_server import (
    Behaviour,
    FakeOpenAI,
    FixedBrain,
    VirtualDeadlines,
    completion,
    decision_dict,
    empty_choices,
    error,
    hung,
    refuse_formats,
)

KEY = "sk-test-SECRET123456789"
MODEL = "test-model"
# The budget runs on a clock the test moves (`VirtualDeadlines`): an answer takes no time on it
# however busy the machine is, and a hung request (`hung`) moves it to the brain's deadline. The
# timeouts are also the SDK's real read timeouts, so they are long: they only bound a hang.
FAST = {
    "timeout_sec": 30.0,
    "total_budget_sec": 45.0,
    "min_attempt_sec": 1.0,
    "retry_backoff_sec": 0.05,
}


def make_brain(server: FakeOpenAI, **overrides: Any) -> tuple[LlmBrain, FixedBrain]:
    fallback = FixedBrain()
    fields: dict[str, Any] = {
        "model": MODEL,
        "base_url": server.url,
        "api_key": SecretStr(KEY),
        **FAST,
        **overrides,
    }
    return LlmBrain(LlmConfig(**fields), fallback, deadlines=VirtualDeadlines()), fallback


def clock(brain: LlmBrain) -> VirtualDeadlines:
    assert isinstance(brain.deadlines, VirtualDeadlines)
    return brain.deadlines


def decide(brain: LlmBrain, context: DecisionContext) -> BrainReply:
    return asyncio.run(brain.decide(context))


def answer(context: DecisionContext, **overrides: Any) -> Behaviour:
    return completion(json.dumps(decision_dict(context.price, **overrides)))


def assert_no_secret(reply: BrainReply) -> None:
    text = json.dumps(asdict(reply), default=str)
    assert KEY not in text and "SECRET123456789" not in text


def header(server: FakeOpenAI, i: int, name: str) -> str | None:
    headers = {k.lower(): v for k, v in server.requests[i].headers.items()}
    return headers.get(name.lower())


def assert_strict(node: Any, path: str = "$") -> None:
    """OpenAI strict mode: all properties required, additionalProperties false, no defaults."""
    if isinstance(node, list):
        for i, x in enumerate(node):
            assert_strict(x, f"{path}[{i}]")
        return
    if not isinstance(node, dict):
        return
    assert "default" not in node, path
    if node.get("type") == "object":
        assert node.get("additionalProperties") is False, path
        assert sorted(node.get("required", [])) == sorted(node.get("properties", {})), path
    for key, value in node.items():
        if key in ("properties", "$defs"):
            for name, sub in value.items():
                assert_strict(sub, f"{path}.{name}")
        else:
            assert_strict(value, f"{path}.{key}")


# ---------------------------------------------------------------- a good answer


def test_valid_answer_with_structured_output(
    llm_server: FakeOpenAI, decision_context: DecisionContext
) -> None:
    brain, fallback = make_brain(llm_server)
    llm_server.script(answer(decision_context))
    reply = decide(brain, decision_context)

    assert isinstance(reply, LlmReply)
    assert (reply.brain, reply.requested_brain, reply.fallback_reason) == (
        "llm:test-model",
        "llm:test-model",
        None,
    )
    assert fallback.calls == 0 and reply.rejections == []
    trade = reply.decision.trade_decisions[0]
    assert (trade.side, trade.entry_condition_id) == ("long", "MeanReversionPOC_v2")
    assert reply.decision.market_assessment.regime == "range"
    assert (reply.prompt_tokens, reply.completion_tokens, reply.cached_tokens) == (1500, 200, 1024)
    assert reply.cost_usd == 0.0 and any("cost not computed" in n for n in reply.notes)
    assert reply.response_format == "json_schema"
    assert reply.raw_response is not None and json.loads(reply.raw_response)

    [req] = llm_server.requests
    body = req.body
    assert req.path == "/v1/chat/completions"
    assert body["model"] == MODEL
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][0]["content"] == brain.system  # the static prefix comes first
    assert body["messages"][1]["content"] == user_prompt(decision_context)
    assert body["temperature"] == 0.2 and body["max_completion_tokens"] == 900
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert_strict(fmt["json_schema"]["schema"])
    assert header(llm_server, 0, "authorization") == f"Bearer {KEY}"
    assert_no_secret(reply)


def test_wire_schema_is_strict_and_covers_the_decision() -> None:
    schema = decision_json_schema()
    assert_strict(schema)
    assert set(schema["properties"]) == set(Decision.model_fields)
    defs = schema["$defs"]
    assert set(defs["MarketAssessment"]["properties"]["regime"]["enum"]) == {
        "trend",
        "range",
        "chop",
    }
    # the wire model never rejects an answer itself: parse_decision does, with the policy
    assert DecisionWire.model_validate_json("not json") is not None
    assert DecisionWire.model_json_schema() == schema


def test_absurd_numbers_are_rejected_but_the_decision_stands(
    llm_server: FakeOpenAI, decision_context: DecisionContext
) -> None:
    price = decision_context.price
    good = decision_dict(price)["trade_decisions"][0]
    trades = [
        {**good, "risk_fraction": 1.0},
        {**good, "stop_price": price + 2.0},  # a long's stop above the entry
        {**good, "target_price": price * 10},  # ten times away
    ]
    zones = [
        {
            "id": "far",
            "center_price": price * 10,
            "priority": 2,
            "inner_band_ticks": 4,
            "outer_band_ticks": 8,
            "reason": "nonsense",
        }
    ]
    brain, fallback = make_brain(llm_server)
    llm_server.script(answer(decision_context, trade_decisions=trades, importance_zones=zones))
    reply = decide(brain, decision_context)

    assert reply.fallback_reason is None and reply.brain == "llm:test-model"
    assert fallback.calls == 0
    assert reply.decision.trade_decisions == [] and reply.decision.importance_zones == []
    paths = " ".join(r.path for r in reply.rejections)
    for part in ("risk_fraction", "stop_price", "target_price", "importance_zones[0]"):
        assert part in paths
    assert reply.decision.market_assessment.regime == "range"


def test_cost_from_price_and_table(
    llm_server: FakeOpenAI, decision_context: DecisionContext
) -> None:
    price = ModelPrice(input=1.0, cached_input=0.5, output=2.0)
    brain, _ = make_brain(llm_server, price=price)
    llm_server.script(answer(decision_context))
    reply = decide(brain, decision_context)
    expected = (476 * 1.0 + 1024 * 0.5 + 200 * 2.0) / 1e6
    assert reply.cost_usd == pytest.approx(expected)
    assert brain.stats().cost_usd == pytest.approx(expected)
    assert not any("cost" in n for n in getattr(reply, "notes", []))

    assert price_for("gpt-4o-mini-2024-07-18") == PRICES["gpt-4o-mini"]
    assert price_for("gpt-4o") == PRICES["gpt-4o"]
    assert price_for("gpt-4o-audio-preview") is None
    assert cost_usd(PRICES["gpt-4o-mini"], 1_000_000, 1_000_000, 0) == pytest.approx(0.75)
    assert is_openai_url(None) and is_openai_url("https://api.openai.com/v1")
    assert not is_openai_url("http://localhost:11434/v1")
    assert LlmConfig(model="gpt-4.1-mini").resolved_price() == (PRICES["gpt-4.1-mini"], None)
    unknown = LlmConfig(model="my-finetune").resolved_price()
    assert unknown[0] is None and unknown[1] is not None and "my-finetune" in unknown[1]


def test_running_totals(llm_server: FakeOpenAI, decision_context: DecisionContext) -> None:
    brain, _ = make_brain(llm_server)
    llm_server.script(answer(decision_context), answer(decision_context), completion("nope"))
    replies = [decide(brain, decision_context) for _ in range(3)]
    assert [r.fell_back for r in replies] == [False, False, True]
    s = brain.stats()
    assert (s.calls, s.requests, s.decisions, s.fallbacks, s.retries) == (3, 3, 2, 1, 0)
    assert (s.prompt_tokens, s.completion_tokens, s.cached_tokens) == (4500, 600, 3072)
    assert s.fallback_reasons == {"invalid_answer": 1}
    assert replies[2].prompt_tokens == 1500  # the failed answer's tokens were still paid for


# ---------------------------------------------------------------- bad answers fall back


def _sideways(price: float) -> str:
    d = decision_dict(price)
    d["market_assessment"]["regime"] = "sideways"
    return json.dumps(d)


BAD_ANSWERS: list[tuple[str, Any, str, int]] = [
    ("invalid json", lambda p: completion("this is not json {"), "not valid JSON", 1),
    ("json array", lambda p: completion("[1, 2]"), "expected a JSON object", 1),
    ("schema violation", lambda p: completion(_sideways(p)), "schema violation", 1),
    ("empty choices", lambda p: empty_choices(), "no choices", 1),
    ("empty content", lambda p: completion(""), "empty answer", 1),
    ("refusal", lambda p: completion(None, refusal="I cannot help with trading."), "refused", 1),
    (
        "truncated",
        lambda p: completion('{"market_assessment": {"reg', finish_reason="length"),
        "cut off",
        1,
    ),
    (
        "401",
        lambda p: error(401, f"Incorrect API key provided: {KEY}.", code="invalid_api_key"),
        "authentication failed",
        1,
    ),
    ("404", lambda p: error(404, "The model `test-model` does not exist"), "HTTP 404", 1),
    ("400 other", lambda p: error(400, "Invalid 'messages': too long"), "HTTP 400", 1),
    (
        "429 quota",
        lambda p: error(429, "You exceeded your current quota", code="insufficient_quota"),
        "quota",
        1,
    ),
]


@pytest.mark.parametrize(
    ("name", "make", "reason", "requests"), BAD_ANSWERS, ids=[b[0] for b in BAD_ANSWERS]
)
def test_bad_answers_fall_back_with_a_reason(
    llm_server: FakeOpenAI,
    decision_context: DecisionContext,
    name: str,
    make: Any,
    reason: str,
    requests: int,
) -> None:
    brain, fallback = make_brain(llm_server)
    llm_server.default = make(decision_context.price)
    reply = decide(brain, decision_context)

    assert fallback.calls == 1
    assert reply.brain == "fixed" and reply.requested_brain == "llm:test-model"
    assert reply.fallback_reason is not None and reason in reply.fallback_reason
    assert reply.decision.market_assessment.reasoning == "fixed fallback"
    assert len(llm_server.requests) == requests
    assert brain.response_format == "json_schema"
    assert_no_secret(reply)


def test_the_key_in_a_401_message_is_redacted(
    llm_server: FakeOpenAI, decision_context: DecisionContext
) -> None:
    brain, _ = make_brain(llm_server)
    llm_server.default = error(401, f"Incorrect API key provided: {KEY}; Bearer {KEY}")
    reply = decide(brain, decision_context)
    assert reply.fallback_reason is not None and "[redacted]" in reply.fallback_reason
    assert_no_secret(reply)


# ---------------------------------------------------------------- time and retries


def test_timeout_retries_once_within_budget(
    llm_server: FakeOpenAI, decision_context: DecisionContext
) -> None:
    brain, fallback = make_brain(llm_server)
    llm_server.default = hung(clock(brain))
    reply = decide(brain, decision_context)

    assert len(llm_server.requests) == 2
    assert reply.fallback_reason is not None and "timeout" in reply.fallback_reason
    assert fallback.calls == 1
    assert brain.stats().retries == 1
    # the first attempt used its 30 s, the backoff its 0.05 s (on the budget's clock); the retry
    # got what was left of the 45 s budget
    timeouts = [float(header(llm_server, i, "x-stainless-read-timeout") or 0) for i in (0, 1)]
    left = FAST["total_budget_sec"] - FAST["timeout_sec"] - FAST["retry_backoff_sec"]
    assert timeouts == [FAST["timeout_sec"], pytest.approx(left)]
    assert clock(brain).now() == FAST["total_budget_sec"]  # the decision took the budget, no more


def test_timeout_then_success(llm_server: FakeOpenAI, decision_context: DecisionContext) -> None:
    brain, _ = make_brain(llm_server)
    llm_server.script(hung(clock(brain)), answer(decision_context))
    reply = decide(brain, decision_context)
    assert reply.fallback_reason is None and reply.brain == "llm:test-model"
    assert len(llm_server.requests) == 2


def test_no_retry_when_the_budget_is_too_short(
    llm_server: FakeOpenAI, decision_context: DecisionContext
) -> None:
    # after a 30 s timeout, 0.95 s of the 31 s budget is left: less than an attempt's minimum
    brain, _ = make_brain(llm_server, total_budget_sec=31.0, min_attempt_sec=2.0)
    llm_server.default = hung(clock(brain))
    reply = decide(brain, decision_context)
    assert len(llm_server.requests) == 1
    assert reply.fallback_reason is not None and "does not fit" in reply.fallback_reason


@pytest.mark.parametrize("headers", [{"Retry-After": "0.2"}, {"retry-after-ms": "200"}])
def test_429_with_retry_after_in_budget(
    llm_server: FakeOpenAI, decision_context: DecisionContext, headers: dict[str, str]
) -> None:
    # The 0.2 s wait is 4x the backoff; it passes on the budget's clock, not the machine's.
    brain, _ = make_brain(llm_server)
    llm_server.script(error(429, "slow down", headers=headers), answer(decision_context))
    reply = decide(brain, decision_context)
    assert reply.fallback_reason is None
    assert len(llm_server.requests) == 2
    # Retry-After honoured on the budget's clock, not the 0.05 s backoff
    assert clock(brain).now() == pytest.approx(0.2)
    assert brain.stats().retries == 1


def test_429_with_retry_after_beyond_budget(
    llm_server: FakeOpenAI, decision_context: DecisionContext
) -> None:
    brain, _ = make_brain(llm_server)
    llm_server.default = error(429, "slow down", headers={"Retry-After": "120"})
    t0 = time.perf_counter()
    reply = decide(brain, decision_context)
    assert time.perf_counter() - t0 < 60  # did not sleep the 120 s (a bound, not a latency)
    assert len(llm_server.requests) == 1
    assert reply.fallback_reason is not None
    assert "429" in reply.fallback_reason and "Retry-After 120 s" in reply.fallback_reason


def test_429_without_retry_after_retries_once(
    llm_server: FakeOpenAI, decision_context: DecisionContext
) -> None:
    brain, _ = make_brain(llm_server)
    llm_server.default = error(429, "slow down")
    reply = decide(brain, decision_context)
    assert len(llm_server.requests) == 2
    assert reply.fallback_reason is not None and "after one retry" in reply.fallback_reason


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_retries_once(
    llm_server: FakeOpenAI, decision_context: DecisionContext, status: int
) -> None:
    brain, _ = make_brain(llm_server)
    llm_server.default = error(status, "upstream failure")
    reply = decide(brain, decision_context)
    assert len(llm_server.requests) == 2
    assert reply.fallback_reason is not None
    assert f"server error (HTTP {status})" in reply.fallback_reason

    llm_server.script(error(status, "blip"), answer(decision_context))
    assert decide(brain, decision_context).fallback_reason is None
    assert len(llm_server.requests) == 4


def test_connection_refused_falls_back_at_once(decision_context: DecisionContext) -> None:
    server = FakeOpenAI().start()
    server.stop()  # nothing listens on that port any more
    brain, fallback = make_brain(server)
    t0 = time.perf_counter()
    reply = decide(brain, decision_context)
    assert time.perf_counter() - t0 < FAST["timeout_sec"]  # did not wait for a timeout
    assert reply.fallback_reason is not None and "connection" in reply.fallback_reason
    assert fallback.calls == 1


def test_the_call_does_not_block_the_event_loop(
    llm_server: FakeOpenAI, decision_context: DecisionContext
) -> None:
    brain, _ = make_brain(llm_server)
    ticked = threading.Event()  # the server answers only once the loop has ticked ten times

    def after_ten_ticks(request: dict[str, Any]) -> Behaviour:
        ticked.wait(60)
        return answer(decision_context)

    llm_server.script(after_ten_ticks)

    async def run() -> tuple[BrainReply, int]:
        task = asyncio.create_task(brain.decide(decision_context))
        ticks = 0
        while not task.done():
            await asyncio.sleep(0.01)
            ticks += 1
            if ticks == 10:
                ticked.set()
        return await task, ticks

    reply, ticks = asyncio.run(run())
    assert reply.fallback_reason is None
    assert ticks >= 10  # the loop kept running while the model thought


# ---------------------------------------------------------------- response formats


def test_json_mode_when_json_schema_is_refused(
    llm_server: FakeOpenAI, decision_context: DecisionContext
) -> None:
    brain, fallback = make_brain(llm_server)
    llm_server.default = refuse_formats({"json_schema"}, answer(decision_context))
    reply = decide(brain, decision_context)

    assert reply.fallback_reason is None and fallback.calls == 0
    assert isinstance(reply, LlmReply) and reply.response_format == "json_object"
    assert any("refused response_format json_schema" in n for n in reply.notes)
    kinds = [r.body["response_format"]["type"] for r in llm_server.requests]
    assert kinds == ["json_schema", "json_object"]

    # remembered: the next decision goes straight to JSON mode, with the same prompt
    again = decide(brain, decision_context)
    assert again.fallback_reason is None and len(llm_server.requests) == 3
    last = llm_server.requests[-1].body
    assert last["response_format"] == {"type": "json_object"}
    assert last["messages"][0]["content"] == brain.system
    assert brain.stats().retries == 0


def test_plain_text_when_every_format_is_refused(
    llm_server: FakeOpenAI, decision_context: DecisionContext
) -> None:
    fenced = "```json\n" + json.dumps(decision_dict(decision_context.price)) + "\n```"
    brain, _ = make_brain(llm_server)
    llm_server.default = refuse_formats({"json_schema", "json_object"}, completion(fenced))
    reply = decide(brain, decision_context)
    assert reply.fallback_reason is None
    assert brain.response_format == "text"
    assert "response_format" not in llm_server.requests[-1].body
    assert len(llm_server.requests) == 3


def test_reasoning_models_get_no_temperature(
    llm_server: FakeOpenAI, decision_context: DecisionContext
) -> None:
    brain, _ = make_brain(llm_server, model="o4-mini")
    llm_server.script(answer(decision_context))
    assert decide(brain, decision_context).fallback_reason is None
    assert "temperature" not in llm_server.requests[0].body


# ---------------------------------------------------------------- settings


def settings(**values: Any) -> Settings:
    """Settings from these values only (no .env; explicit values beat the environment)."""
    base: dict[str, Any] = {"openai_api_key": None, "openai_base_url": None}
    return Settings(_env_file=None, **{**base, **values})


def test_from_settings(llm_server: FakeOpenAI, decision_context: DecisionContext) -> None:
    fallback = FixedBrain()
    assert LlmBrain.from_settings(settings(), fallback) is None
    assert LlmBrain.from_settings(settings(openai_api_key=SecretStr(" ")), fallback) is None

    keyed = settings(openai_api_key=SecretStr(KEY), openai_model="gpt-4.1-mini")
    brain = LlmBrain.from_settings(keyed, fallback)
    assert brain is not None and brain.name == "llm:gpt-4.1-mini"
    assert brain.config.api_key is not None and brain.config.base_url is None

    local = settings(openai_base_url=llm_server.url, openai_model="llama3.1:8b")
    brain = LlmBrain.from_settings(
        local, fallback, timeout_sec=30.0, total_budget_sec=45.0, min_attempt_sec=1.0
    )
    assert brain is not None
    llm_server.script(answer(decision_context))
    reply = decide(brain, decision_context)
    assert reply.fallback_reason is None and reply.brain == "llm:llama3.1:8b"
    assert header(llm_server, 0, "authorization") == "Bearer no-key"
