"""The rule brain: a deterministic, offline brain that follows the spec's tables literally.

It scores the three regimes over the spec's indicators (plus rolling price statistics, see
docs/brain.md "Rule brain"), holds its label with hysteresis, reads the market state, takes the
triggered setup that fits the regime, applies the self-learning rules to the strategies'
measured performance, and sets importance zones. It stands behind the LLM brain as its
fallback, and a backtest can run on it alone: it needs no network and decides in well under a
millisecond.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fabio.brain.base import BrainReply
from fabio.brain.context import DecisionContext
from fabio.brain.learning import LearningPolicy, make_policy
from fabio.brain.schema import (
    Decision,
    ImportanceZone,
    MarketAssessment,
    MarketState,
    PocSide,
    Regime,
    StrategyTweak,
    StrategyUpdates,
    TradeDecision,
    ValueLocation,
    check_decision,
)
from fabio.brain.thresholds import LearningRules, RegimeThresholds
from fabio.errors import InstrumentError
from fabio.instruments import parse_symbol
from fabio.playbook.base import SetupCandidate
from fabio.playbook.setups import base_detector_name, plugin_detectors
from fabio.strategies import (
    ABSORPTION_FADE,
    MEAN_REVERSION,
    TREND_PULLBACK,
    StrategyParams,
)

REGIMES: tuple[Regime, ...] = ("trend", "range", "chop")

# Indicator weights, calibrated with bench/regime_accuracy.py on the calibration seeds of both
# labelled generators (docs/brain.md). The spec's session-context indicators (range
# percentile, distance to the POC, time outside value, POC crosses) stay in the readings (the
# reasoning and the LLM see them) but are weak evidence of the regime *now* (regimes switch
# every 25-120 minutes inside a session): calibration gives them no weight, except a little to
# the range's POC crosses. The flow, the rolling-price windows and the path of minute closes
# (30-minute efficiency, 15-minute variance ratio) carry the decision.
W_CONTEXT = 0.0
W_RANGE_POC_CROSSES = 0.25
W_TREND_CVD_5 = 2.0
W_TREND_CVD_15 = 2.25
W_TREND_MOVE_15 = 2.25
W_TREND_MOVE_5 = 2.5
W_TREND_EFFICIENT_15 = 0.75
W_TREND_EFFICIENT_30 = 4.5
W_RANGE_ROTATION_15 = 3.0
W_RANGE_ROTATION_5 = 2.0
W_RANGE_CVD_FLAT = 0.25
W_RANGE_CONTAINED_30 = 0.75
W_CHOP_CVD_FLAT = 1.0
W_CHOP_NARROW_15 = 2.75
W_CHOP_NARROW_5 = 1.5
W_CHOP_QUIET_5 = 3.25
W_CHOP_MEAN_REVERTING = 3.0
# The indicators read over the last 5 minutes only: the "5-minute read" that lets the label
# follow a switch before the 15-minute windows turn over (`RegimeTracker`). `quieter_5min`
# compares with the 15-minute range, so it is not one of them.
FAST_READINGS = frozenset(
    {
        ("trend", "cvd_slope_5min"),
        ("trend", "directional_move_5min"),
        ("range", "rotation_5min"),
        ("chop", "cvd_flat_5min"),
        ("chop", "narrow_5min"),
    }
)

# Importance zones (ES ticks): (inner, outer) bands per level.
ZONE_BANDS: dict[str, tuple[int, int, int]] = {  # id -> (priority, inner, outer)
    "poc": (3, 4, 12),
    "vah": (2, 3, 10),
    "val": (2, 3, 10),
    "lvn": (2, 2, 8),
    "prior_poc": (1, 4, 12),
    "session_high": (1, 2, 8),
    "session_low": (1, 2, 8),
}
NO_ENTRY_MINUTES_BEFORE_CLOSE = 10.0

_ZONE_REASONS = {
    "poc": "session POC",
    "vah": "value area high",
    "val": "value area low",
    "lvn": "nearest low-volume node",
    "prior_poc": "prior session POC",
    "session_high": "session high",
    "session_low": "session low",
}

# Thresholds and bands in ticks are ES-calibrated; NQ moves about four times as many ticks
# (the synthetic market's assumption too), so they are scaled per product root.
TICK_SCALE: dict[str, float] = {"ES": 1.0, "MES": 1.0, "NQ": 4.0, "MNQ": 4.0}
_TICK_FIELDS = (
    "trend_distance_to_poc_min_ticks",
    "trend_price_change_15min_min_ticks",
    "trend_price_change_5min_min_ticks",
    "range_rotation_15min_min_ticks",
    "range_rotation_5min_min_ticks",
    "chop_distance_to_poc_max_ticks",
    "chop_range_15min_max_ticks",
    "chop_range_5min_max_ticks",
    "chop_quiet_5min_max_ticks",
)


def tick_scale(symbol: str) -> float:
    """How many ES ticks one tick-denominated threshold is worth on `symbol` (1 if unknown)."""
    try:
        return TICK_SCALE.get(parse_symbol(symbol).spec.root, 1.0)
    except InstrumentError:
        return 1.0


def scaled_thresholds(t: RegimeThresholds, scale: float) -> RegimeThresholds:
    """`t` with its tick-denominated fields multiplied by `scale`."""
    if scale == 1.0:
        return t
    return t.model_copy(update={f: round(getattr(t, f) * scale) for f in _TICK_FIELDS})


@dataclass(frozen=True, slots=True)
class Reading:
    """One indicator of one regime: does it hold now (None: its statistic is missing)."""

    regime: Regime
    name: str
    weight: float
    holds: bool | None


@dataclass(frozen=True, slots=True)
class RegimeScores:
    """Weighted share of each regime's available indicators that hold, in [0, 1]."""

    trend: float
    range: float
    chop: float
    readings: tuple[Reading, ...]
    # The 5-minute read: the same shares over the 5-minute indicators alone (trend, range,
    # chop), or None when not computed.
    fast: tuple[float, float, float] | None = None

    def of(self, regime: Regime) -> float:
        return float(getattr(self, regime))

    def fast_lead(self) -> tuple[Regime, float] | None:
        """The 5-minute read's best regime and its lead over the next one (None: no read)."""
        if self.fast is None:
            return None
        f = self.fast
        order = sorted(range(3), key=lambda i: (-f[i], i))
        return REGIMES[order[0]], f[order[0]] - f[order[1]]

    @property
    def best(self) -> Regime:
        """The highest score; ties go trend > range > chop (the order of the spec's table)."""
        return max(REGIMES, key=lambda r: (self.of(r), -REGIMES.index(r)))

    def margin(self, regime: Regime) -> float:
        """How far `regime` leads the best other regime (negative when it trails)."""
        return self.of(regime) - max(self.of(r) for r in REGIMES if r != regime)


def _num(d: Mapping[str, Any], key: str) -> float | None:
    v = d.get(key)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _abs(v: float | None) -> float | None:
    return None if v is None else abs(v)


def _cmp(v: float | None, test: Callable[[float], bool]) -> bool | None:
    return None if v is None else bool(test(v))


def _share_outside_last_30min(ms: Mapping[str, Any]) -> float | None:
    above = _num(ms, "time_above_value_last_30min_sec") or 0.0
    below = _num(ms, "time_below_value_last_30min_sec") or 0.0
    inside = _num(ms, "time_in_value_last_30min_sec") or 0.0
    total = above + below + inside
    return (above + below) / total if total > 0 else None


@dataclass(frozen=True, slots=True)
class MarketScale:
    """How many reference-market units this market's statistics are worth.

    `range15` multiplies the thresholds stated against a 15-minute range (distances, the
    15-minute range and move), `range5` those against a 5-minute range, `flow` the CVD-slope
    thresholds. From the snapshot's `typical_*` statistics divided by the reference values in
    `RegimeThresholds`; while those are missing, the product's fixed tick scale (NQ 4) and 1.
    """

    range15: float = 1.0
    range5: float = 1.0
    flow: float = 1.0

    @staticmethod
    def of(ms: Mapping[str, Any], t: RegimeThresholds, fallback: float = 1.0) -> MarketScale:
        typ15 = _num(ms, "typical_range_15min_ticks")
        typ5 = _num(ms, "typical_range_5min_ticks")
        flow = _num(ms, "typical_cvd_slope_15min")
        return MarketScale(
            range15=typ15 / t.reference_range_15min_ticks if typ15 and typ15 > 0 else fallback,
            range5=typ5 / t.reference_range_5min_ticks if typ5 and typ5 > 0 else fallback,
            flow=flow / t.reference_cvd_slope_15min if flow and flow > 0 else 1.0,
        )


def regime_readings(
    ms: Mapping[str, Any],
    pcs: Mapping[str, Any],
    t: RegimeThresholds,
    scale: MarketScale | None = None,
) -> tuple[Reading, ...]:
    """Every indicator of the regime table, evaluated on `market_stats` and `poc_cross_stats`.

    Tick and slope statistics are divided by the market's scale first (`MarketScale`), so the
    thresholds read in reference-market units on any instrument, price level and volatility.
    """
    sc = scale or MarketScale()

    def per(v: float | None, f: float) -> float | None:
        return None if v is None else v / f

    pct = _num(ms, "session_range_percentile")
    dist = per(_abs(_num(ms, "distance_to_poc_ticks")), sc.range15)
    outside = _share_outside_last_30min(ms)
    slope5 = per(_num(ms, "cvd_slope_5min"), sc.flow)
    slope15 = per(_num(ms, "cvd_slope_15min"), sc.flow)
    crosses = _num(pcs, "count_last_30min")
    range5 = per(_num(ms, "range_last_5min_ticks"), sc.range5)
    range15 = per(_num(ms, "range_last_15min_ticks"), sc.range15)
    move15 = per(_num(ms, "price_change_last_15min_ticks"), sc.range15)
    move5 = per(_num(ms, "price_change_last_5min_ticks"), sc.range5)
    directional5: bool | None = None
    if move5 is not None and slope5 is not None:
        directional5 = abs(move5) >= t.trend_price_change_5min_min_ticks and move5 * slope5 > 0
    rotation5: bool | None = None
    if range5 is not None and move5 is not None:
        rotation5 = (
            range5 >= t.range_rotation_5min_min_ticks
            and abs(move5) <= t.range_rotation_5min_max_net_share * range5
        )
    directional: bool | None = None
    if move15 is not None and slope15 is not None:
        same_sign = move15 * slope15 > 0
        directional = abs(move15) >= t.trend_price_change_15min_min_ticks and same_sign
    efficient: bool | None = None
    if range15 is not None and move15 is not None:
        efficient = (
            range15 > t.chop_range_15min_max_ticks
            and abs(move15) >= t.trend_efficiency_15min_min * range15
        )
    quieter5: bool | None = None
    if range5 is not None and range15 is not None:
        quieter5 = (
            range5 <= t.chop_quiet_5min_max_share * range15
            and range5 <= t.chop_quiet_5min_max_ticks
        )
    # The path of minute closes: a 30-minute move that kept its ground (and still leans the
    # same way over 15 minutes) is a trend even when the flow is weak; a 15-minute range that
    # the last 30 minutes did not widen is contained; moves taken straight back are chop.
    c_move15 = _num(ms, "close_change_last_15min_ticks")
    c_range15 = _num(ms, "close_range_last_15min_ticks")
    c_move30 = _num(ms, "close_change_last_30min_ticks")
    c_range30 = _num(ms, "close_range_last_30min_ticks")
    efficient30: bool | None = None
    contained30: bool | None = None
    if None not in (c_move15, c_range15, c_move30, c_range30):
        cm15, cr15, cm30, cr30 = (
            float(c_move15 or 0),
            float(c_range15 or 0),
            float(c_move30 or 0),
            float(c_range30 or 0),
        )
        efficient30 = (
            cr30 / sc.range15 > t.chop_range_15min_max_ticks
            and abs(cm30) >= t.trend_efficiency_30min_min * cr30
            and cr15 > 0
            and abs(cm15) >= t.trend_efficiency_30min_confirm_15min * cr15
            and cm15 * cm30 > 0
        )
        contained30 = (
            cr15 / sc.range15 >= t.range_rotation_15min_min_ticks
            and cr30 <= t.range_contained_30min_max_expansion * cr15
        )
    vr15 = _num(ms, "variance_ratio_15min")
    rotation: bool | None = None
    if range15 is not None and move15 is not None:
        rotation = (
            range15 >= t.range_rotation_15min_min_ticks
            and abs(move15) <= t.range_rotation_max_net_share * range15
        )
    return (
        Reading("trend", "range_percentile", W_CONTEXT,
                _cmp(pct, lambda v: v > t.trend_range_percentile_min)),
        Reading("trend", "distance_to_poc", W_CONTEXT,
                _cmp(dist, lambda v: v > t.trend_distance_to_poc_min_ticks)),
        Reading("trend", "time_outside_value_30min", W_CONTEXT,
                _cmp(outside, lambda v: v > t.trend_time_outside_value_min)),
        Reading("trend", "few_poc_crosses", W_CONTEXT,
                _cmp(crosses, lambda v: v < t.trend_poc_crosses_max)),
        Reading("trend", "cvd_slope_5min", W_TREND_CVD_5,
                _cmp(_abs(slope5), lambda v: v > t.trend_cvd_slope_min)),
        Reading("trend", "cvd_slope_15min", W_TREND_CVD_15,
                _cmp(_abs(slope15), lambda v: v > t.trend_cvd_slope_15min_min)),
        Reading("trend", "directional_move_15min", W_TREND_MOVE_15, directional),
        Reading("trend", "efficient_move_15min", W_TREND_EFFICIENT_15, efficient),
        Reading("trend", "directional_move_5min", W_TREND_MOVE_5, directional5),
        Reading("range", "range_percentile", W_CONTEXT,
                _cmp(pct, lambda v: t.range_percentile_low <= v <= t.range_percentile_high)),
        Reading("range", "poc_crosses", W_RANGE_POC_CROSSES,
                _cmp(crosses, lambda v: t.range_poc_crosses_min <= v <= t.range_poc_crosses_max)),
        Reading("range", "rotation_15min", W_RANGE_ROTATION_15, rotation),
        Reading("range", "rotation_5min", W_RANGE_ROTATION_5, rotation5),
        Reading("range", "cvd_alternates", W_RANGE_CVD_FLAT,
                _cmp(_abs(slope15), lambda v: v < t.range_cvd_slope_15min_max)),
        Reading("chop", "range_percentile", W_CONTEXT,
                _cmp(pct, lambda v: v < t.chop_range_percentile_max)),
        Reading("chop", "near_poc", W_CONTEXT,
                _cmp(dist, lambda v: v < t.chop_distance_to_poc_max_ticks)),
        Reading("chop", "many_poc_crosses", W_CONTEXT,
                _cmp(crosses, lambda v: v > t.chop_poc_crosses_min)),
        Reading("chop", "cvd_flat_5min", W_CHOP_CVD_FLAT,
                _cmp(_abs(slope5), lambda v: v < t.chop_cvd_slope_max)),
        Reading("chop", "narrow_15min", W_CHOP_NARROW_15,
                _cmp(range15, lambda v: v <= t.chop_range_15min_max_ticks)),
        Reading("chop", "narrow_5min", W_CHOP_NARROW_5,
                _cmp(range5, lambda v: v <= t.chop_range_5min_max_ticks)),
        Reading("chop", "quieter_5min", W_CHOP_QUIET_5, quieter5),
        Reading("trend", "efficient_move_30min", W_TREND_EFFICIENT_30, efficient30),
        Reading("range", "contained_30min", W_RANGE_CONTAINED_30, contained30),
        Reading("chop", "mean_reverting_15min", W_CHOP_MEAN_REVERTING,
                _cmp(vr15, lambda v: v < t.chop_variance_ratio_max)),
    )  # fmt: skip


def score_regimes(
    ms: Mapping[str, Any],
    pcs: Mapping[str, Any],
    t: RegimeThresholds,
    scale: MarketScale | None = None,
) -> RegimeScores:
    """Score = weight of the indicators that hold / weight of those that could be evaluated.

    The same share over the 5-minute indicators alone (`FAST_READINGS`) is the 5-minute read,
    `RegimeScores.fast`.
    """
    readings = regime_readings(ms, pcs, t, scale)
    full = _shares(readings)
    fast = _shares(tuple(r for r in readings if (r.regime, r.name) in FAST_READINGS))
    return RegimeScores(
        full["trend"], full["range"], full["chop"], readings,
        fast=(fast["trend"], fast["range"], fast["chop"]),
    )  # fmt: skip


def _shares(readings: tuple[Reading, ...]) -> dict[str, float]:
    scores: dict[str, float] = {}
    for regime in REGIMES:
        avail = [r for r in readings if r.regime == regime and r.holds is not None]
        total = sum(r.weight for r in avail)
        held = sum(r.weight for r in avail if r.holds)
        scores[regime] = round(held / total, 4) if total > 0 else 0.0
    return scores


class RegimeTracker:
    """Hysteresis: a new label replaces the current one after winning N decisions in a row,
    or at once when it leads the current label's score by at least `switch_margin`, or when
    the 5-minute read has named it clearly (lead >= `fast_lead`) in every decision for
    `fast_minutes` minutes while its full score is within `fast_tolerance` of the label's
    (the switch-lag rule; off unless `fast_lead` is given)."""

    def __init__(
        self,
        confirmations: int,
        switch_margin: float = 2.0,
        fast_lead: float | None = None,
        fast_minutes: float = 3.0,
        fast_tolerance: float = 0.2,
    ) -> None:
        self.confirmations = confirmations
        self.switch_margin = switch_margin
        self.fast_lead = fast_lead
        self.fast_minutes = fast_minutes
        self.fast_tolerance = fast_tolerance
        self.label: Regime | None = None
        self._candidate: Regime | None = None
        self._streak = 0
        self._fast: Regime | None = None  # the regime the 5-minute read names clearly
        self._fast_since = 0.0  # since this minute, in every decision
        self._decisions = 0

    def reset(self) -> None:
        self.label, self._candidate, self._streak = None, None, 0
        self._fast, self._fast_since, self._decisions = None, 0.0, 0

    def _fast_held(self, scores: RegimeScores, minute: float) -> Regime | None:
        """Advance the 5-minute read's run; the regime it has named long enough, if any."""
        read = scores.fast_lead() if self.fast_lead is not None else None
        if read is None or read[1] < (self.fast_lead or 0.0) - 1e-9:
            self._fast = None
            return None
        if read[0] != self._fast:
            self._fast, self._fast_since = read[0], minute
        return self._fast if minute - self._fast_since >= self.fast_minutes - 1e-9 else None

    def update(self, scores: RegimeScores, minute: float | None = None) -> Regime:
        """Feed one decision's scores (at session `minute`; None counts decisions as minutes);
        return the label in force after it."""
        now = float(self._decisions) if minute is None else minute
        self._decisions += 1
        fast = self._fast_held(scores, now)
        best = scores.best
        if self.label is None:
            self.label = best
            return best
        if (
            fast is not None
            and fast != self.label
            and scores.of(fast) >= scores.of(self.label) - self.fast_tolerance - 1e-9
        ):
            self.label, self._candidate, self._streak = fast, None, 0  # the 5-minute read
            return self.label
        if best == self.label or scores.of(self.label) >= scores.of(best):
            self._candidate, self._streak = None, 0  # the current label holds (ties keep it)
            return self.label
        if best == self._candidate:
            self._streak += 1
        else:
            self._candidate, self._streak = best, 1
        clear = scores.of(best) - scores.of(self.label) >= self.switch_margin - 1e-9
        if self._streak >= self.confirmations or clear:
            self.label, self._candidate, self._streak = best, None, 0
        return self.label


# ---------------------------------------------------------------- market state


def value_location(ms: Mapping[str, Any]) -> ValueLocation:
    """Above VAH, below VAL or inside, from the signed distances."""
    to_vah = _num(ms, "distance_to_vah_ticks")
    to_val = _num(ms, "distance_to_val_ticks")
    if to_vah is not None and to_vah > 0:
        return "above_value"
    if to_val is not None and to_val < 0:
        return "below_value"
    return "in_value"


def market_state(
    ms: Mapping[str, Any],
    location: ValueLocation,
    t: RegimeThresholds,
    scale: MarketScale | None = None,
) -> MarketState:
    """Out of balance when price outside value is accepted there (time) or driven (flow).

    Accepted: at least `out_of_balance_time_share` of the last 30 minutes on that side of
    value. Driven: beyond `trend_distance_to_poc_min_ticks` from the POC with the 15-minute
    CVD slope past `trend_cvd_slope_15min_min` the same way. A probe outside value that has
    neither is still balanced (the failed-auction case).
    """
    if location == "in_value":
        return "balanced"
    sign = 1 if location == "above_value" else -1
    side_key = "time_above_value_last_30min_sec" if sign > 0 else "time_below_value_last_30min_sec"
    total = sum(
        _num(ms, k) or 0.0
        for k in (
            "time_above_value_last_30min_sec",
            "time_below_value_last_30min_sec",
            "time_in_value_last_30min_sec",
        )
    )
    accepted = total > 0 and (_num(ms, side_key) or 0.0) / total >= t.out_of_balance_time_share
    dist = _num(ms, "distance_to_poc_ticks") or 0.0
    slope15 = _num(ms, "cvd_slope_15min") or 0.0
    sc = scale or MarketScale()
    driven = (
        sign * dist > t.trend_distance_to_poc_min_ticks * sc.range15
        and sign * slope15 > t.trend_cvd_slope_15min_min * sc.flow
    )
    if accepted or driven:
        return "out_of_balance_up" if sign > 0 else "out_of_balance_down"
    return "balanced"


def poc_side(pcs: Mapping[str, Any]) -> PocSide:
    side = pcs.get("current_side")
    return side if side in ("above_poc", "below_poc", "at_poc") else "at_poc"


# ---------------------------------------------------------------- setups and regimes

# Which regimes each playbook detector's setups are taken in (docs/brain.md "Rule brain").
SETUP_REGIMES: dict[str, frozenset[str]] = {
    MEAN_REVERSION: frozenset({"range"}),
    TREND_PULLBACK: frozenset({"trend"}),
    ABSORPTION_FADE: frozenset({"range", "chop"}),
}


def _at_session_extreme(cand: SetupCandidate, ctx: DecisionContext, params: StrategyParams) -> bool:
    """A long near the session low, or a short near the session high (within stop_ticks)."""
    level = ctx.profile.get("low" if cand.side == "long" else "high")
    if not isinstance(level, int | float):
        return False
    return abs(ctx.price - float(level)) <= params.stop_ticks * ctx.tick_size


def setup_fits(
    cand: SetupCandidate,
    regime: Regime,
    state: MarketState,
    ctx: DecisionContext,
    variants: Mapping[str, str] | None = None,
) -> bool:
    """Whether the rule brain takes this setup in this regime and market state."""
    params = ctx.strategy_state.get(cand.strategy)
    if params is None:
        return False
    base = base_detector_name(cand.strategy, variants)
    if base == TREND_PULLBACK:
        against = "out_of_balance_down" if cand.side == "long" else "out_of_balance_up"
        return regime == "trend" and state != against
    if base == ABSORPTION_FADE and _at_session_extreme(cand, ctx, params):
        return True
    return _fits_regime(cand.strategy, regime, variants or {})


# ---------------------------------------------------------------- the brain


class RuleBrain:
    """Deterministic brain: regime by weighted indicator scores with hysteresis, playbook
    setups by regime, learning rules on measured performance."""

    name = "rules"

    def __init__(
        self,
        thresholds: RegimeThresholds | None = None,
        rules: LearningRules | None = None,
        variants: Mapping[str, str] | None = None,
        learning: str | LearningPolicy | None = None,
    ) -> None:
        self.thresholds = thresholds or RegimeThresholds()
        self.rules = rules or LearningRules()
        # How results are judged: "expectancy" (default) or "seed" (the spec's rules).
        self.learning = make_policy(learning, self.rules)
        self.variants = dict(variants or {})
        t = self.thresholds
        self.tracker = RegimeTracker(
            t.hysteresis_confirmations,
            t.hysteresis_switch_margin,
            fast_lead=t.fast_read_min_lead,
            fast_minutes=t.fast_read_minutes,
            fast_tolerance=t.fast_read_tolerance,
        )
        self._last_minute = -1.0  # a smaller session minute means a new session
        self._last_scores: RegimeScores | None = None
        self._scaled: dict[float, RegimeThresholds] = {}

    # -- regime ------------------------------------------------------------------
    def thresholds_for(self, symbol: str) -> RegimeThresholds:
        """The thresholds with tick-denominated fields scaled for the symbol's product."""
        scale = tick_scale(symbol)
        cached = self._scaled.get(scale)
        if cached is None:
            cached = self._scaled[scale] = scaled_thresholds(self.thresholds, scale)
        return cached

    def assess(self, ctx: DecisionContext) -> tuple[MarketAssessment, Regime | None]:
        """The market assessment (advances the hysteresis) and the label it replaced, if any."""
        if ctx.session_minute < self._last_minute:
            self.tracker.reset()  # a new session: yesterday's label says nothing about today
        self._last_minute = ctx.session_minute
        t = self.thresholds
        scale = MarketScale.of(ctx.market_stats, t, fallback=tick_scale(ctx.symbol))
        scores = score_regimes(ctx.market_stats, ctx.poc_cross_stats, t, scale)
        self._last_scores = scores
        before = self.tracker.label
        regime = self.tracker.update(scores, ctx.session_minute)
        location = value_location(ctx.market_stats)
        state = market_state(ctx.market_stats, location, t, scale)
        confidence = min(0.95, max(0.05, 0.5 + scores.margin(regime)))
        assessment = MarketAssessment(
            regime=regime,
            market_state=state,
            location=location,
            poc_side=poc_side(ctx.poc_cross_stats),
            confidence=round(confidence, 2),
            reasoning=_reasoning(scores, regime),
        )
        changed = before if before is not None and before != regime else None
        return assessment, changed

    @property
    def last_scores(self) -> RegimeScores | None:
        """The regime scores of the latest assessment."""
        return self._last_scores

    def infer_regime(self, ctx: DecisionContext) -> Regime:
        """Just the regime label (advances the hysteresis like a decision does)."""
        return self.assess(ctx)[0].regime

    # -- decision -----------------------------------------------------------------
    def decide_now(self, ctx: DecisionContext) -> Decision:
        """The whole decision, synchronously (backtests call this directly)."""
        assessment, previous = self.assess(ctx)
        regime, state = assessment.regime, assessment.market_state
        tweaks, learn_notes = self._learn(ctx, regime)
        fitting = [
            c
            for c in ctx.triggered_setups
            if setup_fits(c, regime, state, ctx, self.variants)
            and self.learning.allows(c.strategy, regime, ctx)
        ]
        trades, chosen = self._trades(ctx, regime, state, fitting)
        notes: list[str] = []
        if previous is not None:
            notes.append(_regime_note(previous, assessment, ctx, self._last_scores))
        notes.extend(learn_notes)
        active = [
            name
            for name, p in ctx.strategy_state.items()
            if p.enabled
            and (_fits_regime(name, regime, self.variants) or name == chosen)
            and self.learning.allows(name, regime, ctx)
        ]
        return Decision(
            market_assessment=assessment.model_copy(update={"chosen_model": chosen}),
            trade_decisions=trades,
            strategy_updates=StrategyUpdates(active_strategies=active, strategy_tweaks=tweaks),
            importance_zones=importance_zones(ctx, regime),
            notes_to_future_self=notes[:5],
        )

    async def decide(self, context: DecisionContext) -> BrainReply:
        decision, rejections = check_decision(self.decide_now(context), context.check_context())
        # Latency is not measured: replies stay bit-for-bit reproducible (a decision < 1 ms).
        return BrainReply(
            decision=decision, brain=self.name, requested_brain=self.name, rejections=rejections
        )

    def _trades(
        self,
        ctx: DecisionContext,
        regime: Regime,
        state: MarketState,
        fitting: list[SetupCandidate],
    ) -> tuple[list[TradeDecision], str | None]:
        pos = ctx.position
        if pos.side != "flat":
            known = pos.strategy if pos.strategy in ctx.strategy_state else None
            return _exit_if_invalidated(ctx, regime, state, self.variants), known
        if ctx.minutes_to_close < NO_ENTRY_MINUTES_BEFORE_CLOSE:
            return [], None
        usable = [c for c in fitting if _can_trade(c, ctx)]
        if not usable:
            return [], None
        best = min(usable, key=lambda c: (-c.rr, c.strategy))
        params = ctx.strategy_state[best.strategy]
        entry = TradeDecision(
            action="enter",
            side=best.side,
            entry_condition_id=best.strategy,
            order_type="market",
            stop_price=best.stop_price,
            target_price=best.target_price,
            risk_fraction=params.risk_fraction,
            invalidation=(
                f"stop {best.stop_price:g} trades, or the regime leaves {regime} with the "
                f"market out of balance against the {best.side}"
            ),
            reason=f"{best.reason}; regime {regime}, {state}, R:R {best.rr:g}",
        )
        return [entry], best.strategy

    # -- learning -----------------------------------------------------------------
    def _learn(self, ctx: DecisionContext, regime: Regime) -> tuple[list[StrategyTweak], list[str]]:
        return self.learning.judge(ctx, regime)


def _can_trade(cand: SetupCandidate, ctx: DecisionContext) -> bool:
    """Enabled and not sized out, under its per-session trade limit, and still valid at the
    context's price."""
    params = ctx.strategy_state.get(cand.strategy)
    if params is None or not params.enabled or cand.strategy in ctx.sized_out:
        return False  # a sized-out strategy's entry would be refused: it trades in shadow
    perf = ctx.strategy_performance.get(cand.strategy)
    if perf is not None and perf.trades_this_session >= params.max_trades_per_session:
        return False
    sign = 1 if cand.side == "long" else -1
    return sign * (ctx.price - cand.stop_price) > 0 and sign * (cand.target_price - ctx.price) > 0


def _fits_regime(name: str, regime: Regime, variants: Mapping[str, str]) -> bool:
    """The regime mapping of a strategy's detector (a plugin: its `regimes`, else any)."""
    base = base_detector_name(name, variants)
    if base is None:
        declared = getattr(plugin_detectors().get(name), "regimes", None)
        return declared is None or regime in declared
    return regime in SETUP_REGIMES[base]


def _exit_if_invalidated(
    ctx: DecisionContext, regime: Regime, state: MarketState, variants: Mapping[str, str]
) -> list[TradeDecision]:
    """Exit when the position's setup no longer fits the regime and the market runs against it."""
    pos = ctx.position
    if pos.strategy is None:
        return []
    against = "out_of_balance_down" if pos.side == "long" else "out_of_balance_up"
    if state != against or _fits_regime(pos.strategy, regime, variants):
        return []
    return [
        TradeDecision(
            action="exit",
            entry_condition_id=pos.strategy,
            reason=f"{pos.strategy} {pos.side} invalidated: regime {regime}, market {state}",
        )
    ]


# ---------------------------------------------------------------- zones and notes


# Priority 3 makes the cadence speed up (15 s / 5 s): only where this regime's setups trigger.
_HIGH_PRIORITY_BY_REGIME: dict[str, frozenset[str]] = {
    "range": frozenset({"vah", "val"}),  # failed auctions at the value edges
    "trend": frozenset({"lvn"}),  # pullbacks into low-volume nodes
    "chop": frozenset(),  # stand aside: the default 30 s is enough
}


def importance_zones(ctx: DecisionContext, regime: str | None = None) -> list[ImportanceZone]:
    """Zones at the POC, VAH, VAL, the nearest LVN, the prior POC and the session extremes.

    Priority 3 (which speeds up decisions) goes only to the levels where the regime's setups
    trigger; the others are capped at 2, so that the brain is not asked every 5 s all day.
    """
    high = _HIGH_PRIORITY_BY_REGIME.get(regime or "", frozenset())
    levels: list[tuple[str, Any]] = [
        ("poc", ctx.profile.get("poc")),
        ("vah", ctx.profile.get("vah")),
        ("val", ctx.profile.get("val")),
        ("lvn", _nearest(ctx.profile.get("lvn"), ctx.price)),
        ("prior_poc", (ctx.prior_session or {}).get("poc")),
        ("session_high", ctx.profile.get("high")),
        ("session_low", ctx.profile.get("low")),
    ]
    limit = ctx.check_context().max_price_distance * ctx.price
    scale = tick_scale(ctx.symbol)
    zones: list[ImportanceZone] = []
    seen: set[int] = set()
    for zone_id, level in levels:
        if not isinstance(level, int | float) or level <= 0 or abs(level - ctx.price) > limit:
            continue
        ticks = round(float(level) / ctx.tick_size)
        if ticks in seen:
            continue  # one zone per price: the first (most important) level keeps it
        seen.add(ticks)
        priority, inner, outer = ZONE_BANDS[zone_id]
        priority = 3 if zone_id in high else min(priority, 2)
        zones.append(
            ImportanceZone(
                id=zone_id,
                center_price=ticks * ctx.tick_size,
                priority=priority,
                inner_band_ticks=round(inner * scale),
                outer_band_ticks=round(outer * scale),
                reason=_ZONE_REASONS.get(zone_id, zone_id.replace("_", " ")),
            )
        )
    return zones


def _nearest(levels: Any, price: float) -> float | None:
    if not isinstance(levels, list):
        return None
    nums = [float(x) for x in levels if isinstance(x, int | float)]
    return min(nums, key=lambda x: (abs(x - price), x)) if nums else None


def _top_readings(scores: RegimeScores, regime: Regime) -> str:
    held = [r.name for r in scores.readings if r.regime == regime and r.holds and r.weight > 0]
    return ", ".join(held) if held else "none"


def _reasoning(scores: RegimeScores, regime: Regime) -> str:
    return (
        f"scores trend {scores.trend:.2f} / range {scores.range:.2f} / chop {scores.chop:.2f}; "
        f"{regime} indicators holding: {_top_readings(scores, regime)}"
    )


def _regime_note(
    previous: Regime,
    assessment: MarketAssessment,
    ctx: DecisionContext,
    scores: RegimeScores | None,
) -> str:
    ms = ctx.market_stats
    detail = ", ".join(
        f"{k} {ms[k]}"
        for k in ("cvd_slope_15min", "range_last_15min_ticks", "price_change_last_15min_ticks")
        if ms.get(k) is not None
    )
    why = _top_readings(scores, assessment.regime) if scores else ""
    return (
        f"{ctx.symbol} regime {previous} -> {assessment.regime} at session minute "
        f"{ctx.session_minute:.0f} ({assessment.market_state}, {assessment.location}): {detail}; "
        f"held: {why}."
    )
