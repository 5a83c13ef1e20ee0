from __future__ import annotations

import json
from pathlib import Path

import pytest

from fabio.errors import ConfigError
from fabio.strategies import MEAN_REVERSION, load_strategies, out_of_bounds


def test_defaults_overrides_and_custom_strategies(tmp_path: Path) -> None:
    assert set(load_strategies(None)) == {
        "MeanReversionPOC_v2",
        "TrendLVN_Pullback_v1",
        "AbsorptionFade_v1",
    }
    path = tmp_path / "strategies.json"
    path.write_text(
        json.dumps(
            {
                MEAN_REVERSION: {"stop_ticks": 10},
                "MeanReversionPOC_v2:wide": {"enabled": True, "stop_ticks": 24, "target_ticks": 48},
            }
        )
    )
    s = load_strategies(path)
    assert s[MEAN_REVERSION].stop_ticks == 10 and s[MEAN_REVERSION].min_rr == 1.5
    assert s["MeanReversionPOC_v2:wide"].enabled and s["MeanReversionPOC_v2:wide"].stop_ticks == 24


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not readable JSON"),
        ("[1, 2]", "expected an object"),
        ('{"X": {"risk_fraction": 1.0}}', "X: risk_fraction"),
        ('{"X": {"colour": "red"}}', "X: colour"),
    ],
)
def test_bad_files_are_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "s.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_strategies(path)
    with pytest.raises(ConfigError, match="no such file"):
        load_strategies(tmp_path / "missing.json")


def test_strategies_file_cannot_exceed_the_guardrail_bounds(tmp_path: Path) -> None:
    from fabio.execution.strategy_book import GuardrailConfig
    from fabio.strategies import STRATEGY_BOUNDS, strategy_bounds

    path = tmp_path / "s.json"
    path.write_text('{"MeanReversionPOC_v2": {"risk_fraction": 0.03}}')
    with pytest.raises(ConfigError, match=r"risk_fraction 0.03 is outside \[0.0005, 0.01\]"):
        load_strategies(path)
    path.write_text('{"Custom:wide": {"enabled": true, "stop_ticks": 300}}')
    with pytest.raises(ConfigError, match=r"Custom:wide: stop_ticks 300 is outside \[4, 200\]"):
        load_strategies(path)
    # One source of truth: the guardrails default to the same bounds, and may only tighten them.
    g = GuardrailConfig()
    assert (g.risk_fraction_floor, g.risk_fraction_cap) == STRATEGY_BOUNDS["risk_fraction"]
    assert g.stop_ticks_range == STRATEGY_BOUNDS["stop_ticks"]
    assert g.target_ticks_range == STRATEGY_BOUNDS["target_ticks"]
    assert g.max_trades_range == STRATEGY_BOUNDS["max_trades_per_session"]
    assert g.min_rr_range == STRATEGY_BOUNDS["min_rr"]
    with pytest.raises(ValueError):
        GuardrailConfig(risk_fraction_cap=0.03)
    rows = {r["parameter"]: r for r in strategy_bounds()}  # the data `fabio config` prints
    assert rows["risk_fraction"]["max"] == 0.01 and set(rows) == set(STRATEGY_BOUNDS)
    for params in load_strategies(None).values():  # the playbook's defaults are inside
        assert not out_of_bounds(params)
