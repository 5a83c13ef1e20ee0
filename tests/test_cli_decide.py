"""`fabio decide` end to end: rules, the LLM through the real SDK, the replay cache."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.brain.llm_server import Behaviour, FakeOpenAI, completion, decision_dict, error

SECRET = "sk-test-SECRET0123456789abcdef"


def run(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FEATURE_"))}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", "from fabio.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=full_env,
        check=False,
    )


def answer_at_price(request: dict[str, Any]) -> Behaviour:
    """A sound decision around the price the context carries."""
    user = request["messages"][-1]["content"]
    price = float(re.search(r'"price":([0-9.]+)', user).group(1))  # type: ignore[union-attr]
    return completion(json.dumps(decision_dict(price)), prompt_tokens=5300, cached_tokens=4608)


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(default=answer_at_price).start()
    try:
        yield fake
    finally:
        fake.stop()


def journal(cwd: Path) -> list[dict[str, Any]]:
    lines = (cwd / "logs" / "llm_exchanges.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_decide_llm_then_cache_then_fallback(server: FakeOpenAI, tmp_path: Path) -> None:
    env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": SECRET, "OPENAI_MODEL": "gpt-4o-mini"}
    first = run(tmp_path, "decide", "--brain", "llm", "--json", **env)
    assert first.returncode == 0, first.stderr
    rec = json.loads(first.stdout)
    assert rec["brain"] == "llm:gpt-4o-mini" and rec["fallback_reason"] is None
    assert rec["decision"]["market_assessment"]["regime"] == "range"
    assert rec["tokens"] == {"prompt": 5300, "completion": 200, "cached": 4608}
    assert len(server.requests) == 1
    sent = server.requests[0].body
    assert sent["messages"][0]["role"] == "system"  # the static prompt first, for caching
    assert "market_stats" in sent["messages"][-1]["content"]

    replay = run(tmp_path, "decide", "--brain", "cache", "--json", **env)
    assert replay.returncode == 0, replay.stderr
    rec2 = json.loads(replay.stdout)
    assert rec2["brain"] == "cache" and rec2["cost_usd"] == 0
    assert rec2["decision"] == rec["decision"]
    assert len(server.requests) == 1  # replay is free: no new request

    server.default = error(500, "upstream exploded")
    failed = run(tmp_path, "decide", "--brain", "llm", "--json", **env)
    assert failed.returncode == 0, failed.stderr
    rec3 = json.loads(failed.stdout)
    assert rec3["requested_brain"] == "llm:gpt-4o-mini" and rec3["brain"] == "rules"
    assert "500" in rec3["fallback_reason"]

    records = journal(tmp_path)
    assert [r["brain"] for r in records] == ["llm:gpt-4o-mini", "cache", "rules"]
    text = (tmp_path / "logs" / "llm_exchanges.jsonl").read_text()
    assert SECRET not in text and SECRET not in first.stdout + first.stderr
    for key in (
        "poc_cross_stats",
        "strategy_tweaks",
        "strategy_performance",
        "market_assessment",
        "strategy_updates",
    ):
        assert all(key in line for line in text.splitlines())


def test_decide_rules_human_output(tmp_path: Path) -> None:
    result = run(tmp_path, "decide")
    assert result.returncode == 0, result.stderr
    assert "market_assessment" in result.stdout and "brain rules" in result.stdout
    assert len(journal(tmp_path)) == 1


def test_decide_llm_without_configuration_is_a_clear_error(tmp_path: Path) -> None:
    result = run(tmp_path, "decide", "--brain", "llm")
    assert result.returncode == 2
    assert "OPENAI_API_KEY" in result.stderr and "Traceback" not in result.stderr
