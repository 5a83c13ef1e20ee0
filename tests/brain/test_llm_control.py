"""LLM cost and failure control against the scripted local server, through the real SDK:
the circuit breaker (connection failures, timeouts, 5xx, 429; a refused key stops the calls),
the per-session budget, the stable
cacheable prompt prefix, and LLM backtests applying each decision after its latency."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from fabio.agent import Agent
from fabio.backtest.runner import run_backtest
from fabio.brain.base import BrainReply
from fabio.brain.cadence import Cadence
from fabio.brain.context import DecisionContext, count_tokens
from fabio.brain.llm import LlmBrain, LlmConfig, ModelPrice, failure_summary, llm_status
from fabio.brain.rules import RuleBrain
from fabio.config import Settings
from fabio.dashboard.alerts import AlertRules
from fabio.data.synthetic import SyntheticConfig, SyntheticFeed
from fabio.features.engine import FeatureEngine
from fabio.journal import read_journal
from fabio.paper import PaperSession, RunOptions
from fabio.wiring import open_execution
from tests.brain.llm_server import (
    FakeOpenAI,
    FixedBrain,
    VirtualDeadlines,
    always_500,
    completion,
    decision_dict,
    hung,
    rate_limited,
    unauthorized,
)

NS = 1_000_000_000
# No retry after a failure (the budget left is under an attempt's minimum). The budget runs on a
# clock the test moves: an answer takes no time on it, a hung request moves it to the deadline.
FAST = {
    "timeout_sec": 20.0,
    "total_budget_sec": 30.0,
    "min_attempt_sec": 25.0,
    "retry_backoff_sec": 0.0,
}


def brain_for(url: str, **overrides: Any) -> tuple[LlmBrain, FixedBrain]:
    fallback = FixedBrain()
    config = LlmConfig(
        model="test-model", base_url=url, api_key=SecretStr("k"), **{**FAST, **overrides}
    )
    return LlmBrain(config, fallback, deadlines=VirtualDeadlines()), fallback


def clock(brain: LlmBrain) -> VirtualDeadlines:
    assert isinstance(brain.deadlines, VirtualDeadlines)
    return brain.deadlines


def at(context: DecisionContext, seconds: float) -> DecisionContext:
    """The same context `seconds` later in market time (same session)."""
    return context.model_copy(
        update={
            "market_time_ns": context.market_time_ns + int(seconds * NS),
            "session_minute": context.session_minute + seconds / 60,
        }
    )


def run_all(brain: LlmBrain, contexts: list[DecisionContext]) -> list[BrainReply]:
    async def go() -> list[BrainReply]:
        out = [await brain.decide(c) for c in contexts]
        await brain.aclose()
        return out

    return asyncio.run(go())


def notes_with(replies: list[BrainReply], text: str) -> list[str]:
    return [n for r in replies for n in r.notes if text in n]


def dead_url() -> str:
    server = FakeOpenAI().start()
    server.stop()  # nothing listens on that port any more
    return server.url


def test_a_dead_endpoint_costs_a_handful_of_attempts_per_cool_off(
    decision_context: DecisionContext,
) -> None:
    brain, fallback = brain_for(dead_url(), breaker_cooloff_sec=60, breaker_max_cooloff_sec=600)
    # three hours of decisions every 30 s of market time
    contexts = [at(decision_context, 30 * i) for i in range(360)]
    replies = run_all(brain, contexts)
    st = brain.stats()
    assert fallback.calls == 360 and all(r.fell_back for r in replies)
    # 3 to open, then one probe per cool-off: 60, 120, 240, 480, 600, 600, ... s
    cooloffs = [60, 120, 240, 480] + [600] * 20
    elapsed, probes = 0, 0
    for c in cooloffs:
        if elapsed + c > 359 * 30:
            break
        elapsed += c
        probes += 1
    assert st.requests <= 3 + probes + 1
    assert st.requests < 30  # instead of 360
    assert st.breaker_skipped == 360 - st.requests
    assert st.breaker_state == "open"
    assert st.fallback_reasons["circuit_open"] == st.breaker_skipped
    said = notes_with(replies, "circuit breaker open")
    assert len(said) == 1, said  # said once per outage
    summary = failure_summary(st)
    assert summary is not None and "circuit breaker opened" in summary


def test_a_hung_endpoint_trips_the_breaker_on_timeouts(
    decision_context: DecisionContext,
) -> None:
    server = FakeOpenAI().start()
    try:
        brain, _ = brain_for(server.url, breaker_failures=2, breaker_cooloff_sec=300)
        server.default = hung(clock(brain))
        replies = run_all(brain, [at(decision_context, 30 * i) for i in range(11)])
    finally:
        server.stop()
    st = brain.stats()
    # two timed-out decisions open the breaker; nothing more is sent within 300 s
    assert st.requests == 2, st
    assert len(server.requests) == 2, [r.at for r in server.requests]
    assert st.fallback_reasons == {"timeout": 2, "circuit_open": 9}
    assert len(notes_with(replies, "circuit breaker open")) == 1


def test_the_breaker_closes_when_a_probe_succeeds(
    llm_server: FakeOpenAI, decision_context: DecisionContext
) -> None:
    brain, _ = brain_for(llm_server.url, breaker_cooloff_sec=60)
    good = completion(json.dumps(decision_dict(decision_context.price)))
    # a hung period (answers slower than the timeout), then the server answers again
    llm_server.script(*[hung(clock(brain))] * 3)
    llm_server.default = good
    contexts = [at(decision_context, 10 * i) for i in range(12)]
    replies = run_all(brain, contexts)
    st = brain.stats()
    assert st.breaker_opens == 1 and st.breaker_state == "closed"
    # decisions at 0, 10, 20 s time out; 30-70 s skipped; the probe at 80 s answers
    assert [r.fell_back for r in replies] == [True] * 8 + [False] * 4
    assert len(notes_with(replies, "circuit breaker closed")) == 1


def test_other_failures_do_not_trip_the_breaker(
    llm_server: FakeOpenAI, decision_context: DecisionContext
) -> None:
    brain, _ = brain_for(llm_server.url, breaker_failures=2)
    llm_server.default = completion("not json at all")
    run_all(brain, [at(decision_context, 30 * i) for i in range(5)])
    st = brain.stats()
    assert st.requests == 5 and st.breaker_opens == 0
    assert st.fallback_reasons == {"invalid_answer": 5}


def test_session_token_budget(llm_server: FakeOpenAI, decision_context: DecisionContext) -> None:
    llm_server.default = completion(
        json.dumps(decision_dict(decision_context.price)), prompt_tokens=1500, completion_tokens=200
    )
    brain, _ = brain_for(llm_server.url, max_tokens_per_session=3000)
    today = [at(decision_context, 30 * i) for i in range(5)]
    tomorrow = [
        c.model_copy(update={"market_time_ns": c.market_time_ns + 86_400 * NS}) for c in today
    ]
    replies = run_all(brain, today + tomorrow)
    st = brain.stats()
    # 1,700 tokens a call: two calls spend the 3,000 of each session, the rest go to the rules
    assert [r.fell_back for r in replies] == ([False] * 2 + [True] * 3) * 2
    assert len(llm_server.requests) == 4
    assert st.budget_skipped == 6 and st.budget_sessions == 2
    assert st.fallback_reasons == {"budget": 6}
    assert len(notes_with(replies, "LLM budget for this session spent")) == 2  # once a session


def test_session_cost_budget(llm_server: FakeOpenAI, decision_context: DecisionContext) -> None:
    llm_server.default = completion(
        json.dumps(decision_dict(decision_context.price)),
        prompt_tokens=10_000,
        completion_tokens=1000,
        cached_tokens=0,
    )
    price = ModelPrice(input=1.0, cached_input=0.5, output=4.0)  # $0.014 a call
    brain, _ = brain_for(llm_server.url, price=price, max_cost_per_session_usd=0.03)
    replies = run_all(brain, [at(decision_context, 30 * i) for i in range(6)])
    assert [r.fell_back for r in replies] == [False] * 3 + [True] * 3
    assert abs(brain.stats().session_cost_usd - 0.042) < 1e-9


def test_budget_from_settings(llm_server: FakeOpenAI) -> None:
    settings = Settings(
        _env_file=None,
        openai_base_url=llm_server.url,  # type: ignore[call-arg]
        llm_max_cost_per_session=2.5,
        llm_max_tokens_per_session=50_000,
    )
    brain = LlmBrain.from_settings(settings, FixedBrain())
    assert brain is not None
    assert brain.config.max_cost_per_session_usd == 2.5
    assert brain.config.max_tokens_per_session == 50_000


def test_stable_prompt_prefix_first_and_cached_tokens_reported(
    llm_server: FakeOpenAI, decision_context: DecisionContext, rich_context: DecisionContext
) -> None:
    llm_server.default = completion(
        json.dumps(decision_dict(decision_context.price)), cached_tokens=4608
    )
    brain, _ = brain_for(llm_server.url)
    run_all(brain, [decision_context, rich_context])
    first, second = (r.body["messages"] for r in llm_server.requests)
    assert first[0]["role"] == "system" and first[0] == second[0]  # the same bytes first
    assert count_tokens(first[0]["content"]) >= 1024  # long enough for prompt caching
    assert first[1] != second[1]  # only the user message changes
    assert brain.stats().cached_tokens == 2 * 4608


class LatencyBrain:
    """The rule brain, but each decision 'takes' a fixed time (as a recorded LLM call)."""

    def __init__(self, latency_ms: float) -> None:
        self.inner = RuleBrain()
        self.name = "slow"
        self.latency_ms = latency_ms

    async def decide(self, context: DecisionContext) -> BrainReply:
        reply = await self.inner.decide(context)
        return replace(reply, latency_ms=self.latency_ms, brain=self.name)


def feed() -> SyntheticFeed:
    return SyntheticFeed(SyntheticConfig(symbol="ES", days=2, seed=3, eth=False, rth_trades=40_000))


def test_backtest_applies_a_decision_after_its_latency(tmp_path: Path) -> None:
    result = run_backtest([feed()], LatencyBrain(4000), tmp_path / "slow")
    exchanges = read_journal(tmp_path / "slow" / "llm_exchanges.jsonl").records
    entries = [
        r
        for r in read_journal(tmp_path / "slow" / "execution.jsonl").records
        if r.get("type") == "entry"
    ]
    assert entries, "the slow brain should still trade"
    asked = sorted(
        r["market_time_ns"]
        for r in exchanges
        if any(t["action"] == "enter" for t in r["decision"]["trade_decisions"])
    )
    for e in entries:
        # the entry went in at least 4 s after the snapshot its decision was made on
        assert any(4 * NS <= e["ts_ns"] - t <= 10 * NS for t in asked), e
    instant = run_backtest([feed()], RuleBrain(), tmp_path / "instant")
    assert result.summary["decisions"] > 0
    assert [t.entry_ns for t in result.closed_trades] != [t.entry_ns for t in instant.closed_trades]


def test_backtest_drops_a_decision_slower_than_the_stale_limit(tmp_path: Path) -> None:
    result = run_backtest([feed()], LatencyBrain(15_000), tmp_path / "stale")
    assert result.closed_trades == []
    assert result.stats["stale_dropped"] == result.stats["decisions"] > 0


def test_backtest_summary_names_the_llm_failure(tmp_path: Path) -> None:
    brain, _ = brain_for(dead_url())
    brain.fallback = RuleBrain()
    result = run_backtest([feed()], brain, tmp_path / "dead")
    s = result.summary
    decisions = s["decisions"]
    assert decisions > 100
    # a dead endpoint: 3 attempts, then one probe per cool-off (60 s doubling to 30 min) in
    # each of the two 6.5-hour sessions, instead of one per decision
    assert s["llm"]["requests"] <= 3 + 2 * 18
    assert s["llm"]["breaker_opens"] >= 1
    assert "circuit breaker opened" in s["llm_failure"]
    exchanges = read_journal(tmp_path / "dead" / "llm_exchanges.jsonl").records
    said = [n for r in exchanges for n in r["call_notes"] if "circuit breaker open" in n]
    assert len(said) == 1  # once for the whole outage


# ------------------------------------------------------------------ issue 22: any "not usable now"


def test_an_always_500_endpoint_opens_the_breaker(
    llm_server: FakeOpenAI, decision_context: DecisionContext, caplog: Any
) -> None:
    brain, fallback = brain_for(
        llm_server.url, retry_backoff_sec=0.0, min_attempt_sec=1.0, breaker_cooloff_sec=60
    )
    llm_server.default = always_500()
    with caplog.at_level(logging.WARNING, logger="fabio.brain.llm"):
        replies = run_all(brain, [at(decision_context, 30 * i) for i in range(120)])  # 1 hour
    st = brain.stats()
    assert fallback.calls == 120 and all(r.fell_back for r in replies)
    # 3 decisions of 2 requests (one retry each), then one unretried probe per cool-off
    # (60, 120, 240, 480, 960 s... of the 3600 s): 6 + 5, instead of 240
    assert len(llm_server.requests) == st.requests <= 6 + 6, st
    assert st.breaker_state == "open" and st.fallback_reasons["circuit_open"] > 100
    # said once each: the first failure and the opening, on the log (stderr) and the replies
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2, said
    assert "failed (server error (HTTP 500)" in said[0]
    assert "circuit breaker open" in said[1] and "HTTP 500" in said[1]
    assert notes_with(replies, "LLM ") == said


def test_a_rate_limited_endpoint_opens_the_breaker_for_at_least_its_retry_after(
    llm_server: FakeOpenAI, decision_context: DecisionContext
) -> None:
    brain, _ = brain_for(
        llm_server.url,
        retry_backoff_sec=0.0,
        min_attempt_sec=1.0,
        breaker_cooloff_sec=60,
        breaker_max_cooloff_sec=600,
    )
    llm_server.default = rate_limited(retry_after_sec=5)  # within the 30 s budget: retried
    replies = run_all(brain, [at(decision_context, 30 * i) for i in range(3)])
    assert len(llm_server.requests) == 6  # each waited its Retry-After once, then failed
    assert clock(brain).now() == pytest.approx(15.0)  # three waits of 5 s, on the budget clock
    st = brain.stats()
    assert st.breaker_state == "open" and st.breaker_opens == 1
    assert len(notes_with(replies, "circuit breaker open")) == 1
    # a Retry-After longer than the cool-off sets the cool-off: a 20 min wait is honoured
    brain, _ = brain_for(llm_server.url, breaker_failures=1, breaker_cooloff_sec=60)
    llm_server.default = rate_limited(retry_after_sec=1200)  # too long to retry in the budget
    llm_server.requests.clear()
    run_all(brain, [at(decision_context, 30 * i) for i in range(40)])  # 0 to 19.5 minutes
    assert len(llm_server.requests) == 1
    assert brain.breaker.current_cooloff_ns == 1200 * NS


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_stops_the_calls_until_restart(
    llm_server: FakeOpenAI, decision_context: DecisionContext, caplog: Any, status: int
) -> None:
    fallback = FixedBrain()
    config = LlmConfig(
        model="test-model",
        base_url=llm_server.url,
        api_key=SecretStr("sk-test-0123456789abcd"),
        **FAST,
    )
    brain = LlmBrain(config, fallback, deadlines=VirtualDeadlines())
    llm_server.default = unauthorized(status)
    with caplog.at_level(logging.WARNING, logger="fabio.brain.llm"):
        # a day of decisions, far past any cool-off
        replies = run_all(brain, [at(decision_context, 600 * i) for i in range(40)])
    assert len(llm_server.requests) == 1  # never called again
    st = brain.stats()
    assert st.breaker_state == "key_refused" and st.refused_skipped == 39
    assert fallback.calls == 40 and st.fallback_reasons == {"auth": 40}
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "refused the API key" in said[0] and f"HTTP {status}" in said[0]
    assert "0123456789abcd" not in " ".join(said + [r.fallback_reason or "" for r in replies])


def fabio_backtest(url: str, log_dir: Path, days: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(OPENAI_BASE_URL=url, OPENAI_API_KEY="sk-test-key")
    return subprocess.run(
        [
            *(sys.executable, "-c", "from fabio.cli import main; main()"),
            *("backtest", "--brain", "llm", "--days", str(days)),
            *("--log-dir", str(log_dir), "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=log_dir.parent,
        env=env,
        check=False,
    )


def test_an_always_500_endpoint_costs_at_most_40_requests_over_a_3_day_backtest(
    tmp_path: Path,
) -> None:
    server = FakeOpenAI(always_500()).start()
    try:
        result = fabio_backtest(server.url, tmp_path / "bt", days=3)
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    requests = len(server.requests)
    # measured: 31 requests for 3,668 decisions; before, 7,336 (every decision and its retry)
    assert requests <= 40, requests
    assert summary["llm"]["requests"] == requests
    assert summary["decisions"] > 1000 and summary["llm_fallbacks"] == summary["decisions"]
    # named on stderr, once each: the first failure and the opening
    lines = [line for line in result.stderr.splitlines() if "HTTP 500" in line]
    assert any("circuit breaker open" in line for line in lines), result.stderr[-2000:]
    assert sum("circuit breaker open after" in line for line in lines) == 1


def test_the_llm_status_is_never_ok_while_decisions_fall_back(
    llm_server: FakeOpenAI, decision_context: DecisionContext
) -> None:
    brain, _ = brain_for(llm_server.url, breaker_cooloff_sec=60)
    good = completion(json.dumps(decision_dict(decision_context.price)))
    llm_server.default = good
    run_all(brain, [decision_context])
    assert llm_status(brain) == ("ok", "LLM ok, cached 1024 tok")
    # one connection-level failure among answers: not "ok", and it says how many fell back
    llm_server.script(always_500(), always_500())
    run_all(brain, [at(decision_context, 30 * i) for i in range(1, 3)])
    level, text = llm_status(brain)
    assert level == "warning" and "fell back 1 of 3 (server_error 1)" in text, text
    # the breaker open, then a refused key: failures, plain text (no rich markup)
    llm_server.default = always_500()
    run_all(brain, [at(decision_context, 30 * i) for i in range(3, 8)])
    level, text = llm_status(brain)
    assert level == "failure" and text.startswith("LLM breaker open"), text
    brain, _ = brain_for(llm_server.url)
    llm_server.default = unauthorized()
    run_all(brain, [decision_context])
    level, text = llm_status(brain)
    assert level == "failure" and text.startswith("LLM key refused"), text
    assert "[" not in text


def test_the_llm_state_changes_reach_the_alerts(
    llm_server: FakeOpenAI, decision_context: DecisionContext
) -> None:
    brain, _ = brain_for(llm_server.url, breaker_cooloff_sec=60)
    good = completion(json.dumps(decision_dict(decision_context.price)))
    llm_server.script(*[always_500()] * 6)  # three decisions and their retries
    llm_server.default = good
    replies = run_all(brain, [at(decision_context, 30 * i) for i in range(6)])
    rules = AlertRules()
    sent = [
        a
        for r in replies
        for a in rules.alerts(
            "decision",
            {
                "symbol": "ES",
                "decision": {"fallback_reason": r.fallback_reason, "call_notes": r.notes},
            },
            0.0,
        )
    ]
    # the first failure, the opening (each with the reason), the closing when the probe answers
    assert [a.title for a in sent] == [
        "ES: LLM failing",
        "ES: LLM breaker open",
        "ES: LLM answers again",
    ], [(a.title, a.body) for a in sent]
    assert "HTTP 500" in sent[0].body and "HTTP 500" in sent[1].body


class SlowFailingLlm:
    """An LLM brain whose every decision falls back and comes back after the stale limit (a
    connection-error endpoint under load): the agent drops each one as stale."""

    def __init__(self, llm: LlmBrain) -> None:
        self.llm = llm  # what `llm_brain_of` finds, as in a recording CachedBrain
        self.name = llm.name

    async def decide(self, context: DecisionContext) -> BrainReply:
        return replace(await self.llm.decide(context), latency_ms=15_000)


def test_the_paper_summary_counts_fallbacks_dropped_as_stale(
    llm_server: FakeOpenAI, tmp_path: Path
) -> None:
    """Issue 22: under load the summary said `fallbacks 0 ... llm_status: LLM ok` while the
    journal showed connection errors and stale drops (the status only moved on applied ones)."""
    brain, _ = brain_for(llm_server.url)
    brain.fallback = RuleBrain()
    llm_server.default = always_500()
    settings = Settings(_env_file=None, log_dir=tmp_path / "logs")  # type: ignore[call-arg]
    session = PaperSession(
        settings, RunOptions(speed=1e6, duration_sec=600, live_view=False, brain="rules")
    )
    session.brain = SlowFailingLlm(brain)
    summary = asyncio.run(session.run())
    assert summary["decisions"] > 0
    assert summary["fallbacks"] == summary["stale_dropped"] == summary["decisions"], summary
    status = summary["llm_status"]
    assert status.startswith("LLM breaker open") and "fell back" in status, status
    assert "[" not in status  # plain text in a summary / --json


class SlowFallingBackBrain:
    """Every decision falls back (the LLM unreachable) and takes a moment of wall time."""

    name = "llm:slow"

    def __init__(self) -> None:
        self.inner = RuleBrain()
        self.calls = 0

    async def decide(self, context: DecisionContext) -> BrainReply:
        self.calls += 1
        await asyncio.sleep(0.05)
        reply = await self.inner.decide(context)
        return replace(reply, requested_brain=self.name, fallback_reason="connection error")


def test_live_stale_drops_of_fallbacks_are_counted(tmp_path: Path) -> None:
    """Live (the market does not wait): an answer dropped as stale still counts as a decision
    and, when it fell back, as a fallback; before, a summary said `fallbacks 0`."""
    feed = SyntheticFeed(SyntheticConfig(symbol="ES", days=2, seed=3, eth=False, rth_trades=20_000))
    brain = SlowFallingBackBrain()
    agent = Agent(
        FeatureEngine(feed.contract),
        open_execution(feed.contract, tmp_path),
        brain,
        Cadence(),
        live=True,
        stale_sec=1.0,
    )

    async def go() -> None:
        for batch in feed.batches():
            await agent.feed(batch.trades)  # no pause: market time races past the brain
        await agent.close_session()

    asyncio.run(go())
    s = agent.stats
    assert s.stale_dropped > 0
    assert s.fallbacks == s.decisions == brain.calls, (s.fallbacks, s.decisions, brain.calls)
