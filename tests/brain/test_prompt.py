"""The system prompt: static, cacheable (>= 1,024 tokens), rendered from the configuration, and
documenting every field the model receives and must return."""

from __future__ import annotations

from typing import Any

from fabio.brain.cadence import Cadence
from fabio.brain.context import DecisionContext, count_tokens
from fabio.brain.llm import decision_json_schema
from fabio.brain.prompt import USER_HEADER, default_system_prompt, system_prompt, user_prompt
from fabio.brain.thresholds import LearningRules, RegimeThresholds
from fabio.strategies import PLAYBOOK, StrategyParams, initialize_default_strategies

OPENAI_CACHE_MIN_TOKENS = 1024


def default() -> str:
    return system_prompt(RegimeThresholds(), LearningRules(), initialize_default_strategies())


def test_long_enough_for_prompt_caching_and_byte_identical() -> None:
    text = default()
    assert count_tokens(text) >= OPENAI_CACHE_MIN_TOKENS
    again = system_prompt(
        RegimeThresholds(), LearningRules(), initialize_default_strategies(), Cadence()
    )
    assert text.encode() == again.encode()
    assert default_system_prompt() == text


def test_renders_the_thresholds_it_is_given() -> None:
    base = default()
    odd = RegimeThresholds(
        trend_distance_to_poc_min_ticks=37,
        trend_cvd_slope_min=0.137,
        chop_poc_crosses_min=6,
        range_percentile_low=0.27,
        hysteresis_confirmations=4,
    )
    text = system_prompt(odd, LearningRules(), initialize_default_strategies())
    assert text != base
    for rendered in (
        "distance_to_poc_ticks > 37",
        "cvd_slope_5min > 0.137",
        "POC crosses > 6",
        "session_range_percentile 0.27 to",
        "after 4 consecutive",
        "more than 37 ticks above the POC",
    ):
        assert rendered in text, rendered
    one_change = system_prompt(
        RegimeThresholds(chop_cvd_slope_max=0.05), LearningRules(), initialize_default_strategies()
    )
    assert one_change != base and "cvd_slope_5min < 0.05" in one_change


def test_renders_the_learning_rules_strategies_and_cadence() -> None:
    rules = LearningRules(
        min_trades=25,
        disable_win_rate_below=0.38,
        boost_win_rate_above=0.65,
        risk_step=0.002,
        risk_cap=0.012,
    )
    strategies = initialize_default_strategies()
    strategies["MeanReversionPOC_v2"] = StrategyParams(enabled=False, stop_ticks=14)
    text = system_prompt(
        RegimeThresholds(),
        rules,
        strategies,
        Cadence(default_sec=40, outer_sec=12, inner_sec=4, min_priority=3),
    )
    for rendered in (
        ">= 25",
        "`win_rate` < 0.38",
        "`win_rate` > 0.65",
        "by 0.002",
        "never above 0.012",
        "every 40 s",
        "every 12 s",
        "every 4 s",
        "priority 3 or more",
        "| MeanReversionPOC_v2 | false |",
    ):
        assert rendered in text, rendered
    for name in PLAYBOOK:
        assert f"- {name}: " in text  # each strategy is taught, not only listed


def test_documents_every_context_field(rich_context: DecisionContext) -> None:
    text = default()
    d = rich_context.prompt_dict()
    names: set[str] = set(d)
    for section in (
        "market_stats",
        "poc_cross_stats",
        "profile",
        "prior_session",
        "orderflow",
        "position",
    ):
        names |= set(d[section])
    names |= set(next(iter(d["strategy_state"].values())))
    names |= set(next(iter(d["strategy_performance"].values())))
    names |= set(d["historical_notes"][0]) | set(d["triggered_setups"][0])
    missing = sorted(n for n in names if f"`{n}`" not in text)
    assert missing == [], f"the system prompt does not explain {missing}"


def _schema_names(node: Any, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("properties", "$defs") and isinstance(value, dict):
                if key == "properties":
                    out |= set(value)
                for sub in value.values():
                    _schema_names(sub, out)
            else:
                _schema_names(value, out)
    elif isinstance(node, list):
        for x in node:
            _schema_names(x, out)
    return out


def test_describes_the_whole_response_shape() -> None:
    text = default()
    missing = sorted(
        n for n in _schema_names(decision_json_schema(), set()) if f'"{n}"' not in text
    )
    assert missing == [], f"the response format omits {missing}"
    for value in ("out_of_balance_up", "out_of_balance_down", "above_value", "below_poc"):
        assert value in text


def test_static_part_has_nothing_of_the_moment(rich_context: DecisionContext) -> None:
    text = default()
    assert str(rich_context.price) not in text
    assert "2024-" not in text and "2025-" not in text


def test_user_prompt_is_the_context_json(decision_context: DecisionContext) -> None:
    prompt = user_prompt(decision_context)
    header, body = prompt.split("\n", 1)
    assert header == USER_HEADER
    assert body == decision_context.prompt_json()
    assert user_prompt(decision_context) == prompt
