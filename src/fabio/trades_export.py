"""`fabio trades`: the closed trades of a journal as CSV, Parquet or JSON (read-only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fabio.errors import FabioError
from fabio.instruments import parse_symbol
from fabio.orders import ClosedTrade
from fabio.timeutil import format_ns
from fabio.wiring import journal_symbols, read_state

FORMATS = ("csv", "parquet", "json")
EXECUTION_JOURNAL = "execution.jsonl"


def closed_trades(log_dir: Path, symbol: str | None = None) -> tuple[list[ClosedTrade], list[str]]:
    """Every closed trade in `log_dir/execution.jsonl` (one symbol or all), in exit order.

    The journal is folded in memory exactly as a restart folds it; nothing is written.
    """
    path = log_dir / EXECUTION_JOURNAL
    if not path.exists():
        raise FabioError(f"{path}: no such journal (give the folder with --log-dir)")
    symbols = sorted(journal_symbols(log_dir))
    if symbol is not None:
        wanted = parse_symbol(symbol).symbol
        symbols = [s for s in symbols if s == wanted]
    trades: list[ClosedTrade] = []
    problems: list[str] = []
    for sym in symbols:
        view = read_state(parse_symbol(sym), log_dir)
        trades.extend(view.ledger.closed)
        problems = view.problems
    trades.sort(key=lambda t: (t.exit_ns, t.trade_id))
    return trades, problems


def _rows(trades: list[ClosedTrade]) -> list[dict[str, Any]]:
    rows = []
    for t in trades:
        row = t.to_dict()
        row["entry_time"] = format_ns(t.entry_ns)
        row["exit_time"] = format_ns(t.exit_ns)
        row["side"] = "long" if t.side > 0 else "short"
        rows.append(row)
    return rows


def export_trades(trades: list[ClosedTrade], out: Path, fmt: str | None = None) -> str:
    """Write the trades to `out` as csv, parquet or json (from the suffix unless `fmt`)."""
    import pandas as pd

    chosen = (fmt or out.suffix.lstrip(".")).lower()
    if chosen == "pq":
        chosen = "parquet"
    if chosen not in FORMATS:
        raise FabioError(
            f"{out}: choose the format with a .csv, .parquet or .json name, "
            "or --format csv|parquet|json"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = _rows(trades)
    if chosen == "json":
        out.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
        return chosen
    columns = [*ClosedTrade.__dataclass_fields__, "entry_time", "exit_time"]
    frame = pd.DataFrame(rows, columns=columns)
    if chosen == "csv":
        frame.to_csv(out, index=False)
    else:
        frame.to_parquet(out, index=False)
    return chosen
