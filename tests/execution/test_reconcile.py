"""The unexplained-state rule over the `Broker` port, judged on the simulated broker."""

from __future__ import annotations

import numpy as np

from fabio.domain import TradeBatch
from fabio.execution.broker import SimBrokerConfig, SimulatedBroker
from fabio.execution.reconcile import position_problem, unexplained
from fabio.execution.types import BracketRequest, OrderRole, OrderType
from fabio.instruments import spec_for


def sim(symbol: str = "ES", root: str = "ES") -> SimulatedBroker:
    return SimulatedBroker(spec_for(root), symbol, SimBrokerConfig(market_slippage_ticks=0))


def prints(*rows: tuple[int, int]) -> TradeBatch:
    return TradeBatch.from_arrays(
        [r[0] for r in rows], [r[1] for r in rows], [1] * len(rows), np.zeros(len(rows))
    )


def enter(broker: SimulatedBroker, side: int, qty: int, at: int = 100) -> None:
    """A filled market entry with its OCO stop and target working, 4 ticks either side."""
    stop, target = (at - 4, at + 4) if side > 0 else (at + 4, at - 4)
    request = BracketRequest(broker.symbol, side, qty, "test", OrderType.MARKET, stop, target)
    broker.submit_bracket(request, 0)
    broker.on_trades(prints((1, at)))
    assert sum(p.qty for p in broker.positions()) == side * qty


def stop_of(broker: SimulatedBroker) -> str:
    return next(o.id for o in broker.open_orders() if o.role is OrderRole.STOP)


def test_a_protected_position_the_journal_holds_is_explained() -> None:
    long, short = sim("ES"), sim("NQ", "NQ")
    enter(long, 1, 2)
    enter(short, -1, 3)
    held = {"ES": 2, "NQ": -3}
    assert unexplained([long, short], held.__getitem__) == []
    flat = sim("MES", "MES")
    assert unexplained([flat], lambda s: 0) == []


def test_a_venue_position_the_journal_does_not_hold_is_unexplained() -> None:
    broker = sim()
    enter(broker, 1, 2)
    assert unexplained([broker], lambda s: 0) == ["ES: the venue holds +2, the journal expects +0"]
    assert unexplained([broker], lambda s: -2) == ["ES: the venue holds +2, the journal expects -2"]


def test_a_journal_position_the_venue_no_longer_holds_is_unexplained() -> None:
    broker = sim()
    enter(broker, -1, 1)
    broker.on_trades(prints((2, 104)))  # the stop fills: the venue is flat
    assert broker.positions() == []
    assert unexplained([broker], lambda s: -1) == ["ES: the venue holds +0, the journal expects -1"]


def test_a_position_whose_stop_was_cancelled_has_no_working_stop() -> None:
    broker = sim()
    enter(broker, 1, 2)
    broker.cancel(stop_of(broker), "cancelled at the venue", now_ns=2)
    assert [o.role for o in broker.open_orders()] == [OrderRole.TARGET]  # the target still works
    assert unexplained([broker], lambda s: 2) == ["ES: +2 contracts without a working stop"]
    assert unexplained([broker], lambda s: 2, stops=False) == []  # shadow: no stop is placed
    # A stop re-placed through the port protects it again.
    broker.protect(side=1, qty=2, stop_ticks=96, target_ticks=104, strategy="test", now_ns=3)
    assert unexplained([broker], lambda s: 2) == []


def test_a_stop_that_covers_part_of_the_position_or_the_wrong_side_is_not_protection() -> None:
    broker = sim()
    enter(broker, 1, 3)
    broker.cancel(stop_of(broker), "cancelled at the venue", now_ns=2)
    broker.protect(side=1, qty=2, stop_ticks=96, target_ticks=104, strategy="test", now_ns=3)
    assert unexplained([broker], lambda s: 3) == ["ES: +3 contracts without a working stop"]
    # A buy stop (what protects a short) does not protect a long, whatever its size.
    wrong = sim()
    enter(wrong, 1, 3)
    wrong.cancel(stop_of(wrong), "cancelled at the venue", now_ns=2)
    wrong.protect(side=-1, qty=3, stop_ticks=104, target_ticks=96, strategy="test", now_ns=3)
    assert [(o.role, o.side) for o in wrong.open_orders() if o.role is OrderRole.STOP] == [
        (OrderRole.STOP, 1)
    ]
    assert unexplained([wrong], lambda s: 3) == ["ES: +3 contracts without a working stop"]
    assert position_problem("ES", -3, -3, wrong.open_orders()) is None  # it protects a short


def test_venue_positions_on_contracts_we_do_not_trade_are_unexplained_and_sorted() -> None:
    es, nq = sim("ES"), sim("NQ", "NQ")
    enter(nq, 1, 1)
    problems = unexplained(
        [nq, es], lambda s: 0, untraded={"CON.F.US.RTY.H25": -1, "CON.F.US.YM.H25": 0}
    )
    assert problems == [
        "CON.F.US.RTY.H25: the venue holds -1, the journal expects +0",
        "NQ: the venue holds +1, the journal expects +0",
    ]
