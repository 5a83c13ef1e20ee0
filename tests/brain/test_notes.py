from __future__ import annotations

from fabio.brain.notes import notes_from_records
from fabio.timeutil import parse_at


def rec(at: str, regime: str, notes: list[str], strategy: str | None = None,
        symbol: str = "ESH4") -> dict[str, object]:
    return {
        "type": "llm_exchange", "symbol": symbol, "market_time_ns": parse_at(at),
        "decision": {"market_assessment": {"regime": regime, "chosen_model": strategy},
                     "notes_to_future_self": notes},
    }


def test_relevance_order_dedupe_and_bounds() -> None:
    records = [
        rec("2024-03-04 10:00", "trend", ["Trend days: do not fade VAH"]),
        rec("2024-03-05 10:00", "range", ["Range: fade the edges"], "MeanReversionPOC_v2"),
        rec("2024-03-05 11:00", "trend", ["trend days: do NOT fade  VAH"]),  # duplicate
        rec("2024-03-05 12:00", "chop", ["Chop: stand aside"]),
        rec("2024-03-06 09:00", "trend", ["written later"]),  # after now: excluded
        rec("2024-03-05 12:30", "trend", ["other symbol"], symbol="NQH4"),
        {"type": "fill", "symbol": "ESH4"},
    ]
    now = parse_at("2024-03-05 14:00")
    notes = notes_from_records(records, "ESH4", now, regime="trend")
    texts = [n.text for n in notes]
    assert texts[0] == "trend days: do NOT fade  VAH"  # same regime first, newest copy kept
    assert "written later" not in texts and "other symbol" not in texts
    assert len(texts) == 3
    assert notes_from_records(records, "ESH4", now, limit=1)[0].text == "Chop: stand aside"
    by_strategy = notes_from_records(records, "ESH4", now, strategies={"MeanReversionPOC_v2"})
    assert by_strategy[0].text == "Range: fade the edges"
    assert notes[0].sessions_ago == 0
    first = notes_from_records(records[:1], "ESH4", now)[0]
    assert first.sessions_ago == 1


def test_notes_carry_their_later_outcome() -> None:
    from fabio.execution.types import ClosedTrade

    def trade(at: str, pnl: float) -> ClosedTrade:
        ns = parse_at(at)
        return ClosedTrade("t", "ESH4", "MeanReversionPOC_v2", "range", 1, 1, "2024-03-05", ns,
                           ns, 5000.0, 5001.0, pnl, 2.8, pnl - 2.8, 1.0, "target")

    records = [rec("2024-03-05 10:00", "range", ["fade the edges"], "MeanReversionPOC_v2")]
    closed = [trade("2024-03-05 09:00", -500.0), trade("2024-03-05 10:30", 300.0),
              trade("2024-03-05 11:00", 200.0)]
    [note] = notes_from_records(records, "ESH4", parse_at("2024-03-05 14:00"),
                                closed_trades=closed)
    assert note.outcome == "MeanReversionPOC_v2 after this note: 2 trades, 2 won, net $494"
