"""The simulator's test-only venue actions over real sockets: /sim/close, /sim/cancel, pause."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from fabio.brokers.projectx.models import PxOrderStatus, PxOrderType

from .harness import Rig, run_rig


async def _post(rig: Rig, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=rig.server.url, timeout=10) as client:
        reply = await client.post(path, json=body)
        reply.raise_for_status()
        data: dict[str, Any] = reply.json()
        return data


def test_a_trader_closes_the_position_by_hand() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    async def body(rig: Rig) -> None:
        rig.sim.observers.append(lambda target, payload: seen.append((target, payload)))
        rig.bracket(stop=40, target=40)
        cid = rig.broker.contract_id
        await rig.wait(lambda: rig.sim.venue.positions.get(cid) is not None, 10, "the fill")
        await rig.wait(lambda: rig.sim.venue.positions[cid].qty == 1, 10, "the position")
        seen.clear()
        answer = await _post(rig, "/sim/close", {"contractId": cid})
        assert answer["success"] is True
        order = rig.sim.venue.orders[answer["orderId"]]
        assert order.custom_tag is None and order.origin == "manual"
        assert rig.sim.venue.positions[cid].qty == 0
        # Announced on the user hub like any order: the order, its trade, the position.
        targets = [t for t, _ in seen]
        assert {"GatewayUserOrder", "GatewayUserTrade", "GatewayUserPosition"} <= set(targets)
        trade = next(p for t, p in seen if t == "GatewayUserTrade")
        assert trade["orderId"] == order.id and trade["side"] == 1 and trade["size"] == 1
        # The session hears it too (its hub view of the venue is flat).
        await rig.wait(
            lambda: (p := rig.session.venue_positions.get(cid)) is not None and p.qty == 0,
            10,
            "the session to see the hand-made close",
        )
        log = {o["id"]: o for o in rig.sim.venue.order_log()}
        assert log[order.id]["origin"] == "manual" and log[order.id]["customTag"] is None
        assert all(o["origin"] == "api" for i, o in log.items() if i != order.id)
        refused = await _post(rig, "/sim/close", {"contractId": cid})
        assert refused["success"] is False and refused["errorMessage"] == "Position not found"

    asyncio.run(run_rig(body))


def test_the_venue_cancels_the_stop_and_keeps_matching_the_target() -> None:
    async def body(rig: Rig) -> None:
        rig.bracket(stop=40, target=4)
        cid = rig.broker.contract_id
        venue = rig.sim.venue

        def working_stops() -> list[int]:
            return [
                o.id
                for o in venue.orders.values()
                if o.contract_id == cid
                and o.type == PxOrderType.STOP
                and o.status == PxOrderStatus.OPEN
            ]

        await rig.wait(lambda: len(working_stops()) == 1, 10, "the stop to work")
        (stop_id,) = working_stops()
        answer = await _post(rig, "/sim/cancel", {"contractId": cid})
        assert answer == {
            "success": True,
            "errorCode": 0,
            "errorMessage": None,
            "cancelled": [stop_id],
        }
        assert venue.orders[stop_id].status == PxOrderStatus.CANCELLED
        assert "by hand" in venue.orders[stop_id].reason
        again = await _post(rig, "/sim/cancel", {"orderId": stop_id})
        assert again["cancelled"] == []  # no longer working
        unknown = await _post(rig, "/sim/cancel", {"orderId": 1})
        assert unknown["success"] is False
        # The target still works and fills from the tape.
        await rig.wait(lambda: venue.positions[cid].qty == 0, 30, "the target to fill")

    asyncio.run(run_rig(body))


def test_pause_holds_market_time_and_resume_skips_the_pause() -> None:
    async def body(rig: Rig) -> None:
        replay = rig.sim.replay
        assert replay is not None
        began = time.monotonic()
        await _post(rig, "/sim/pause", {})
        await asyncio.sleep(0.1)  # a frame already under way may still land
        held = replay.stats.market_ns
        await asyncio.sleep(0.5)
        assert replay.stats.market_ns == held
        await _post(rig, "/sim/resume", {})
        await rig.wait(lambda: replay.stats.market_ns > held, 10, "the replay to go on")
        # No burst: the paused 0.6 s (or more) of wall did not pass in market time.
        elapsed = time.monotonic() - began
        assert replay.stats.market_ns - held < (elapsed - 0.5) * replay.speed * 1e9

    asyncio.run(run_rig(body))
