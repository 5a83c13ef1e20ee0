"""The playbook's setups on snapshots built by running the feature engine over crafted tapes."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from fabio.domain import TradeBatch
from fabio.features.engine import FeatureEngine
from fabio.features.snapshot import FeatureSnapshot
from fabio.instruments import parse_symbol
from fabio.playbook import setups
from fabio.playbook.base import SetupCandidate
from fabio.playbook.setups import (
    absorption_fade,
    detect_setups,
    mean_reversion_poc,
    reload_plugins,
    trend_lvn_pullback,
)
from fabio.strategies import (
    ABSORPTION_FADE,
    MEAN_REVERSION,
    TREND_PULLBACK,
    StrategyParams,
    initialize_default_strategies,
)
from fabio.timeutil import CHICAGO, datetime_to_ns

ES = parse_symbol("ESH4", 2024)
TICK = 0.25
SEC = 1_000_000_000
BASE = 4 * 5000  # 5000.00 in ticks
OPEN = datetime_to_ns(datetime(2024, 3, 5, 8, 30, tzinfo=CHICAGO))
DEFAULTS = initialize_default_strategies()


class Tape:
    """A hand-made tape: trades one per `gap`, prices in ticks; `mirror` flips it upside down."""

    def __init__(self, mirror: bool = False) -> None:
        self.t = OPEN
        self.mirror = mirror
        self.rows: list[tuple[int, int, int, int]] = []

    def add(self, price: int, size: int = 1, side: int = 1, gap: int = SEC) -> None:
        self.t += gap
        if self.mirror:
            price, side = 2 * BASE - price, -side
        self.rows.append((self.t, price, size, side))

    def rotate(self, minutes: int, lo: int, hi: int, size: int = 2, bias: int = 0) -> None:
        """Zig-zag between lo and hi, buyers up and sellers down (a `bias` side every 3rd)."""
        width = hi - lo
        for k in range(minutes * 60):
            step = k % (2 * width)
            price = lo + (step if step <= width else 2 * width - step)
            side = 1 if (k // width) % 2 == 0 else -1
            self.add(price, size, bias if bias and k % 3 == 0 else side)

    def walk(self, a: int, b: int, seconds: int, size: int = 1, side: int = 1) -> None:
        for k in range(seconds):
            self.add(round(a + (b - a) * (k + 1) / seconds), size, side)

    def snapshot(self) -> FeatureSnapshot:
        ts, price, size, side = zip(*self.rows, strict=True)
        engine = FeatureEngine(ES)
        engine.update(TradeBatch.from_arrays(ts, price, size, side))
        return engine.snapshot()


def ticks(price: float | None) -> int:
    assert price is not None
    return round(price / TICK)


def failed_probe(mirror: bool = False, fail: bool = True) -> FeatureSnapshot:
    """Balance around 5000, a probe 3 ticks above VAH, then sellers push back inside value."""
    tape = Tape(mirror)
    tape.rotate(40, BASE - 16, BASE + 16)
    tape.rotate(20, BASE - 4, BASE + 4)
    vah = 14  # the VAH of this profile, in ticks above BASE (checked below)
    tape.walk(BASE, BASE + vah + 3, 90, 1, 1)
    if fail:
        tape.walk(BASE + vah + 3, BASE + vah - 1, 60, 3, -1)
    else:  # price holds above value on buying: accepted, not failed
        tape.walk(BASE + vah + 3, BASE + vah + 2, 60, 3, 1)
    return tape.snapshot()


def trend_pullback(resume_side: int) -> FeatureSnapshot:
    """Balance, an impulse up through a thin area, new highs, a pullback into the LVN."""
    tape = Tape()
    tape.rotate(40, BASE - 4, BASE + 4, size=3)
    tape.walk(BASE + 4, BASE + 14, 60)
    tape.walk(BASE + 14, BASE + 26, 6)  # the fast part of the impulse leaves the LVN
    tape.walk(BASE + 26, BASE + 40, 60)
    tape.rotate(20, BASE + 36, BASE + 44, size=2, bias=1)
    tape.walk(BASE + 44, BASE + 50, 60, 3, 1)
    tape.walk(BASE + 50, BASE + 20, 10, 1, -1)
    for _ in range(10):  # at the LVN: buyers come back (or sellers keep hitting)
        tape.add(BASE + 20, 2 if resume_side > 0 else 150, resume_side)
    return tape.snapshot()


def absorption_at(low_far_below: bool) -> FeatureSnapshot:
    """Heavy selling into a bid that holds at 5000 for two minutes."""
    tape = Tape()
    if low_far_below:  # the session low is far below and value is around the absorbed price
        tape.walk(BASE, BASE - 30, 60, 1, -1)
        tape.walk(BASE - 30, BASE - 10, 30)
        tape.rotate(30, BASE - 10, BASE + 10, size=10)
        tape.walk(BASE + 10, BASE, 20, 1, -1)
    else:
        tape.rotate(30, BASE + 10, BASE + 20)
        tape.walk(BASE + 10, BASE, 30, 1, -1)
    for k in range(240):
        if k % 6 == 0:
            tape.add(BASE + 2, 5, 1, SEC // 2)
        else:
            tape.add(BASE, 5, -1, SEC // 2)
    tape.add(BASE + 1, 1, 1, SEC // 2)
    return tape.snapshot()


# ---------------------------------------------------------------- mean reversion


def test_mean_reversion_short_after_a_failed_probe_above_value() -> None:
    snap = failed_probe()
    prof, ms = snap.profile, snap.market_stats
    assert prof is not None and ms is not None
    assert ticks(prof.vah) - BASE == 14
    cand = mean_reversion_poc(snap, DEFAULTS[MEAN_REVERSION], TICK)
    assert cand is not None and cand.side == "short" and cand.strategy == MEAN_REVERSION
    entry, probe, poc = ticks(snap.price), ticks(ms.high_last_15min), ticks(prof.poc)
    assert ticks(prof.val) <= entry <= ticks(prof.vah) < probe
    assert ticks(cand.entry_price) == entry
    assert ticks(cand.stop_price) == probe + 2  # beyond the failed extreme
    assert ticks(cand.target_price) == poc  # the POC, nearer than target_ticks
    assert cand.rr == pytest.approx((entry - poc) / (probe + 2 - entry), abs=0.01)
    assert cand.rr >= DEFAULTS[MEAN_REVERSION].min_rr


def test_mean_reversion_long_mirrors_the_short() -> None:
    cand = mean_reversion_poc(failed_probe(mirror=True), DEFAULTS[MEAN_REVERSION], TICK)
    assert cand is not None and cand.side == "long"
    assert cand.stop_price < cand.entry_price < cand.target_price


def test_mean_reversion_not_when_price_holds_outside_value() -> None:
    assert mean_reversion_poc(failed_probe(fail=False), DEFAULTS[MEAN_REVERSION], TICK) is None


def test_target_is_capped_by_target_ticks_and_min_rr_filters() -> None:
    snap = failed_probe()
    short_target = DEFAULTS[MEAN_REVERSION].model_copy(update={"target_ticks": 10, "min_rr": 1.0})
    cand = mean_reversion_poc(snap, short_target, TICK)
    assert cand is not None
    assert ticks(cand.entry_price) - ticks(cand.target_price) == 10
    strict = DEFAULTS[MEAN_REVERSION].model_copy(update={"min_rr": 5.0})
    assert mean_reversion_poc(snap, strict, TICK) is None
    tight = DEFAULTS[MEAN_REVERSION].model_copy(update={"stop_ticks": 4})
    assert mean_reversion_poc(snap, tight, TICK) is None  # the extreme is beyond its risk


# ---------------------------------------------------------------- trend pullback


def test_trend_pullback_long_into_the_lvn_with_buyers_back() -> None:
    snap = trend_pullback(resume_side=1)
    prof, ms = snap.profile, snap.market_stats
    assert prof is not None and ms is not None
    params = DEFAULTS[TREND_PULLBACK]
    cand = trend_lvn_pullback(snap, params, TICK)
    assert cand is not None and cand.side == "long" and cand.strategy == TREND_PULLBACK
    entry = ticks(snap.price)
    lvn = min((ticks(x) for x in prof.lvn), key=lambda x: abs(x - entry))
    assert abs(entry - lvn) <= 3 and lvn > ticks(prof.poc)
    assert ticks(cand.stop_price) == min(lvn, entry) - 2  # beyond the LVN
    assert ticks(cand.target_price) == entry + params.target_ticks
    assert cand.rr == pytest.approx(params.target_ticks / (entry - ticks(cand.stop_price)))
    assert "LVN" in cand.reason


def test_trend_pullback_not_while_sellers_keep_hitting() -> None:
    snap = trend_pullback(resume_side=-1)
    assert snap.market_stats is not None
    assert (snap.market_stats.cvd_slope_5min or 0) < 0.02
    assert trend_lvn_pullback(snap, DEFAULTS[TREND_PULLBACK], TICK) is None


def test_trend_pullback_needs_a_trend() -> None:
    # A balanced, two-sided session: no 15-minute CVD slope to follow.
    assert trend_lvn_pullback(failed_probe(), DEFAULTS[TREND_PULLBACK], TICK) is None


# ---------------------------------------------------------------- absorption


def test_absorption_fade_long_at_the_session_low() -> None:
    snap = absorption_at(low_far_below=False)
    flow = snap.orderflow
    assert flow is not None and flow.absorption is not None and flow.absorption["side"] == "bid"
    params = DEFAULTS[ABSORPTION_FADE]
    cand = absorption_fade(snap, params, TICK)
    assert cand is not None and cand.side == "long" and cand.strategy == ABSORPTION_FADE
    entry = ticks(snap.price)
    assert ticks(cand.stop_price) == BASE - 2  # beyond the absorbed price
    assert ticks(cand.target_price) == entry + params.target_ticks
    assert cand.rr == pytest.approx(params.target_ticks / (entry - (BASE - 2)), abs=0.01)


def test_absorption_fade_not_inside_value_away_from_the_extremes() -> None:
    snap = absorption_at(low_far_below=True)
    flow = snap.orderflow
    assert flow is not None and flow.absorption is not None  # absorption is there...
    prof = snap.profile
    assert prof is not None and ticks(prof.val) < BASE and ticks(prof.low) == BASE - 30
    assert absorption_fade(snap, DEFAULTS[ABSORPTION_FADE], TICK) is None  # ...but mid-value


# ---------------------------------------------------------------- registry


def test_detect_setups_runs_enabled_strategies_only() -> None:
    snap = failed_probe()
    found = detect_setups(snap, DEFAULTS, TICK)
    assert [c.strategy for c in found] == [MEAN_REVERSION]
    disabled = DEFAULTS[MEAN_REVERSION].model_copy(update={"enabled": False})
    off = {**DEFAULTS, MEAN_REVERSION: disabled}
    assert detect_setups(snap, off, TICK) == []


def test_config_variants_run_a_builtin_with_their_own_parameters() -> None:
    snap = failed_probe()
    wide = StrategyParams(enabled=True, stop_ticks=30, target_ticks=6, min_rr=0.5)
    state = {f"{MEAN_REVERSION}:wide": wide, "MyFade": wide}
    found = detect_setups(snap, state, TICK, variants={"MyFade": MEAN_REVERSION})
    assert [c.strategy for c in found] == [f"{MEAN_REVERSION}:wide", "MyFade"]
    for cand in found:
        assert ticks(cand.entry_price) - ticks(cand.target_price) == 6  # its own target_ticks
    assert detect_setups(snap, {"Unknown": wide}, TICK) == []


def plugin_detector(
    snapshot: FeatureSnapshot, params: StrategyParams, tick_size: float
) -> SetupCandidate | None:
    """A plugin: always long, stop_ticks below, target_ticks above."""
    assert snapshot.price is not None
    return SetupCandidate(
        strategy="ignored",
        side="long",
        entry_price=snapshot.price,
        stop_price=snapshot.price - params.stop_ticks * tick_size,
        target_price=snapshot.price + params.target_ticks * tick_size,
        rr=params.target_ticks / params.stop_ticks,
        reason="plugin",
    )


def broken_detector(snapshot: FeatureSnapshot, params: StrategyParams, tick_size: float) -> None:
    raise RuntimeError("plugin bug")


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    eps = importlib.metadata.EntryPoints(
        [
            importlib.metadata.EntryPoint(
                name=name, value=f"tests.playbook.test_setups:{fn}", group=setups.ENTRY_POINT_GROUP
            )
            for name, fn in (("MyPlugin", "plugin_detector"), ("Broken", "broken_detector"))
        ]
    )

    def fake_entry_points(**params: Any) -> importlib.metadata.EntryPoints:
        return eps.select(**params)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    reload_plugins()
    yield
    reload_plugins()


@pytest.mark.usefixtures("plugins")
def test_entry_point_plugins_are_detectors() -> None:
    snap = failed_probe()
    params = StrategyParams(enabled=True, stop_ticks=8, target_ticks=16, min_rr=1.5)
    found = detect_setups(snap, {"MyPlugin": params, "Broken": params}, TICK)
    assert len(found) == 1  # the broken plugin costs only its own setup
    assert found[0].strategy == "MyPlugin" and found[0].rr == 2.0
    # Plugins are held to min_rr too.
    strict = params.model_copy(update={"min_rr": 3.0})
    assert detect_setups(snap, {"MyPlugin": strict}, TICK) == []
    off = params.model_copy(update={"enabled": False})
    assert detect_setups(snap, {"MyPlugin": off}, TICK) == []
