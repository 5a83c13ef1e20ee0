"""The spec's regime table and learning rules as configuration (spec: "Regime Inference Tuning").

The rule brain applies them; the LLM's system prompt renders them, so both brains work from
the same numbers. Defaults are calibrated on the labelled synthetic market and kept sensible on
the real ES distributions in docs/features.md: docs/brain.md ("Rule brain") gives, for each
one, the spec's original value and the real-ES percentile the new value sits at. The spec's
literal CVD-slope (0.5) and POC-cross (10-25 / 30 min) numbers never occur on real ES with our
normalisation, hence the new values. Distances and ranges are in ES ticks (NQ moves about four
times as many ticks).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RegimeThresholds(BaseModel):
    """Indicator thresholds per regime (see the table in the spec and docs/brain.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Trend (spec: range > p60, |distance to POC| > 20, time outside value > 50 %,
    # CVD slope > 0.5, POC crosses < 10 / 30 min)
    trend_range_percentile_min: float = Field(0.6, ge=0, le=1)
    trend_distance_to_poc_min_ticks: int = Field(20, ge=0)
    trend_time_outside_value_min: float = Field(0.5, ge=0, le=1)  # share of the last 30 min
    trend_cvd_slope_min: float = Field(0.06, ge=0, le=1)  # |cvd_slope_5min|
    trend_cvd_slope_15min_min: float = Field(0.06, ge=0, le=1)  # |cvd_slope_15min|
    trend_poc_crosses_max: int = Field(3, ge=0)  # count_last_30min < this
    trend_price_change_15min_min_ticks: int = Field(3, ge=0)  # with the CVD slope's sign
    trend_price_change_5min_min_ticks: int = Field(3, ge=0)  # with the 5-min CVD slope's sign
    # |net change| / range over 15 minutes (a scale-free path efficiency), wider than chop
    trend_efficiency_15min_min: float = Field(0.75, ge=0, le=1)
    # The path of minute closes over 30 minutes: |net change| / range of the closes at least
    # this (a range wider than chop's 15-minute one), and over 15 minutes at least
    # `..._confirm_15min` the same way: acceptance away from where the move began, whatever
    # the flow.
    trend_efficiency_30min_min: float = Field(0.7, ge=0, le=1)
    trend_efficiency_30min_confirm_15min: float = Field(0.4, ge=0, le=1)
    # Range (spec: range p30-p70, price rotates VAH-VAL, POC crosses 10-25 / 30 min, CVD
    # alternates direction)
    range_percentile_low: float = Field(0.3, ge=0, le=1)
    range_percentile_high: float = Field(0.7, ge=0, le=1)
    range_poc_crosses_min: int = Field(1, ge=0)
    range_poc_crosses_max: int = Field(7, ge=0)
    range_rotation_15min_min_ticks: int = Field(7, ge=0)  # range_last_15min_ticks at least
    range_rotation_max_net_share: float = Field(0.7, ge=0, le=1)  # |net change| / that range
    range_rotation_5min_min_ticks: int = Field(7, ge=0)  # range_last_5min_ticks at least
    range_rotation_5min_max_net_share: float = Field(0.9, ge=0, le=1)  # |5-min change| / range
    range_cvd_slope_15min_max: float = Field(0.03, ge=0, le=1)  # flow nets out: |slope 15m| <
    # Contained: the 30-minute range of minute closes at most this multiple of the 15-minute
    # one (itself a rotation-wide range): the market keeps trading the same band.
    range_contained_30min_max_expansion: float = Field(1.3, ge=1, le=3)
    # Chop (spec: range < p30, |distance to POC| < 5, POC crosses > 25 / 30 min, CVD slope < 0.1)
    chop_range_percentile_max: float = Field(0.3, ge=0, le=1)
    chop_distance_to_poc_max_ticks: int = Field(3, ge=0)
    chop_poc_crosses_min: int = Field(7, ge=0)  # count_last_30min > this
    chop_cvd_slope_max: float = Field(0.06, ge=0, le=1)  # |cvd_slope_5min| <
    chop_range_15min_max_ticks: int = Field(5, ge=0)  # range_last_15min_ticks at most
    chop_range_5min_max_ticks: int = Field(6, ge=0)  # range_last_5min_ticks at most
    # Mean reverting: variance_ratio_15min (of minute closes) below this; each move is taken
    # back (a random walk has about 1, a trend or a slow rotation more). Scale-free.
    chop_variance_ratio_max: float = Field(0.3, ge=0, le=2)
    # Volatility dropped: the last 5 minutes span at most this share of the 15-minute range
    # (both in reference units) and at most `chop_quiet_5min_max_ticks`: the first chop
    # evidence after a switch, while the 15-minute range still holds the old regime's swings.
    chop_quiet_5min_max_share: float = Field(0.5, ge=0, le=2)
    chop_quiet_5min_max_ticks: int = Field(4, ge=0)
    # The reference market the tick and slope thresholds above are stated for: its typical
    # (median) 5- and 15-minute range and abs(15-minute CVD slope). The rule brain divides each
    # statistic by the market's own typical value over this one (`typical_*` in market_stats),
    # so the table holds on any instrument, price level and volatility.
    reference_range_5min_ticks: float = Field(6.0, gt=0)
    reference_range_15min_ticks: float = Field(13.0, gt=0)
    reference_cvd_slope_15min: float = Field(0.028, gt=0)
    # Market state: price outside value is accepted (out of balance) when it spent at least
    # this share of the last 30 minutes on that side of value.
    out_of_balance_time_share: float = Field(0.5, ge=0, le=1)
    # Hysteresis: a new label must win this many consecutive decisions before it replaces
    # the current one, so that the label does not flicker.
    hysteresis_confirmations: int = Field(8, ge=1, le=20)
    # ... unless it leads the current label's score by at least this much: a clear switch is
    # taken at once (scores are in [0, 1], so above 1 it never is).
    hysteresis_switch_margin: float = Field(0.3, gt=0, le=2)
    # Switch lag: the 5-minute read (the 5-minute indicators alone) names one regime with a
    # lead of at least `fast_read_min_lead` in every decision for `fast_read_minutes` minutes
    # and the full score of that regime is within `fast_read_tolerance` of the label's: the
    # label switches to it then, without waiting for the 15-minute windows to turn over.
    fast_read_min_lead: float = Field(0.5, gt=0, le=1)
    fast_read_minutes: float = Field(3.0, ge=0)
    fast_read_tolerance: float = Field(0.2, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> RegimeThresholds:
        if self.range_percentile_low > self.range_percentile_high:
            raise ValueError("range_percentile_low must not exceed range_percentile_high")
        if self.range_poc_crosses_min > self.range_poc_crosses_max:
            raise ValueError("range_poc_crosses_min must not exceed range_poc_crosses_max")
        return self


class LearningRules(BaseModel):
    """The spec's self-learning behaviour, with the guardrail numbers it needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_trades: int = Field(30, ge=1)
    disable_win_rate_below: float = Field(0.4, ge=0, le=1)
    boost_win_rate_above: float = Field(0.6, ge=0, le=1)
    risk_step: float = Field(0.001, gt=0, le=0.01)
    risk_cap: float = Field(0.01, gt=0, le=0.05)
