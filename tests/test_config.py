from __future__ import annotations

import pytest

from fabio.config import FeatureConfig, load_settings
from fabio.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "SYMBOL",
        "MODE",
        "OPENAI_API_KEY",
        "LLM_DECISION_INTERVAL_DEFAULT",
        "LLM_DECISION_INTERVAL_OUTER_BAND",
        "LLM_DECISION_INTERVAL_INNER_BAND",
        "ACCOUNT_BALANCE",
        "TOPSTEP_PASSWORD",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_without_env_file() -> None:
    s = load_settings(env_file=None)
    assert s.mode == "test" and s.llm_decision_interval_default == 30
    assert s.feature_config() == FeatureConfig()


def test_env_file_and_secrets_never_print(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = tmp_path / ".env"
    env.write_text(
        "OPENAI_API_KEY=sk-live-abcdefghijklmnopqrstuvwxyz\nTOPSTEP_PASSWORD=hunter22\n"
        "SYMBOL=nqz5\nMODE=LIVE\nACCOUNT_BALANCE=150000\n"
    )
    s = load_settings(env_file=env)
    assert s.symbol == "NQZ5" and s.mode == "live" and s.account_balance == 150000
    assert s.openai_api_key is not None
    assert s.openai_api_key.get_secret_value().startswith("sk-live")
    for text in (repr(s), str(s), s.model_dump_json()):
        assert "abcdefghij" not in text and "hunter22" not in text


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("LLM_DECISION_INTERVAL_DEFAULT", "abc", "LLM_DECISION_INTERVAL_DEFAULT='abc'"),
        ("LLM_DECISION_INTERVAL_INNER_BAND", "60", "LLM_DECISION_INTERVAL_INNER_BAND <="),
        ("MODE", "paper", "MODE='paper'"),
        ("SYMBOL", "XYZ", "SYMBOL='XYZ'"),
        ("ACCOUNT_BALANCE", "-5", "ACCOUNT_BALANCE='-5'"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    assert expected in str(info.value)


def test_bad_secret_value_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOPSTEP_PASSWORD", "")
    monkeypatch.setenv("MODE", "nope")
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    assert "MODE" in str(info.value)


def test_feature_config_validation() -> None:
    with pytest.raises(ValueError, match="odd"):
        FeatureConfig(hvn_lvn_smoothing_rows=4)
