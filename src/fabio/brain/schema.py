"""The decision a brain returns (the spec's response), and the policy that validates it.

Parsing is in two steps. `Decision.model_validate` checks structure and types: a response that
fails it is rejected whole. `check_decision` then applies the value policy (docs/brain.md,
"Validation policy") item by item, so that one absurd trade does not throw away a sound market
assessment. Every rejection, clamp and truncation is returned as a `Rejection` for the journal.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from fabio.decision import (
    MAX_NOTES,
    MAX_TRADE_DECISIONS,
    MAX_ZONE_BAND_TICKS,
    MAX_ZONES,
    Decision,
    ImportanceZone,
    MarketAssessment,
    MarketState,
    PocSide,
    Regime,
    StrategyChanges,
    StrategyTweak,
    StrategyUpdates,
    TradeDecision,
    ValueLocation,
)
from fabio.strategies import (
    MAX_TRADES_RANGE,
    MIN_RR_RANGE,
    RISK_FRACTION_MAX,
    STOP_TICKS_RANGE,
    TARGET_TICKS_RANGE,
)

# The models live in the domain layer (`fabio.decision`); re-exported for the brain's callers.
__all__ = [
    "MAX_NOTES",
    "MAX_TRADE_DECISIONS",
    "MAX_ZONES",
    "MAX_ZONE_BAND_TICKS",
    "CheckContext",
    "Decision",
    "ImportanceZone",
    "MarketAssessment",
    "MarketState",
    "PocSide",
    "Regime",
    "Rejection",
    "StrategyChanges",
    "StrategyTweak",
    "StrategyUpdates",
    "TradeDecision",
    "ValueLocation",
    "check_decision",
]


@dataclass(frozen=True, slots=True)
class Rejection:
    """One item of a decision that was rejected, clamped or truncated, and why."""

    path: str
    action: Literal["rejected", "clamped", "truncated", "dropped"]
    reason: str
    value: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "path": self.path,
            "action": self.action,
            "reason": self.reason,
            "value": self.value,
        }


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What the value policy needs to know about the market and the strategies."""

    last_price: float | None
    tick_size: float
    known_strategies: frozenset[str]
    max_price_distance: float = 0.05


class _Checker:
    def __init__(self, ctx: CheckContext) -> None:
        self.ctx = ctx
        self.out: list[Rejection] = []

    def note(
        self,
        path: str,
        action: Literal["rejected", "clamped", "truncated", "dropped"],
        reason: str,
        value: object = "",
    ) -> None:
        self.out.append(Rejection(path, action, reason, repr(value)[:120] if value != "" else ""))

    def text(self, path: str, value: str, limit: int) -> str:
        if len(value) > limit:
            self.note(path, "truncated", f"longer than {limit} characters", len(value))
            return value[:limit]
        return value

    def price(self, path: str, value: float | None) -> tuple[bool, float | None]:
        """(ok, price on the grid). None stays None."""
        if value is None:
            return True, None
        if not math.isfinite(value) or value <= 0:
            self.note(path, "rejected", "price is not a finite positive number", value)
            return False, None
        last = self.ctx.last_price
        if last is not None and abs(value - last) > self.ctx.max_price_distance * last:
            self.note(
                path,
                "rejected",
                f"price is more than {self.ctx.max_price_distance:.0%} from the last price {last}",
                value,
            )
            return False, None
        ticks = round(value / self.ctx.tick_size)
        on_grid = ticks * self.ctx.tick_size
        if abs(on_grid - value) > 1e-9:
            self.note(path, "clamped", "rounded to the tick grid", value)
        return True, on_grid


def _in_range(value: float, bounds: tuple[float, float]) -> bool:
    return math.isfinite(value) and bounds[0] <= value <= bounds[1]


def _check_trade(c: _Checker, path: str, t: TradeDecision) -> TradeDecision | None:
    ok = True
    prices: dict[str, float | None] = {}
    for name in ("limit_price", "stop_price", "target_price"):
        good, px = c.price(f"{path}.{name}", getattr(t, name))
        ok &= good
        prices[name] = px
    if not ok:
        return None
    if t.risk_fraction is not None and not (
        math.isfinite(t.risk_fraction) and 0 < t.risk_fraction <= RISK_FRACTION_MAX
    ):
        c.note(
            f"{path}.risk_fraction",
            "rejected",
            f"must be in (0, {RISK_FRACTION_MAX}]",
            t.risk_fraction,
        )
        return None
    if t.action == "enter":
        if t.side is None:
            c.note(path, "rejected", "an entry needs a side (long or short)")
            return None
        if t.entry_condition_id not in c.ctx.known_strategies:
            c.note(
                f"{path}.entry_condition_id", "rejected", "unknown strategy", t.entry_condition_id
            )
            return None
        if t.order_type == "limit" and prices["limit_price"] is None:
            c.note(path, "rejected", "a limit order needs a limit_price")
            return None
        entry = prices["limit_price"] if t.order_type == "limit" else c.ctx.last_price
        if entry is not None:
            sign = 1 if t.side == "long" else -1
            stop, target = prices["stop_price"], prices["target_price"]
            if stop is not None and sign * (entry - stop) <= 0:
                c.note(
                    f"{path}.stop_price",
                    "rejected",
                    f"a {t.side}'s stop must be {'below' if sign > 0 else 'above'} the entry",
                    stop,
                )
                return None
            if target is not None and sign * (target - entry) <= 0:
                c.note(
                    f"{path}.target_price",
                    "rejected",
                    f"a {t.side}'s target must be {'above' if sign > 0 else 'below'} the entry",
                    target,
                )
                return None
    if t.action == "modify" and prices["stop_price"] is None and prices["target_price"] is None:
        c.note(path, "rejected", "a modify needs a new stop_price or target_price")
        return None
    return t.model_copy(
        update={
            **prices,
            "reason": c.text(f"{path}.reason", t.reason, 300),
            "invalidation": c.text(f"{path}.invalidation", t.invalidation, 300),
        }
    )


_CHANGE_BOUNDS: dict[str, tuple[float, float]] = {
    "risk_fraction": (1e-6, RISK_FRACTION_MAX),
    "max_trades_per_session": MAX_TRADES_RANGE,
    "min_rr": MIN_RR_RANGE,
    "stop_ticks": STOP_TICKS_RANGE,
    "target_ticks": TARGET_TICKS_RANGE,
}


def _check_tweak(c: _Checker, path: str, tw: StrategyTweak) -> StrategyTweak | None:
    if tw.name not in c.ctx.known_strategies:
        c.note(f"{path}.name", "rejected", "unknown strategy", tw.name)
        return None
    kept: dict[str, Any] = {}
    for key, value in tw.changes.as_dict().items():
        bounds = _CHANGE_BOUNDS.get(key)
        if bounds is not None and not _in_range(float(value), bounds):
            c.note(f"{path}.changes.{key}", "dropped", f"outside the sane range {bounds}", value)
            continue
        kept[key] = value
    if not kept:
        c.note(path, "dropped", "no valid change left")
        return None
    return StrategyTweak(
        name=tw.name,
        changes=StrategyChanges(**kept),
        reason=c.text(f"{path}.reason", tw.reason, 300),
    )


def _check_zone(c: _Checker, path: str, z: ImportanceZone) -> ImportanceZone | None:
    good, center = c.price(f"{path}.center_price", z.center_price)
    if not good or center is None:
        return None
    if not 0 <= z.inner_band_ticks <= z.outer_band_ticks <= MAX_ZONE_BAND_TICKS:
        c.note(
            path,
            "rejected",
            f"bands must satisfy 0 <= inner <= outer <= {MAX_ZONE_BAND_TICKS} ticks",
            (z.inner_band_ticks, z.outer_band_ticks),
        )
        return None
    priority = min(3, max(1, z.priority))
    if priority != z.priority:
        c.note(f"{path}.priority", "clamped", "priority is 1 to 3", z.priority)
    return z.model_copy(
        update={
            "center_price": center,
            "priority": priority,
            "reason": c.text(f"{path}.reason", z.reason, 300),
        }
    )


def _check_assessment(c: _Checker, ma: MarketAssessment) -> MarketAssessment:
    confidence = ma.confidence if math.isfinite(ma.confidence) else 0.0
    if not 0.0 <= confidence <= 1.0 or confidence != ma.confidence:
        c.note("market_assessment.confidence", "clamped", "confidence is 0 to 1", ma.confidence)
        confidence = min(1.0, max(0.0, confidence))
    chosen = ma.chosen_model
    if chosen is not None and chosen not in c.ctx.known_strategies:
        if chosen.lower() not in ("none", "", "null"):
            c.note("market_assessment.chosen_model", "dropped", "unknown strategy", chosen)
        chosen = None
    return ma.model_copy(
        update={
            "confidence": confidence,
            "chosen_model": chosen,
            "reasoning": c.text("market_assessment.reasoning", ma.reasoning, 600),
        }
    )


def _check_updates(c: _Checker, su: StrategyUpdates) -> StrategyUpdates:
    active = []
    for name in su.active_strategies:
        if name in c.ctx.known_strategies:
            active.append(name)
        else:
            c.note("strategy_updates.active_strategies", "dropped", "unknown strategy", name)
    tweaks = [
        tw
        for i, t in enumerate(su.strategy_tweaks)
        if (tw := _check_tweak(c, f"strategy_updates.strategy_tweaks[{i}]", t)) is not None
    ]
    return StrategyUpdates(active_strategies=active, strategy_tweaks=tweaks)


def _check_list(c: _Checker, name: str, items: list[Any], limit: int, check: Any) -> list[Any]:
    kept = []
    for i, item in enumerate(items):
        if i >= limit:
            c.note(f"{name}[{i}]", "rejected", f"at most {limit} per decision")
            continue
        checked = check(c, f"{name}[{i}]", item)
        if checked is not None:
            kept.append(checked)
    return kept


MAX_NOTE_CHARS = 400

# A note is data for a later decision, never a command: a note that gives instructions or tries
# to change a limit (risk, size, stops, guardrails, the kill switch) is flagged and dropped.
# Strategy parameters change only through `strategy_tweaks`, inside the guardrails.
_NOTE_FLAGS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), why)
    for pattern, why in (
        (
            r"\b(ignore|disregard|forget|override)\b.{0,40}\b(instructions?|rules?|prompt|"
            r"guardrails?|limits?|caps?|system)\b",
            "tells the brain to ignore its rules",
        ),
        (
            r"\b(you are now|new instructions|system prompt|jailbreak|developer mode)\b",
            "gives the brain instructions",
        ),
        (
            r"\b(set|raise|increase|double|change|make|put|go)\b.{0,30}\b(risk|risk_fraction|"
            r"position size|size|leverage|contracts|lots|max_trades\w*|daily loss\w*|limits?|"
            r"caps?)\b.{0,20}(\bto\b|=|%|\bmax)",
            "tries to change a limit",
        ),
        (
            r"\b(disable|bypass|remove|turn off|switch off|skip|lift|raise)\b.{0,30}\b(guardrails?|"
            r"limits?|caps?|kill[ -]switch|stop[ -]loss(es)?|risk checks?|flat time)\b",
            "tries to switch off a safeguard",
        ),
        (r"\bno (stops?|stop[ -]loss(es)?|limits?)\b", "tries to switch off a safeguard"),
        (
            r"\b\d{2,3}(\.\d+)?\s*%\s*(of (the )?)?(account|balance|equity|risk)\b|"
            r"\brisk\b.{0,20}\b\d{2,3}(\.\d+)?\s*%",
            "asks for an outsized risk",
        ),
    )
)


def flag_note(text: str) -> str | None:
    """Why a note to the future self tries to act as an instruction or change a limit, or None."""
    for pattern, why in _NOTE_FLAGS:
        if pattern.search(text):
            return why
    return None


def _check_notes(c: _Checker, notes: list[str]) -> list[str]:
    kept: list[str] = []
    for i, n in enumerate(notes):
        if not n.strip():
            continue
        if len(kept) >= MAX_NOTES:
            c.note(f"notes_to_future_self[{i}]", "dropped", f"at most {MAX_NOTES} notes")
            continue
        flagged = flag_note(n)
        if flagged:
            c.note(
                f"notes_to_future_self[{i}]",
                "dropped",
                f"flagged: {flagged} (notes are data, not commands)",
                n,
            )
            continue
        kept.append(c.text(f"notes_to_future_self[{i}]", n.strip(), MAX_NOTE_CHARS))
    return kept


def check_decision(decision: Decision, ctx: CheckContext) -> tuple[Decision, list[Rejection]]:
    """Apply the value policy; return the cleaned decision and what was changed or refused."""
    c = _Checker(ctx)
    cleaned = Decision(
        market_assessment=_check_assessment(c, decision.market_assessment),
        trade_decisions=_check_list(
            c, "trade_decisions", decision.trade_decisions, MAX_TRADE_DECISIONS, _check_trade
        ),
        strategy_updates=_check_updates(c, decision.strategy_updates),
        importance_zones=_check_list(
            c, "importance_zones", decision.importance_zones, MAX_ZONES, _check_zone
        ),
        notes_to_future_self=_check_notes(c, decision.notes_to_future_self),
    )
    return cleaned, c.out
