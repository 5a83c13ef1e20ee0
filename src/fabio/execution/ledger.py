"""The execution state as a fold over journal records (event sourcing, crash-only).

Everything that matters is journaled as it happens, one JSON line per record, in
`logs/execution.jsonl`: `strategy_change` (accepted or refused), `entry` (an accepted entry with
its strategy, regime, bracket and initial risk), `fill`, `session` (start/end of a trade date),
`kill`, plus informational `order_event` and `decision` records. The state (strategy_state,
trades per session, open positions, closed trades, performance, the risk engine's account) is
*derived* by `Ledger.apply`, record by record — at run time as records are written, and on
restart by replaying the file. So start-up and crash recovery are one code path, and a process
killed at any instant restarts into exactly what it had journaled: a trade exists only through
its fill records, so it can be neither counted twice nor lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fabio.execution.performance import performance_by_strategy
from fabio.execution.risk import RiskEngine
from fabio.execution.strategy_book import GuardrailConfig, StrategyBook, StrategyChange
from fabio.execution.types import ClosedTrade, OrderRole
from fabio.instruments import InstrumentSpec
from fabio.strategies import StrategyParams, StrategyPerformance


@dataclass(slots=True)
class OpenTrade:
    """A trade between its entry record and the fill that makes it flat."""

    trade_id: str
    symbol: str
    strategy: str
    regime: str | None
    side: int
    trade_date: str
    stop_ticks: int
    target_ticks: int
    risk_ticks: int
    qty: int = 0  # signed filled quantity
    entry_qty: int = 0
    entry_value: float = 0.0  # sum of qty * price over entry fills
    exit_qty: int = 0
    exit_value: float = 0.0
    fees: float = 0.0
    entry_ns: int | None = None
    last_exit_role: str = ""

    @property
    def avg_entry(self) -> float:
        return self.entry_value / self.entry_qty if self.entry_qty else 0.0


@dataclass(slots=True)
class Ledger:
    """Strategy book, positions, closed trades and the risk account, rebuilt from records."""

    spec: InstrumentSpec
    book: StrategyBook
    risk: RiskEngine
    symbol: str | None = None  # fold only this symbol's records (the risk engine may be shared)
    open_trades: dict[str, OpenTrade] = field(default_factory=dict)
    closed: list[ClosedTrade] = field(default_factory=list)
    trade_date: str | None = None
    records_applied: int = 0
    last_ts_ns: int = 0
    # Ids written twice (two processes on one journal): flagged, never folded silently.
    conflicts: list[str] = field(default_factory=list)
    _trade_ids: set[str] = field(default_factory=set)
    _order_ids: dict[str, str] = field(default_factory=dict)
    _perf_key: tuple[int, str | None] | None = None
    _perf: dict[str, StrategyPerformance] = field(default_factory=dict)

    @classmethod
    def new(cls, spec: InstrumentSpec, defaults: dict[str, StrategyParams], risk: RiskEngine,
            guardrails: GuardrailConfig | None = None, symbol: str | None = None) -> Ledger:
        return cls(spec, StrategyBook(defaults, guardrails), risk, symbol=symbol)

    # ---------------------------------------------------------------- the fold
    def apply(self, rec: dict[str, Any]) -> None:
        if self.symbol is not None and rec.get("symbol") not in (None, self.symbol):
            return
        kind = rec.get("type")
        handler = _HANDLERS.get(str(kind))
        if handler is not None:
            handler(self, rec)
        self.records_applied += 1
        self.last_ts_ns = max(self.last_ts_ns, int(rec.get("ts_ns") or 0))

    def _strategy_change(self, rec: dict[str, Any]) -> None:
        self.book.apply_change(StrategyChange(
            ts_ns=int(rec["ts_ns"]), strategy=rec["strategy"], field=rec["field"],
            old=rec.get("old"), proposed=rec.get("proposed"), new=rec.get("new"),
            accepted=bool(rec.get("accepted")), reason=str(rec.get("reason", "")),
            source=str(rec.get("source", "")),
        ))

    def _check_ids(self, rec: dict[str, Any]) -> None:
        where = f"record {self.records_applied + 1} ({rec.get('type')}, ts_ns {rec.get('ts_ns')})"
        trade_id = str(rec.get("trade_id"))
        if rec.get("type") == "entry":
            if trade_id in self._trade_ids:
                self.conflicts.append(f"{where}: duplicate trade id {trade_id}")
            self._trade_ids.add(trade_id)
        orders = rec.get("orders")
        for order_id in orders if isinstance(orders, list) else []:
            first = self._order_ids.get(str(order_id))
            if first is not None:
                self.conflicts.append(f"{where}: duplicate order id {order_id} (first used by "
                                      f"{first})")
            self._order_ids[str(order_id)] = trade_id

    def _entry(self, rec: dict[str, Any]) -> None:
        self._check_ids(rec)
        self.open_trades[rec["trade_id"]] = OpenTrade(
            trade_id=rec["trade_id"], symbol=rec["symbol"], strategy=rec["strategy"],
            regime=rec.get("regime"), side=int(rec["side"]),
            trade_date=str(rec.get("trade_date") or self.trade_date or ""),
            stop_ticks=int(rec["stop_ticks"]), target_ticks=int(rec["target_ticks"]),
            risk_ticks=max(1, int(rec["risk_ticks"])),
        )
        self.book.record_entry(rec["strategy"])

    def _fill(self, rec: dict[str, Any]) -> None:
        trade = self.open_trades.get(rec["trade_id"])
        if trade is None:
            return  # a fill of a trade already closed or never opened: nothing to fold
        qty, side, price = int(rec["qty"]), int(rec["side"]), int(rec["price_ticks"])
        trade.fees += float(rec.get("commission_usd", 0.0))
        if rec.get("role") == OrderRole.ENTRY.value:
            trade.entry_qty += qty
            trade.entry_value += qty * price
            trade.entry_ns = trade.entry_ns or int(rec["ts_ns"])
        else:
            trade.exit_qty += qty
            trade.exit_value += qty * price
            trade.last_exit_role = str(rec.get("reason") or rec.get("role"))
        trade.qty += side * qty
        if trade.qty == 0 and trade.exit_qty > 0 and trade.exit_qty >= trade.entry_qty:
            self._close(trade, int(rec["ts_ns"]))

    def _close(self, trade: OpenTrade, ts_ns: int) -> None:
        avg_exit = trade.exit_value / trade.exit_qty
        ticks = (avg_exit - trade.avg_entry) * trade.side
        gross = ticks * trade.entry_qty * self.spec.tick_value
        net = gross - trade.fees
        closed = ClosedTrade(
            trade_id=trade.trade_id, symbol=trade.symbol, strategy=trade.strategy,
            regime=trade.regime, side=trade.side, qty=trade.entry_qty,
            trade_date=trade.trade_date, entry_ns=trade.entry_ns or ts_ns, exit_ns=ts_ns,
            entry_price=round(self.spec.to_price(trade.avg_entry), 6),
            exit_price=round(self.spec.to_price(avg_exit), 6),
            gross_pnl_usd=round(gross, 2), fees_usd=round(trade.fees, 2),
            net_pnl_usd=round(net, 2), r_multiple=round(ticks / trade.risk_ticks, 3),
            exit_reason=trade.last_exit_role,
        )
        self.closed.append(closed)
        del self.open_trades[trade.trade_id]
        self.risk.on_trade_closed(closed.net_pnl_usd, ts_ns)

    def _session(self, rec: dict[str, Any]) -> None:
        trade_date = str(rec["trade_date"])
        if rec.get("event") == "start":
            if self.trade_date != trade_date:
                self.book.new_session()
            self.trade_date = trade_date
            self.risk.start_day(trade_date, int(rec["ts_ns"]))
        else:
            self.risk.end_day(trade_date)

    def _cancelled_entry(self, rec: dict[str, Any]) -> None:
        trade = self.open_trades.get(rec["trade_id"])
        if trade is not None and trade.entry_qty == 0:
            del self.open_trades[rec["trade_id"]]  # never filled: no trade

    def _bracket_modified(self, rec: dict[str, Any]) -> None:
        trade = self.open_trades.get(rec["trade_id"])
        if trade is not None:
            trade.stop_ticks = int(rec.get("stop_ticks", trade.stop_ticks))
            trade.target_ticks = int(rec.get("target_ticks", trade.target_ticks))

    def _order_event(self, rec: dict[str, Any]) -> None:
        if rec.get("event") == "reprotected":
            self._check_ids(rec)

    def _kill(self, rec: dict[str, Any]) -> None:
        self.risk.kill(str(rec.get("reason", "kill switch")))

    # ---------------------------------------------------------------- views
    def performance(self) -> dict[str, StrategyPerformance]:
        """Per-strategy results; recomputed only when a trade closes or the trade date moves."""
        key = (len(self.closed), self.trade_date)
        if key != self._perf_key:
            self._perf = performance_by_strategy(self.closed, self.trade_date)
            self._perf_key = key
        return self._perf

    def position_of(self, symbol: str) -> OpenTrade | None:
        for trade in self.open_trades.values():
            if trade.symbol == symbol and (trade.qty != 0 or trade.entry_qty == 0):
                return trade
        return None

    def summary(self) -> dict[str, Any]:
        return {
            "records_applied": self.records_applied,
            "trade_date": self.trade_date,
            "strategy_state": {k: v.model_dump() for k, v in self.book.strategy_state.items()},
            "trades_this_session": dict(self.book.trades_this_session),
            "open_trades": [
                {"trade_id": t.trade_id, "strategy": t.strategy, "side": t.side, "qty": t.qty,
                 "avg_entry": self.spec.to_price(t.avg_entry) if t.entry_qty else None,
                 "stop": self.spec.to_price(t.stop_ticks),
                 "target": self.spec.to_price(t.target_ticks)}
                for t in self.open_trades.values()
            ],
            "closed_trades": len(self.closed),
            "net_pnl_usd": round(sum(t.net_pnl_usd for t in self.closed), 2),
            "strategy_performance": {k: v.model_dump() for k, v in self.performance().items()},
            "risk": self.risk.to_dict(),
        }


_HANDLERS = {
    "strategy_change": Ledger._strategy_change,
    "entry": Ledger._entry,
    "fill": Ledger._fill,
    "session": Ledger._session,
    "entry_cancelled": Ledger._cancelled_entry,
    "kill": Ledger._kill,
    "order_event": Ledger._order_event,
    "bracket_modified": Ledger._bracket_modified,
}
