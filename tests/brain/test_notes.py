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
