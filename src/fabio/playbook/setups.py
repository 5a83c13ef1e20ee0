"""Fabio Valentini's three setups as pure functions of a feature snapshot, and their registry.

A detector is `detector(snapshot, params, tick_size) -> SetupCandidate | None`: it reads only
the snapshot and the strategy's `StrategyParams` (stop_ticks, target_ticks, min_rr), works in
integer ticks, and proposes nothing when the reward:risk is below `min_rr`. The rules are in
docs/brain.md ("Playbook").

`detect_setups` runs the detector of every enabled strategy in `strategy_state`. A strategy
finds its detector by name: a built-in playbook name; a configured variant of a built-in
(`variants={"MyMR": "MeanReversionPOC_v2"}`, or the name form `"MeanReversionPOC_v2:wide"`)
that runs the built-in with its own parameters; or a plugin registered under the entry point
group `fabio.setups` (name -> callable with the detector signature).
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from fabio.features.snapshot import FeatureSnapshot
from fabio.playbook.base import SetupCandidate
from fabio.strategies import ABSORPTION_FADE, MEAN_REVERSION, TREND_PULLBACK, StrategyParams

log = logging.getLogger(__name__)

Detector = Callable[[FeatureSnapshot, StrategyParams, float], "SetupCandidate | None"]
ENTRY_POINT_GROUP = "fabio.setups"
VARIANT_SEPARATOR = ":"
Side = Literal["long", "short"]


@dataclass(frozen=True, slots=True)
class SetupConfig:
    """Detector constants that are not strategy parameters (ES-sized; see docs/brain.md)."""

    probe_min_ticks: int = 2  # how far beyond VAH/VAL a probe must have gone
    stop_buffer_ticks: int = 2  # stop this far beyond the failed extreme / LVN / absorbed price
    min_stop_ticks: int = 2  # never a stop closer than this to the entry
    lvn_proximity_ticks: int = 3  # "at" an LVN or the VA edge: within this many ticks
    pullback_min_ticks: int = 4  # a pullback is at least this far back from the trend extreme
    trend_cvd_slope_15min_min: float = 0.05  # the trend's flow: |cvd_slope_15min| at least this
    resume_cvd_slope_5min_min: float = 0.02  # aggression resuming: cvd_slope_5min this way
    trend_min_distance_to_poc_ticks: int = 8  # "away from value": price this far beyond the POC
    absorption_extreme_ticks: int = 4  # absorbed price within this of the session low/high


DEFAULT_SETUP_CONFIG = SetupConfig()


@dataclass(frozen=True, slots=True)
class _Market:
    """The snapshot's levels in integer ticks (None when the snapshot cannot support a setup)."""

    price: int
    poc: int
    vah: int
    val: int
    high: int
    low: int
    lvn: tuple[int, ...]


def _ticks(price: float, tick_size: float) -> int:
    return round(price / tick_size)


def _market(snapshot: FeatureSnapshot, tick_size: float) -> _Market | None:
    prof = snapshot.profile
    if snapshot.price is None or prof is None:
        return None
    levels = [prof.poc, prof.vah, prof.val, prof.high, prof.low]
    known = [v for v in levels if v is not None]
    if len(known) < len(levels):
        return None
    poc, vah, val, high, low = (_ticks(v, tick_size) for v in known)
    return _Market(
        price=_ticks(snapshot.price, tick_size),
        poc=poc,
        vah=vah,
        val=val,
        high=high,
        low=low,
        lvn=tuple(_ticks(x, tick_size) for x in prof.lvn),
    )


def _candidate(
    strategy: str,
    side: Side,
    entry: int,
    stop: int,
    target: int,
    params: StrategyParams,
    tick_size: float,
    reason: str,
    config: SetupConfig,
) -> SetupCandidate | None:
    """A candidate if the stop fits the strategy's risk and the reward:risk reaches min_rr."""
    sign = 1 if side == "long" else -1
    risk = sign * (entry - stop)
    reward = sign * (target - entry)
    if risk < config.min_stop_ticks or risk > params.stop_ticks or reward <= 0:
        return None
    rr = reward / risk
    if rr < params.min_rr:
        return None
    return SetupCandidate(
        strategy=strategy,
        side=side,
        order_type="market",
        entry_price=entry * tick_size,
        stop_price=stop * tick_size,
        target_price=target * tick_size,
        rr=round(rr, 2),
        reason=reason,
    )


# ---------------------------------------------------------------- the three setups


def mean_reversion_poc(
    snapshot: FeatureSnapshot,
    params: StrategyParams,
    tick_size: float,
    config: SetupConfig = DEFAULT_SETUP_CONFIG,
) -> SetupCandidate | None:
    """Balance: a probe beyond VAH (VAL) failed and price is back in value -> fade to the POC.

    Short: the 15-minute high is at least `probe_min_ticks` above the VAH (a recent probe),
    price is back inside value above the POC, and the 5-minute CVD slope is not pushing up.
    Stop beyond the probe's high, target the POC (capped by target_ticks). Long mirrors it
    below the VAL.
    """
    m = _market(snapshot, tick_size)
    ms = snapshot.market_stats
    if m is None or ms is None or not m.val <= m.price <= m.vah:
        return None
    slope5 = ms.cvd_slope_5min or 0.0
    if ms.high_last_15min is not None and m.price > m.poc and slope5 <= 0:
        probe = _ticks(ms.high_last_15min, tick_size)
        if probe - m.vah >= config.probe_min_ticks:
            return _candidate(
                MEAN_REVERSION,
                "short",
                m.price,
                probe + config.stop_buffer_ticks,
                max(m.poc, m.price - params.target_ticks),
                params,
                tick_size,
                f"failed probe above VAH {m.vah * tick_size:g} to {probe * tick_size:g}; back "
                f"in value, cvd_slope_5min {slope5:+.3f}; target POC {m.poc * tick_size:g}",
                config,
            )
    if ms.low_last_15min is not None and m.price < m.poc and slope5 >= 0:
        probe = _ticks(ms.low_last_15min, tick_size)
        if m.val - probe >= config.probe_min_ticks:
            return _candidate(
                MEAN_REVERSION,
                "long",
                m.price,
                probe - config.stop_buffer_ticks,
                min(m.poc, m.price + params.target_ticks),
                params,
                tick_size,
                f"failed probe below VAL {m.val * tick_size:g} to {probe * tick_size:g}; back "
                f"in value, cvd_slope_5min {slope5:+.3f}; target POC {m.poc * tick_size:g}",
                config,
            )
    return None


def _pullback_level(m: _Market, sign: int, proximity: int) -> tuple[int, str] | None:
    """The LVN (or else the value-area edge) price is pulling back into, on the trend's side."""
    edge = m.vah if sign > 0 else m.val
    lvns = [x for x in m.lvn if abs(m.price - x) <= proximity and sign * (x - m.poc) > 0]
    if lvns:
        return min(lvns, key=lambda x: (abs(m.price - x), x)), "LVN"
    if abs(m.price - edge) <= proximity:
        return edge, "VAH" if sign > 0 else "VAL"
    return None


def trend_lvn_pullback(
    snapshot: FeatureSnapshot,
    params: StrategyParams,
    tick_size: float,
    config: SetupConfig = DEFAULT_SETUP_CONFIG,
) -> SetupCandidate | None:
    """Out of balance: a pullback into an LVN / the VA edge with aggression resuming -> join.

    Long: the 15-minute CVD slope is up (at least `trend_cvd_slope_15min_min`), price is at
    least `trend_min_distance_to_poc_ticks` above the POC, it has pulled back at least
    `pullback_min_ticks` from the session high into an LVN above the POC (or the VAH), and
    the 5-minute CVD slope is up again. Stop beyond the level, target `target_ticks`.
    Short mirrors it.
    """
    m = _market(snapshot, tick_size)
    ms = snapshot.market_stats
    if m is None or ms is None or ms.cvd_slope_15min is None or ms.cvd_slope_5min is None:
        return None
    slope15, slope5 = ms.cvd_slope_15min, ms.cvd_slope_5min
    if abs(slope15) < config.trend_cvd_slope_15min_min:
        return None
    sign = 1 if slope15 > 0 else -1
    side: Side = "long" if sign > 0 else "short"
    extreme = m.high if sign > 0 else m.low
    if (
        sign * (m.price - m.poc) < config.trend_min_distance_to_poc_ticks
        or sign * (extreme - m.price) < config.pullback_min_ticks
        or sign * slope5 < config.resume_cvd_slope_5min_min
    ):
        return None
    found = _pullback_level(m, sign, config.lvn_proximity_ticks)
    if found is None:
        return None
    level, kind = found
    # Beyond the level and the price, whichever is further: a long that dipped a tick under
    # its LVN keeps its stop under the dip.
    stop = (min(level, m.price) if sign > 0 else max(level, m.price)) - sign * (
        config.stop_buffer_ticks
    )
    return _candidate(
        TREND_PULLBACK,
        side,
        m.price,
        stop,
        m.price + sign * params.target_ticks,
        params,
        tick_size,
        f"trend {'up' if sign > 0 else 'down'} (cvd_slope_15min {slope15:+.3f}); pullback "
        f"into {kind} {level * tick_size:g}, aggression resuming (cvd_slope_5min {slope5:+.3f})",
        config,
    )


def absorption_fade(
    snapshot: FeatureSnapshot,
    params: StrategyParams,
    tick_size: float,
    config: SetupConfig = DEFAULT_SETUP_CONFIG,
) -> SetupCandidate | None:
    """Absorption at an extreme: passive size soaks up aggression there -> fade it.

    Long: bid absorption (heavy selling that does not move the window's low) whose price is
    within `absorption_extreme_ticks` of the session low or at/below the VAL. Stop beyond the
    absorbed price, target `target_ticks`. Short mirrors it with ask absorption at the high.
    """
    m = _market(snapshot, tick_size)
    flow = snapshot.orderflow
    if m is None or flow is None or not flow.absorption:
        return None
    absorbed = _ticks(float(flow.absorption["price"]), tick_size)
    side_name = flow.absorption.get("side")
    if side_name not in ("bid", "ask"):
        return None
    sign = 1 if side_name == "bid" else -1
    side: Side = "long" if sign > 0 else "short"
    extreme, edge = (m.low, m.val) if sign > 0 else (m.high, m.vah)
    at_extreme = abs(absorbed - extreme) <= config.absorption_extreme_ticks
    beyond_value = sign * (edge - absorbed) >= 0
    if not (at_extreme or beyond_value) or sign * (m.price - absorbed) < 0:
        return None
    share = flow.absorption.get("volume_share", 0.0)
    return _candidate(
        ABSORPTION_FADE,
        side,
        m.price,
        absorbed - sign * config.stop_buffer_ticks,
        m.price + sign * params.target_ticks,
        params,
        tick_size,
        f"{side_name} absorption at {absorbed * tick_size:g} "
        f"({'session extreme' if at_extreme else 'outside value'}, volume share {share})",
        config,
    )


# ---------------------------------------------------------------- registry

BUILTIN_DETECTORS: dict[str, Detector] = {
    MEAN_REVERSION: mean_reversion_poc,
    TREND_PULLBACK: trend_lvn_pullback,
    ABSORPTION_FADE: absorption_fade,
}


@lru_cache(maxsize=1)
def plugin_detectors() -> dict[str, Detector]:
    """Detectors registered under the `fabio.setups` entry point group (loaded once)."""
    found: dict[str, Detector] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            fn = ep.load()
        except Exception as exc:  # a broken plugin must not stop the agent
            log.warning("setup plugin %s failed to load: %s", ep.name, exc)
            continue
        if callable(fn):
            found[ep.name] = fn
    return found


def reload_plugins() -> None:
    """Forget the loaded plugins (after installing one, or in tests)."""
    plugin_detectors.cache_clear()


def base_detector_name(name: str, variants: Mapping[str, str] | None = None) -> str | None:
    """The built-in detector a strategy name runs, if it is a built-in or a variant of one."""
    if name in BUILTIN_DETECTORS:
        return name
    if variants and variants.get(name) in BUILTIN_DETECTORS:
        return variants[name]
    base = name.split(VARIANT_SEPARATOR, 1)[0]
    if VARIANT_SEPARATOR in name and base in BUILTIN_DETECTORS:
        return base
    return None


def resolve_detector(name: str, variants: Mapping[str, str] | None = None) -> Detector | None:
    """A strategy's detector: built-in, configured variant, `Base:label` name, or plugin."""
    base = base_detector_name(name, variants)
    if base is not None:
        return BUILTIN_DETECTORS[base]
    return plugin_detectors().get(name)


def _sound(cand: SetupCandidate, params: StrategyParams) -> bool:
    """Stop and target on the right sides and min_rr met (plugins are held to it too)."""
    sign = 1 if cand.side == "long" else -1
    risk = sign * (cand.entry_price - cand.stop_price)
    reward = sign * (cand.target_price - cand.entry_price)
    return risk > 0 and reward > 0 and reward / risk >= params.min_rr - 1e-9


def detect_setups(
    snapshot: FeatureSnapshot,
    strategy_state: Mapping[str, StrategyParams],
    tick_size: float,
    variants: Mapping[str, str] | None = None,
) -> list[SetupCandidate]:
    """Every enabled strategy's triggered setup, labelled with the strategy's own name."""
    out: list[SetupCandidate] = []
    for name, params in strategy_state.items():
        if not params.enabled:
            continue
        detector = resolve_detector(name, variants)
        if detector is None:
            continue
        try:
            cand = detector(snapshot, params, tick_size)
        except Exception as exc:  # a plugin's bug costs its own setup, not the decision
            log.warning("setup detector for %s failed: %s", name, exc)
            continue
        if cand is None or not _sound(cand, params):
            continue
        out.append(cand if cand.strategy == name else cand.model_copy(update={"strategy": name}))
    return out
