"""The risk engine: every TopStep rule, hostile inputs, the trailing floor, persistence."""

from __future__ import annotations

import json
import math
from datetime import date, time
from pathlib import Path

import pytest
from pydantic import ValidationError

from fabio.execution.risk import (
    PRESETS,
    HaltKind,
    RiskConfig,
    RiskEngine,
    TradingState,
    pnls_by_day,
    replay,
)
from fabio.execution.types import ClosedTrade
from fabio.instruments import SPECS
from fabio.sessions import SessionKind
from fabio.timeutil import parse_at

ES, MES, NQ, MNQ = SPECS["ES"], SPECS["MES"], SPECS["NQ"], SPECS["MNQ"]
MON, TUE, WED, THU, FRI = (date(2024, 3, d) for d in (4, 5, 6, 7, 8))
NEXT_MON = date(2024, 3, 11)  # after the switch to daylight saving time
BLACK_FRIDAY = date(2024, 11, 29)  # early close (12:00 CT in the calendar)


def at(day: date, hhmm: str) -> int:
    return parse_at(f"{day.isoformat()} {hhmm}")


@pytest.fixture
def engine() -> RiskEngine:
    return RiskEngine(RiskConfig())


# ----------------------------------------------------------------------------- presets/config


def test_presets_match_facts() -> None:
    assert {
        k: (p.max_loss_usd, p.daily_loss_usd, p.max_minis, p.profit_target_usd)
        for k, p in PRESETS.items()
    } == {
        "50K": (2000, 1000, 5, 3000),
        "100K": (3000, 2000, 10, 6000),
        "150K": (4500, 3000, 15, 9000),
    }


def test_config_defaults_follow_the_preset() -> None:
    c = RiskConfig()
    assert (c.account_balance, c.daily_loss_limit_usd) == (50_000, 1_000)
    assert c.flat_time == time(15, 8)
    assert (c.max_trades_per_day, c.no_new_entries_minutes, c.loss_buffer_usd) == (10, 10, 100)
    assert "kill_switch_path" not in RiskConfig.model_fields  # no file I/O in the risk engine
    c = RiskConfig(preset="150K")
    assert (c.account_balance, c.daily_loss_limit_usd) == (150_000, 3_000)
    c = RiskConfig(preset="100K", daily_loss_limit_usd=500)
    assert c.daily_loss_limit_usd == 500


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"preset": "75K"}, "preset"),
        ({"daily_loss_limit_usd": 1500}, "may only be stricter"),
        ({"flat_time": time(15, 9)}, "15:08"),
        ({"loss_buffer_usd": 1000}, "loss_buffer_usd"),
        ({"account_balance": 1500}, "account_balance"),
        ({"max_trades_per_day": 0}, "max_trades_per_day"),
    ],
)
def test_config_rejects_unsafe_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RiskConfig.model_validate(kwargs)


# ----------------------------------------------------------------------------- sizing


def test_size_from_risk_fraction(engine: RiskEngine) -> None:
    # 0.5 % of 50,000 = 250; 8 ticks × $12.50 = 100 per contract → 2
    r = engine.size(ES, 0.005, 8)
    assert (r.qty, r.risk_usd) == (2, 200.0)
    assert "budget $250.00 allows 2" in r.reason


def test_risk_fraction_one_is_capped_by_the_contract_limit(engine: RiskEngine) -> None:
    r = engine.size(ES, 1.0, 8)
    assert r.qty == 5
    assert "allows 500, capped at 5 by the 5-mini position limit" in r.reason
    r = engine.size(MNQ, 1.0, 8)  # micros count 10:1
    assert r.qty == 50
    assert engine.size(ES, 1.0, 8, open_minis=3.5).qty == 1
    r = engine.size(ES, 1.0, 8, open_minis=4.5)
    assert r.qty == 0
    assert r.reason.startswith("contract limit: 4.5 minis open + 1 ES")
    assert engine.size(MES, 1.0, 8, open_minis=4.5).qty == 5


def test_size_refuses_when_one_contract_is_too_much(engine: RiskEngine) -> None:
    r = engine.size(ES, 0.001, 8)
    assert r.qty == 0
    assert r.reason == (
        "one ES contract risks $100.00 (8 ticks × $12.50), more than the budget $50.00 "
        "(risk_fraction 0.001 of balance $50,000.00)"
    )


@pytest.mark.parametrize(
    ("rf", "stop", "open_minis", "message"),
    [
        (math.nan, 8, 0.0, "risk_fraction nan must be in (0, 1]"),
        (-0.01, 8, 0.0, "risk_fraction -0.01 must be in (0, 1]"),
        (0.0, 8, 0.0, "risk_fraction 0.0 must be in (0, 1]"),
        (1.5, 8, 0.0, "risk_fraction 1.5 must be in (0, 1]"),
        (math.inf, 8, 0.0, "risk_fraction inf must be in (0, 1]"),
        (0.01, math.nan, 0.0, "stop distance nan ticks must be > 0"),
        (0.01, -4, 0.0, "stop distance -4 ticks must be > 0"),
        (0.01, 0, 0.0, "stop distance 0 ticks must be > 0"),
        (0.01, 8, math.nan, "open position nan minis must be >= 0"),
        (0.01, 8, -1.0, "open position -1.0 minis must be >= 0"),
    ],
)
def test_size_rejects_hostile_inputs(
    engine: RiskEngine, rf: float, stop: float, open_minis: float, message: str
) -> None:
    r = engine.size(ES, rf, stop, open_minis)
    assert (r.qty, r.risk_usd, r.reason) == (0, 0.0, message)


# ----------------------------------------------------------------------------- entry checks


def test_entry_allowed_inside_the_limits(engine: RiskEngine) -> None:
    v = engine.check_entry(ES, 2, 8, at(TUE, "10:00"))
    assert v.ok and v.qty == 2
    assert v.reason.startswith("ok: 2 ES, worst case $210.00 (fees $10.00)")


def test_five_hundred_contracts_refused(engine: RiskEngine) -> None:
    v = engine.check_entry(ES, 500, 8, at(TUE, "10:00"))
    assert (v.ok, v.qty) == (False, 0)
    assert v.reason == (
        "contract limit: 0 minis open + 500 ES × 1 = 500 minis > 5 max "
        "(50K account; micros count 10:1)"
    )


def test_micros_count_ten_to_one(engine: RiskEngine) -> None:
    now = at(TUE, "10:00")
    assert engine.check_entry(MES, 50, 1, now, fees_usd=0).ok
    v = engine.check_entry(MES, 51, 1, now, fees_usd=0)
    assert v.reason.startswith("contract limit: 0 minis open + 51 MES × 0.1 = 5.1 minis > 5 max")
    assert engine.check_entry(MES, 10, 1, now, open_minis=4.0, fees_usd=0).ok
    v = engine.check_entry(MES, 11, 1, now, open_minis=4.0, fees_usd=0)
    assert "4 minis open + 11 MES × 0.1 = 5.1 minis > 5 max" in v.reason
    v = engine.check_entry(NQ, 1, 1, now, open_minis=4.1, fees_usd=0)
    assert "4.1 minis open + 1 NQ × 1 = 5.1 minis > 5 max" in v.reason


def test_stop_wider_than_the_maximum_loss_refused(engine: RiskEngine) -> None:
    v = engine.check_entry(ES, 1, 200, at(TUE, "10:00"))  # one contract risks $2,500
    assert not v.ok
    assert v.reason == (
        "maximum loss: worst case $2,505.00 (1 × 200 ticks × $12.50 + fees $5.00) would take "
        "balance + open losses $50,000.00 to $47,495.00, below the floor $48,000.00 + buffer "
        "$100.00 = $48,100.00"
    )
    assert engine.size(ES, 0.04, 200).qty == 0  # $2,000 budget: sizing refuses too


def test_risk_fraction_one_refused_when_worst_case_breaches_the_daily_limit(
    engine: RiskEngine,
) -> None:
    sized = engine.size(ES, 1.0, 20)  # capped at 5; 5 × 20 × 12.50 = 1,250 > 900
    assert sized.qty == 5
    v = engine.check_entry(ES, sized.qty, 20, at(TUE, "10:00"))
    assert not v.ok
    assert v.reason == (
        "daily loss: day loss $0.00 + worst case $1,275.00 (5 × 20 ticks × $12.50 + fees $25.00) "
        "= $1,275.00 exceeds the daily limit $1,000.00 − buffer $100.00 = $900.00"
    )


def test_daily_room_counts_realised_and_open_losses(engine: RiskEngine) -> None:
    engine.on_trade_closed(-600.0, at(TUE, "09:00"))
    now = at(TUE, "10:00")
    assert engine.check_entry(ES, 2, 10, now, fees_usd=50).ok  # 600 + 300 = 900: at the line
    v = engine.check_entry(ES, 2, 10, now, fees_usd=50.01)
    assert "day loss $600.00 + worst case $300.01" in v.reason
    v = engine.check_entry(ES, 1, 10, now, unrealized_usd=-200, fees_usd=0)
    assert "day loss $800.00 + worst case $125.00" in v.reason
    # open gains do not make room; open risk to the stops uses it up
    assert not engine.check_entry(ES, 3, 10, now, unrealized_usd=500, fees_usd=0).ok
    v = engine.check_entry(ES, 1, 10, now, open_risk_usd=250, fees_usd=0)
    assert "day loss $850.00 + worst case $125.00" in v.reason


def test_max_loss_room_uses_the_floor_plus_buffer() -> None:
    e = RiskEngine(RiskConfig(daily_loss_limit_usd=1000))
    for day, pnl in ((MON, -900.0), (TUE, -900.0)):
        e.on_trade_closed(pnl, at(day, "10:00"))
    # balance 48,200, floor 48,000, buffer 100: $100 of room
    now = at(WED, "10:00")
    assert e.check_entry(ES, 1, 8, now, fees_usd=0).ok  # 100 exactly
    v = e.check_entry(ES, 1, 8, now, fees_usd=1)
    assert v.reason == (
        "maximum loss: worst case $101.00 (1 × 8 ticks × $12.50 + fees $1.00) would take balance "
        "+ open losses $48,200.00 to $48,099.00, below the floor $48,000.00 + buffer $100.00 = "
        "$48,100.00"
    )


@pytest.mark.parametrize(
    ("hhmm", "message"),
    [
        ("15:09", "after the flat time 15:08 CT (now 2024-03-05 15:09:00 CT)"),
        ("15:08", "after the flat time 15:08 CT (now 2024-03-05 15:08:00 CT)"),
        (
            "14:58",
            "within 10 min of the flat time 15:08 CT: no new entries from 14:58 CT "
            "(now 2024-03-05 14:58:00 CT)",
        ),
        ("08:29", "outside RTH: before the open 08:30 CT (now 2024-03-05 08:29:00 CT)"),
        ("16:30", "market closed at 2024-03-05 16:30:00 CT (daily break, weekend or holiday)"),
    ],
)
def test_entry_times_refused(engine: RiskEngine, hhmm: str, message: str) -> None:
    v = engine.check_entry(ES, 1, 8, at(TUE, hhmm))
    assert (v.ok, v.reason) == (False, message)


def test_entry_window_edges(engine: RiskEngine) -> None:
    assert engine.check_entry(ES, 1, 8, at(TUE, "08:30")).ok
    assert engine.check_entry(ES, 1, 8, at(TUE, "14:57")).ok
    v = engine.check_entry(ES, 1, 8, parse_at("2024-03-09 10:00"))  # Saturday
    assert v.reason.startswith("market closed at 2024-03-09 10:00:00 CT")
    v = engine.check_entry(ES, 1, 8, at(TUE, "20:00"))  # Globex evening: trade date Wednesday
    assert v.reason == "outside RTH: before the open 08:30 CT (now 2024-03-05 20:00:00 CT)"


def test_early_close_moves_the_flat_time() -> None:
    e = RiskEngine(RiskConfig())
    assert e.check_entry(ES, 1, 8, at(BLACK_FRIDAY, "11:47")).ok
    v = e.check_entry(ES, 1, 8, at(BLACK_FRIDAY, "11:48"))
    assert v.reason == (
        "within 10 min of the flat time 11:58 CT: no new entries from 11:48 CT "
        "(now 2024-11-29 11:48:00 CT)"
    )
    assert e.must_flatten(at(BLACK_FRIDAY, "11:57")) is None
    assert e.must_flatten(at(BLACK_FRIDAY, "11:58")) == (
        "flat time 11:58 CT reached (now 2024-11-29 11:58:00 CT)"
    )
    v = e.check_entry(ES, 1, 8, at(BLACK_FRIDAY, "11:59"))
    assert v.reason == "after the flat time 11:58 CT (now 2024-11-29 11:59:00 CT)"


def test_max_trades_per_day(engine: RiskEngine) -> None:
    for i in range(9):
        engine.on_trade_closed(1.0, at(TUE, "09:00") + i)
    now = at(TUE, "10:00")
    assert engine.check_entry(ES, 1, 8, now).ok
    v = engine.check_entry(ES, 1, 8, now, open_trades=1)
    assert v.reason == "max trades per day: 9 closed + 1 open today, limit 10"
    engine.on_trade_closed(1.0, now)
    v = engine.check_entry(ES, 1, 8, now)
    assert v.reason == "max trades per day: 10 closed + 0 open today, limit 10"
    assert engine.check_entry(ES, 1, 8, at(WED, "10:00")).ok  # a new day resets the count


@pytest.mark.parametrize(
    ("qty", "stop", "kwargs", "message"),
    [
        (math.nan, 8, {}, "qty nan must be a whole number >= 1"),
        (-1, 8, {}, "qty -1 must be a whole number >= 1"),
        (0, 8, {}, "qty 0 must be a whole number >= 1"),
        (1.5, 8, {}, "qty 1.5 must be a whole number >= 1"),
        (True, 8, {}, "qty True must be a whole number >= 1"),
        (1, math.nan, {}, "stop distance nan ticks must be finite and > 0"),
        (1, -8, {}, "stop distance -8 ticks must be finite and > 0"),
        (1, math.inf, {}, "stop distance inf ticks must be finite and > 0"),
        (1, 8, {"open_minis": math.nan}, "open_minis nan must be finite and >= 0"),
        (1, 8, {"open_minis": -1.0}, "open_minis -1.0 must be finite and >= 0"),
        (1, 8, {"open_risk_usd": -5.0}, "open_risk_usd -5.0 must be finite and >= 0"),
        (1, 8, {"unrealized_usd": math.nan}, "unrealized_usd nan must be finite"),
        (1, 8, {"fees_usd": -1.0}, "fees -1.0 must be finite and >= 0"),
        (1, 8, {"fees_usd": math.nan}, "fees nan must be finite and >= 0"),
    ],
)
def test_entry_rejects_hostile_inputs(
    engine: RiskEngine, qty: object, stop: float, kwargs: dict[str, float], message: str
) -> None:
    v = engine.check_entry(ES, qty, stop, at(TUE, "10:00"), **kwargs)  # type: ignore[arg-type]
    assert (v.ok, v.qty, v.reason) == (False, 0, f"invalid input: {message}")


# ----------------------------------------------------------------------------- closed trades


def test_closed_trades_update_balance_and_day(engine: RiskEngine) -> None:
    engine.on_trade_closed(250.0, at(TUE, "10:00"))
    engine.on_trade_closed(-100.0, at(TUE, "11:00"))
    a = engine.account
    assert (a.balance, a.day_realised, a.trades_today, a.trade_date) == (
        50_150.0,
        150.0,
        2,
        "2024-03-05",
    )
    assert engine.state is TradingState.ACTIVE


def test_daily_halt_and_next_day_reset(engine: RiskEngine) -> None:
    engine.on_trade_closed(-400.0, at(TUE, "10:00"))
    engine.on_trade_closed(-600.0, at(TUE, "11:00"))
    assert engine.state is TradingState.HALTED
    assert engine.halt_kind is HaltKind.DAILY
    reason = engine.state_reason
    assert reason == (
        "daily loss limit: day loss $1,000.00 reached $1,000.00 on 2024-03-05; halted for the day"
    )
    v = engine.check_entry(ES, 1, 8, at(TUE, "11:30"))
    assert v.reason == f"state HALTED (nothing new): {reason}"
    assert engine.must_flatten(at(TUE, "11:30")) == f"state HALTED: {reason}"
    assert engine.resume() is False  # only the next day lifts it
    engine.start_day(WED, at(TUE, "17:00"))
    assert engine.state is TradingState.ACTIVE
    assert engine.state_reason is None
    assert (engine.account.day_realised, engine.account.trades_today) == (0.0, 0)
    assert engine.account.day_start_balance == 49_000.0
    assert engine.check_entry(ES, 1, 8, at(WED, "10:00")).ok


def test_daily_halt_lifts_when_the_clock_reaches_the_next_trade_date(engine: RiskEngine) -> None:
    engine.on_trade_closed(-1000.0, at(TUE, "10:00"))
    assert engine.must_flatten(at(TUE, "16:59")) is not None
    assert engine.must_flatten(at(WED, "09:00")) is None  # rolled: Wednesday is a new day
    assert engine.state is TradingState.ACTIVE
    assert engine.account.history == [49_000.0]


def test_breach_stays_halted() -> None:
    e = RiskEngine(RiskConfig())
    e.on_trade_closed(-900.0, at(MON, "10:00"))
    e.on_trade_closed(-900.0, at(TUE, "10:00"))
    e.on_trade_closed(-250.0, at(WED, "10:00"))  # 47,950 ≤ 48,000
    assert e.halt_kind is HaltKind.BREACH
    reason = e.state_reason
    assert reason == (
        "account breached: balance $47,950.00 at or below the maximum-loss floor $48,000.00 at "
        "2024-03-06 10:00:00 CT"
    )
    e.start_day(THU, at(WED, "17:00"))
    e.start_day(NEXT_MON, at(FRI, "17:00"))
    assert e.state is TradingState.HALTED and e.state_reason == reason
    assert e.resume() is False
    e.kill("operator")  # a lesser halt never replaces the breach
    assert e.state_reason == reason
    assert not e.check_entry(ES, 1, 8, at(NEXT_MON, "10:00")).ok


def test_non_finite_pnl_halts(engine: RiskEngine) -> None:
    engine.on_trade_closed(math.nan, at(TUE, "10:00"))
    assert engine.halt_kind is HaltKind.KILL
    assert engine.account.balance == 50_000.0
    assert engine.state_reason == "non-finite trade P&L nan at 2024-03-05 10:00:00 CT"


def test_profit_target(engine: RiskEngine) -> None:
    engine.on_trade_closed(2_999.0, at(TUE, "10:00"))
    assert not engine.profit_target_reached
    engine.on_trade_closed(1.0, at(TUE, "11:00"))
    assert engine.profit_target_reached


# ----------------------------------------------------------------------------- trailing floor


def test_trailing_floor_rises_with_eod_highs_and_stops_at_the_start() -> None:
    e = RiskEngine(RiskConfig())
    assert e.floor == 48_000
    floors: list[float] = []
    for day, pnl in ((MON, 800.0), (TUE, -500.0), (WED, 900.0), (THU, 900.0), (FRI, 900.0)):
        e.start_day(day, at(day, "08:00"))
        e.on_trade_closed(pnl, at(day, "10:00"))
        assert e.floor == (floors[-1] if floors else 48_000)  # intraday: no trailing
        e.end_day(day)
        floors.append(e.floor)
    # EOD balances 50,800 / 50,300 / 51,200 / 52,100 / 53,000
    assert e.account.history == [50_800, 50_300, 51_200, 52_100, 53_000]
    assert floors == [48_800, 48_800, 49_200, 50_000, 50_000]
    assert e.account.eod_high == 53_000


def test_trailed_floor_is_enforced() -> None:
    e = RiskEngine(RiskConfig(preset="100K"))  # max loss 3,000, daily 2,000
    e.on_trade_closed(1_500.0, at(MON, "10:00"))
    e.on_trade_closed(-1_500.0, at(TUE, "10:00"))
    e.on_trade_closed(-1_450.0, at(WED, "10:00"))  # balance 98,550; floor 98,500 (not 97,000)
    assert e.floor == 98_500.0
    v = e.check_entry(ES, 1, 8, at(WED, "11:00"), fees_usd=0)
    assert v.reason == (
        "maximum loss: worst case $100.00 (1 × 8 ticks × $12.50 + fees $0.00) would take balance "
        "+ open losses $98,550.00 to $98,450.00, below the floor $98,500.00 + buffer $100.00 = "
        "$98,600.00"
    )
    e.on_trade_closed(-50.0, at(WED, "11:00"))
    assert e.halt_kind is HaltKind.BREACH


# ----------------------------------------------------------------------------- mark


def test_mark_forces_reducing_on_open_losses(engine: RiskEngine) -> None:
    now = at(TUE, "10:00")
    assert engine.mark(-899.0, now) is None
    reason = engine.mark(-900.0, now)
    assert reason == (
        "near the daily loss limit: realised + open loss $900.00 within the buffer $100.00 of "
        "$1,000.00 at 2024-03-05 10:00:00 CT: flatten, exits only"
    )
    assert engine.state is TradingState.REDUCING
    assert engine.check_entry(ES, 1, 8, now).reason == f"state REDUCING (exits only): {reason}"
    assert engine.must_flatten(now) is None  # REDUCING: the mark's reason asks to flatten
    assert engine.mark(0.0, now) is None
    assert engine.state is TradingState.REDUCING  # for the rest of the day
    engine.on_trade_closed(-900.0, at(TUE, "10:01"))
    assert engine.check_entry(ES, 1, 8, at(WED, "10:00")).ok


def test_mark_near_the_floor_and_breaches() -> None:
    e = RiskEngine(RiskConfig())
    e.on_trade_closed(-900.0, at(MON, "10:00"))
    e.on_trade_closed(-900.0, at(TUE, "10:00"))  # balance 48,200, floor 48,000
    now = at(WED, "10:00")
    assert e.mark(-99.0, now) is None
    reason = e.mark(-100.0, now)
    assert reason is not None and reason.startswith(
        "near the maximum loss: balance + open P&L $48,100.00 within the buffer $100.00 of the "
        "floor $48,000.00"
    )
    assert e.state is TradingState.REDUCING
    reason = e.mark(-200.0, now)
    assert reason == (
        "account breached intraday: balance + open P&L $48,000.00 at or below the maximum-loss "
        "floor $48,000.00 at 2024-03-06 10:00:00 CT"
    )
    assert e.halt_kind is HaltKind.BREACH
    e.start_day(THU, at(WED, "17:00"))
    assert e.state is TradingState.HALTED


def test_mark_daily_limit_reached_halts_for_the_day(engine: RiskEngine) -> None:
    reason = engine.mark(-1_000.0, at(TUE, "10:00"))
    assert reason == (
        "daily loss limit: realised + open loss $1,000.00 reached $1,000.00 at "
        "2024-03-05 10:00:00 CT; halted for the day"
    )
    assert engine.halt_kind is HaltKind.DAILY
    assert engine.must_flatten(at(TUE, "10:00")) == f"state HALTED: {reason}"
    assert engine.check_entry(ES, 1, 8, at(WED, "10:00")).ok


def test_mark_with_unknown_open_pnl(engine: RiskEngine) -> None:
    reason = engine.mark(math.nan, at(TUE, "10:00"))
    assert reason == "open P&L unknown (nan) at 2024-03-05 10:00:00 CT: flatten"
    assert engine.state is TradingState.REDUCING


# ----------------------------------------------------------------------------- flatten, kill


def test_must_flatten_times(engine: RiskEngine) -> None:
    assert engine.must_flatten(at(TUE, "15:07")) is None
    assert engine.must_flatten(at(TUE, "15:08")) == (
        "flat time 15:08 CT reached (now 2024-03-05 15:08:00 CT)"
    )
    assert engine.must_flatten(at(TUE, "15:59")) is not None
    assert engine.must_flatten(at(TUE, "16:30")) is not None  # daily break
    assert engine.must_flatten(at(TUE, "20:00")) == (
        "before the RTH open 08:30 CT: no positions overnight"
    )
    assert engine.must_flatten(at(WED, "08:30")) is None


def test_kill_halts_until_resume(engine: RiskEngine) -> None:
    engine.kill("operator said stop")
    assert engine.state is TradingState.HALTED
    assert engine.must_flatten(at(TUE, "10:00")) == "state HALTED: killed: operator said stop"
    engine.start_day(WED, at(TUE, "17:00"))
    assert engine.state is TradingState.HALTED  # a kill outlives the day
    assert engine.resume() is True
    assert engine.check_entry(ES, 1, 8, at(WED, "10:00")).ok


def test_kill_switch_state_stops_trading_without_any_file() -> None:
    e = RiskEngine(RiskConfig())
    now = at(TUE, "10:00")
    assert not e.kill_switch_active()
    assert e.check_entry(ES, 1, 8, now).ok
    e.engage_kill_switch("manual stop from the CLI", "cli", now)
    assert e.kill_switch_engaged
    expected = "kill switch engaged (cli): manual stop from the CLI"
    assert e.check_entry(ES, 1, 8, now).reason == expected
    assert e.must_flatten(now) == expected
    assert e.kill_switch_status() == {
        "engaged": True,
        "reason": "manual stop from the CLI",
        "source": "cli",
        "ts_ns": now,
    }
    back = RiskEngine.from_dict(json.loads(json.dumps(e.to_dict())))
    assert back.kill_switch_status() == e.kill_switch_status()
    e.release_kill_switch()
    assert e.check_entry(ES, 1, 8, now).ok and e.must_flatten(now) is None


# ----------------------------------------------------------------------------- days, persistence


def test_day_boundaries_follow_globex(engine: RiskEngine) -> None:
    engine.on_trade_closed(100.0, at(TUE, "15:05"))
    engine.on_trade_closed(50.0, at(TUE, "17:30"))  # Globex evening: trade date Wednesday
    assert engine.account.trade_date == "2024-03-06"
    assert engine.account.history == [50_100.0]
    assert engine.account.day_realised == 50.0


def test_start_and_end_day_are_idempotent(engine: RiskEngine) -> None:
    assert engine.start_day("2024-03-05", at(MON, "17:00")) is True
    engine.on_trade_closed(100.0, at(TUE, "10:00"))
    assert engine.start_day(TUE, at(TUE, "10:00")) is False
    assert engine.start_day(MON, at(TUE, "10:00")) is False  # never backwards
    assert engine.end_day(TUE) is True
    assert engine.end_day(TUE) is False
    assert engine.end_day(MON) is False
    assert engine.account.history == [50_100.0]
    assert engine.end_day(THU) is True  # a later day is opened, then ended
    assert engine.account.trade_date == "2024-03-07"
    assert engine.account.history == [50_100.0, 50_100.0]


def _activity(e: RiskEngine) -> None:
    e.on_trade_closed(600.0, at(MON, "10:00"))
    e.on_trade_closed(-300.0, at(TUE, "10:00"))
    e.on_trade_closed(-700.0, at(TUE, "11:00"))  # daily halt
    e.on_trade_closed(900.0, at(WED, "10:00"))


def test_state_round_trip(tmp_path: Path) -> None:
    e = RiskEngine(RiskConfig(preset="100K"))
    _activity(e)
    assert e.mark(-2_800.0, at(WED, "11:00")) is not None  # REDUCING
    data = json.loads(json.dumps(e.to_dict()))
    back = RiskEngine.from_dict(data)
    assert back.to_dict() == e.to_dict()
    assert back.state is TradingState.REDUCING
    assert back.config == e.config
    assert back.floor == e.floor


def test_halted_state_round_trip(engine: RiskEngine) -> None:
    engine.on_trade_closed(-1_000.0, at(TUE, "10:00"))
    back = RiskEngine.from_dict(json.loads(json.dumps(engine.to_dict())))
    assert back.halt_kind is HaltKind.DAILY
    assert not back.check_entry(ES, 1, 8, at(TUE, "11:00")).ok
    assert back.check_entry(ES, 1, 8, at(WED, "11:00")).ok


def _trade(trade_id: str, day: date, exit_ns: int, pnl: float) -> ClosedTrade:
    return ClosedTrade(
        trade_id=trade_id,
        symbol="ESH4",
        strategy="s",
        regime=None,
        side=1,
        qty=1,
        trade_date=day.isoformat(),
        entry_ns=exit_ns - 1,
        exit_ns=exit_ns,
        entry_price=0.0,
        exit_price=0.0,
        gross_pnl_usd=pnl,
        fees_usd=0.0,
        net_pnl_usd=pnl,
        r_multiple=None,
        exit_reason="stop",
    )


def test_rebuild_from_closed_trades() -> None:
    live = RiskEngine(RiskConfig())
    _activity(live)
    live.on_trade_closed(-1_000.0, at(THU, "10:00"))  # halted on the open day
    trades = [
        _trade("d", WED, at(WED, "10:00"), 900.0),  # out of order on purpose
        _trade("a", MON, at(MON, "10:00"), 600.0),
        _trade("c", TUE, at(TUE, "11:00"), -700.0),
        _trade("b", TUE, at(TUE, "10:00"), -300.0),
        _trade("e", THU, at(THU, "10:00"), -1_000.0),
    ]
    by_day = pnls_by_day(trades)
    assert by_day == {MON: [600.0], TUE: [-300.0, -700.0], WED: [900.0], THU: [-1_000.0]}
    rebuilt = replay(RiskConfig(), by_day, open_day=THU)
    for key in ("account", "state", "halt_kind", "day_ended"):
        assert rebuilt.to_dict()[key] == live.to_dict()[key], key
    closed = replay(RiskConfig(), by_day)  # every day ended
    assert closed.account.history == [50_600.0, 49_600.0, 50_500.0, 49_500.0]
    assert closed.floor == 48_600.0


def test_replay_with_an_empty_open_day() -> None:
    e = replay(RiskConfig(), {MON: [500.0]}, open_day=TUE)
    assert e.account.trade_date == "2024-03-05"
    assert (e.account.balance, e.account.eod_high, e.floor) == (50_500.0, 50_500.0, 48_500.0)
    assert e.check_entry(ES, 1, 8, at(TUE, "10:00")).ok


# ----------------------------------------------------------------------------- ETH (--eth)


@pytest.fixture
def eth() -> RiskEngine:
    return RiskEngine(RiskConfig(trading_session=SessionKind.ETH))


@pytest.mark.parametrize("when", [at(TUE, "20:00"), at(WED, "02:00"), at(TUE, "17:00")])
def test_eth_accepts_overnight_entries_rth_refuses_them(
    engine: RiskEngine, eth: RiskEngine, when: int
) -> None:
    """Tuesday 17:00 CT on is trade date Wednesday's Globex session: an ETH account enters
    there, an RTH account (the default) does not."""
    v = eth.check_entry(ES, 1, 8, when)
    assert v.ok, v.reason
    assert eth.account.trade_date == "2024-03-06"
    refused = engine.check_entry(ES, 1, 8, when)
    assert not refused.ok and refused.reason.startswith("outside RTH: before the open 08:30 CT")


def test_eth_window_ends_at_the_flat_time_less_the_no_new_entries_minutes(eth: RiskEngine) -> None:
    assert eth.check_entry(ES, 1, 8, at(WED, "14:57")).ok
    v = eth.check_entry(ES, 1, 8, at(WED, "14:58"))
    assert v.reason == (
        "within 10 min of the flat time 15:08 CT: no new entries from 14:58 CT "
        "(now 2024-03-06 14:58:00 CT)"
    )
    v = eth.check_entry(ES, 1, 8, at(WED, "15:30"))  # Globex still trades: TopStep does not
    assert v.reason == "after the flat time 15:08 CT (now 2024-03-06 15:30:00 CT)"
    v = eth.check_entry(ES, 1, 8, at(WED, "16:30"))
    assert v.reason.startswith("market closed at 2024-03-06 16:30:00 CT")
    assert eth.check_entry(ES, 1, 8, at(WED, "17:00")).ok  # Thursday's Globex open
    none = RiskEngine(RiskConfig(trading_session=SessionKind.ETH, no_new_entries_minutes=0))
    assert none.check_entry(ES, 1, 8, at(WED, "15:07")).ok  # past the RTH close, before 15:08
    # an early close moves the flat time (and the cut-off) for ETH too
    assert eth.check_entry(ES, 1, 8, at(BLACK_FRIDAY, "02:00")).ok
    v = eth.check_entry(ES, 1, 8, at(BLACK_FRIDAY, "11:48"))
    assert v.reason.startswith("within 10 min of the flat time 11:58 CT")


def test_eth_holds_positions_overnight_and_flattens_at_the_flat_time(eth: RiskEngine) -> None:
    assert eth.must_flatten(at(TUE, "20:00")) is None
    assert eth.must_flatten(at(WED, "02:00")) is None
    assert eth.must_flatten(at(WED, "15:08")) == (
        "flat time 15:08 CT reached (now 2024-03-06 15:08:00 CT)"
    )
    assert eth.must_flatten(at(WED, "16:30")) is not None  # the daily break


def test_eth_daily_loss_resets_at_17_ct(eth: RiskEngine) -> None:
    """The day's P&L (and a daily halt) belong to the CME trade date, which starts at 17:00 CT:
    an evening loss counts for the next day, and the evening after a halt trades afresh."""
    eth.on_trade_closed(-1_000.0, at(TUE, "14:00"))
    assert eth.halt_kind is HaltKind.DAILY
    v = eth.check_entry(ES, 1, 8, at(TUE, "16:59"))
    assert not v.ok and eth.account.day_realised == -1_000.0
    assert eth.check_entry(ES, 1, 8, at(TUE, "17:00")).ok  # trade date Wednesday
    assert eth.state is TradingState.ACTIVE and eth.account.day_realised == 0.0
    eth.on_trade_closed(-300.0, at(TUE, "21:00"))  # overnight: Wednesday's day loss
    assert (eth.account.trade_date, eth.account.day_realised) == ("2024-03-06", -300.0)
    eth.on_trade_closed(-200.0, at(WED, "09:00"))
    assert eth.account.day_realised == -500.0
    assert eth.account.history == [49_000.0]  # Tuesday ended at the Globex open


def test_a_position_found_at_start_is_flattened_only_by_the_flat_rule(eth: RiskEngine) -> None:
    """TopStep's rule, on the CME trade date (from 17:00 CT the evening before): flat by the
    flat time of the position's own trade date. The session the feed starts from is irrelevant."""
    for e in (eth, RiskEngine(RiskConfig())):
        assert e.stale_position(WED, at(TUE, "17:00")) is None  # Wednesday's Globex open
        assert e.stale_position(WED, at(WED, "02:00")) is None
        assert e.stale_position(WED, at(WED, "15:07")) is None
        assert e.stale_position(WED, at(WED, "15:30")) == (
            "held past the flat time 15:08 CT of 2024-03-06 (now 2024-03-06 15:30:00 CT)"
        )
        assert e.stale_position(WED, at(WED, "16:30")) is not None  # the daily break
        assert e.stale_position(TUE, at(TUE, "20:00")) == (
            "from trade date 2024-03-05, now 2024-03-05 20:00:00 CT is in trade date "
            "2024-03-06: flat by the flat time of its own trade date"
        )
