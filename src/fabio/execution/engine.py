"""The execution engine: where strategy state and the risk engine govern what reaches the broker.

It talks to the venue only through the `Broker` port (fabio.ports): it is handed a broker (by the
composition root, fabio.wiring), never builds one, and learns what happened from the broker's
typed events (`process_broker_events`). Every record is a typed event (fabio.events).

`process_trade_decision` checks `can_trade`, the reward:risk, the risk engine's size and limits,
builds a bracket (entry plus OCO stop and target) from the decision and the strategy's
parameters, and hands it to the broker. `on_trades` feeds the market to a market-driven broker
(the simulated venue), journals the fills, and flattens when the risk engine says so (flat time,
limits, kill switch). Every record goes through `emit`: journaled first, then folded into the
`Ledger`, which is also what a restart replays, then published (docs/execution.md). A restart
is `open` (read-only rebuild) followed by exactly one `recover` (re-protection through the port).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fabio.decision import StrategyUpdates, TradeDecision
from fabio.domain import TradeBatch
from fabio.events import (
    BracketModifiedEvent,
    DecisionEvent,
    EntryCancelledEvent,
    EntryEvent,
    Event,
    FillEvent,
    KillSource,
    KillSwitchEvent,
    OrderEvent,
    RecoveryEvent,
    RiskStateEvent,
    SessionEvent,
    StalePositionEvent,
    StrategyChangeEvent,
    Subscriber,
)
from fabio.execution.ledger import Ledger, OpenTrade
from fabio.execution.risk import RiskConfig, RiskEngine
from fabio.execution.strategy_book import GuardrailConfig, StrategyChange, TradePermission
from fabio.instruments import Contract
from fabio.journal import Journal, JournalWriteError, read_journal
from fabio.orders import BracketRequest, Fill, OrderRole, OrderStatus, OrderType
from fabio.ports import (
    Broker,
    MarketDrivenBroker,
    OrderUpdate,
    PositionChanged,
    VenueRecovery,
)
from fabio.strategies import StrategyParams, StrategyPerformance, initialize_default_strategies

EXECUTION_JOURNAL = "execution.jsonl"
# Records that are not fsynced one by one (the next state record's fsync carries them).
BUFFERED = frozenset({"decision"})
# Given the next unused order number of this symbol (from the journal), the venue to trade on.
BrokerFactory = Callable[[int], Broker]


@dataclass(frozen=True, slots=True)
class ExecResult:
    accepted: bool
    reason: str
    trade_id: str | None = None
    qty: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "reason": self.reason,
            "trade_id": self.trade_id,
            "qty": self.qty,
        }


class ExecutionEngine:
    """One symbol's execution under an (account-level) risk engine."""

    def __init__(
        self,
        contract: Contract,
        ledger: Ledger,
        broker: Broker,
        journal: Journal | None = None,
        min_stop_ticks: int = 4,
        slippage_allowance_ticks: int = 2,
        publish: Subscriber | None = None,
    ) -> None:
        self.contract = contract
        self.symbol = contract.symbol
        self.spec = contract.spec
        self.ledger = ledger
        self.broker = broker
        # A venue we feed the tape to (the simulated broker); a live venue fills on its own.
        self._tape_broker = broker if isinstance(broker, MarketDrivenBroker) else None
        self.journal = journal
        self.publish = publish
        # A stop can slip (a fast market, a gap, coarse data): entries are sized and checked
        # against the stop distance plus this allowance, and stops closer than the minimum
        # (where slippage would dominate the risk) are refused.
        self.min_stop_ticks = min_stop_ticks
        self.slippage_allowance_ticks = slippage_allowance_ticks
        self.order_trade: dict[str, str] = dict(ledger.open_orders_by_trade())
        self.problems: list[str] = []
        self.recoveries: list[RecoveryEvent] = []  # what this process did to converge
        self._next_trade = 1  # `open` continues the journal's numbering
        self._recovered = False
        self._catching_up = False
        self._opened_ns = ledger.last_ts_ns  # what the journal knew when this process began
        self._risk_state = (str(ledger.risk.state), ledger.risk.state_reason)
        self._last_ticks: int | None = None  # the last price seen (open P&L, risk to the stop)
        # Set when a journal write failed (disk full): no new order from then on, the open
        # position keeps its stop and target (docs/execution.md, "When the disk is full").
        self.journal_failure: str | None = None
        self._sync_exposure()

    # ---------------------------------------------------------------- construction
    @classmethod
    def open(
        cls,
        contract: Contract,
        log_dir: Path | None,
        broker_factory: BrokerFactory,
        risk_config: RiskConfig | None = None,
        defaults: dict[str, StrategyParams] | None = None,
        guardrails: GuardrailConfig | None = None,
        secrets: tuple[str, ...] = (),
        risk: RiskEngine | None = None,
        min_stop_ticks: int = 4,
        slippage_allowance_ticks: int = 2,
        publish: Subscriber | None = None,
        durable: bool = True,
    ) -> ExecutionEngine:
        """A new engine, or the one the journal in `log_dir` describes (crash-only restart).

        Reads only: call `recover` once afterwards to put protection back on an open position.
        Pass one `risk` engine to several symbols' engines to share the account's limits.
        `durable`: fsync order, fill and position records (decisions stay buffered); a backtest,
        which can be rerun, passes False. A corrupt record inside the journal (not a torn last
        line) stops here with a FabioError naming the file and the line.
        """
        risk = risk or RiskEngine(risk_config or RiskConfig())
        ledger = Ledger.new(
            contract.spec,
            defaults or initialize_default_strategies(),
            risk,
            guardrails,
            symbol=contract.symbol,
        )
        journal = None
        problems: list[str] = []
        records: list[dict[str, Any]] = []
        if log_dir is not None:
            path = log_dir / EXECUTION_JOURNAL
            read = read_journal(path)
            read.raise_if_corrupt(path)
            records, problems = read.records, read.problems
            for rec in records:
                ledger.apply_record(rec)
            problems += [f"{path}: {c}" for c in ledger.conflicts]
            journal = Journal(path, secrets=secrets, fsync=durable, buffered_types=BUFFERED)
        broker = broker_factory(next_order_number(records, contract.symbol))
        engine = cls(
            contract, ledger, broker, journal, min_stop_ticks, slippage_allowance_ticks, publish
        )
        engine.problems = problems
        engine._next_trade = _next_trade_number(records, contract.symbol)
        return engine

    def recover(self, now_ns: int | None = None) -> None:
        """After a restart: close out the dead process's orders, re-protect open positions.

        Runs once per engine (a second call does nothing). A position whose journaled stop and
        target the venue still works (a live venue) keeps them. Otherwise every order the
        journal leaves open ends in a journaled final state (cancelled through the port when
        the venue still has it, else journaled cancelled: the simulated venue died with the
        process), and a fresh OCO stop and target go on the filled position through the port.
        """
        if self._recovered:
            return
        self._recovered = True
        now_ns = self.ledger.last_ts_ns if now_ns is None else now_ns
        # A live venue reports what happened while no process ran (fills of the dead
        # process's orders): journal that first, so a filled order is not called superseded.
        self._catching_up = True
        try:
            self.process_broker_events()
        finally:
            self._catching_up = False
        protected = self._still_protected()
        for kept in sorted(protected):
            trade = self.ledger.open_trades[kept]
            self.recovery(
                now_ns,
                "adopted",
                f"{kept} ({trade.qty:+d} {self.symbol}) kept: its stop and target are "
                "still working at the venue",
                trade_id=kept,
            )
        reason = "restart: superseded, the process that placed it ended"
        for order_id, trade_id in list(self.ledger.open_orders.items()):
            if trade_id in protected:
                continue
            known = self.broker.get_order(order_id)
            if known is not None and known.status.is_open:
                self.broker.cancel(order_id, reason, now_ns=now_ns)
                continue
            self.emit(
                OrderEvent(
                    ts_ns=now_ns,
                    symbol=self.symbol,
                    trade_id=trade_id,
                    order_id=order_id,
                    status=str(OrderStatus.CANCELLED),
                    reason=reason,
                )
            )
        self.process_broker_events()
        for trade in list(self.ledger.open_trades.values()):
            if trade.symbol != self.symbol or trade.trade_id in protected:
                continue
            if trade.qty == 0:  # an entry that never filled: its order died with the process
                self.emit(
                    EntryCancelledEvent(
                        ts_ns=now_ns,
                        symbol=self.symbol,
                        trade_id=trade.trade_id,
                        reason="restart: the pending entry order was not restored",
                    )
                )
                continue
            qty = abs(trade.qty)
            if self._tape_broker is None:  # a live venue owns the position: protect what it holds
                held = sum(p.qty for p in self.broker.positions() if p.symbol == self.symbol)
                if held * trade.side <= 0:
                    self.problems.append(
                        f"restart: {trade.trade_id} ({trade.qty:+d}) is open in the journal but "
                        f"the venue holds {held:+d} {self.symbol} and no venue record explains "
                        "it: not re-protected (reconciliation decides)"
                    )
                    continue
                qty = min(qty, abs(held))
            orders = self.broker.protect(
                side=trade.side,
                qty=qty,
                stop_ticks=trade.stop_ticks,
                target_ticks=trade.target_ticks,
                strategy=trade.strategy,
                now_ns=now_ns,
            )
            for order in orders:
                self.order_trade[order.id] = trade.trade_id
            self.emit(
                OrderEvent(
                    ts_ns=now_ns,
                    symbol=self.symbol,
                    trade_id=trade.trade_id,
                    event="reprotected",
                    orders=[o.id for o in orders],
                )
            )
        self.process_broker_events()

    def _still_protected(self) -> set[str]:
        """Filled trades whose journaled stop and target are both still working at the venue."""
        working: dict[str, set[OrderRole]] = {}
        for order_id, trade_id in self.ledger.open_orders.items():
            order = self.broker.get_order(order_id)
            if trade_id is not None and order is not None and order.status.is_open:
                working.setdefault(trade_id, set()).add(order.role)
        return {
            t
            for t, roles in working.items()
            if {OrderRole.STOP, OrderRole.TARGET} <= roles
            and (trade := self.ledger.open_trades.get(t)) is not None
            and trade.qty != 0
        }

    # ---------------------------------------------------------------- kill switch
    def set_kill_switch(self, engaged: bool, reason: str, source: KillSource, now_ns: int) -> bool:
        """Engage (flatten and halt) or release the kill switch, journaled; False if no change."""
        if self.ledger.risk.kill_switch_engaged == engaged:
            return False
        self.emit(
            KillSwitchEvent(
                ts_ns=now_ns,
                symbol=None,
                engaged=engaged,
                reason=reason.strip()[:300] or "no reason given",
                source=source,
            )
        )
        if engaged:
            self.flatten(now_ns, f"kill switch: {reason}"[:200])
        return True

    def apply_kill_switch_request(self, event: KillSwitchEvent) -> bool:
        """Obey a kill-switch change another process journaled (`fabio kill`): fold, no rewrite.

        False when the request is already folded or changes nothing.
        """
        if event.request_id is not None and event.request_id in self.ledger.kill_requests:
            return False
        changed = self.ledger.risk.kill_switch_engaged != event.engaged
        self.ledger.apply(event)
        if self.publish is not None:
            self.publish(event)
        if changed and event.engaged:
            now = max(self.ledger.last_ts_ns, 0)
            self.flatten(now, f"kill switch: {event.reason}"[:200])
        self._publish_risk_state(self.ledger.last_ts_ns)
        return changed

    # ---------------------------------------------------------------- records
    def emit(self, event: Event) -> None:
        """Journal first, then fold, then publish: the state never holds what the journal lacks.

        A failed write (`JournalWriteError`) halts new orders (`halt_on_journal_failure`) and
        propagates: the event is neither folded nor published."""
        self._append(event.to_record())
        self.ledger.apply(event)
        if isinstance(event, EntryEvent | FillEvent | OrderEvent | EntryCancelledEvent):
            # the entry record turns this symbol's reservation into a working order
            self._sync_exposure(release=isinstance(event, EntryEvent))
        if self.publish is not None:
            self.publish(event)
        self._publish_risk_state(event.ts_ns)

    def _append(self, record: dict[str, Any]) -> None:
        if self.journal is None:
            return
        try:
            self.journal.append(record)
        except JournalWriteError as exc:
            self.halt_on_journal_failure(exc.reason)
            raise

    def halt_on_journal_failure(self, reason: str) -> None:
        """A journal cannot be written (disk full): take no new order from now on. Nothing is
        flattened or cancelled: the open position keeps its stop and target (at the venue in
        live trading) and a restart with space takes it over from the journal."""
        if self.journal_failure is None:
            self.journal_failure = reason
            self.problems.append(f"{reason}: new entries halted, the open position keeps its stop")

    # ---------------------------------------------------------------- the account's exposure
    def _sync_exposure(self, release: bool = False) -> None:
        """Tell the account (the shared risk engine) what this symbol holds and has working."""
        contracts = working = trades = 0
        unrealized = risk = 0.0
        for trade in self.ledger.open_trades.values():
            if trade.symbol != self.symbol:
                continue
            trades += 1
            contracts += abs(trade.qty)
            working += trade.working_qty
            u, r = self._open_pnl_and_risk(trade)
            unrealized += u
            risk += r
        self.ledger.risk.exposure.update(
            self.symbol,
            self.spec,
            contracts=contracts,
            working=working,
            open_trades=trades,
            unrealized_usd=unrealized,
            open_risk_usd=risk,
            release=release,
        )

    def _open_pnl_and_risk(self, trade: OpenTrade) -> tuple[float, float]:
        """A trade's open P&L (net of the fees paid) at the last price, and what it would still
        lose to its stop from there (with the slippage allowance), working entry included."""
        tv, slip = self.spec.tick_value, self.slippage_allowance_ticks
        risk = trade.working_qty * (trade.risk_ticks + slip) * tv
        if trade.qty == 0:
            return 0.0, risk
        last = self._last_ticks
        if last is None:
            last = round(trade.avg_entry)
            unrealized = 0.0
        else:
            unrealized = trade.side * (last - trade.avg_entry) * abs(trade.qty) * tv - trade.fees
        to_stop = max(0, trade.side * (last - trade.stop_ticks)) + slip
        return float(unrealized), risk + abs(trade.qty) * to_stop * tv

    def _publish_risk_state(self, now_ns: int) -> None:
        risk = self.ledger.risk
        current = (str(risk.state), risk.state_reason)
        if current == self._risk_state:
            return
        previous, self._risk_state = self._risk_state, current
        event = RiskStateEvent(
            ts_ns=now_ns,
            symbol=self.symbol,
            state=current[0],
            previous=previous[0],
            reason=current[1],
        )
        self._append(event.to_record())
        if self.publish is not None:
            self.publish(event)

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
        if self.journal_failure is not None:  # a change that cannot be journaled is not made
            return []
        open_strategies = {t.strategy for t in self.ledger.open_trades.values() if t.qty != 0}
        changes = self.ledger.book.apply_strategy_updates(
            updates, now_ns, self.get_performance_stats(), open_strategies, source
        )
        for change in changes:
            self.ledger.track_change(change)  # the book applied it; the times follow it here
            event = StrategyChangeEvent(
                ts_ns=change.ts_ns,
                symbol=self.symbol,
                strategy=change.strategy,
                field=change.field,
                old=change.old,
                proposed=change.proposed,
                new=change.new,
                accepted=change.accepted,
                reason=change.reason,
                source=change.source,
            )
            self._append(event.to_record())  # already applied to the book: not folded
            if self.publish is not None:
                self.publish(event)
        return changes

    def position(self) -> OpenTrade | None:
        return self.ledger.position_of(self.symbol)

    def sized_out(self, strategy: str, stop_distance_ticks: int | None = None) -> str | None:
        """Why the strategy's own `risk_fraction` sizes an entry with this stop (default: the
        minimum stop) to zero contracts, or None (`Ledger.sized_out`)."""
        return self.ledger.sized_out(
            strategy, stop_distance_ticks, self.min_stop_ticks, self.slippage_allowance_ticks
        )

    def sized_out_strategies(self) -> dict[str, str]:
        """Enabled strategies that no setup can trade (sized out even at the minimum stop)."""
        return self.ledger.sized_out_strategies(self.min_stop_ticks, self.slippage_allowance_ticks)

    def process_trade_decision(
        self,
        decision: TradeDecision,
        now_ns: int,
        last_price_ticks: int,
        regime: str | None = None,
    ) -> ExecResult:
        """Carry out one validated trade decision, or refuse it with the reason (journaled).

        After a journal write failed nothing reaches the venue and nothing is journaled: the
        refusal names the failure (`halt_on_journal_failure`)."""
        if self.journal_failure is not None:
            return ExecResult(False, self.journal_failure)
        if decision.action == "enter":
            result = self._enter(decision, now_ns, last_price_ticks, regime)
        elif decision.action == "exit":
            result = self._exit(now_ns, f"brain exit: {decision.reason}"[:200])
        else:
            result = self._modify(decision, now_ns)
        self.emit(
            DecisionEvent(
                ts_ns=now_ns,
                symbol=self.symbol,
                action=decision.action,
                strategy=decision.entry_condition_id,
                side=decision.side,
                accepted=result.accepted,
                reason=result.reason,
                trade_id=result.trade_id,
                qty=result.qty,
            )
        )
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
            # A stop closer than the instrument's minimum (where slippage would dominate the
            # risk) moves further beyond the structure it protects; the size shrinks with it,
            # so the money at risk stays the same. The reward must still pay for the wider risk.
            stop = entry_ref - side * self.min_stop_ticks
            stop_dist = self.min_stop_ticks
            rr = side * (target - entry_ref) / stop_dist
            if rr < params.min_rr:
                return ExecResult(
                    False,
                    f"stop widened to the minimum {self.min_stop_ticks} "
                    f"ticks leaves reward:risk {rr:.2f} below the "
                    f"strategy's min_rr {params.min_rr}",
                )
        risk_ticks = stop_dist + self.slippage_allowance_ticks
        rf = min(d.risk_fraction or params.risk_fraction, params.risk_fraction)
        self._last_ticks = last
        sized = self.ledger.risk.size(self.spec, rf, risk_ticks, self.ledger.risk.open_minis())
        if sized.qty <= 0:
            why = sized.reason
            if rf == params.risk_fraction and self.sized_out(strategy, stop_dist) is not None:
                why = f"sized out: {why}; {strategy} trades in shadow until it earns more risk"
            return ExecResult(False, why)
        qty, reason = self._fit(sized.qty, risk_ticks, now_ns)
        if qty <= 0:
            return ExecResult(False, reason)
        trade_id = f"{self.symbol}-T{self._next_trade}"
        try:  # the entry is reserved on the account until its entry record (or a refusal)
            request = BracketRequest(
                symbol=self.symbol,
                side=side,
                qty=qty,
                strategy=strategy,
                entry_type=OrderType.LIMIT if d.order_type == "limit" else OrderType.MARKET,
                stop_ticks=stop,
                target_ticks=target,
                limit_ticks=entry_ref if d.order_type == "limit" else None,
            )
            orders = self.broker.submit_bracket(request, now_ns)
        except BaseException:
            self.ledger.risk.exposure.release(self.symbol)
            raise
        if not orders or orders[0].status is OrderStatus.REJECTED:
            self.ledger.risk.exposure.release(self.symbol)  # nothing went out: no reservation
            reason = orders[0].reason if orders else "the broker returned no order"
            return ExecResult(False, f"broker rejected the bracket: {reason}")
        self._next_trade += 1
        for order in orders:
            self.order_trade[order.id] = trade_id
        self.emit(
            EntryEvent(
                ts_ns=now_ns,
                symbol=self.symbol,
                trade_id=trade_id,
                strategy=strategy,
                regime=regime,
                side=side,
                qty=qty,
                entry_type=request.entry_type.value,
                entry_ref_ticks=entry_ref,
                stop_ticks=stop,
                target_ticks=target,
                risk_ticks=stop_dist,
                risk_usd=round(qty * stop_dist * self.spec.tick_value, 2),
                trade_date=self.ledger.trade_date,
                orders=[o.id for o in orders],
            )
        )
        self.process_broker_events()
        return ExecResult(True, f"bracket sent: {qty} x {d.side}", trade_id, qty)

    def _fit(self, qty: int, risk_ticks: int, now_ns: int) -> tuple[int, str]:
        """The largest size up to `qty` the risk engine allows (0 and its reason if none),
        checked against the whole account and reserved there in the same step."""
        reason = ""
        for q in range(qty, 0, -1):
            verdict = self.ledger.risk.reserve_entry(self.symbol, self.spec, q, risk_ticks, now_ns)
            if verdict.ok:
                return q, ""
            reason = verdict.reason
        return 0, reason

    def _bracket_ticks(
        self, d: TradeDecision, side: int, last: int, params: StrategyParams
    ) -> tuple[int, int, int] | str:
        """(entry reference, stop, target) in ticks, or why not."""
        for name in ("limit_price", "stop_price", "target_price"):
            value = getattr(d, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                return f"{name} {value} is not a finite positive price"
        tick = self.spec.tick_size
        entry = round(d.limit_price / tick) if d.order_type == "limit" and d.limit_price else last
        stop = round(d.stop_price / tick) if d.stop_price else entry - side * params.stop_ticks
        target = (
            round(d.target_price / tick) if d.target_price else entry + side * params.target_ticks
        )
        stop_dist = side * (entry - stop)
        target_dist = side * (target - entry)
        if stop_dist <= 0 or target_dist <= 0:
            return "the stop and target must be on either side of the entry"
        if stop_dist > params.stop_ticks:
            return (
                f"stop {stop_dist} ticks away is wider than the strategy's stop_ticks "
                f"{params.stop_ticks}"
            )
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
            for order in self.broker.open_orders():
                if self.order_trade.get(order.id) == trade.trade_id:
                    self.broker.cancel(order.id, reason)
            self.emit(
                EntryCancelledEvent(
                    ts_ns=now_ns, symbol=self.symbol, trade_id=trade.trade_id, reason=reason
                )
            )
            self.process_broker_events()
            return ExecResult(True, "pending entry cancelled", trade.trade_id)
        if self._exit_working(trade.trade_id):
            # A second market exit would fill too and open the other side (a naked position).
            return ExecResult(True, f"exit already working: {reason}", trade.trade_id)
        qty = abs(trade.qty)
        # A real venue owns the position (a simulated one is only a fill engine: after a
        # restart the journal holds the position it never saw). If the venue holds nothing on
        # this side (its own stop or a manual close got there first, or its report is late),
        # a market exit would OPEN a position, so none is sent: the risk check asks again on
        # the next print, and reconciliation alerts if the two stay apart.
        venue_qty = (
            trade.qty
            if self._tape_broker is not None
            else sum(p.qty for p in self.broker.positions() if p.symbol == self.symbol)
        )
        if venue_qty * trade.side <= 0:
            problem = (
                f"not exiting {trade.trade_id} ({reason}): the venue holds {venue_qty} "
                f"{self.symbol}, the journal {trade.qty}"
            )
            if problem not in self.problems:
                self.problems.append(problem)
            return ExecResult(False, problem, trade.trade_id)
        qty = min(qty, abs(venue_qty))
        order = self.broker.submit_exit(-trade.side, qty, trade.strategy, now_ns, reason)
        self.order_trade[order.id] = trade.trade_id
        self.process_broker_events()
        return ExecResult(True, f"exit sent: {reason}", trade.trade_id, qty)

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
        for order in self.broker.open_orders():
            if self.order_trade.get(order.id) != trade.trade_id:
                continue
            if order.role is OrderRole.STOP and "stop_ticks" in changes:
                self.broker.modify(order.id, stop_ticks=changes["stop_ticks"])
            if order.role is OrderRole.TARGET and "target_ticks" in changes:
                self.broker.modify(order.id, limit_ticks=changes["target_ticks"])
        self.emit(
            BracketModifiedEvent(
                ts_ns=now_ns,
                symbol=self.symbol,
                trade_id=trade.trade_id,
                stop_ticks=changes.get("stop_ticks"),
                target_ticks=changes.get("target_ticks"),
            )
        )
        return ExecResult(True, "bracket modified", trade.trade_id)

    def flatten(self, now_ns: int, reason: str) -> None:
        """Cancel pending entries and close the position at market (not after a journal write
        failed: an exit that cannot be journaled is not sent; the position keeps its stop)."""
        if self.position() is not None and self.journal_failure is None:
            self._exit(now_ns, reason)

    # ---------------------------------------------------------------- market data
    def on_trades(self, trades: TradeBatch) -> list[Fill]:
        """Feed a market-driven venue, journal what the venue reports, obey the risk engine."""
        if len(trades) == 0:
            return []
        with self._group():
            if self._tape_broker is not None:
                self._tape_broker.on_trades(trades)
            fills = self.process_broker_events()
            self._risk_check(int(trades.ts[-1]), int(trades.price[-1]))
        return fills

    def _group(self) -> AbstractContextManager[None]:
        """Group commit: one fsync for the records of one step."""
        return self.journal.group() if self.journal is not None else nullcontext()

    def process_broker_events(self) -> list[Fill]:
        """Journal every event the venue reported since the last call; the fills among them."""
        fills: list[Fill] = []
        for event in self.broker.drain_events():
            if isinstance(event, PositionChanged):
                continue  # the ledger derives the position from the fills themselves
            if isinstance(event, VenueRecovery):
                self.recovery(
                    event.ts_ns,
                    event.what,
                    event.why,
                    trade_id=self.order_trade.get(event.order_id or ""),
                    order_id=event.order_id,
                )
                continue
            if event.fill is not None and event.fill.external:
                if self._journal_external_fill(event.fill, event.reason):
                    fills.append(event.fill)
                continue
            if event.order_id not in self.order_trade and event.parent_id in self.order_trade:
                # an order the venue created for a bracket (its exit when the entry filled
                # beyond the stop): it belongs to the entry's trade
                self.order_trade[event.order_id] = self.order_trade[event.parent_id]
            if event.fill is not None:
                fills.append(event.fill)
                self._journal_fill(event.fill)
            self._order_event(event)
        return fills

    def _journal_fill(self, f: Fill) -> None:
        trade_id = self.order_trade.get(f.order_id)
        if trade_id is None:
            self.problems.append(f"fill of unknown order {f.order_id}")
            return
        if trade_id not in self.ledger.open_trades:
            self._journal_unintended_fill(f, trade_id)
            return
        order = self.broker.get_order(f.order_id)
        reason = order.reason if order is not None and f.role is OrderRole.EXIT else f.role.value
        self.emit(_fill_event(f, trade_id, f.role.value, f.strategy, reason))
        if self._catching_up:  # reported by the venue before this process took over
            self.recovery(
                f.ts_ns,
                "caught_up",
                f"{f.order_id} ({f.role.value}) filled {f.qty} at "
                f"{self.spec.to_price(f.price_ticks):g} while no process ran",
                trade_id=trade_id,
                order_id=f.order_id,
            )

    def _journal_unintended_fill(self, f: Fill, closed_trade: str) -> None:
        """A fill of one of our orders whose trade the journal already closed (or never opened):
        a leg left working after a close by hand filled (while no process ran, or before its
        cancel landed). At the venue it opened a position: the journal holds it too, as a trade
        of its own entered by that fill (so journal and venue agree, its P&L is booked and
        restart recovery protects it)."""
        trade_id = f"{self.symbol}-T{self._next_trade}"
        self._next_trade += 1
        order = self.broker.get_order(f.order_id)
        strategy = f.strategy or (order.strategy if order is not None else "") or "unknown"
        stop_dist = max(1, self.min_stop_ticks)
        why = (
            f"{f.order_id} ({f.role.value}) of {closed_trade} filled {f.side * f.qty:+d} at "
            f"{self.spec.to_price(f.price_ticks):g} after its trade closed: a position the "
            f"agent did not intend, journaled as {trade_id}"
        )
        self.emit(
            EntryEvent(
                ts_ns=f.ts_ns,
                symbol=self.symbol,
                trade_id=trade_id,
                strategy=strategy,
                regime=None,
                side=f.side,
                qty=f.qty,
                entry_type=OrderType.MARKET.value,
                entry_ref_ticks=f.price_ticks,
                stop_ticks=f.price_ticks - f.side * stop_dist,
                target_ticks=f.price_ticks + f.side * stop_dist,
                risk_ticks=stop_dist,
                risk_usd=round(f.qty * stop_dist * self.spec.tick_value, 2),
                trade_date=self.ledger.trade_date,
                orders=[],
            )
        )
        self.emit(
            _fill_event(
                f,
                trade_id,
                OrderRole.ENTRY.value,
                strategy,
                f"unintended: {f.role.value} of {closed_trade}",
            )
        )
        self.recovery(f.ts_ns, "unintended_position", why, trade_id=trade_id, order_id=f.order_id)
        self.problems.append(why)

    def _journal_external_fill(self, f: Fill, reason: str = "manual at venue") -> bool:
        """A trade at the venue that is not ours (closed by hand): it closes the open position
        it reduces, journaled as a manual exit at the venue's price and time. False (and a
        problem) when it explains nothing the journal holds: reconciliation decides then."""
        trade = self.position()
        if (
            trade is None
            or trade.qty == 0
            or f.side != -trade.side
            or (trade.entry_ns is not None and f.ts_ns < trade.entry_ns)
        ):
            if f.ts_ns <= self._opened_ns:
                return False  # older than what the journal knew: nothing of ours
            problem = (
                f"a trade that is not ours at the venue: {f.side * f.qty:+d} {self.symbol} at "
                f"{self.spec.to_price(f.price_ticks):g} ({f.order_id}); the journal holds "
                f"{0 if trade is None else trade.qty:+d}"
            )
            if problem not in self.problems:
                self.problems.append(problem)
            return False
        qty = min(f.qty, abs(trade.qty))
        self.emit(
            FillEvent(
                ts_ns=f.ts_ns,
                symbol=f.symbol,
                trade_id=trade.trade_id,
                order_id=f.order_id,
                side=f.side,
                qty=qty,
                price_ticks=f.price_ticks,
                commission_usd=f.commission_usd,
                role=OrderRole.EXIT.value,
                strategy=trade.strategy,
                reason=reason or "manual at venue",
                venue_fill_id=f.venue_fill_id,
            )
        )
        self.recovery(
            f.ts_ns,
            "manual_exit",
            f"{qty} of {trade.trade_id} closed at the venue by an order that is not ours "
            f"({reason}), at {self.spec.to_price(f.price_ticks):g}",
            trade_id=trade.trade_id,
            order_id=f.order_id,
        )
        return True

    def recovery(
        self,
        ts_ns: int,
        what: str,
        why: str,
        *,
        trade_id: str | None = None,
        order_id: str | None = None,
    ) -> None:
        """Journal one recovery step (docs/live.md, "Recovery")."""
        event = RecoveryEvent(
            ts_ns=ts_ns,
            symbol=self.symbol,
            what=what,
            why=why[:300],
            trade_id=trade_id,
            order_id=order_id,
        )
        self.recoveries.append(event)
        self.emit(event)

    def close_unexplained(self, now_ns: int, price_ticks: int, why: str) -> bool:
        """The venue is flat and no venue record explains how: close the journal's position at
        `price_ticks` (the last print) so the journal follows the venue, with a recovery record.
        """
        trade = self.position()
        if trade is None or trade.qty == 0:
            return False
        qty = abs(trade.qty)
        self.emit(
            FillEvent(
                ts_ns=now_ns,
                symbol=self.symbol,
                trade_id=trade.trade_id,
                order_id=f"{trade.trade_id}/unexplained",
                side=-trade.side,
                qty=qty,
                price_ticks=price_ticks,
                commission_usd=0.0,
                role=OrderRole.EXIT.value,
                strategy=trade.strategy,
                reason="unexplained at venue",
            )
        )
        self.recovery(
            now_ns,
            "closed_unexplained",
            f"{trade.trade_id} ({trade.qty:+d}) closed in the journal at the last price "
            f"{self.spec.to_price(price_ticks):g}: {why}",
            trade_id=trade.trade_id,
        )
        return True

    def _order_event(self, u: OrderUpdate) -> None:
        trade_id = self.order_trade.get(u.order_id)
        fill = u.fill
        self.emit(
            OrderEvent(
                ts_ns=u.ts_ns,
                symbol=self.symbol,
                trade_id=trade_id,
                order_id=u.order_id,
                status=str(u.status),
                reason=u.reason,
                role=str(u.role),
                order_type=str(u.order_type),
                side=u.side,
                qty=u.qty,
                filled_qty=u.filled_qty,
                strategy=u.strategy,
                limit_ticks=u.limit_ticks,
                stop_ticks=u.stop_ticks,
                parent_id=u.parent_id,
                oco_group=u.oco_group,
                fill_price_ticks=fill.price_ticks if fill else None,
                fill_qty=fill.qty if fill else None,
                commission_usd=fill.commission_usd if fill else None,
                avg_fill_ticks=u.avg_fill_ticks,
            )
        )
        trade = self.ledger.open_trades.get(trade_id or "")
        if (
            trade is not None
            and trade.entry_qty == 0
            and u.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED)
            and u.role is OrderRole.ENTRY
        ):
            self.emit(
                EntryCancelledEvent(
                    ts_ns=u.ts_ns,
                    symbol=self.symbol,
                    trade_id=trade.trade_id,
                    reason=u.reason or str(u.status),
                )
            )

    def _risk_check(self, now_ns: int, last_ticks: int) -> None:
        risk = self.ledger.risk
        trade = self.position()
        reason = None
        self._last_ticks = last_ticks
        if trade is not None and trade.qty != 0:
            unrealized, to_stop = self._open_pnl_and_risk(trade)
            # the account's open P&L: this symbol's now, the others' at their last mark
            total = risk.exposure.mark(self.symbol, self.spec, unrealized, to_stop)
            reason = risk.mark(total, now_ns)
        reason = reason or risk.must_flatten(now_ns)
        if reason and trade is not None and not self._exit_working(trade.trade_id):
            self.flatten(now_ns, reason)

    def _exit_working(self, trade_id: str) -> bool:
        return any(
            o.role is OrderRole.EXIT and self.order_trade.get(o.id) == trade_id
            for o in self.broker.open_orders()
        )

    # ---------------------------------------------------------------- sessions
    def start_session(
        self, trade_date: str, session_open_ns: int, now_ns: int | None = None
    ) -> None:
        """Open a trade date (journaled at its session's open); a position found open is kept
        unless TopStep's flat rule says otherwise at `now_ns` (default: the session's open)."""
        if self.ledger.trade_date != trade_date:
            self.emit(
                SessionEvent(
                    ts_ns=session_open_ns, symbol=self.symbol, event="start", trade_date=trade_date
                )
            )
        self._flatten_stale(trade_date, session_open_ns if now_ns is None else now_ns)

    def _flatten_stale(self, trade_date: str, now_ns: int) -> None:
        """A position from an earlier trade date (a crash left it open) or held past the flat
        time of its trade date is closed at once, and the journal says why; if it cannot be,
        trading halts. One of the trade date in progress, before its flat time, is kept (ETH:
        overnight too): the rule is measured on the CME trade date at `now_ns`, never on the
        session the feed starts from."""
        trade = self.position()
        if trade is None:
            return
        if trade.trade_date and trade.trade_date < trade_date:
            why = (
                f"restart: {trade.trade_id} from trade date {trade.trade_date} is still open "
                f"on {trade_date}; TopStep requires flat by the flat time: flattened at once"
            )
        else:
            late = self.ledger.risk.stale_position(trade.trade_date or trade_date, now_ns)
            if late is None or trade.qty == 0:
                return
            why = f"restart: {trade.trade_id} is held past the point of being flat ({late})"
        self.emit(
            StalePositionEvent(
                ts_ns=now_ns,
                symbol=self.symbol,
                trade_id=trade.trade_id,
                trade_date=trade.trade_date,
                qty=trade.qty,
                reason=why,
            )
        )
        result = self._exit(now_ns, why)
        rejected = [
            o
            for oid, t in self.order_trade.items()
            if t == trade.trade_id
            and (o := self.broker.get_order(oid)) is not None
            and o.role is OrderRole.EXIT
            and o.status is OrderStatus.REJECTED
        ]
        if not result.accepted or rejected:
            cause = result.reason if not result.accepted else rejected[-1].reason
            halt = (
                f"cannot flatten {trade.trade_id} left open from {trade.trade_date}: "
                f"{cause}; trading halted until it is closed by hand"
            )
            self.problems.append(halt)
            self.set_kill_switch(True, halt, "restart", now_ns)

    def end_session(self, trade_date: str, now_ns: int, last_price_ticks: int | None) -> None:
        """Flat at the session's end: exits fill at its last print, pending orders are cancelled."""
        self.flatten(now_ns, "session end")
        if last_price_ticks is not None and self._tape_broker is not None:
            self._tape_broker.settle_exits(last_price_ticks, now_ns)
        self.process_broker_events()
        self.broker.cancel_all("session end", now_ns=now_ns)
        self.process_broker_events()
        self.emit(
            SessionEvent(ts_ns=now_ns, symbol=self.symbol, event="end", trade_date=trade_date)
        )


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


def next_order_number(records: list[dict[str, Any]], symbol: str) -> int:
    """The next unused order number of `symbol` in a journal (order ids never repeat)."""
    found = _numbers(records, "orders", f"{symbol}-") + _numbers(records, "order_id", f"{symbol}-")
    return max(found, default=0) + 1


def _fill_event(f: Fill, trade_id: str, role: str, strategy: str, reason: str) -> FillEvent:
    """The journal's record of a venue fill, filed under `trade_id`."""
    return FillEvent(
        ts_ns=f.ts_ns,
        symbol=f.symbol,
        trade_id=trade_id,
        order_id=f.order_id,
        side=f.side,
        qty=f.qty,
        price_ticks=f.price_ticks,
        commission_usd=f.commission_usd,
        role=role,
        strategy=strategy,
        reason=reason,
        venue_fill_id=f.venue_fill_id,
    )
