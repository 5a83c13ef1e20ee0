"""Settings from the environment and `.env` (pydantic-settings), with the spec's names.

Only the CLI (and later the dashboard) reads settings; everything below it receives typed,
immutable configuration objects such as `FeatureConfig`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from fabio.errors import ConfigError, InstrumentError
from fabio.instruments import parse_symbol
from fabio.sessions import SessionKind
from fabio.strategies import STRATEGY_BOUNDS


class FeatureConfig(BaseModel):
    """Parameters of the order-flow feature engine (each is defined in docs/features.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    session: SessionKind = SessionKind.RTH
    value_area_pct: float = Field(0.70, gt=0.0, le=1.0)
    value_area_rows: Literal[1, 2, 3] = 2
    developing_interval_ms: int = Field(1000, ge=1, le=60_000)
    poc_cross_tolerance_ticks: int = Field(2, ge=1, le=50)
    range_percentile_sessions: int = Field(20, ge=1, le=1000)
    range_percentile_min_sessions: int = Field(5, ge=1, le=1000)
    hvn_lvn_smoothing_rows: int = Field(5, ge=1, le=51)
    hvn_lvn_min_separation_ticks: int = Field(6, ge=1, le=1000)
    hvn_lvn_prominence: float = Field(0.10, ge=0.0, le=1.0)
    big_print_min_size: int = Field(0, ge=0)  # 0: the instrument's default (see orderflow.py)
    signal_window_sec: int = Field(60, ge=5, le=3600)
    absorption_min_volume_share: float = Field(0.25, gt=0.0, le=1.0)
    absorption_min_imbalance: float = Field(0.6, gt=0.0, le=1.0)
    absorption_max_move_ticks: int = Field(2, ge=0, le=100)
    # Bar data (set by the backtest to the bar length): absorption is read from the last bar's
    # volume, delta and close (features/orderflow.py: bar_absorption); 0 = tick data.
    bar_absorption_sec: int = Field(0, ge=0, le=3600)
    exhaustion_volume_ratio: float = Field(0.5, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _check(self) -> FeatureConfig:
        if self.range_percentile_min_sessions > self.range_percentile_sessions:
            raise ValueError(
                "range_percentile_min_sessions cannot exceed range_percentile_sessions"
            )
        if self.hvn_lvn_smoothing_rows % 2 == 0:
            raise ValueError("hvn_lvn_smoothing_rows must be odd (a centred moving average)")
        return self


# Sane upper bounds: a value past these is a typo (ACCOUNT_BALANCE=1e308), never a setting.
MAX_ACCOUNT_USD = 10_000_000.0  # TopStep accounts are 50K-150K
MAX_LLM_COST_USD = 100_000.0
MAX_LLM_TOKENS = 10_000_000_000


# Credentials and addresses that a template's placeholder must never stand in for: a copied
# `.env.example` (OPENAI_API_KEY=your_api_key) would otherwise switch `fabio run` to the LLM.
PLACEHOLDER_FIELDS = (
    "openai_api_key",
    "openai_base_url",
    "topstep_username",
    "topstep_password",
    "topstep_api_key",
    "topstep_account_id",
    "dashboard_token",
    "alert_urls",
)
_PLACEHOLDER = re.compile(
    r"(your[_\-\s].*|your|<.*>|\{.*\}|\$\{.*\}|change[_\-]?me|replace[_\-]?me|"
    r"placeholder|todo|none|null|x{3,}|\.{3,}|\*+|sk-(\.{3,}|x{3,}|\*+|your.*)|sk-?)",
    re.IGNORECASE,
)


def is_placeholder(value: object) -> bool:
    """A template's stand-in (empty, `your_api_key`, `changeme`, `sk-...`, `<key>`), not a
    value anyone means to use."""
    if value is None:
        return False
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not isinstance(text, str):
        return False
    return _PLACEHOLDER.fullmatch(text.strip().strip("'\"").strip()) is not None or not text.strip()


class Settings(BaseSettings):
    """Everything Fabio reads from the environment or `.env`."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        allow_inf_nan=False,  # ACCOUNT_BALANCE=inf is a typo, never a balance
        populate_by_name=True,
    )

    # LLM (OpenAI or any OpenAI-compatible server)
    openai_api_key: SecretStr | None = None
    openai_model: str = "gpt-4o-mini"
    openai_base_url: str | None = None
    # LLM spending per RTH session; once spent, the rule brain decides until the next session.
    llm_max_cost_per_session: float | None = Field(
        None, ge=0, le=MAX_LLM_COST_USD, allow_inf_nan=False
    )
    llm_max_tokens_per_session: int | None = Field(None, ge=0, le=MAX_LLM_TOKENS)

    # TopStep / ProjectX Gateway
    topstep_username: str | None = None
    topstep_password: SecretStr | None = None
    topstep_api_key: SecretStr | None = None
    topstep_account_id: str | None = None
    topstep_api_url: str = "https://api.topstepx.com"
    topstep_rtc_url: str = "https://rtc.topstepx.com"

    # Trading
    symbol: str = "ES"
    symbols: str | None = None  # live: several symbols in one agent, e.g. "ES,NQ"
    mode: Literal["backtest", "test", "live"] = "test"
    account_balance: float = Field(50_000.0, gt=0, le=MAX_ACCOUNT_USD)
    account_preset: Literal["50K", "100K", "150K"] = "50K"
    daily_loss_limit: float | None = Field(None, gt=0, le=MAX_ACCOUNT_USD)
    max_trades_per_day: int = Field(10, ge=1, le=1000)
    flat_time: time = time(15, 8)
    # LOGS_DIR (freqtrade's name) or LOG_DIR: where the paper/live journals go.
    log_dir: Path = Field(Path("logs"), validation_alias=AliasChoices("logs_dir", "log_dir"))
    strategies_file: Path | None = None

    # Decision cadence (seconds)
    llm_decision_interval_default: float = Field(30.0, gt=0, le=3600)
    llm_decision_interval_outer_band: float = Field(15.0, gt=0, le=3600)
    llm_decision_interval_inner_band: float = Field(5.0, gt=0, le=3600)

    # Feature engine (FEATURE_*)
    feature_session: SessionKind = SessionKind.RTH
    feature_value_area_pct: float = Field(0.70, gt=0.0, le=1.0)
    feature_value_area_rows: Literal[1, 2, 3] = 2
    feature_poc_cross_tolerance_ticks: int = Field(2, ge=1, le=50)
    feature_range_percentile_sessions: int = Field(20, ge=1, le=1000)

    # Dashboard and alerts (docs: README "Dashboard and running as a service")
    dashboard_token: SecretStr | None = None
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = Field(8765, ge=0, le=65535)
    alert_urls: SecretStr | None = None  # apprise URLs, space or comma separated
    alert_min_interval_sec: float = Field(60.0, ge=0, le=86_400)
    alert_disconnect_sec: float = Field(30.0, ge=1, le=86_400)

    @field_validator(*PLACEHOLDER_FIELDS, mode="before")
    @classmethod
    def _no_placeholder(cls, value: object) -> object:
        # A placeholder is unset: the rule brain, no account, no token (see placeholder_settings).
        return None if is_placeholder(value) else value

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, value: str) -> str:
        try:
            parse_symbol(value)
        except InstrumentError as exc:
            raise ValueError(str(exc)) from None
        return value.strip().upper()

    @field_validator("feature_value_area_rows", mode="before")
    @classmethod
    def _rows(cls, value: object) -> object:
        # Environment values arrive as text; a Literal of ints compares without coercing.
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
        return value

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _intervals(self) -> Settings:
        if not (
            self.llm_decision_interval_inner_band
            <= self.llm_decision_interval_outer_band
            <= self.llm_decision_interval_default
        ):
            raise ValueError(
                "decision intervals must satisfy LLM_DECISION_INTERVAL_INNER_BAND <= "
                "LLM_DECISION_INTERVAL_OUTER_BAND <= LLM_DECISION_INTERVAL_DEFAULT"
            )
        return self

    def kill_switch_path(self) -> Path:
        return self.log_dir / "KILL"

    def risk_config(self) -> Any:
        """The risk engine's configuration (a ConfigError names the variable if it is invalid)."""
        from fabio.execution.risk import RiskConfig

        try:
            return RiskConfig(
                preset=self.account_preset,
                account_balance=self.account_balance,
                daily_loss_limit_usd=self.daily_loss_limit,
                max_trades_per_day=self.max_trades_per_day,
                flat_time=self.flat_time,
            )
        except ValidationError as exc:
            problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            raise ConfigError(
                "invalid risk configuration (ACCOUNT_PRESET, ACCOUNT_BALANCE, DAILY_LOSS_LIMIT, "
                f"MAX_TRADES_PER_DAY, FLAT_TIME): {problems}"
            ) from None

    def feature_config(self) -> FeatureConfig:
        return FeatureConfig(
            session=self.feature_session,
            value_area_pct=self.feature_value_area_pct,
            value_area_rows=self.feature_value_area_rows,
            poc_cross_tolerance_ticks=self.feature_poc_cross_tolerance_ticks,
            range_percentile_sessions=self.feature_range_percentile_sessions,
            range_percentile_min_sessions=min(5, self.feature_range_percentile_sessions),
        )


def _describe(error: dict[str, Any]) -> str:
    loc: tuple[Any, ...] = tuple(error.get("loc") or ())
    name = "_".join(str(p) for p in loc).upper() if loc else "configuration"
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    if not loc:
        return message
    value = error.get("input")
    field_name = str(loc[0])
    secret = any(word in field_name for word in ("key", "password", "secret", "token"))
    shown = "" if secret or isinstance(value, dict) else f"={value!r}"
    return f"{name}{shown}: {message}"


# Environment names that look like ours: a misspelt one is warned about, not silently ignored.
_OUR_PREFIXES = (
    "FABIO_",
    "TOPSTEP_",
    "LLM_",
    "FEATURE_",
    "ACCOUNT_",
    "RISK_",
    "STRATEG",
    "DAILY_",
    "MAX_TRADES",
    "FLAT_",
)
# Read by others from the same environment, not settings of ours.
_NOT_SETTINGS = frozenset({"FABIO_DEBUG", "FABIO_UPDATE_GOLDEN"})


def _setting_names() -> set[str]:
    """Every name a setting is read under: the field's name and its aliases, upper case."""
    names: set[str] = set()
    for name, info in Settings.model_fields.items():
        names.add(name.upper())
        for alias in (info.alias, info.validation_alias):
            if isinstance(alias, str):
                names.add(alias.upper())
            elif isinstance(alias, AliasChoices):
                names.update(str(c).upper() for c in alias.choices if isinstance(c, str))
    return names


def unknown_settings(
    env_file: str | Path | None = ".env", environ: Mapping[str, str] | None = None
) -> list[str]:
    """One warning per unknown key: every key of `.env`, and environment variables whose name
    is ours (FABIO_*, the spec's prefixes, a strategy parameter, or close to a setting); first,
    one line naming the credentials that are placeholders (`placeholder_settings`)."""
    known = _setting_names()
    params = {name.upper() for name in STRATEGY_BOUNDS}
    placeholders = placeholder_settings(env_file, environ)

    def hint(key: str) -> str:
        if key in params:
            return f"; {key.lower()} is a strategy parameter: set it in STRATEGIES_FILE"
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
        return f"; did you mean {close[0]}?" if close else ""

    warnings: list[str] = []
    if env_file is not None and Path(env_file).is_file():
        for key in dotenv_values(env_file):
            name = key.strip().upper()
            if name not in known and name not in _NOT_SETTINGS:
                warnings.append(f"{env_file}: unknown setting {name} is ignored{hint(name)}")
    env = os.environ if environ is None else environ
    for key in sorted(env):
        name = key.upper()
        if name in known or name in _NOT_SETTINGS:
            continue
        ours = (
            name.startswith(_OUR_PREFIXES)
            or name in params
            or difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.85)
        )
        if ours:
            warnings.append(f"environment: unknown setting {name} is ignored{hint(name)}")
    return placeholders + warnings


def placeholder_settings(
    env_file: str | Path | None = ".env", environ: Mapping[str, str] | None = None
) -> list[str]:
    """One line naming the credentials whose value is a template's placeholder (treated as
    unset), or nothing. Empty values are unset silently: that is how one leaves a setting out."""
    names = {name.upper() for name in PLACEHOLDER_FIELDS}
    found: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        for key, value in dotenv_values(env_file).items():
            if key.strip().upper() in names and value and is_placeholder(value):
                found[key.strip().upper()] = str(env_file)
    env = os.environ if environ is None else environ
    for key, value in env.items():
        if key.upper() in names and value and is_placeholder(value):
            found[key.upper()] = "environment"
    if not found:
        return []
    where = sorted(set(found.values()))
    return [
        f"{', '.join(sorted(found))} in {' and '.join(where)} "
        f"{'is a placeholder' if len(found) == 1 else 'are placeholders'}, treated as unset "
        "(no key: the rule brain decides, offline)"
    ]


def load_settings(env_file: str | Path | None = ".env") -> Settings:
    """Read the settings; a bad value becomes a ConfigError naming the variable."""
    try:
        return Settings(_env_file=env_file)
    except ValidationError as exc:
        lines = [_describe(dict(e)) for e in exc.errors()]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
    except Exception as exc:  # e.g. InstrumentError raised inside a validator
        raise ConfigError(f"invalid configuration: {exc}") from None
