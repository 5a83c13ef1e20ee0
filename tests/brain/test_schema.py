from __future__ import annotations

import math
from typing import Any

import pytest

from fabio.brain.schema import CheckContext, Decision, check_decision
from fabio.strategies import PLAYBOOK

CTX = CheckContext(last_price=5000.0, tick_size=0.25, known_strategies=frozenset(PLAYBOOK))


def decision(**overrides: Any) -> Decision:
    base: dict[str, Any] = {
        "market_assessment": {
            "regime": "range",
            "market_state": "balanced",
            "location": "in_value",
            "poc_side": "above_poc",
            "confidence": 0.7,
            "reasoning": "rotating in value",
            "chosen_model": "MeanReversionPOC_v2",
        },
        "trade_decisions": [
            {
                "action": "enter",
                "side": "long",
                "entry_condition_id": "MeanReversionPOC_v2",
                "order_type": "market",
                "stop_price": 4997.0,
                "target_price": 5006.0,
                "risk_fraction": 0.004,
                "invalidation": "acceptance below VAL",
                "reason": "failed auction",
            }
        ],
        "strategy_updates": {
            "active_strategies": ["MeanReversionPOC_v2"],
            "strategy_tweaks": [
                {"name": "TrendLVN_Pullback_v1", "changes": {"enabled": False}, "reason": "chop"}
            ],
        },
        "importance_zones": [
            {
                "id": "poc",
                "center_price": 5001.0,
                "priority": 3,
                "inner_band_ticks": 4,
                "outer_band_ticks": 12,
            }
        ],
        "notes_to_future_self": ["range day, fade the edges"],
    }
    base.update(overrides)
    return Decision.model_validate(base)


def test_clean_decision_passes_untouched() -> None:
    d = decision()
    cleaned, rejections = check_decision(d, CTX)
    assert rejections == []
    assert cleaned == d


@pytest.mark.parametrize(
    ("trade", "path_part"),
    [
        ({"risk_fraction": 1.0}, "risk_fraction"),
        ({"risk_fraction": -0.01}, "risk_fraction"),
        ({"risk_fraction": math.nan}, "risk_fraction"),
        ({"stop_price": 5003.0}, "stop_price"),  # a long's stop above the entry
        ({"target_price": 4990.0}, "target_price"),
        ({"stop_price": 50000.0}, "stop_price"),  # 10x away
        ({"stop_price": -1.0}, "stop_price"),
        ({"stop_price": math.inf}, "stop_price"),
        ({"entry_condition_id": "YoloBreakout"}, "entry_condition_id"),
        ({"side": None}, "trade_decisions[0]"),
        ({"order_type": "limit", "limit_price": None}, "trade_decisions[0]"),
    ],
)
def test_hostile_trades_are_rejected_with_a_reason(trade: dict[str, Any], path_part: str) -> None:
    d = decision()
    bad = d.trade_decisions[0].model_copy(update=trade)
    cleaned, rejections = check_decision(d.model_copy(update={"trade_decisions": [bad]}), CTX)
    assert cleaned.trade_decisions == []
    assert any(path_part in r.path and r.action == "rejected" for r in rejections)
    # The rest of the decision survives.
    assert cleaned.market_assessment.regime == "range"
    assert cleaned.importance_zones


def test_short_rules_mirror_long() -> None:
    d = decision()
    short = d.trade_decisions[0].model_copy(
        update={"side": "short", "stop_price": 5003.0, "target_price": 4994.0}
    )
    cleaned, rejections = check_decision(d.model_copy(update={"trade_decisions": [short]}), CTX)
    assert rejections == [] and len(cleaned.trade_decisions) == 1


def test_prices_are_rounded_to_the_grid_and_confidence_clamped() -> None:
    d = decision()
    ma = d.market_assessment.model_copy(update={"confidence": 7.0})
    t = d.trade_decisions[0].model_copy(update={"stop_price": 4997.1})
    cleaned, rejections = check_decision(
        d.model_copy(update={"market_assessment": ma, "trade_decisions": [t]}), CTX
    )
    assert cleaned.market_assessment.confidence == 1.0
    assert cleaned.trade_decisions[0].stop_price == 4997.0
    assert {r.action for r in rejections} == {"clamped"}


def test_tweaks_drop_bad_changes_and_unknown_strategies() -> None:
    d = decision(
        strategy_updates={
            "active_strategies": ["MeanReversionPOC_v2", "Nope"],
            "strategy_tweaks": [
                {
                    "name": "MeanReversionPOC_v2",
                    "changes": {
                        "risk_fraction": 1.0,
                        "stop_ticks": 10,
                        "max_trades_per_session": 500,
                    },
                },
                {"name": "Ghost", "changes": {"enabled": True}},
                {"name": "AbsorptionFade_v1", "changes": {"min_rr": 0.0}},
            ],
        }
    )
    cleaned, rejections = check_decision(d, CTX)
    assert cleaned.strategy_updates.active_strategies == ["MeanReversionPOC_v2"]
    assert len(cleaned.strategy_updates.strategy_tweaks) == 1
    tweak = cleaned.strategy_updates.strategy_tweaks[0]
    assert tweak.changes.as_dict() == {"stop_ticks": 10}
    paths = {r.path for r in rejections}
    assert "strategy_updates.strategy_tweaks[0].changes.risk_fraction" in paths
    assert "strategy_updates.strategy_tweaks[1].name" in paths


def test_limits_on_counts_zones_and_notes() -> None:
    t = decision().trade_decisions[0]
    zones = [
        {
            "id": f"z{i}",
            "center_price": 5000.0,
            "priority": 9,
            "inner_band_ticks": 2,
            "outer_band_ticks": 6,
        }
        for i in range(10)
    ]
    zones.append(
        {"id": "bad", "center_price": 5000.0, "inner_band_ticks": 9, "outer_band_ticks": 3}
    )
    d = decision(
        trade_decisions=[t.model_dump()] * 5,
        importance_zones=zones,
        notes_to_future_self=["n"] * 7 + ["", "x" * 1000],
    )
    cleaned, rejections = check_decision(d, CTX)
    assert len(cleaned.trade_decisions) == 3
    assert len(cleaned.importance_zones) == 8
    assert all(z.priority == 3 for z in cleaned.importance_zones)
    assert len(cleaned.notes_to_future_self) == 5
    assert any(r.path.startswith("importance_zones[8]") for r in rejections)
