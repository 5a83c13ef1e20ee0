"""The replay cache: record real answers from an LLM brain, replay them offline and for free."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

from pydantic import SecretStr

from fabio.brain.base import BrainReply
from fabio.brain.cache import RECORD_TYPE, CachedBrain, cache_key
from fabio.brain.context import DecisionContext
from fabio.brain.exchange import MAX_RAW_CHARS
from fabio.brain.llm import LlmBrain, LlmConfig
from fabio.brain.prompt import default_system_prompt, user_prompt
from fabio.brain.schema import MAX_NOTE_CHARS
from fabio.exchange_journal import ExchangeJournal
from fabio.journal import Journal, read_journal
from tests.brain.llm_server import FakeOpenAI, FixedBrain, completion, decision_dict

MODEL = "test-model"


def llm(server: FakeOpenAI, fallback: FixedBrain) -> LlmBrain:
    config = LlmConfig(
        model=MODEL,
        base_url=server.url,
        api_key=SecretStr("sk-test-cache-key1"),
        timeout_sec=30.0,  # bounds a hang: the answers come at once
        total_budget_sec=45.0,
        min_attempt_sec=1.0,
    )
    return LlmBrain(config, fallback)


def decide(brain: CachedBrain, context: DecisionContext) -> BrainReply:
    return asyncio.run(brain.decide(context))


def test_record_then_replay_offline(
    tmp_path: Path, llm_server: FakeOpenAI, decision_context: DecisionContext
) -> None:
    path = tmp_path / "logs" / "llm_cache.jsonl"
    fallback = FixedBrain()
    recorder = CachedBrain.record(path, llm(llm_server, fallback))
    assert recorder.name == "llm:test-model"
    llm_server.script(completion(json.dumps(decision_dict(decision_context.price))))
    live = decide(recorder, decision_context)
    assert live.brain == "llm:test-model" and not live.fell_back
    [rec] = read_journal(path).records
    assert rec["type"] == RECORD_TYPE and rec["model"] == MODEL
    assert rec["key"] == cache_key(MODEL, default_system_prompt(), user_prompt(decision_context))
    llm_server.stop()  # replay needs no server

    replayer = CachedBrain.replay(path, model=MODEL, fallback=fallback)
    replies = [decide(replayer, decision_context) for _ in range(2)]
    for reply in replies:
        assert (reply.brain, reply.requested_brain, reply.fallback_reason) == (
            "cache",
            "cache",
            None,
        )
        assert reply.decision == live.decision and reply.rejections == live.rejections
        assert (reply.prompt_tokens, reply.completion_tokens, reply.cached_tokens) == (
            live.prompt_tokens,
            live.completion_tokens,
            live.cached_tokens,
        )
        assert reply.cost_usd == 0.0
    assert replies[0].decision == replies[1].decision  # deterministic
    assert fallback.calls == 0
    assert replayer.stats().hits == 2


def test_value_policy_applies_identically_on_replay(
    tmp_path: Path, llm_server: FakeOpenAI, decision_context: DecisionContext
) -> None:
    path = tmp_path / "cache.jsonl"
    price = decision_context.price
    d = decision_dict(price)
    d["trade_decisions"][0]["risk_fraction"] = 1.0
    d["importance_zones"][0]["priority"] = 9
    recorder = CachedBrain.record(path, llm(llm_server, FixedBrain()))
    llm_server.script(completion(json.dumps(d)))
    live = decide(recorder, decision_context)
    assert live.rejections and not live.fell_back

    replay = decide(CachedBrain.replay(path, MODEL, FixedBrain()), decision_context)
    assert replay.rejections == live.rejections and replay.decision == live.decision


def test_fallbacks_are_not_stored(
    tmp_path: Path, llm_server: FakeOpenAI, decision_context: DecisionContext
) -> None:
    path = tmp_path / "cache.jsonl"
    fallback = FixedBrain()
    recorder = CachedBrain.record(path, llm(llm_server, fallback))
    llm_server.script(completion("not json"))
    reply = decide(recorder, decision_context)
    assert reply.fell_back and reply.brain == "fixed"
    assert read_journal(path).records == []
    assert recorder.stats().not_stored == 1


def test_miss_falls_back(tmp_path: Path, decision_context: DecisionContext) -> None:
    fallback = FixedBrain()
    brain = CachedBrain.replay(tmp_path / "absent.jsonl", MODEL, fallback)
    reply = decide(brain, decision_context)
    assert reply.brain == "fixed" and reply.requested_brain == "cache"
    assert reply.fallback_reason == "cache miss"
    assert fallback.calls == 1 and brain.stats().misses == 1


def test_key_depends_on_model_system_and_user(decision_context: DecisionContext) -> None:
    system, user = default_system_prompt(), user_prompt(decision_context)
    key = cache_key(MODEL, system, user)
    assert key == cache_key(MODEL, system, user) and len(key) == 64
    assert key != cache_key("other-model", system, user)
    assert key != cache_key(MODEL, system + " ", user)
    assert key != cache_key(MODEL, system, user + " ")
    # no ambiguity from where one text ends and the next begins
    assert cache_key("ab", "c", user) != cache_key("a", "bc", user)


def test_other_model_or_prompt_misses(
    tmp_path: Path, llm_server: FakeOpenAI, decision_context: DecisionContext
) -> None:
    path = tmp_path / "cache.jsonl"
    recorder = CachedBrain.record(path, llm(llm_server, FixedBrain()))
    llm_server.script(completion(json.dumps(decision_dict(decision_context.price))))
    decide(recorder, decision_context)
    other_model = CachedBrain.replay(path, "gpt-4o", FixedBrain())
    assert decide(other_model, decision_context).fallback_reason == "cache miss"
    other_prompt = CachedBrain.replay(path, MODEL, FixedBrain(), system="a different prompt")
    assert decide(other_prompt, decision_context).fallback_reason == "cache miss"


def test_torn_last_line_is_tolerated(
    tmp_path: Path, llm_server: FakeOpenAI, decision_context: DecisionContext
) -> None:
    path = tmp_path / "cache.jsonl"
    recorder = CachedBrain.record(path, llm(llm_server, FixedBrain()))
    llm_server.script(completion(json.dumps(decision_dict(decision_context.price))))
    decide(recorder, decision_context)
    with path.open("ab") as fh:
        fh.write(b'{"type": "llm_cache", "key": "abc", "raw_resp')  # power cut mid-write

    replayer = CachedBrain.replay(path, MODEL, FixedBrain())
    assert len(replayer.problems) == 1 and "torn" in replayer.problems[0]
    assert decide(replayer, decision_context).brain == "cache"

    # recording again cuts the torn tail off (kept in .torn) and every line reads back
    again = CachedBrain.record(path, llm(llm_server, FixedBrain()))
    llm_server.script(completion(json.dumps(decision_dict(decision_context.price))))
    decide(again, decision_context)
    read = read_journal(path)
    assert len(read.records) == 2 and read.problems == []
    assert path.with_name(path.name + ".torn").read_bytes().startswith(b'{"type": "llm_cache"')


def test_stale_entry_falls_back(tmp_path: Path, decision_context: DecisionContext) -> None:
    path = tmp_path / "cache.jsonl"
    key = cache_key(MODEL, default_system_prompt(), user_prompt(decision_context))
    path.write_text(
        json.dumps(
            {
                "type": RECORD_TYPE,
                "key": key,
                "model": MODEL,
                "raw_response": '{"market_assessment": {"regime": "sideways"}}',
            }
        )
        + "\n"
    )
    fallback = FixedBrain()
    reply = decide(CachedBrain.replay(path, MODEL, fallback), decision_context)
    assert reply.brain == "fixed" and reply.fallback_reason is not None
    assert "no longer parses" in reply.fallback_reason


HOSTILE_NOTE = "x" * 50_000  # a hostile model's 50 KB note
# Bytes per decision in llm_exchanges.jsonl + llm_cache.jsonl: measured 508,184 before (the raw
# answer stored whole in both), 42,866 after. At this bound a paper session of 232 decisions
# stays under 12 MB, and a day of decisions every 30 s (780) under 40 MB.
MAX_BYTES_PER_DECISION = 50_000


def test_a_hostile_models_50kb_notes_keep_the_journals_bounded(
    llm_server: FakeOpenAI, decision_context: DecisionContext, tmp_path: Path
) -> None:
    contexts = [
        decision_context.model_copy(update={"market_time_ns": decision_context.market_time_ns + i})
        for i in range(20)
    ]
    answer = decision_dict(decision_context.price, notes_to_future_self=[HOSTILE_NOTE] * 5)
    raw = json.dumps(answer)
    llm_server.default = completion(raw)
    recorder = CachedBrain.record(tmp_path / "llm_cache.jsonl", llm(llm_server, FixedBrain()))
    journal = ExchangeJournal(Journal(tmp_path / "llm_exchanges.jsonl"))
    recorded = []
    for ctx in contexts:
        reply = decide(recorder, ctx)
        assert not reply.fell_back
        journal.record(ctx, reply)
        recorded.append(reply)
    assert journal.journal is not None
    journal.journal.close()
    size = sum((tmp_path / f).stat().st_size for f in ("llm_cache.jsonl", "llm_exchanges.jsonl"))
    assert size / len(contexts) < MAX_BYTES_PER_DECISION, size / len(contexts)
    # the raw answer is cut, with its full length and hash kept
    [rec, *_] = read_journal(tmp_path / "llm_exchanges.jsonl").records
    assert len(rec["raw_response"]) == MAX_RAW_CHARS and rec["raw_response_truncated"]
    assert rec["raw_response_chars"] == len(raw)
    assert rec["raw_response_sha256"] == hashlib.sha256(raw.encode()).hexdigest()
    # --brain cache replays the same decisions, from the file only
    replay = CachedBrain.replay(tmp_path / "llm_cache.jsonl", "test-model", FixedBrain())
    for ctx, live in zip(contexts, recorded, strict=True):
        again = decide(replay, ctx)
        assert again.fallback_reason is None
        assert again.decision == live.decision
        assert again.rejections == live.rejections
        assert len(again.decision.notes_to_future_self[0]) == MAX_NOTE_CHARS
