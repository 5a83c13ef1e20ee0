"""The simulated broker: fill rules, brackets and OCO, events, ids, batch independence."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from fabio.domain import TradeBatch
from fabio.execution.broker import BrokerError, SimBrokerConfig, SimulatedBroker
from fabio.execution.types import BracketRequest, Order, OrderRole, OrderStatus, OrderType
from fabio.instruments import spec_for
from fabio.ports import Broker, MarketDrivenBroker, OrderUpdate, PositionChanged

SYMBOL = "ESZ5"


def tape(*rows: tuple[int, int] | tuple[int, int, int]) -> TradeBatch:
    """Trades from (ts, price) or (ts, price, size) rows; size defaults to 1."""
    ts = [r[0] for r in rows]
    price = [r[1] for r in rows]
    size = [r[2] if len(r) == 3 else 1 for r in rows]
    return TradeBatch.from_arrays(ts, price, size, np.zeros(len(rows)))


def make_broker(root: str = "ES", symbol: str = SYMBOL, **config: Any) -> SimulatedBroker:
    """A broker whose market orders fill at the print unless a test says otherwise (the
    mechanics tests below count ticks exactly; the default slippage has its own test)."""
    return SimulatedBroker(
        spec_for(root), symbol, SimBrokerConfig(**{"market_slippage_ticks": 0, **config})
    )


def test_default_slippage_model_one_tick_against_us_limits_through() -> None:
    config = SimBrokerConfig()
    assert (config.market_slippage_ticks, config.stop_slippage_ticks) == (1, 1)
    assert config.limit_fill == "through"
    broker = SimulatedBroker(spec_for("ES"), SYMBOL)
    broker.submit_bracket(bracket(side=1, stop=90, target=110), 0)
    fills = broker.on_trades(tape((1, 100), (2, 100)))
    assert [f.price_ticks for f in fills] == [101]  # a market buy one tick worse
    assert broker.on_trades(tape((10, 110), (11, 110))) == []  # touched: not through
    assert [f.price_ticks for f in broker.on_trades(tape((20, 111)))] == [110]
    short = SimulatedBroker(spec_for("ES"), SYMBOL)
    short.submit_bracket(bracket(side=-1, stop=110, target=90), 0)
    short.on_trades(tape((1, 100)))
    fills = short.on_trades(tape((10, 110)))  # the stop triggers and fills a tick worse
    assert [f.price_ticks for f in fills] == [111]


def bracket(
    side: int = 1,
    qty: int = 1,
    stop: int = 96,
    target: int = 104,
    limit: int | None = None,
    symbol: str = SYMBOL,
) -> BracketRequest:
    entry = OrderType.MARKET if limit is None else OrderType.LIMIT
    return BracketRequest(symbol, side, qty, "test", entry, stop, target, limit)


def statuses(broker: SimulatedBroker) -> list[tuple[str, str]]:
    return [(e["order_id"], e["status"]) for e in order_events(broker)]


def order_events(broker: SimulatedBroker) -> list[dict[str, Any]]:
    """The broker's order updates since the last drain, as journal-ready dicts."""
    return [e.to_dict() for e in broker.drain_events() if isinstance(e, OrderUpdate)]


def fills_of(broker: SimulatedBroker, batch: TradeBatch) -> list[tuple[str, int, int, int]]:
    return [(f.order_id, f.ts_ns, f.qty, f.price_ticks) for f in broker.on_trades(batch)]


# ---------------------------------------------------------------- market orders


def test_market_entry_fills_at_the_next_trade_with_slippage() -> None:
    broker = make_broker(market_slippage_ticks=2)
    entry, _, _ = broker.submit_bracket(bracket(stop=90, target=120), now_ns=10)
    # A trade printed before the order existed cannot fill it; the same timestamp can.
    fills = fills_of(broker, tape((9, 100), (10, 101, 1), (11, 103)))
    assert fills == [(entry.id, 10, 1, 103)]  # buy: 101 worsened by 2 ticks
    assert entry.status is OrderStatus.FILLED and entry.avg_fill_ticks == 103.0


def test_short_market_entry_slippage_lowers_the_price() -> None:
    broker = make_broker(market_slippage_ticks=1)
    entry, _, _ = broker.submit_bracket(bracket(side=-1, stop=110, target=90), now_ns=0)
    assert fills_of(broker, tape((1, 100, 1))) == [(entry.id, 1, 1, 99)]


def test_market_order_fills_its_whole_qty_whatever_the_print_size() -> None:
    broker = make_broker()
    entry, _, _ = broker.submit_bracket(bracket(qty=5, stop=90, target=120), now_ns=0)
    assert fills_of(broker, tape((1, 100, 1))) == [(entry.id, 1, 5, 100)]


# ---------------------------------------------------------------- limit orders


def test_limit_through_needs_a_print_strictly_through_the_price() -> None:
    broker = make_broker()  # limit_fill="through" is the default
    entry, _, _ = broker.submit_bracket(bracket(limit=100, stop=95, target=110), now_ns=0)
    assert fills_of(broker, tape((1, 101), (2, 100), (3, 100))) == []
    assert fills_of(broker, tape((4, 99))) == [(entry.id, 4, 1, 100)]  # at the limit price


def test_limit_touch_fills_on_a_print_at_the_price() -> None:
    broker = make_broker(limit_fill="touch")
    entry, _, _ = broker.submit_bracket(bracket(limit=100, stop=95, target=110), now_ns=0)
    assert fills_of(broker, tape((1, 101), (2, 100), (3, 99))) == [(entry.id, 2, 1, 100)]


def test_short_limit_entry_through_and_touch() -> None:
    for mode, expected_ts in (("through", 3), ("touch", 2)):
        broker = make_broker(limit_fill=mode)
        req = bracket(side=-1, limit=100, stop=105, target=90)
        entry, _, _ = broker.submit_bracket(req, now_ns=0)
        assert fills_of(broker, tape((1, 99), (2, 100), (3, 101))) == [
            (entry.id, expected_ts, 1, 100)
        ]


def test_limit_fills_partially_across_several_trades() -> None:
    broker = make_broker()
    entry, stop, target = broker.submit_bracket(
        bracket(qty=5, limit=100, stop=95, target=110), now_ns=0
    )
    order_events(broker)
    fills = fills_of(broker, tape((1, 99, 2), (2, 100, 7), (3, 98, 1), (4, 99, 9)))
    assert fills == [(entry.id, 1, 2, 100), (entry.id, 3, 1, 100), (entry.id, 4, 2, 100)]
    assert entry.status is OrderStatus.FILLED and entry.filled_qty == 5
    entry_events = [e for e in order_events(broker) if e["order_id"] == entry.id]
    assert [e["status"] for e in entry_events] == ["partially_filled"] * 2 + ["filled"]
    assert [e["filled_qty"] for e in entry_events] == [2, 3, 5]
    # The children work for what is filled, growing with each entry fill.
    assert stop.qty == target.qty == 5


# ---------------------------------------------------------------- brackets


def test_children_are_held_until_the_entry_fills() -> None:
    broker = make_broker()
    entry, stop, target = broker.submit_bracket(
        bracket(qty=3, limit=100, stop=95, target=110), now_ns=0
    )
    assert broker.working() == [entry]
    assert stop.status is OrderStatus.SUBMITTED and target.status is OrderStatus.SUBMITTED
    assert stop.parent_id == target.parent_id == entry.id
    assert stop.oco_group == target.oco_group is not None
    assert (stop.side, target.side) == (-1, -1)
    # The target's price prints before the entry fills: nothing happens to the held target.
    assert fills_of(broker, tape((1, 111), (2, 112))) == []
    assert target.filled_qty == 0 and target.status is OrderStatus.SUBMITTED
    # A partial entry fill arms the children for the filled quantity only.
    assert fills_of(broker, tape((3, 99, 1))) == [(entry.id, 3, 1, 100)]
    assert stop.status is OrderStatus.ACCEPTED and target.status is OrderStatus.ACCEPTED
    assert (stop.qty, target.qty) == (1, 1)
    assert broker.working() == [entry, stop, target]


def test_children_do_not_fill_on_the_trade_that_fills_the_entry() -> None:
    broker = make_broker()
    entry, stop, _ = broker.submit_bracket(bracket(stop=99, target=110), now_ns=0)
    fills = fills_of(broker, tape((1, 100), (2, 99)))
    assert fills == [(entry.id, 1, 1, 100), (stop.id, 2, 1, 98)]


def test_long_stop_triggers_at_the_stop_and_fills_with_slippage() -> None:
    broker = make_broker()  # stop_slippage_ticks=1
    entry, stop, target = broker.submit_bracket(bracket(qty=2, stop=96, target=110), now_ns=0)
    fills = fills_of(broker, tape((1, 100), (2, 97), (3, 96, 1), (4, 95)))
    assert fills == [(entry.id, 1, 2, 100), (stop.id, 3, 2, 95)]
    assert stop.status is OrderStatus.FILLED
    assert target.status is OrderStatus.CANCELLED and target.reason == f"oco: {stop.id} filled"
    assert broker.working() == []


def test_short_stop_triggers_upwards() -> None:
    broker = make_broker(stop_slippage_ticks=2)
    entry, stop, target = broker.submit_bracket(bracket(side=-1, stop=104, target=90), now_ns=0)
    fills = fills_of(broker, tape((1, 100), (2, 103), (3, 104), (4, 106)))
    assert fills == [(entry.id, 1, 1, 100), (stop.id, 3, 1, 106)]
    assert target.status is OrderStatus.CANCELLED


def test_gap_through_the_stop_fills_at_the_gap_price() -> None:
    broker = make_broker()
    _, stop, _ = broker.submit_bracket(bracket(stop=96, target=110), now_ns=0)
    fills = fills_of(broker, tape((1, 100), (2, 99), (3, 90), (4, 97)))
    assert fills[-1] == (stop.id, 3, 1, 89)  # worse than the stop, then the slippage


def test_target_fills_and_cancels_the_stop() -> None:
    broker = make_broker()
    entry, stop, target = broker.submit_bracket(bracket(stop=96, target=104), now_ns=0)
    fills = fills_of(broker, tape((1, 100), (2, 104, 5), (3, 105, 5), (4, 96)))
    assert fills == [(entry.id, 1, 1, 100), (target.id, 3, 1, 104)]
    assert stop.status is OrderStatus.CANCELLED and stop.reason == f"oco: {target.id} filled"


def test_short_target_fills_below() -> None:
    broker = make_broker(limit_fill="touch")
    entry, stop, target = broker.submit_bracket(bracket(side=-1, stop=104, target=95), now_ns=0)
    fills = fills_of(broker, tape((1, 100), (2, 95, 3)))
    assert fills == [(entry.id, 1, 1, 100), (target.id, 2, 1, 95)]
    assert stop.status is OrderStatus.CANCELLED


def test_partial_target_fill_shrinks_the_stop() -> None:
    broker = make_broker()
    entry, stop, target = broker.submit_bracket(bracket(qty=4, stop=96, target=104), now_ns=0)
    fills = fills_of(broker, tape((1, 100), (2, 105, 1), (3, 103), (4, 95)))
    assert fills == [(entry.id, 1, 4, 100), (target.id, 2, 1, 104), (stop.id, 4, 3, 94)]
    assert target.status is OrderStatus.CANCELLED and target.filled_qty == 1
    assert stop.status is OrderStatus.FILLED and stop.qty == 3


def test_a_child_closing_a_partly_filled_entry_cancels_the_remainder() -> None:
    broker = make_broker()
    entry, stop, target = broker.submit_bracket(
        bracket(qty=3, limit=100, stop=95, target=104), now_ns=0
    )
    fills = fills_of(broker, tape((1, 99, 1), (2, 105, 9), (3, 98, 9)))
    assert fills == [(entry.id, 1, 1, 100), (target.id, 2, 1, 104)]
    assert entry.status is OrderStatus.CANCELLED and entry.filled_qty == 1
    assert stop.status is OrderStatus.CANCELLED


def test_market_entry_filled_beyond_the_stop_exits_at_the_next_trade() -> None:
    broker = make_broker()
    entry, stop, target = broker.submit_bracket(bracket(qty=2, stop=96, target=110), now_ns=0)
    order_events(broker)
    fills = fills_of(broker, tape((1, 95), (2, 94), (3, 97)))
    exit_id = f"{SYMBOL}-4"
    assert fills == [(entry.id, 1, 2, 95), (exit_id, 2, 2, 94)]
    exit_order = broker.orders[exit_id]
    assert exit_order.role is OrderRole.EXIT and exit_order.side == -1
    assert stop.status is OrderStatus.CANCELLED and target.status is OrderStatus.CANCELLED
    assert "beyond its stop or target" in stop.reason
    assert statuses(broker) == [
        (entry.id, "filled"),
        (stop.id, "cancelled"),
        (target.id, "cancelled"),
        (exit_id, "submitted"),
        (exit_id, "accepted"),
        (exit_id, "filled"),
    ]


def test_short_market_entry_filled_beyond_the_target_exits_too() -> None:
    broker = make_broker()
    entry, _, _ = broker.submit_bracket(bracket(side=-1, stop=110, target=96), now_ns=0)
    fills = fills_of(broker, tape((1, 95), (2, 95)))
    assert fills == [(entry.id, 1, 1, 95), (f"{SYMBOL}-4", 2, 1, 95)]


# ---------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    ("req", "reason"),
    [
        (bracket(qty=0), "qty must be >= 1, got 0"),
        (bracket(side=0), "side must be +1 (long) or -1 (short)"),
        (bracket(limit=100, stop=101, target=110), "long bracket prices out of order"),
        (bracket(limit=100, stop=95, target=100), "need stop < entry < target"),
        (bracket(stop=110, target=96), "long bracket prices out of order"),
        (bracket(side=-1, stop=96, target=110), "need target < entry < stop"),
        (bracket(side=-1, limit=100, stop=99, target=90), "short bracket prices out of order"),
        (bracket(symbol="NQZ5"), "not this broker's ESZ5"),
        (
            BracketRequest(SYMBOL, 1, 1, "t", OrderType.LIMIT, 95, 105, None),
            "a limit entry needs limit_ticks",
        ),
        (
            BracketRequest(SYMBOL, 1, 1, "t", OrderType.STOP, 95, 105, None),
            "entry_type must be market or limit",
        ),
    ],
)
def test_invalid_brackets_are_rejected_with_a_reason(req: BracketRequest, reason: str) -> None:
    broker = make_broker()
    orders = broker.submit_bracket(req, now_ns=5)
    assert [o.status for o in orders] == [OrderStatus.REJECTED] * 3
    assert all(reason in o.reason for o in orders)
    assert broker.working() == []
    events = order_events(broker)
    assert [e["status"] for e in events] == ["submitted"] * 3 + ["rejected"] * 3
    assert events[-1]["reason"] == orders[0].reason and events[-1]["ts_ns"] == 5
    assert fills_of(broker, tape((6, 100), (7, 50), (8, 150))) == []


# ---------------------------------------------------------------- modify, cancel, exit


def test_modify_moves_a_working_stop_and_target() -> None:
    broker = make_broker()
    _, stop, target = broker.submit_bracket(bracket(stop=90, target=120), now_ns=0)
    fills_of(broker, tape((1, 100)))
    assert broker.modify(stop.id, stop_ticks=99) is stop and stop.stop_ticks == 99
    assert broker.modify(target.id, limit_ticks=101).limit_ticks == 101
    assert fills_of(broker, tape((2, 99))) == [(stop.id, 2, 1, 98)]
    with pytest.raises(BrokerError, match="not open"):
        broker.modify(stop.id, stop_ticks=95)


def test_modify_checks_the_field_and_the_id() -> None:
    broker = make_broker()
    entry, stop, target = broker.submit_bracket(bracket(limit=100, stop=90, target=120), now_ns=0)
    with pytest.raises(BrokerError, match="no stop price"):
        broker.modify(target.id, stop_ticks=95)
    with pytest.raises(BrokerError, match="no limit price"):
        broker.modify(stop.id, limit_ticks=95)
    with pytest.raises(BrokerError, match="unknown order"):
        broker.modify("nope", stop_ticks=1)
    broker.modify(entry.id, limit_ticks=102)  # a resting limit entry can be moved too
    assert fills_of(broker, tape((1, 101))) == [(entry.id, 1, 1, 102)]


def test_cancelling_an_unfilled_entry_cancels_its_children() -> None:
    broker = make_broker()
    entry, stop, target = broker.submit_bracket(bracket(limit=100, stop=90, target=120), now_ns=0)
    order_events(broker)
    assert broker.cancel(entry.id, "setup invalidated", now_ns=7) is entry
    assert [o.status for o in (entry, stop, target)] == [OrderStatus.CANCELLED] * 3
    assert entry.reason == "setup invalidated" and stop.reason == f"entry {entry.id} cancelled"
    assert statuses(broker) == [
        (entry.id, "cancelled"),
        (stop.id, "cancelled"),
        (target.id, "cancelled"),
    ]
    assert broker.cancel(entry.id, "again") is entry  # idempotent on a closed order
    assert order_events(broker) == []
    with pytest.raises(BrokerError, match="unknown order"):
        broker.cancel("ESZ5-99", "x")


def test_cancelling_a_partly_filled_entry_keeps_its_protection() -> None:
    broker = make_broker()
    entry, stop, target = broker.submit_bracket(
        bracket(qty=3, limit=100, stop=90, target=120), now_ns=0
    )
    fills_of(broker, tape((1, 99, 1)))
    broker.cancel(entry.id, "enough")
    assert entry.status is OrderStatus.CANCELLED
    assert stop.status is OrderStatus.ACCEPTED and stop.qty == 1
    assert broker.working() == [stop, target]


def test_cancel_all_cancels_held_children_too() -> None:
    broker = make_broker()
    first = broker.submit_bracket(bracket(limit=100, stop=90, target=120), now_ns=0)
    second = broker.submit_bracket(bracket(stop=90, target=120), now_ns=0)
    fills_of(broker, tape((1, 100)))  # fills the second (market) entry only
    cancelled = broker.cancel_all("flat time", now_ns=2)
    expected = [o.id for o in first] + [second[1].id, second[2].id]
    assert [o.id for o in cancelled] == expected
    assert broker.working() == [] and not any(o.status.is_open for o in broker.orders.values())
    assert second[0].status is OrderStatus.FILLED


def test_exit_cancels_the_position_children_then_fills_at_market() -> None:
    broker = make_broker(market_slippage_ticks=1)
    _, stop, target = broker.submit_bracket(bracket(qty=2, stop=90, target=120), now_ns=0)
    fills_of(broker, tape((1, 100)))
    order_events(broker)
    exit_order = broker.submit_exit(-1, 2, "test", now_ns=5, reason="brain exit")
    assert exit_order.role is OrderRole.EXIT and exit_order.type is OrderType.MARKET
    assert stop.status is OrderStatus.CANCELLED and target.status is OrderStatus.CANCELLED
    assert stop.reason == "exit: brain exit"
    assert broker.working() == [exit_order]
    assert fills_of(broker, tape((4, 103), (5, 102))) == [(exit_order.id, 5, 2, 101)]
    assert statuses(broker) == [
        (stop.id, "cancelled"),
        (target.id, "cancelled"),
        (exit_order.id, "submitted"),
        (exit_order.id, "accepted"),
        (exit_order.id, "filled"),
    ]


def test_exit_cancels_the_remainder_of_a_partly_filled_entry() -> None:
    broker = make_broker()
    entry, stop, target = broker.submit_bracket(
        bracket(qty=3, limit=100, stop=90, target=120), now_ns=0
    )
    fills_of(broker, tape((1, 99, 2)))
    exit_order = broker.submit_exit(-1, 2, "test", now_ns=2, reason="done")
    assert [o.status for o in (entry, stop, target)] == [OrderStatus.CANCELLED] * 3
    assert broker.working() == [exit_order]
    assert fills_of(broker, tape((3, 98, 9))) == [(exit_order.id, 3, 2, 98)]


def test_exit_leaves_pending_entries_and_other_sides_alone() -> None:
    broker = make_broker()
    pending = broker.submit_bracket(bracket(limit=90, stop=85, target=120), now_ns=0)
    short = broker.submit_bracket(bracket(side=-1, stop=110, target=80), now_ns=0)
    fills_of(broker, tape((1, 100)))
    broker.submit_exit(-1, 1, "test", now_ns=2, reason="x")  # nothing long is filled
    assert pending[0].status is OrderStatus.ACCEPTED and short[1].status is OrderStatus.ACCEPTED
    broker.submit_exit(1, 1, "test", now_ns=3, reason="cover")
    assert short[1].status is OrderStatus.CANCELLED and short[2].status is OrderStatus.CANCELLED
    assert pending[1].status is OrderStatus.SUBMITTED


def test_invalid_exit_is_rejected() -> None:
    broker = make_broker()
    order = broker.submit_exit(-1, 0, "test", now_ns=1, reason="x")
    assert order.status is OrderStatus.REJECTED and "qty >= 1" in order.reason
    assert broker.working() == []


def test_protect_puts_a_working_oco_pair_on_an_existing_position() -> None:
    broker = make_broker()
    stop, target = broker.protect(
        side=1, qty=3, stop_ticks=95, target_ticks=105, strategy="t", now_ns=1
    )
    assert broker.working() == [stop, target]
    assert (stop.side, target.side, stop.qty, target.qty) == (-1, -1, 3, 3)
    assert stop.parent_id is None and stop.oco_group == target.oco_group == "ESZ5-1-oco"
    assert statuses(broker) == [
        (stop.id, "submitted"),
        (target.id, "submitted"),
        (stop.id, "accepted"),
        (target.id, "accepted"),
    ]
    fills = fills_of(broker, tape((2, 106, 1), (3, 94)))
    assert fills == [(target.id, 2, 1, 105), (stop.id, 3, 2, 93)]
    assert target.status is OrderStatus.CANCELLED and stop.qty == 2


def test_protect_rejects_a_wrong_side_and_exit_cancels_it() -> None:
    broker = make_broker()
    bad = broker.protect(side=-1, qty=1, stop_ticks=95, target_ticks=105, strategy="t", now_ns=1)
    assert [o.status for o in bad] == [OrderStatus.REJECTED] * 2
    assert "short bracket prices out of order" in bad[0].reason
    stop, target = broker.protect(
        side=-1, qty=1, stop_ticks=105, target_ticks=95, strategy="t", now_ns=1
    )
    broker.submit_exit(1, 1, "t", now_ns=2, reason="flat")
    assert stop.status is OrderStatus.CANCELLED and target.status is OrderStatus.CANCELLED


# ---------------------------------------------------------------- events, fees, ids


def test_events_are_drained_in_order_with_fill_details() -> None:
    broker = make_broker()
    entry, stop, target = broker.submit_bracket(bracket(stop=96, target=104), now_ns=3)
    fills_of(broker, tape((4, 100), (5, 105)))
    events = order_events(broker)
    assert [(e["order_id"], e["status"]) for e in events] == [
        (entry.id, "submitted"),
        (stop.id, "submitted"),
        (target.id, "submitted"),
        (entry.id, "accepted"),
        (entry.id, "filled"),
        (stop.id, "accepted"),
        (target.id, "accepted"),
        (target.id, "filled"),
        (stop.id, "cancelled"),
    ]
    assert [e["ts_ns"] for e in events] == [3, 3, 3, 3, 4, 4, 4, 5, 5]
    filled = events[7]
    assert filled["fill_price_ticks"] == 104 and filled["fill_qty"] == 1
    assert filled["commission_usd"] == pytest.approx(1.40)
    assert events[1]["stop_ticks"] == 96 and events[1]["parent_id"] == entry.id
    assert order_events(broker) == []


def test_commission_per_side_per_contract_by_product() -> None:
    broker = make_broker()
    fills = broker.submit_bracket(bracket(qty=3, stop=90, target=101), now_ns=0)
    got = broker.on_trades(tape((1, 100), (2, 102, 3)))
    assert [f.commission_usd for f in got] == [pytest.approx(4.20), pytest.approx(4.20)]
    assert fills[2].status is OrderStatus.FILLED
    micro = make_broker(root="MNQ", symbol="MNQZ5")
    micro.submit_bracket(bracket(qty=2, stop=90, target=120, symbol="MNQZ5"), now_ns=0)
    assert micro.on_trades(tape((1, 100)))[0].commission_usd == pytest.approx(0.74)


def test_commission_overrides_merge_with_the_defaults() -> None:
    config = SimBrokerConfig(commission_per_contract_usd={"es": 2.0})
    assert config.commission_for("ES") == 2.0 and config.commission_for("NQ") == 1.40
    with pytest.raises(ValidationError):
        SimBrokerConfig(commission_per_contract_usd={"ES": -1.0})
    with pytest.raises(ValidationError):
        SimBrokerConfig.model_validate({"limit_fill": "maybe"})
    with pytest.raises(BrokerError, match="no commission"):
        config.commission_for("YM")


def test_ids_are_deterministic_and_can_continue_after_a_restart() -> None:
    broker = make_broker()
    assert [o.id for o in broker.submit_bracket(bracket(), now_ns=0)] == [
        "ESZ5-1",
        "ESZ5-2",
        "ESZ5-3",
    ]
    assert broker.next_id == 4
    restarted = SimulatedBroker(spec_for("ES"), SYMBOL, id_prefix=broker.next_id)
    assert restarted.submit_exit(1, 1, "t", 0, "x").id == "ESZ5-4"
    with pytest.raises(BrokerError):
        SimulatedBroker(spec_for("ES"), SYMBOL, id_prefix=0)


def test_identical_runs_give_identical_events() -> None:
    runs = []
    for _ in range(2):
        broker = make_broker()
        _scenario(broker, 100)
        broker.on_trades(tape((1, 100, 2), (2, 97, 1), (3, 103, 4), (4, 95, 3), (5, 106, 2)))
        runs.append(order_events(broker))
    assert runs[0] == runs[1] and len(runs[0]) > 20


def test_no_working_orders_means_no_work() -> None:
    broker = make_broker()
    assert broker.on_trades(tape((1, 100), (2, 101))) == []
    assert broker.on_trades(TradeBatch.empty()) == []
    # The venue clock follows the tape: a later cancel without a time is stamped with it.
    entry, _, _ = broker.submit_bracket(bracket(limit=90, stop=85, target=120), now_ns=0)
    order_events(broker)
    broker.cancel(entry.id, "x")
    assert order_events(broker)[0]["ts_ns"] == 2


# ---------------------------------------------------------------- batch independence


def _scenario(broker: SimulatedBroker, start_price: int) -> None:
    p = start_price
    broker.submit_bracket(bracket(qty=3, stop=p - 4, target=p + 4), now_ns=0)
    broker.submit_bracket(bracket(side=-1, qty=2, stop=p + 5, target=p - 3), now_ns=0)
    broker.submit_bracket(bracket(qty=4, limit=p - 2, stop=p - 6, target=p + 2), now_ns=0)
    broker.submit_bracket(bracket(side=-1, qty=5, limit=p + 2, stop=p + 7, target=p), now_ns=0)
    broker.submit_bracket(bracket(qty=1, stop=p + 1, target=p + 9), now_ns=0)  # may exit at once


def _run(trades: TradeBatch, cuts: Sequence[int], mode: str) -> tuple[list[Any], list[Any]]:
    broker = make_broker(limit_fill=mode)
    _scenario(broker, int(trades.price[0]))
    fills: list[dict[str, Any]] = []
    bounds = [0, *sorted(set(cuts)), len(trades)]
    for a, b in pairwise(bounds):
        fills.extend(f.to_dict() for f in broker.on_trades(trades.slice(a, b)))
    return fills, order_events(broker)


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.integers(-2, 2), min_size=1, max_size=120),
    sizes=st.lists(st.integers(0, 3), min_size=120, max_size=120),
    dts=st.lists(st.integers(0, 2), min_size=120, max_size=120),
    cuts=st.lists(st.integers(0, 120), max_size=8),
    mode=st.sampled_from(["through", "touch"]),
)
def test_fills_do_not_depend_on_how_the_tape_is_batched(
    steps: list[int], sizes: list[int], dts: list[int], cuts: list[int], mode: str
) -> None:
    n = len(steps)
    trades = TradeBatch.from_arrays(
        np.cumsum(dts[:n]), 100 + np.cumsum(steps), sizes[:n], np.zeros(n)
    )
    whole = _run(trades, [], mode)
    split = _run(trades, [c for c in cuts if c <= n], mode)
    assert split == whole


def test_working_lists_oldest_first() -> None:
    broker = make_broker()
    a = broker.submit_bracket(bracket(limit=99, stop=90, target=120), now_ns=0)[0]
    b = broker.submit_bracket(bracket(limit=98, stop=90, target=120), now_ns=0)[0]
    assert broker.working() == [a, b]
    assert all(isinstance(o, Order) for o in broker.working())


def test_the_simulated_broker_implements_the_ports_and_reports_positions() -> None:
    broker = SimulatedBroker(spec_for("ES"), "ESH4", SimBrokerConfig(market_slippage_ticks=0))
    assert isinstance(broker, Broker) and isinstance(broker, MarketDrivenBroker)
    entry, _, _ = broker.submit_bracket(
        BracketRequest("ESH4", 1, 2, "s", OrderType.MARKET, 90, 110), 0
    )
    broker.on_trades(tape((1, 100, 5)))
    events = broker.drain_events()
    positions = [e for e in events if isinstance(e, PositionChanged)]
    assert [(p.qty, p.avg_price_ticks) for p in positions] == [(2, 100.0)]
    filled = [e for e in events if isinstance(e, OrderUpdate) and e.fill is not None]
    assert filled[0].order_id == entry.id and filled[0].fill is not None
    assert broker.positions()[0].qty == 2 and broker.get_order(entry.id) is entry
    assert {o.id for o in broker.open_orders()} == {o.id for o in broker.working()}
    assert broker.account().simulated
    broker.on_trades(tape((2, 111, 5)))  # the target fills: flat
    assert broker.positions() == []
