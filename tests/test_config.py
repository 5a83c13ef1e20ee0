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


def _float_settings() -> list[str]:
    from fabio.config import Settings

    return sorted(name for name, f in Settings.model_fields.items() if "float" in str(f.annotation))


@pytest.mark.parametrize("name", _float_settings())
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity"])
def test_non_finite_numbers_are_refused_in_every_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name.upper(), value)
    with pytest.raises(ConfigError, match=name.upper()):
        load_settings(env_file=None)


def test_non_finite_numbers_are_refused_in_every_config_model() -> None:
    from fabio.execution.broker import SimBrokerConfig
    from fabio.execution.risk import RiskConfig
    from fabio.execution.strategy_book import GuardrailConfig
    from fabio.strategies import StrategyParams

    for model, field in (
        (RiskConfig, "loss_buffer_usd"),
        (GuardrailConfig, "cooldown_sec"),
        (StrategyParams, "min_rr"),
        (FeatureConfig, "value_area_pct"),
    ):
        with pytest.raises(ValueError, match="finite"):
            model.model_validate({field: float("inf")})
    assert SimBrokerConfig.model_config.get("allow_inf_nan") is False


def test_unknown_keys_in_env_file_and_environment_are_warned_about(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fabio.config import unknown_settings

    env = tmp_path / ".env"
    env.write_text("SYMBOL=ES\nRISK_FRACTION=5\nACOUNT_BALANCE=1000\nFOO=1\n")
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "FABIO_SPEED": "3",
        "TOPSTEP_USER": "x",
        "MAX_TRADES_PER_DAY": "3",
        "FABIO_DEBUG": "1",
        "LLM_DECISION_INTERVAL": "3",
    }
    warnings = unknown_settings(env, environ)
    text = "\n".join(warnings)
    assert len(warnings) == 6, text
    assert "unknown setting RISK_FRACTION is ignored; risk_fraction is a strategy parameter" in text
    assert "ACOUNT_BALANCE is ignored; did you mean ACCOUNT_BALANCE?" in text
    assert f"{env}: unknown setting FOO" in text  # every unknown key of .env
    for name in ("FABIO_SPEED", "TOPSTEP_USER", "LLM_DECISION_INTERVAL"):
        assert f"environment: unknown setting {name}" in text
    assert "PATH" not in text and "HOME" not in text and "MAX_TRADES_PER_DAY" not in text


def test_cli_warns_about_a_misspelt_setting_and_prints_standard_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    import subprocess
    import sys

    (tmp_path / ".env").write_text("RISK_FRACTION=5\n")
    cmd = [sys.executable, "-c", "from fabio.cli import main; main()", "state", "--json"]
    ok = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "warning:" in ok.stderr and "RISK_FRACTION" in ok.stderr
    json.loads(ok.stdout, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    (tmp_path / ".env").write_text("ACCOUNT_BALANCE=inf\n")
    bad = subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert "ACCOUNT_BALANCE='inf'" in bad.stderr and "Traceback" not in bad.stderr


def test_json_output_is_always_standard(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from fabio.cli import _print_json

    _print_json({"a": float("inf"), "b": [float("nan")], "c": 1.5})
    printed = capsys.readouterr().out
    assert json.loads(printed) == {"a": None, "b": [None], "c": 1.5}
    assert "Infinity" not in printed and "NaN" not in printed


def test_a_settings_alias_is_not_an_unknown_key(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from pydantic import AliasChoices, Field

    from fabio import config

    class Aliased(config.Settings):
        log_dir: config.Path = Field(
            config.Path("logs"), validation_alias=AliasChoices("logs_dir", "log_dir")
        )

    monkeypatch.setattr(config, "Settings", Aliased)
    env = tmp_path / ".env"
    env.write_text("LOGS_DIR=/tmp/x\nLOG_DIR=/tmp/y\n")
    assert config.unknown_settings(env, {}) == []


def _numeric_settings() -> list[str]:
    from fabio.config import Settings

    return sorted(
        name
        for name, f in Settings.model_fields.items()
        if "float" in str(f.annotation) or "int" in str(f.annotation)
    )


@pytest.mark.parametrize("name", _numeric_settings())
def test_every_numeric_setting_has_an_upper_bound(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Issue 22: ACCOUNT_BALANCE=1e308 was accepted."""
    from fabio.config import Settings

    annotation = str(Settings.model_fields[name].annotation)
    huge = "1e308" if "float" in annotation else "1" + "0" * 30
    monkeypatch.setenv(name.upper(), huge)
    with pytest.raises(ConfigError, match=name.upper()) as info:
        load_settings(env_file=None)
    assert "less than or equal to" in str(info.value)


def test_a_huge_balance_is_a_one_line_error_naming_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACCOUNT_BALANCE", "1e308")
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    assert "ACCOUNT_BALANCE='1e308'" in str(info.value)
    assert "10000000" in str(info.value)
