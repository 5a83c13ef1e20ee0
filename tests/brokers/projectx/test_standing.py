"""What a stopped live run says it leaves at the venue (the summary's `left_at_venue`)."""

from __future__ import annotations

from fabio.brokers.projectx.models import (
    PxOrder,
    PxOrderSide,
    PxOrderStatus,
    PxOrderType,
    PxPosition,
)
from fabio.brokers.projectx.standing import describe

ES = "CON.F.US.EP.H24"
NQ = "CON.F.US.ENQ.H24"
SYMBOLS = {ES: "ESH4", NQ: "NQH4"}


def order(
    oid: int,
    side: PxOrderSide,
    type_: PxOrderType,
    *,
    cid: str = ES,
    size: int = 1,
    stop: float | None = None,
    limit: float | None = None,
    status: PxOrderStatus = PxOrderStatus.OPEN,
) -> PxOrder:
    return PxOrder(oid, 1, cid, status, type_, side, size, limit, stop, 0, None, None, None, None)


def position(qty: int, price: float, cid: str = ES) -> PxPosition:
    return PxPosition(1, 1, cid, qty, price, None)


def test_a_protected_long_names_its_stop_and_target() -> None:
    orders = [
        order(1, PxOrderSide.ASK, PxOrderType.STOP, size=2, stop=4794.25),
        order(2, PxOrderSide.ASK, PxOrderType.LIMIT, size=2, limit=4810.5),
        order(3, PxOrderSide.ASK, PxOrderType.STOP, stop=4700.0, status=PxOrderStatus.FILLED),
    ]
    (es,) = describe(SYMBOLS, [position(2, 4798.25)], orders)
    assert es.line() == (
        "ESH4 long 2 @ 4798.25: stop 4794.25 (2) and target 4810.5 (2) working at the venue"
    )
    assert es.to_dict()["stops"] == [4794.25]


def test_a_short_without_a_stop_says_so_and_a_flat_contract_names_its_orders() -> None:
    orders = [
        order(5, PxOrderSide.BID, PxOrderType.LIMIT, limit=4790.0),  # the short's target
        order(6, PxOrderSide.BID, PxOrderType.LIMIT, cid=NQ, limit=16000.0),  # a working entry
    ]
    es, nq = describe(SYMBOLS, [position(-1, 4798.0), position(0, 0.0, NQ)], orders)
    assert es.line() == (
        "ESH4 short 1 @ 4798: target 4790 (1) working at the venue; NO working stop for 1"
    )
    assert nq.qty == 0
    assert nq.line() == "NQH4 flat: 1 other order(s) buy limit 1 @ 16000 working at the venue"


def test_nothing_open_is_nothing_to_say() -> None:
    assert describe(SYMBOLS, [position(0, 0.0)], []) == []
