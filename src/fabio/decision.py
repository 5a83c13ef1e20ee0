"""The decision contract: what a brain returns and execution consumes (the spec's response).

Domain layer: the brain produces a `Decision`, the execution engine consumes its
`TradeDecision`s and `StrategyUpdates`, and neither imports the other. Value policy (clamps,
bounds, truncation) lives with the brain that validates its own output (`fabio.brain.schema`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Regime = Literal["trend", "range", "chop"]
MarketState = Literal["balanced", "out_of_balance_up", "out_of_balance_down"]
ValueLocation = Literal["above_value", "in_value", "below_value"]
PocSide = Literal["above_poc", "below_poc", "at_poc"]

MAX_TRADE_DECISIONS = 3
MAX_ZONES = 8
MAX_NOTES = 5
MAX_ZONE_BAND_TICKS = 400


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class MarketAssessment(_Model):
    regime: Regime
    market_state: MarketState
    location: ValueLocation
    poc_side: PocSide
    confidence: float
    reasoning: str = ""
    chosen_model: str | None = None


class TradeDecision(_Model):
    action: Literal["enter", "exit", "modify"]
    side: Literal["long", "short"] | None = None
    entry_condition_id: str | None = None
    order_type: Literal["market", "limit"] = "market"
    limit_price: float | None = None
    stop_price: float | None = None
    target_price: float | None = None
    risk_fraction: float | None = None
    invalidation: str = ""
    reason: str = ""


class StrategyChanges(_Model):
    enabled: bool | None = None
    risk_fraction: float | None = None
    max_trades_per_session: int | None = None
    min_rr: float | None = None
    stop_ticks: int | None = None
    target_ticks: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class StrategyTweak(_Model):
    name: str
    changes: StrategyChanges
    reason: str = ""


class StrategyUpdates(_Model):
    active_strategies: list[str] = Field(default_factory=list)
    strategy_tweaks: list[StrategyTweak] = Field(default_factory=list)


class ImportanceZone(_Model):
    id: str
    center_price: float
    priority: int = 1
    inner_band_ticks: int
    outer_band_ticks: int
    reason: str = ""


class Decision(_Model):
    """A brain's whole answer, with the spec's names."""

    market_assessment: MarketAssessment
    trade_decisions: list[TradeDecision] = Field(default_factory=list)
    strategy_updates: StrategyUpdates = Field(default_factory=StrategyUpdates)
    importance_zones: list[ImportanceZone] = Field(default_factory=list)
    notes_to_future_self: list[str] = Field(default_factory=list)
