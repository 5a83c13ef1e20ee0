"""The decision context: what a brain sees at one moment, compact and free of calendar dates.

Built from a feature snapshot plus the strategies' state and results, the brain's own notes, the
open position, the importance zones and the setups that trigger now. `prompt_dict()` is the
dynamic part of an LLM prompt (the static rules live in the system prompt); its size is
measured in tokens with the o200k encoding (`count_tokens`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fabio.brain.schema import CheckContext, ImportanceZone
from fabio.features.snapshot import FeatureSnapshot
from fabio.playbook.base import SetupCandidate
from fabio.strategies import StrategyParams, StrategyPerformance

MAX_NOTES_IN_CONTEXT = 8


class PositionView(BaseModel):
    model_config = ConfigDict(frozen=True)

    side: Literal["flat", "long", "short"] = "flat"
    size: int = 0
    entry_price: float | None = None
    stop_price: float | None = None
    target_price: float | None = None
    strategy: str | None = None
    unrealized_ticks: float | None = None


class NoteView(BaseModel):
    """A note to the future self, as the brain gets it back."""

    model_config = ConfigDict(frozen=True)

    text: str
    regime: str | None = None
    strategy: str | None = None
    sessions_ago: int = 0
    outcome: str | None = None


class DecisionContext(BaseModel):
    """Everything a brain decides from."""

    model_config = ConfigDict(frozen=True)

    symbol: str
    tick_size: float
    market_time_ns: int
    session_minute: float
    minutes_to_close: float
    price: float
    market_stats: dict[str, Any]
    poc_cross_stats: dict[str, Any]
    profile: dict[str, Any]
    prior_session: dict[str, Any] | None = None
    orderflow: dict[str, Any] = Field(default_factory=dict)
    position: PositionView = PositionView()
    strategy_state: dict[str, StrategyParams]
    strategy_performance: dict[str, StrategyPerformance] = Field(default_factory=dict)
    notes: list[NoteView] = Field(default_factory=list)
    importance_zones: list[ImportanceZone] = Field(default_factory=list)
    triggered_setups: list[SetupCandidate] = Field(default_factory=list)
    trigger: str = "interval"  # interval | setup | position_closed | manual
    # Enabled strategies whose own risk_fraction buys no contract even at the minimum stop
    # (strategy -> why): no setup of theirs can trade; they trade in shadow.
    sized_out: dict[str, str] = Field(default_factory=dict)
    # The risk_fraction each strategy started from (playbook or STRATEGIES_FILE).
    initial_risk_fraction: dict[str, float] = Field(default_factory=dict)

    def check_context(self) -> CheckContext:
        return CheckContext(
            last_price=self.price,
            tick_size=self.tick_size,
            known_strategies=frozenset(self.strategy_state),
        )

    def prompt_dict(self) -> dict[str, Any]:
        """The compact, date-free view sent to an LLM (and journaled as `context`)."""
        perf = {
            name: _drop_none(p.model_dump(exclude={"by_regime"}))
            for name, p in self.strategy_performance.items()
        }
        return _drop_none(
            {
                "symbol": self.symbol,
                "session_minute": round(self.session_minute, 1),
                "minutes_to_close": round(self.minutes_to_close, 1),
                "price": self.price,
                "trigger": self.trigger,
                "market_stats": self.market_stats,
                "poc_cross_stats": self.poc_cross_stats,
                "profile": self.profile,
                "prior_session": self.prior_session,
                "orderflow": self.orderflow or None,
                "position": _drop_none(self.position.model_dump()),
                "strategy_state": {k: v.model_dump() for k, v in self.strategy_state.items()},
                "strategy_performance": perf,
                "historical_notes": [_drop_none(n.model_dump()) for n in self.notes] or None,
                "importance_zones": [z.model_dump() for z in self.importance_zones] or None,
                "triggered_setups": [s.model_dump() for s in self.triggered_setups] or None,
                "sized_out": dict(self.sized_out) or None,
            }
        )

    def prompt_json(self) -> str:
        return json.dumps(self.prompt_dict(), separators=(",", ":"), sort_keys=False)


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    return value


_MARKET_STATS_KEYS = (
    "session_range_ticks",
    "session_range_percentile",
    "distance_to_poc_ticks",
    "distance_to_vah_ticks",
    "distance_to_val_ticks",
    "time_above_value_sec",
    "time_below_value_sec",
    "time_in_value_sec",
    "time_above_value_last_30min_sec",
    "time_below_value_last_30min_sec",
    "time_in_value_last_30min_sec",
    "cvd",
    "cvd_slope_5min",
    "cvd_slope_15min",
    "cvd_inferred_share",
    "range_last_5min_ticks",
    "price_change_last_5min_ticks",
    "range_last_15min_ticks",
    "price_change_last_15min_ticks",
    "typical_range_5min_ticks",
    "typical_range_15min_ticks",
    "typical_cvd_slope_15min",
    "close_change_last_15min_ticks",
    "close_range_last_15min_ticks",
    "close_change_last_30min_ticks",
    "close_range_last_30min_ticks",
    "variance_ratio_15min",
)
_PROFILE_KEYS = ("poc", "vah", "val", "high", "low", "volume", "cvd", "hvn", "lvn")
_PRIOR_KEYS = ("poc", "vah", "val", "high", "low", "hvn", "lvn")


def build_context(
    snapshot: FeatureSnapshot,
    tick_size: float,
    strategy_state: dict[str, StrategyParams],
    strategy_performance: dict[str, StrategyPerformance] | None = None,
    notes: list[NoteView] | None = None,
    position: PositionView | None = None,
    importance_zones: list[ImportanceZone] | None = None,
    triggered_setups: list[SetupCandidate] | None = None,
    trigger: str = "interval",
    *,
    sized_out: dict[str, str] | None = None,
    initial_risk_fraction: dict[str, float] | None = None,
) -> DecisionContext:
    """A context from a snapshot that has a session with trades (raises ValueError otherwise)."""
    if snapshot.market_stats is None or snapshot.profile is None or snapshot.session is None:
        raise ValueError("no session with trades at this moment: nothing to decide on")
    if snapshot.poc_cross_stats is None or snapshot.price is None:
        raise ValueError("the snapshot has no price")
    ms = snapshot.market_stats
    session = snapshot.session
    prof = snapshot.profile
    flow = snapshot.orderflow
    orderflow: dict[str, Any] = {}
    if flow is not None:
        orderflow = _drop_none(
            {
                "big_prints_count": flow.big_prints_count,
                "big_prints_buy_volume": flow.big_prints_buy_volume,
                "big_prints_sell_volume": flow.big_prints_sell_volume,
                "absorption": flow.absorption,
                "exhaustion": flow.exhaustion,
            }
        )
    return DecisionContext(
        symbol=snapshot.symbol,
        tick_size=tick_size,
        market_time_ns=snapshot.ts_ns,
        session_minute=session.minutes_into_session,
        minutes_to_close=session.minutes_to_close,
        price=snapshot.price,
        market_stats={k: _round(getattr(ms, k)) for k in _MARKET_STATS_KEYS},
        poc_cross_stats=_pcs(snapshot),
        profile={k: getattr(prof, k) for k in _PROFILE_KEYS},
        prior_session=(
            {k: snapshot.prior_session.get(k) for k in _PRIOR_KEYS}
            if snapshot.prior_session
            else None
        ),
        orderflow=orderflow,
        position=position or PositionView(),
        strategy_state=strategy_state,
        strategy_performance=strategy_performance or {},
        notes=(notes or [])[:MAX_NOTES_IN_CONTEXT],
        importance_zones=importance_zones or [],
        triggered_setups=triggered_setups or [],
        trigger=trigger,
        sized_out=sized_out or {},
        initial_risk_fraction=initial_risk_fraction or {},
    )


def _pcs(snapshot: FeatureSnapshot) -> dict[str, Any]:
    p = snapshot.poc_cross_stats
    assert p is not None
    return {
        "count_last_5min": p.count_last_5min,
        "count_last_15min": p.count_last_15min,
        "count_last_30min": p.count_last_30min,
        "time_since_last_cross_sec": p.time_since_last_cross_sec,
        "current_side": p.current_side,
    }


@lru_cache(maxsize=1)
def _encoding() -> Any:
    import bpe_openai

    return bpe_openai.get_encoding("o200k_base")


def count_tokens(text: str) -> int:
    """Tokens of `text` in the o200k encoding (GPT-4o family), counted offline."""
    return len(_encoding().encode(text))
