"""The venue adapter against `fabio gateway-sim` over real sockets on 127.0.0.1, fault by fault.

Every fault runs brackets through the `Broker` port and checks the same invariants: no
`customTag` twice at the venue, no position without a working stop for more than a moment, no
position larger than asked, and the broker's view of every order equal to the venue's.

Real time, on purpose: these are the adapter's sockets, timeouts and reconnects against a venue
whose market runs at a multiple of the wall clock and whose faults (disconnects, token lifetimes,
held responses) are wall seconds, as a real venue's are. So no assertion here times anything:
every wait only bounds a hang (`Rig.wait`), and "never without a stop" is counted in market
events (`Watch`: the market waits while a position is unprotected).
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from fabio.brain.schema import TradeDecision
from fabio.brokers.projectx.models import PxOrderStatus
from fabio.brokers.projectx.sim.server import SimFaults
from fabio.execution.risk import RiskConfig
from fabio.instruments import parse_symbol
from fabio.orders import OrderRole, OrderStatus
from fabio.ports import OrderUpdate, VenueRecovery
from fabio.wiring import open_execution

from .harness import Rig, run_rig


async def trade_brackets(rig: Rig, count: int, *, timeout: float = 60.0) -> list[str]:
    """Place brackets one after another; each ends flat. The final entry statuses."""
    outcomes = []
    for _ in range(count):
        entry, stop, target = rig.bracket(stop=4, target=4)
        await rig.wait(lambda e=entry: not e.status.is_open, timeout, f"{entry.id} to end")
        outcomes.append(str(entry.status))
        if entry.status is OrderStatus.FILLED:
            await rig.wait(
                lambda s=stop, t=target: not s.status.is_open and not t.status.is_open,
                timeout,
                f"{entry.id}'s stop or target",
            )
            assert {stop.status, target.status} == {OrderStatus.FILLED, OrderStatus.CANCELLED}
    await rig.wait(
        lambda: all(p.qty == 0 for p in rig.sim.venue.positions.values()), timeout, "flat"
    )
    return outcomes


def check_invariants(rig: Rig, max_position: int = 1) -> None:
    assert rig.watch.duplicate_tags() == []
    assert rig.watch.unprotected_events == 0
    assert rig.watch.max_abs_position <= max_position
    venue = {o.custom_tag.split("@")[0]: o for o in rig.sim.venue.orders.values() if o.custom_tag}
    for order_id, px in venue.items():
        mine = rig.broker.orders[order_id]
        assert mine.filled_qty == px.fill_volume, order_id
        if px.status == PxOrderStatus.FILLED:
            assert mine.status is OrderStatus.FILLED, order_id


def test_bracket_round_trip_and_events() -> None:
    async def body(rig: Rig) -> None:
        outcomes = await trade_brackets(rig, 2)
        assert outcomes == ["filled", "filled"]
        events = [e for e in rig.broker.drain_events() if isinstance(e, OrderUpdate)]
        fills = [e for e in events if e.fill is not None]
        assert {e.role for e in fills} >= {OrderRole.ENTRY}
        assert sum(e.fill.qty for e in fills if e.fill and e.role is OrderRole.ENTRY) == 2
        sent = rig.broker.sent
        assert all("stopLossBracket" in b for b in sent)  # Auto-OCO: protection at the venue
        assert sent[0]["stopLossBracket"]["ticks"] < 0 < sent[0]["takeProfitBracket"]["ticks"]

    rig = asyncio.run(run_rig(body))
    check_invariants(rig)


@pytest.mark.slow  # 8 s; the default run keeps test_order_accepted_but_response_lost as its fault
def test_hub_disconnects_every_second() -> None:
    async def body(rig: Rig) -> None:
        await trade_brackets(rig, 3)
        # A bracket lasts about two seconds of wall time: the hubs dropped while they were open.
        assert rig.sim.counters["fault_disconnect"] >= 3
        assert rig.session.user_hub is not None and rig.session.market_hub is not None
        assert rig.session.market_hub.disconnects >= 1
        # Drops come every second: the hub is between a drop and its reconnect part of the
        # time; it must come back each time (checked a few times over).
        hub = rig.session.market_hub
        for _ in range(3):
            await asyncio.sleep(0.4)
            await rig.wait(lambda: hub.status == "connected", 60, "the market hub to reconnect")

    rig = asyncio.run(run_rig(body, SimFaults(disconnect_every_sec=1.0)))
    check_invariants(rig)
    assert rig.sim.counters["fault_disconnect"] >= 1


@pytest.mark.slow  # ten brackets each, ~27 s apiece
@pytest.mark.parametrize("kind", ["429", "500"])
def test_http_errors_on_a_share_of_calls(kind: str) -> None:
    faults = SimFaults(http_429_rate=0.25) if kind == "429" else SimFaults(http_500_rate=0.25)

    async def body(rig: Rig) -> None:
        # Every authenticated call draws a fault (in an order that depends on timing) and a
        # refused entry's lookups draw too, so many brackets are rejected: with four, all four
        # came back rejected in one full-suite run. Ten make "none filled" rare.
        outcomes = await trade_brackets(rig, 10)
        # A refused placement is never retried blindly: it is looked up, then called rejected.
        assert set(outcomes) <= {"filled", "rejected"}
        assert "filled" in outcomes

    rig = asyncio.run(run_rig(body, faults))
    check_invariants(rig)
    assert rig.sim.counters[f"fault_{kind}"] >= 1
    # One placement per tag: an unknown outcome never became a second send.
    tags = [b["customTag"] for b in rig.broker.sent]
    assert len(tags) == len(set(tags))


def test_order_accepted_but_response_lost() -> None:
    faults = SimFaults(lose_order_response_rate=1.0, lost_response_hold_sec=3.0)

    async def body(rig: Rig) -> None:
        outcomes = await trade_brackets(rig, 2)
        assert outcomes == ["filled", "filled"]  # found by their tags, adopted

    rig = asyncio.run(run_rig(body, faults))
    check_invariants(rig)
    assert rig.sim.counters["fault_lost_response"] == 2
    assert len([o for o in rig.sim.venue.orders.values() if o.custom_tag]) == 2


@pytest.mark.slow  # 8 s of wall time by design (token lifetimes are wall time at the venue)
def test_token_expiry_mid_session_keeps_the_stream() -> None:
    async def body(rig: Rig) -> None:
        feed = rig.session.feeds[rig.broker.contract_id]
        await asyncio.sleep(4.0)  # two expiries
        before = feed.report.trades
        await trade_brackets(rig, 1)
        await asyncio.sleep(1.5)
        assert feed.report.trades > before
        assert rig.session.market_hub is not None and rig.session.market_hub.connects >= 2

    rig = asyncio.run(run_rig(body, SimFaults(token_expiry_sec=1.5)))
    check_invariants(rig)
    assert rig.sim.counters["fault_token_expired_socket"] >= 1
    assert rig.sim.counters["login"] + rig.sim.counters["validate"] >= 2


def test_orders_rejected() -> None:
    async def body(rig: Rig) -> None:
        outcomes = await trade_brackets(rig, 3)
        assert outcomes == ["rejected"] * 3

    rig = asyncio.run(run_rig(body, SimFaults(reject_rate=1.0)))
    check_invariants(rig, max_position=0)


def test_position_brackets_mode_protects_with_own_orders() -> None:
    async def body(rig: Rig) -> None:
        outcomes = await trade_brackets(rig, 2)
        assert outcomes == ["filled", "filled"]
        assert rig.session.brackets == "own"
        own = [b for b in rig.broker.sent if "stopLossBracket" not in b]
        assert any(b["type"] == 4 for b in own) and any(b["type"] == 1 for b in own)

    rig = asyncio.run(run_rig(body, SimFaults(position_brackets=True)))
    check_invariants(rig)


def test_partial_fills_resize_the_protection() -> None:
    async def body(rig: Rig) -> None:
        last = rig.last()
        from fabio.orders import BracketRequest, OrderType

        entry, stop, target = rig.broker.submit_bracket(
            BracketRequest(
                "ES",
                1,
                4,
                "MeanReversionPOC_v2",
                OrderType.LIMIT,
                last - 6,
                last + 8,
                limit_ticks=last + 2,
            ),
            rig.session.clock_ns(),
        )
        # 90 s: longer than the watch holds the market for a position left unprotected
        await rig.wait(lambda: not entry.status.is_open, 90, "the limit entry to fill")
        assert entry.status is OrderStatus.FILLED, entry.reason
        venue_entry = next(
            o
            for o in rig.sim.venue.orders.values()
            if (o.custom_tag or "").startswith(entry.id + "@") and o.fills
        )
        assert len(venue_entry.fills) >= 2 and entry.filled_qty == 4  # filled in parts
        await rig.wait(
            lambda: not stop.status.is_open and not target.status.is_open, 90, "the exit"
        )

    # A thin book (one contract per print): the 4-lot entry fills in parts whatever the timing.
    faults = SimFaults(position_brackets=True, limit_fill_per_print=1)
    rig = asyncio.run(run_rig(body, faults))
    check_invariants(rig, max_position=4)


def test_shadow_mode_sends_nothing() -> None:
    async def body(rig: Rig) -> None:
        entry, _, _ = rig.bracket()
        assert entry.status is OrderStatus.REJECTED and "shadow" in entry.reason
        await asyncio.sleep(0.5)

    rig = asyncio.run(run_rig(body, session_kwargs={"shadow": True}))
    assert rig.sim.counters["place"] == 0 and rig.broker.sent == []


def test_a_flatten_never_opens_a_position_when_the_venue_is_already_flat(tmp_path: Path) -> None:
    """The trader closes the position by hand at the venue; the kill switch flattens before the
    journal has taken the venue's report. A market exit would open a short: the engine sends
    none and says why; then the venue's trade closes the journal's position (manual exit)."""

    async def body(rig: Rig) -> None:
        contract = parse_symbol(rig.broker.symbol)
        engine = open_execution(contract, tmp_path, RiskConfig(), broker=lambda c, n: rig.broker)
        now = rig.session.clock_ns()
        engine.start_session("2024-01-02", now)  # the rig starts at its RTH open
        decision = TradeDecision(
            action="enter", side="long", entry_condition_id="MeanReversionPOC_v2"
        )
        result = engine.process_trade_decision(decision, now, rig.last(), regime="range")
        assert result.accepted, result.reason

        def position_qty() -> int:
            engine.process_broker_events()
            trade = engine.position()
            return 0 if trade is None else int(trade.qty)

        await rig.wait(lambda: position_qty() > 0, 60, "the entry fill")
        pid = rig.broker.contract_id
        await rig.session.http.close_position(rig.session.account.id, pid)
        await rig.wait(
            lambda: rig.broker.positions() == [] and rig.sim.venue.positions[pid].qty == 0,
            60,
            "the manual close",
        )
        trade = engine.position()  # the venue's report is not journaled yet
        assert trade is not None and trade.qty > 0
        sent = len(rig.broker.sent)
        engine.set_kill_switch(True, "trader", "cli", rig.session.clock_ns())
        assert len(rig.broker.sent) == sent  # no exit order
        assert any("not exiting" in p and "venue holds 0" in p for p in engine.problems)
        await rig.wait(lambda: position_qty() == 0, 20, "the manual close journaled")
        assert rig.sim.venue.positions[pid].qty == 0
        closed = engine.ledger.closed[-1]
        assert closed.exit_reason == "manual at venue"

    rig = asyncio.run(run_rig(body))
    assert rig.watch.max_abs_position <= 1


def test_a_stop_cancelled_at_the_venue_is_re_placed() -> None:
    """The venue cancels our working stop while the position is open (a trader, a venue
    reset): the broker re-places it under a new tag on the order event, and the legs still end
    with the position (no orphan order of ours)."""

    async def body(rig: Rig) -> None:
        entry, stop, target = rig.bracket(stop=40, target=40)
        venue = rig.sim.venue
        await rig.wait(
            lambda: entry.status is OrderStatus.FILLED and stop.venue_order_id is not None,
            30,
            "the entry fill and its stop at the venue",
        )
        lost = int(stop.venue_order_id or 0)
        venue.cancel({"accountId": venue.account.id, "orderId": lost})

        def restored() -> bool:
            return any(
                o.custom_tag == f"{stop.id}@{rig.session.run_id}/r1"
                and o.status == PxOrderStatus.OPEN
                and o.stop_ticks == stop.stop_ticks
                and o.size == 1
                for o in list(venue.orders.values())
            )

        await rig.wait(restored, 30, "the stop re-placed at the venue")
        recoveries: list[VenueRecovery] = []

        def reported() -> bool:  # the hub can show the new order before Order/place answers
            events = rig.broker.drain_events()
            recoveries.extend(e for e in events if isinstance(e, VenueRecovery))
            return bool(recoveries)

        await rig.wait(reported, 30, "the re-placement reported")
        assert stop.status.is_open and stop.venue_order_id != str(lost)
        assert [r.what for r in recoveries] == ["stop_replaced"]
        pid = rig.broker.contract_id
        await rig.session.http.close_position(rig.session.account.id, pid)
        await rig.wait(
            lambda: (
                not stop.status.is_open
                and not target.status.is_open
                and not any(
                    o.status == PxOrderStatus.OPEN
                    for o in venue.orders.values()
                    if (o.custom_tag or "").startswith("ES-") or o.parent_id is not None
                )
            ),
            30,
            "no working order of ours once flat, in our books and at the venue",
        )

    rig = asyncio.run(run_rig(body, speed=5.0))
    assert rig.watch.duplicate_tags() == []
    assert rig.watch.max_abs_position <= 1


def test_a_cancel_that_failed_is_sent_again_while_the_order_works() -> None:
    """A cancel of one of our legs fails (HTTP 500): the order still works at the venue, so the
    next reconciliation sends the cancel again; no orphan leg is left working."""

    async def body(rig: Rig) -> None:
        entry, stop, _target = rig.bracket(stop=40, target=40)
        await rig.wait(
            lambda: entry.status is OrderStatus.FILLED and stop.venue_order_id is not None,
            30,
            "the entry fill and its stop at the venue",
        )
        venue_stop = rig.sim.venue.orders[int(stop.venue_order_id or 0)]
        faults = rig.sim.faults
        rig.sim.faults = dataclasses.replace(faults, http_500_rate=1.0)
        rig.broker.cancel(stop.id, "test: cancel the stop")
        await rig.wait(
            lambda: any(f"cancel of {stop.id} not confirmed" in p for p in rig.broker.problems),
            30,
            "the cancel to fail",
        )
        assert venue_stop.status == PxOrderStatus.OPEN
        rig.sim.faults = faults
        await rig.wait(
            lambda: venue_stop.status == PxOrderStatus.CANCELLED, 30, "the cancel sent again"
        )
        await rig.session.http.close_position(rig.session.account.id, rig.broker.contract_id)

    asyncio.run(run_rig(body, speed=5.0))


def test_a_reconciliation_during_the_re_placement_keeps_the_stop_open() -> None:
    """The venue cancels our stop; while the re-placement is on its way (the position is being
    read), a reconciliation routes the cancelled venue order again (Order/search lists it).
    The stop stays open in our books (so the journal never calls it cancelled while a
    re-placed stop of ours works at the venue) and is re-placed once."""

    async def body(rig: Rig) -> None:
        entry, stop, _target = rig.bracket(stop=40, target=40)
        venue = rig.sim.venue
        await rig.wait(
            lambda: entry.status is OrderStatus.FILLED and stop.venue_order_id is not None,
            30,
            "the entry fill and its stop at the venue",
        )
        release = asyncio.Event()
        held_now = rig.broker._held_now

        async def slow_held_now() -> int:  # the position read, held until the test says
            await release.wait()
            return await held_now()

        rig.broker._held_now = slow_held_now  # type: ignore[method-assign]
        lost = int(stop.venue_order_id or 0)
        venue.cancel({"accountId": venue.account.id, "orderId": lost})
        link = rig.broker.links[stop.id]
        await rig.wait(lambda: link.restoring, 30, "the re-placement under way")
        await rig.wait(
            lambda: rig.session.venue_orders[lost].status is PxOrderStatus.CANCELLED,
            30,
            "the cancel at the venue heard",
        )
        rig.session._route_order(rig.session.venue_orders[lost])  # as a reconciliation does
        assert stop.status.is_open
        release.set()
        await rig.wait(
            lambda: stop.venue_order_id not in (None, str(lost)), 30, "the stop re-placed"
        )
        assert stop.status.is_open
        updates = [e for e in rig.broker.drain_events() if isinstance(e, OrderUpdate)]
        assert not [u for u in updates if u.order_id == stop.id and not u.status.is_open]
        await rig.session.http.close_position(rig.session.account.id, rig.broker.contract_id)

    rig = asyncio.run(run_rig(body, speed=5.0))
    assert rig.watch.duplicate_tags() == []
