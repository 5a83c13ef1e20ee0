from __future__ import annotations

import json
from pathlib import Path

import pytest

from fabio.errors import ConfigError
from fabio.strategies import MEAN_REVERSION, load_strategies


def test_defaults_overrides_and_custom_strategies(tmp_path: Path) -> None:
    assert set(load_strategies(None)) == {
        "MeanReversionPOC_v2", "TrendLVN_Pullback_v1", "AbsorptionFade_v1"}
    path = tmp_path / "strategies.json"
    path.write_text(json.dumps({
        MEAN_REVERSION: {"stop_ticks": 10},
        "MeanReversionPOC_v2:wide": {"enabled": True, "stop_ticks": 24, "target_ticks": 48},
    }))
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
