"""What a setup detector proposes: a candidate trade with entry, stop and target."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class SetupCandidate(BaseModel):
    """A triggered setup: the brain may take it, the engine will risk-check it."""

    model_config = ConfigDict(frozen=True)

    strategy: str
    side: Literal["long", "short"]
    order_type: Literal["market", "limit"] = "market"
    entry_price: float
    stop_price: float
    target_price: float
    rr: float
    reason: str
