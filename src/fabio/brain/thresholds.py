"""The spec's regime table and learning rules as configuration (spec: "Regime Inference Tuning").

The rule brain applies them; the LLM's system prompt renders them, so both brains work from
the same numbers. Defaults are calibrated on the real ES distributions in docs/features.md
(where the spec's literal numbers cannot occur on real data, docs/brain.md says so).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RegimeThresholds(BaseModel):
    """Indicator thresholds per regime (see the table in the spec and docs/brain.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Trend
    trend_range_percentile_min: float = Field(0.6, ge=0, le=1)
    trend_distance_to_poc_min_ticks: int = Field(20, ge=0)
    trend_time_outside_value_min: float = Field(0.5, ge=0, le=1)
    trend_cvd_slope_min: float = Field(0.5, ge=0, le=1)
    trend_poc_crosses_max: int = Field(10, ge=0)
    # Range
    range_percentile_low: float = Field(0.3, ge=0, le=1)
    range_percentile_high: float = Field(0.7, ge=0, le=1)
    range_poc_crosses_min: int = Field(10, ge=0)
    range_poc_crosses_max: int = Field(25, ge=0)
    # Chop
    chop_range_percentile_max: float = Field(0.3, ge=0, le=1)
    chop_distance_to_poc_max_ticks: int = Field(5, ge=0)
    chop_poc_crosses_min: int = Field(25, ge=0)
    chop_cvd_slope_max: float = Field(0.1, ge=0, le=1)
    # Hysteresis: a new label must win this many consecutive decisions before it replaces
    # the current one, so that the label does not flicker.
    hysteresis_confirmations: int = Field(2, ge=1, le=20)


class LearningRules(BaseModel):
    """The spec's self-learning behaviour, with the guardrail numbers it needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_trades: int = Field(30, ge=1)
    disable_win_rate_below: float = Field(0.4, ge=0, le=1)
    boost_win_rate_above: float = Field(0.6, ge=0, le=1)
    risk_step: float = Field(0.001, gt=0, le=0.01)
    risk_cap: float = Field(0.01, gt=0, le=0.05)
