"""Parsing from the documented payloads (PROJECTX.md §1.5, §2.2, §2.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabio.brokers.projectx.errors import ParseError
from fabio.brokers.projectx.models import PxContract, PxOrderSide, PxOrderStatus, PxOrderType
from fabio.brokers.projectx.parsing import (
    QuoteBook,
    format_ts,
    hub_args,
    parse_contract,
    parse_depth,
    parse_fill,
    parse_market_trades,
    parse_order,
    parse_position,
    parse_ts,
    records,
    select_contract,
)

CID = "CON.F.US.EP.Z25"
TRADE = {
    "symbolId": "F.US.EP",
    "price": 5000.25,
    "timestamp": "2025-06-02T14:30:00.1234567+00:00",
    "type": 0,
    "volume": 3,
}


def test_trades_as_list_and_single_record() -> None:
    listed, skipped = parse_market_trades(CID, [TRADE, {**TRADE, "type": 1, "volume": 2}])
    single, _ = parse_market_trades(CID, TRADE)
    assert skipped == 0
    assert [t.side for t in listed] == [1, -1]
    assert single == listed[:1]
    assert listed[0].contract_id == CID  # routed by the hub's argument, not the product root
    assert listed[0].ts_ns == parse_ts("2025-06-02T14:30:00+00:00") + 123_456_700


def test_trade_without_type_is_unknown_not_a_buy() -> None:
    rec = {k: v for k, v in TRADE.items() if k != "type"}
    trades, _ = parse_market_trades(CID, [rec, {**TRADE, "type": 7}])
    assert [t.side for t in trades] == [0, 0]


def test_bad_trades_are_skipped_and_counted() -> None:
    trades, skipped = parse_market_trades(
        CID, [TRADE, {**TRADE, "price": None}, {**TRADE, "volume": 0}, "garbage", {"x": 1}]
    )
    assert len(trades) == 1
    assert skipped == 4


def test_unknown_fields_are_ignored() -> None:
    trades, _ = parse_market_trades(CID, {**TRADE, "newField": {"a": 1}})
    assert len(trades) == 1
    order = parse_order(
        {
            "id": 1,
            "accountId": 2,
            "status": 1,
            "type": 1,
            "side": 1,
            "size": 1,
            "contractId": CID,
            "somethingNew": True,
            "fillVolume": 0,
        }
    )
    assert order.type is PxOrderType.LIMIT


def test_quotes_are_sparse_and_merge() -> None:
    book = QuoteBook()
    book.merge(
        CID,
        {
            "symbol": "F.US.EP",
            "bestBid": 5000.0,
            "bestAsk": 5000.25,
            "lastPrice": 5000.0,
            "timestamp": "2025-06-02T14:30:00Z",
        },
    )
    (q,) = book.merge(CID, {"lastPrice": 5000.25, "timestamp": "2025-06-02T14:30:01Z"})
    assert (q.bid, q.ask, q.last) == (5000.0, 5000.25, 5000.25)  # missing bid/ask kept
    (q,) = book.merge(CID, [{"bestBid": None, "bestAsk": 5000.5}])
    assert (q.bid, q.ask) == (5000.0, 5000.5)  # a null never becomes 0
    assert book.current("CON.F.US.ENQ.Z25").bid is None


def test_order_missing_side_is_none_not_buy() -> None:
    rec = {
        "id": 7,
        "accountId": 1,
        "contractId": CID,
        "status": 8,
        "type": 4,
        "size": 1,
        "stopPrice": 4990.0,
        "fillVolume": 0,
        "customTag": "ES-1-stop",
        "creationTimestamp": "2025-06-02T14:30:00.5",
    }
    order = parse_order(rec)
    assert order.side is None
    assert order.status is PxOrderStatus.SUSPENDED and order.status.is_working
    assert order.custom_tag == "ES-1-stop"
    assert parse_order({**rec, "side": 0}).side is PxOrderSide.BID
    assert parse_order({**rec, "filledSize": 1, "fillVolume": None}).fill_volume == 0


def test_order_with_unknown_status_is_an_error() -> None:
    with pytest.raises(ParseError):
        parse_order({"id": 7, "accountId": 1, "status": 42})


def test_position_sign_from_type_and_unknown_type_is_an_error() -> None:
    base = {
        "id": 1,
        "accountId": 2,
        "contractId": CID,
        "size": 2,
        "averagePrice": 5000.5,
        "creationTimestamp": "2025-06-02T14:30:00+00:00",
    }
    assert parse_position({**base, "type": 1}).qty == 2
    assert parse_position({**base, "type": 2}).qty == -2
    with pytest.raises(ParseError):
        parse_position({**base, "type": 0})
    assert parse_position({**base, "type": 0, "size": 0}).qty == 0


def test_fill_opening_has_no_pnl() -> None:
    rec = {
        "id": 9,
        "accountId": 2,
        "contractId": CID,
        "creationTimestamp": "2025-06-02T14:30:00Z",
        "price": 5000.25,
        "profitAndLoss": None,
        "fees": 1.4,
        "side": 1,
        "size": 1,
        "voided": False,
        "orderId": 77,
    }
    f = parse_fill(rec)
    assert f.profit_and_loss is None and f.side is PxOrderSide.ASK and f.order_id == 77


def test_exact_product_match_among_fuzzy_results() -> None:
    def c(cid: str, active: bool = True) -> PxContract:
        return parse_contract(
            {
                "id": cid,
                "name": cid,
                "description": "",
                "tickSize": 0.25,
                "tickValue": 12.5,
                "activeContract": active,
                "symbolId": "",
            }
        )

    found = [
        c("CON.F.US.MES.Z25"),
        c("CON.F.US.JY6.Z25"),
        c("CON.F.US.EP.H26", False),
        c("CON.F.US.EP.Z25"),
        c("CON.F.US.FVA.Z25"),
    ]
    assert select_contract(found, "EP").id == "CON.F.US.EP.Z25"
    assert select_contract(found, "MES").id == "CON.F.US.MES.Z25"
    assert select_contract(found, "ENQ") is None


def test_depth_and_hub_args() -> None:
    levels = parse_depth(
        [
            {"timestamp": "2025-06-02T14:30:00Z", "type": 6, "price": 0, "volume": 0},
            {"type": 3, "price": 5000.25, "volume": 12},
            {"type": 99},
        ]
    )
    assert [lv.type.name for lv in levels] == ["RESET", "BEST_ASK"]
    assert hub_args([CID, [TRADE]]) == (CID, [TRADE])
    assert hub_args([{"id": 1}]) == (None, {"id": 1})
    assert hub_args([]) == (None, None)
    assert records(None) == [] and records("x") == []


@pytest.mark.parametrize(
    ("text", "expected_ns"),
    [
        ("2025-06-02T14:30:00Z", 1748874600 * 10**9),
        ("2025-06-02T14:30:00", 1748874600 * 10**9),  # no offset: UTC
        ("2025-06-02T09:30:00-05:00", 1748874600 * 10**9),
        ("2025-06-02T14:30:00.1234567+00:00", 1748874600 * 10**9 + 123_456_700),
        ("nonsense", None),
        (None, None),
    ],
)
def test_timestamps(text: str | None, expected_ns: int | None) -> None:
    assert parse_ts(text) == expected_ns


@given(st.integers(min_value=0, max_value=4_000_000_000 * 10**9))
def test_format_ts_round_trips_to_100ns(ns: int) -> None:
    assert parse_ts(format_ts(ns)) == ns - ns % 100
