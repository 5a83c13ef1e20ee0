"""Strategy parameters: what the brain tunes and what governs execution (spec: strategy_state).

The three playbook strategies start from the spec's "Custom Strategy Addition" shape. Hard
bounds here are sanity limits for validating a brain's output; the execution guardrails
(a later issue) apply tighter, configurable caps and step limits on top.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fabio.errors import ConfigError

MEAN_REVERSION = "MeanReversionPOC_v2"
TREND_PULLBACK = "TrendLVN_Pullback_v1"
ABSORPTION_FADE = "AbsorptionFade_v1"
PLAYBOOK = (MEAN_REVERSION, TREND_PULLBACK, ABSORPTION_FADE)

# The one source of truth for what `strategy_state` may hold: the guardrails (GuardrailConfig)
# clamp every brain change into these bounds and a STRATEGIES_FILE must respect them;
# `fabio config` prints them (see `strategy_bounds`).
STRATEGY_BOUNDS: dict[str, tuple[float, float]] = {
    "risk_fraction": (0.0005, 0.01),
    "max_trades_per_session": (0, 20),
    "min_rr": (1.0, 5.0),
    "stop_ticks": (4, 200),
    "target_ticks": (4, 400),
}

# Wider sanity limits for a value a brain proposes: beyond them the proposal is garbage and is
# rejected outright; inside them it is clamped into STRATEGY_BOUNDS by the guardrails.
RISK_FRACTION_MAX = 0.05
STOP_TICKS_RANGE = (2, 400)
TARGET_TICKS_RANGE = (2, 800)
MAX_TRADES_RANGE = (0, 50)
MIN_RR_RANGE = (0.5, 10.0)


class StrategyParams(BaseModel):
    """One strategy's `strategy_state` entry."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    enabled: bool = False
    risk_fraction: float = Field(0.005, gt=0, le=RISK_FRACTION_MAX)
    max_trades_per_session: int = Field(3, ge=MAX_TRADES_RANGE[0], le=MAX_TRADES_RANGE[1])
    min_rr: float = Field(2.0, ge=MIN_RR_RANGE[0], le=MIN_RR_RANGE[1])
    stop_ticks: int = Field(20, ge=STOP_TICKS_RANGE[0], le=STOP_TICKS_RANGE[1])
    target_ticks: int = Field(40, ge=TARGET_TICKS_RANGE[0], le=TARGET_TICKS_RANGE[1])


def initialize_default_strategies() -> dict[str, StrategyParams]:
    """The playbook's starting `strategy_state` (ES-sized stops; see docs/brain.md)."""
    return {
        MEAN_REVERSION: StrategyParams(
            enabled=True,
            risk_fraction=0.005,
            max_trades_per_session=3,
            min_rr=1.5,
            stop_ticks=12,
            target_ticks=24,
        ),
        TREND_PULLBACK: StrategyParams(
            enabled=True,
            risk_fraction=0.005,
            max_trades_per_session=3,
            min_rr=2.0,
            stop_ticks=16,
            target_ticks=40,
        ),
        ABSORPTION_FADE: StrategyParams(
            enabled=True,
            risk_fraction=0.004,
            max_trades_per_session=2,
            min_rr=1.5,
            stop_ticks=8,
            target_ticks=16,
        ),
    }


class StrategyPerformance(BaseModel):
    """Results of one strategy from its closed trades (computed by the execution layer)."""

    model_config = ConfigDict(frozen=True)

    trades: int = 0
    wins: int = 0
    win_rate: float | None = None
    net_pnl: float = 0.0  # USD, after fees
    avg_pnl: float | None = None  # USD per trade = expectancy in dollars
    net_r: float | None = None  # sum of R multiples (R = the initial risk)
    avg_r: float | None = None  # expectancy in R
    profit_factor: float | None = None  # gross wins / gross losses
    max_drawdown: float = 0.0  # USD, peak-to-trough of the strategy's cumulative net P&L
    avg_time_in_trade_sec: float | None = None
    trades_per_session: float | None = None
    trades_this_session: int = 0
    by_regime: dict[str, dict[str, float]] = Field(default_factory=dict)
    # What learning judges (R after costs): the last trades' expectancy and its spread, per
    # strategy (`recent`: trades, avg_r, r_std) and per regime (in `by_regime`), and the
    # trades a disabled strategy would have taken since it was disabled (`shadow`).
    r_std: float | None = None
    recent: dict[str, float] = Field(default_factory=dict)
    shadow: dict[str, float] = Field(default_factory=dict)


def load_strategies(path: Path | None) -> dict[str, StrategyParams]:
    """The playbook's defaults, updated and extended from a JSON file (`STRATEGIES_FILE`).

    The file is an object `{name: {parameter: value}}`: a playbook name overrides that
    strategy's defaults; a new name adds a custom strategy (name it `Base:label`, e.g.
    `MeanReversionPOC_v2:wide`, to run a built-in detector with its own parameters, or give a
    `fabio.setups` plugin's name). Errors name the file, the strategy and the parameter.
    """
    strategies = initialize_default_strategies()
    if path is None:
        return strategies
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"STRATEGIES_FILE {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"STRATEGIES_FILE {path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"STRATEGIES_FILE {path}: expected an object {{name: parameters}}")
    for name, params in data.items():
        if not isinstance(params, dict):
            raise ConfigError(f"STRATEGIES_FILE {path}: {name}: expected an object of parameters")
        base = strategies.get(name, StrategyParams())
        try:
            strategies[name] = StrategyParams.model_validate({**base.model_dump(), **params})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"STRATEGIES_FILE {path}: {name}: {problems}") from None
        beyond = out_of_bounds(strategies[name])
        if beyond:
            raise ConfigError(
                f"STRATEGIES_FILE {path}: {name}: {'; '.join(beyond)} (the guardrail bounds; "
                "`fabio config` lists them)"
            )
    return strategies


def out_of_bounds(params: StrategyParams) -> list[str]:
    """Why `params` lie outside STRATEGY_BOUNDS (empty when they are inside)."""
    problems = []
    for name, (lo, hi) in STRATEGY_BOUNDS.items():
        value = getattr(params, name)
        if not lo <= value <= hi:
            problems.append(f"{name} {value} is outside [{lo:g}, {hi:g}]")
    return problems


def strategy_bounds() -> list[dict[str, object]]:
    """The bounds as data (for `fabio config` and the dashboard): one row per parameter."""
    proposal = {
        "risk_fraction": (0.0, RISK_FRACTION_MAX),
        "max_trades_per_session": MAX_TRADES_RANGE,
        "min_rr": MIN_RR_RANGE,
        "stop_ticks": STOP_TICKS_RANGE,
        "target_ticks": TARGET_TICKS_RANGE,
    }
    return [
        {
            "parameter": name,
            "min": lo,
            "max": hi,
            "proposal_reject_below": proposal[name][0],
            "proposal_reject_above": proposal[name][1],
        }
        for name, (lo, hi) in STRATEGY_BOUNDS.items()
    ]
