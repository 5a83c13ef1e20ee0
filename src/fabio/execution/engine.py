"""The execution engine: where strategy state and the risk engine govern what reaches the broker.

`process_trade_decision` checks `can_trade`, the reward:risk, the risk engine's size and limits,
builds a bracket (entry plus OCO stop and target) from the decision and the strategy's
parameters, and hands it to the broker. `on_trades` feeds the market to the broker, journals
the fills, and flattens when the risk engine says so (flat time, limits, kill switch). Every
record goes through `emit`: journaled first, then folded into the `Ledger`, which is also what
a restart replays (docs/execution.md).
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fabio.brain.schema import StrategyUpdates, TradeDecision
from fabio.domain import TradeBatch
from fabio.execution.broker import SimBrokerConfig, SimulatedBroker
from fabio.execution.ledger import Ledger, OpenTrade
from fabio.execution.risk import RiskConfig, RiskEngine
from fabio.execution.strategy_book import GuardrailConfig, StrategyChange, TradePermission
from fabio.execution.types import BracketRequest, Fill, OrderRole, OrderStatus, OrderType
from fabio.instruments import Contract
from fabio.journal import Journal, read_journal
from fabio.strategies import StrategyParams, StrategyPerformance, initialize_default_strategies

EXECUTION_JOURNAL = "execution.jsonl"
# Records that are not fsynced one by one (the next state record's fsync carries them).
BUFFERED = frozenset({"decision"})


@dataclass(frozen=True, slots=True)
class ExecResult:
    accepted: bool
    reason: str
    trade_id: str | None = None
    qty: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "reason": self.reason, "trade_id": self.trade_id,
                "qty": self.qty}


class ExecutionEngine:
    """One symbol's execution under an (account-level) risk engine."""

    def __init__(
        self,
        contract: Contract,
        ledger: Ledger,
        broker: SimulatedBroker,
        journal: Journal | None = None,
        min_stop_ticks: int = 4,
        slippage_allowance_ticks: int = 2,
    ) -> None:
        self.contract = contract
        self.symbol = contract.symbol
        self.spec = contract.spec
        self.ledger = ledger
        self.broker = broker
        self.journal = journal
        # A stop can slip (a fast market, a gap, coarse data): entries are sized and checked
        # against the stop distance plus this allowance, and stops closer than the minimum
        # (where slippage would dominate the risk) are refused.
        self.min_stop_ticks = min_stop_ticks
        self.slippage_allowance_ticks = slippage_allowance_ticks
        self.order_trade: dict[str, str] = {}
        self.problems: list[str] = []
        self._next_trade = 1  # `open` continues the journal's numbering

    # ---------------------------------------------------------------- construction
    @classmethod
    def open(
        cls,
        contract: Contract,
        log_dir: Path | None,
        risk_config: RiskConfig | None = None,
        defaults: dict[str, StrategyParams] | None = None,
        guardrails: GuardrailConfig | None = None,
        broker_config: SimBrokerConfig | None = None,
        secrets: tuple[str, ...] = (),
        risk: RiskEngine | None = None,
        min_stop_ticks: int = 4,
        slippage_allowance_ticks: int = 2,
        durable: bool = True,
    ) -> ExecutionEngine:
        """A new engine, or the one the journal in `log_dir` describes (crash-only restart).

        Pass one `risk` engine to several symbols' engines to share the account's limits.
        `durable`: fsync order, fill and position records (decisions stay buffered); a backtest,
        which can be rerun, passes False. A corrupt record inside the journal (not a torn last
        line) stops here with a FabioError naming the file and the line.
        """
        risk = risk or RiskEngine(risk_config or RiskConfig())
        ledger = Ledger.new(contract.spec, defaults or initialize_default_strategies(), risk,
                            guardrails, symbol=contract.symbol)
        journal = None
        problems: list[str] = []
        records: list[dict[str, Any]] = []
        if log_dir is not None:
            path = log_dir / EXECUTION_JOURNAL
            read = read_journal(path)
            read.raise_if_corrupt(path)
            records, problems = read.records, read.problems
            for rec in records:
                ledger.apply(rec)
            problems += [f"{path}: {c}" for c in ledger.conflicts]
            journal = Journal(path, secrets=secrets, fsync=durable, buffered_types=BUFFERED)
        broker = SimulatedBroker(contract.spec, contract.symbol, broker_config,
                                 id_prefix=_next_order_number(records, contract.symbol))
        engine = cls(contract, ledger, broker, journal, min_stop_ticks, slippage_allowance_ticks)
        engine.problems = problems
        engine._next_trade = _next_trade_number(records, contract.symbol)
        engine._reprotect(ledger.last_ts_ns)
        return engine

    def _reprotect(self, now_ns: int) -> None:
        """After a restart, put the stop and target back on a journaled open position."""
        for trade in list(self.ledger.open_trades.values()):
            if trade.symbol != self.symbol:
                continue
            if trade.qty == 0:  # an entry that never filled: its order died with the process
                self.emit({"type": "entry_cancelled", "ts_ns": now_ns, "trade_id": trade.trade_id,
                           "reason": "restart: the pending entry order was not restored"})
                continue
            orders = self.broker.protect(
                side=trade.side, qty=abs(trade.qty), stop_ticks=trade.stop_ticks,
                target_ticks=trade.target_ticks, strategy=trade.strategy, now_ns=now_ns,
            )
            for order in orders:
                self.order_trade[order.id] = trade.trade_id
            self.emit({"type": "order_event", "ts_ns": now_ns, "trade_id": trade.trade_id,
                       "event": "reprotected", "orders": [o.id for o in orders]})

    # ---------------------------------------------------------------- records
    def emit(self, rec: dict[str, Any]) -> None:
        """Journal first, then fold: the state never holds what the journal lacks."""
        rec.setdefault("symbol", self.symbol)
        if self.journal is not None:
            self.journal.append(rec)
        self.ledger.apply(rec)

    # ---------------------------------------------------------------- the spec's API
    @property
    def strategy_state(self) -> dict[str, StrategyParams]:
        return self.ledger.book.strategy_state

    def can_trade(self, strategy: str) -> TradePermission:
        return self.ledger.book.can_trade(strategy)

    def get_performance_stats(self) -> dict[str, StrategyPerformance]:
        return self.ledger.performance()

    def apply_strategy_updates(
        self, updates: StrategyUpdates, now_ns: int, source: str = "brain"
    ) -> list[StrategyChange]:
        open_strategies = {t.strategy for t in self.ledger.open_trades.values() if t.qty != 0}
        changes = self.ledger.book.apply_strategy_updates(
            updates, now_ns, self.get_performance_stats(), open_strategies, source
        )
        for change in changes:
            if self.journal is not None:
                self.journal.append({**change.to_record(), "symbol": self.symbol})
        return changes

    def position(self) -> OpenTrade | None:
        return self.ledger.position_of(self.symbol)

    def process_trade_decision(
        self, decision: TradeDecision, now_ns: int, last_price_ticks: int,
        regime: str | None = None,
    ) -> ExecResult:
        """Carry out one validated trade decision, or refuse it with the reason (journaled)."""
        if decision.action == "enter":
            result = self._enter(decision, now_ns, last_price_ticks, regime)
        elif decision.action == "exit":
            result = self._exit(now_ns, f"brain exit: {decision.reason}"[:200])
        else:
            result = self._modify(decision, now_ns)
        self.emit({"type": "decision", "ts_ns": now_ns, "action": decision.action,
                   "strategy": decision.entry_condition_id, "side": decision.side,
                   **result.to_dict()})
        return result

    # ---------------------------------------------------------------- entries
    def _enter(self, d: TradeDecision, now_ns: int, last: int, regime: str | None) -> ExecResult:
        strategy = d.entry_condition_id or ""
        permission = self.can_trade(strategy)
        if not permission.ok:
            return ExecResult(False, permission.reason)
        if self.position() is not None:
            return ExecResult(False, f"a {self.symbol} position or entry is already open")
        params = self.strategy_state[strategy]
        side = 1 if d.side == "long" else -1
        plan = self._bracket_ticks(d, side, last, params)
        if isinstance(plan, str):
            return ExecResult(False, plan)
        entry_ref, stop, target = plan
        stop_dist = side * (entry_ref - stop)
        if stop_dist < self.min_stop_ticks:
            return ExecResult(False, f"stop {stop_dist} ticks away is closer than the minimum "
                                     f"{self.min_stop_ticks}: slippage would dominate the risk")
        risk_ticks = stop_dist + self.slippage_allowance_ticks
        rf = min(d.risk_fraction or params.risk_fraction, params.risk_fraction)
        sized = self.ledger.risk.size(self.spec, rf, risk_ticks)
        if sized.qty <= 0:
            return ExecResult(False, sized.reason)
        qty, reason = self._fit(sized.qty, risk_ticks, now_ns)
        if qty <= 0:
            return ExecResult(False, reason)
        trade_id = f"{self.symbol}-T{self._next_trade}"
        request = BracketRequest(
            symbol=self.symbol, side=side, qty=qty, strategy=strategy,
            entry_type=OrderType.LIMIT if d.order_type == "limit" else OrderType.MARKET,
            stop_ticks=stop, target_ticks=target,
            limit_ticks=entry_ref if d.order_type == "limit" else None,
        )
        orders = self.broker.submit_bracket(request, now_ns)
        if not orders or orders[0].status is OrderStatus.REJECTED:
            reason = orders[0].reason if orders else "the broker returned no order"
            return ExecResult(False, f"broker rejected the bracket: {reason}")
        self._next_trade += 1
        for order in orders:
            self.order_trade[order.id] = trade_id
        self.emit({
            "type": "entry", "ts_ns": now_ns, "trade_id": trade_id, "strategy": strategy,
            "regime": regime, "side": side, "qty": qty, "entry_type": request.entry_type.value,
            "entry_ref_ticks": entry_ref, "stop_ticks": stop, "target_ticks": target,
            "risk_ticks": stop_dist, "risk_usd": round(qty * stop_dist * self.spec.tick_value, 2),
            "trade_date": self.ledger.trade_date, "orders": [o.id for o in orders],
        })
        return ExecResult(True, f"bracket sent: {qty} x {d.side}", trade_id, qty)

    def _fit(self, qty: int, risk_ticks: int, now_ns: int) -> tuple[int, str]:
        """The largest size up to `qty` the risk engine allows (0 and its reason if none)."""
        reason = ""
        for q in range(qty, 0, -1):
            verdict = self.ledger.risk.check_entry(self.spec, q, risk_ticks, now_ns)
            if verdict.ok:
                return q, ""
            reason = verdict.reason
        return 0, reason

    def _bracket_ticks(self, d: TradeDecision, side: int, last: int,
                       params: StrategyParams) -> tuple[int, int, int] | str:
        """(entry reference, stop, target) in ticks, or why not."""
        for name in ("limit_price", "stop_price", "target_price"):
            value = getattr(d, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                return f"{name} {value} is not a finite positive price"
        tick = self.spec.tick_size
        entry = round(d.limit_price / tick) if d.order_type == "limit" and d.limit_price else last
        stop = round(d.stop_price / tick) if d.stop_price else entry - side * params.stop_ticks
        target = (round(d.target_price / tick) if d.target_price
                  else entry + side * params.target_ticks)
        stop_dist = side * (entry - stop)
        target_dist = side * (target - entry)
        if stop_dist <= 0 or target_dist <= 0:
            return "the stop and target must be on either side of the entry"
        if stop_dist > params.stop_ticks:
            return (f"stop {stop_dist} ticks away is wider than the strategy's stop_ticks "
                    f"{params.stop_ticks}")
        rr = target_dist / stop_dist
        if rr < params.min_rr:
            return f"reward:risk {rr:.2f} is below the strategy's min_rr {params.min_rr}"
        return entry, stop, target

    # ---------------------------------------------------------------- exits and changes
    def _exit(self, now_ns: int, reason: str) -> ExecResult:
        trade = self.position()
        if trade is None:
            return ExecResult(False, "no open position to exit")
        if trade.qty == 0:
            for order in self.broker.working():
                if self.order_trade.get(order.id) == trade.trade_id:
                    self.broker.cancel(order.id, reason)
            self.emit({"type": "entry_cancelled", "ts_ns": now_ns, "trade_id": trade.trade_id,
                       "reason": reason})
            return ExecResult(True, "pending entry cancelled", trade.trade_id)
        order = self.broker.submit_exit(-trade.side, abs(trade.qty), trade.strategy, now_ns,
                                        reason)
        self.order_trade[order.id] = trade.trade_id
        return ExecResult(True, f"exit sent: {reason}", trade.trade_id, abs(trade.qty))

    def _modify(self, d: TradeDecision, now_ns: int) -> ExecResult:
        trade = self.position()
        if trade is None or trade.qty == 0:
            return ExecResult(False, "no filled position to modify")
        tick = self.spec.tick_size
        changes: dict[str, int] = {}
        for value in (d.stop_price, d.target_price):
            if value is not None and not (math.isfinite(value) and value > 0):
                return ExecResult(False, f"{value} is not a finite positive price")
        if d.stop_price is not None:
            new_stop = round(d.stop_price / tick)
            if trade.side * (new_stop - trade.stop_ticks) < 0:
                return ExecResult(False, "never a wider stop on an open trade")
            changes["stop_ticks"] = new_stop
        if d.target_price is not None:
            changes["target_ticks"] = round(d.target_price / tick)
        for order in self.broker.working():
            if self.order_trade.get(order.id) != trade.trade_id:
                continue
            if order.role is OrderRole.STOP and "stop_ticks" in changes:
                self.broker.modify(order.id, stop_ticks=changes["stop_ticks"])
            if order.role is OrderRole.TARGET and "target_ticks" in changes:
                self.broker.modify(order.id, limit_ticks=changes["target_ticks"])
        self.emit({"type": "bracket_modified", "ts_ns": now_ns, "trade_id": trade.trade_id,
                   **changes})
        return ExecResult(True, "bracket modified", trade.trade_id)

    def flatten(self, now_ns: int, reason: str) -> None:
        """Cancel pending entries and close the position at market."""
        if self.position() is not None:
            self._exit(now_ns, reason)

    # ---------------------------------------------------------------- market data
    def on_trades(self, trades: TradeBatch) -> list[Fill]:
        """Fill working orders against the trades, journal fills, obey the risk engine."""
        if len(trades) == 0:
            return []
        with self._group():
            fills = self.broker.on_trades(trades)
            for f in fills:
                self._journal_fill(f)
            for event in self.broker.drain_events():
                self._order_event(event)
            self._risk_check(int(trades.ts[-1]), int(trades.price[-1]))
        return fills

    def _group(self) -> AbstractContextManager[None]:
        """Group commit: one fsync for the records of one step."""
        return self.journal.group() if self.journal is not None else nullcontext()

    def _journal_fill(self, f: Fill) -> None:
        trade_id = self.order_trade.get(f.order_id)
        if trade_id is None:
            self.problems.append(f"fill of unknown order {f.order_id}")
            return
        order = self.broker.orders.get(f.order_id)
        reason = order.reason if order is not None and f.role is OrderRole.EXIT else f.role.value
        self.emit({"type": "fill", "ts_ns": f.ts_ns, "trade_id": trade_id, **f.to_dict(),
                   "role": f.role.value, "reason": reason})

    def _order_event(self, event: dict[str, Any]) -> None:
        trade_id = self.order_trade.get(str(event.get("order_id")))
        if self.journal is not None:
            self.journal.append({**event, "type": "order_event", "order_type": event.get("type"),
                                 "symbol": self.symbol, "trade_id": trade_id})
        trade = self.ledger.open_trades.get(trade_id or "")
        status = str(event.get("status"))
        if trade is not None and trade.entry_qty == 0 and status in ("cancelled", "rejected"):
            order = self.broker.orders.get(str(event.get("order_id")))
            if order is not None and order.role is OrderRole.ENTRY:
                self.emit({"type": "entry_cancelled", "ts_ns": int(event.get("ts_ns") or 0),
                           "trade_id": trade_id, "reason": str(event.get("reason", status))})

    def _risk_check(self, now_ns: int, last_ticks: int) -> None:
        risk = self.ledger.risk
        trade = self.position()
        reason = None
        if trade is not None and trade.qty != 0:
            unrealized = trade.side * (last_ticks - trade.avg_entry) * abs(trade.qty) \
                * self.spec.tick_value - trade.fees
            reason = risk.mark(float(unrealized), now_ns)
        reason = reason or risk.must_flatten(now_ns)
        if reason and trade is not None and not self._exit_working(trade.trade_id):
            self.flatten(now_ns, reason)

    def _exit_working(self, trade_id: str) -> bool:
        return any(o.role is OrderRole.EXIT and self.order_trade.get(o.id) == trade_id
                   for o in self.broker.working())

    # ---------------------------------------------------------------- sessions
    def start_session(self, trade_date: str, now_ns: int) -> None:
        if self.ledger.trade_date != trade_date:
            self.emit({"type": "session", "event": "start", "trade_date": trade_date,
                       "ts_ns": now_ns})
        self._flatten_stale(trade_date, now_ns)

    def _flatten_stale(self, trade_date: str, now_ns: int) -> None:
        """A position from an earlier session (a crash left it open) or held past the flat
        time is closed at once, and the journal says why; if it cannot be, trading halts."""
        trade = self.position()
        if trade is None:
            return
        if trade.trade_date and trade.trade_date < trade_date:
            why = (f"restart: {trade.trade_id} from trade date {trade.trade_date} is still open "
                   f"on {trade_date}; TopStep requires flat by the flat time: flattened at once")
        else:
            late = self.ledger.risk.must_flatten(now_ns)
            if late is None or trade.qty == 0:
                return
            why = f"restart: {trade.trade_id} is held past the point of being flat ({late})"
        self.emit({"type": "stale_position", "ts_ns": now_ns, "trade_id": trade.trade_id,
                   "trade_date": trade.trade_date, "qty": trade.qty, "reason": why})
        result = self._exit(now_ns, why)
        order = next((o for o in reversed(list(self.broker.orders.values()))
                      if self.order_trade.get(o.id) == trade.trade_id
                      and o.role is OrderRole.EXIT), None)
        if not result.accepted or (order is not None and order.status is OrderStatus.REJECTED):
            halt = (f"cannot flatten {trade.trade_id} left open from {trade.trade_date}: "
                    f"{result.reason if not result.accepted else order.reason if order else ''}"
                    "; trading halted until it is closed by hand")
            self.problems.append(halt)
            self.emit({"type": "kill", "ts_ns": now_ns, "reason": halt, "source": "engine"})

    def end_session(self, trade_date: str, now_ns: int, last_price_ticks: int | None) -> None:
        """Flat at the session's end: exits fill at its last print, pending orders are cancelled."""
        self.flatten(now_ns, "session end")
        if last_price_ticks is not None:
            for f in self.broker.settle_exits(last_price_ticks, now_ns):
                self._journal_fill(f)
        self.broker.cancel_all("session end", now_ns=now_ns)
        for event in self.broker.drain_events():
            self._order_event(event)
        self.emit({"type": "session", "event": "end", "trade_date": trade_date, "ts_ns": now_ns})


def _numbers(records: list[dict[str, Any]], key: str, marker: str) -> list[int]:
    out = []
    for rec in records:
        values = rec.get(key)
        for v in values if isinstance(values, list) else [values]:
            if isinstance(v, str) and marker in v:
                tail = v.rsplit(marker, 1)[1]
                if tail.isdigit():
                    out.append(int(tail))
    return out


def _next_trade_number(records: list[dict[str, Any]], symbol: str) -> int:
    return max(_numbers(records, "trade_id", f"{symbol}-T"), default=0) + 1


def _next_order_number(records: list[dict[str, Any]], symbol: str) -> int:
    found = _numbers(records, "orders", f"{symbol}-") + _numbers(records, "order_id", f"{symbol}-")
    return max(found, default=0) + 1


