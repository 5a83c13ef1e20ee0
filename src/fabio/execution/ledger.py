"""The execution state as a fold over journal records (event sourcing, crash-only).

Everything that matters is journaled as it happens, one JSON line per record, in
`logs/execution.jsonl`: `strategy_change` (accepted or refused), `entry` (an accepted entry with
its strategy, regime, bracket and initial risk), `fill`, `session` (start/end of a trade date),
`kill_switch` (and the legacy `kill`), `order_event` (which orders are still open) and the
informational `decision` and `risk_state` records. Records are typed events (fabio.events): the
journal is read back through `parse_record`, the same types it was written with. The state
(strategy_state, trades per session, open positions, closed trades, performance, the risk
engine's account and kill switch) is *derived* by `Ledger.apply`, record by record — at run time
as records are written, and on restart by replaying the file. So start-up and crash recovery
are one code path, and a process killed at any instant restarts into exactly what it had
journaled: a trade exists only through its fill records, so it can be neither counted twice
nor lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fabio.events import (
    BracketModifiedEvent,
    EntryCancelledEvent,
    EntryEvent,
    Event,
    FillEvent,
    KillEvent,
    KillSwitchEvent,
    LearningCarryEvent,
    OrderEvent,
    SessionEvent,
    ShadowTradeEvent,
    StrategyChangeEvent,
    parse_record,
)
from fabio.execution.performance import performance_by_strategy
from fabio.execution.risk import RiskEngine
from fabio.execution.strategy_book import GuardrailConfig, StrategyBook, StrategyChange
from fabio.instruments import InstrumentSpec
from fabio.orders import ClosedTrade, OrderRole, OrderStatus
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
    ordered_qty: int = 0  # the entry's size (its entry record)
    entry_order: str | None = None  # the entry order's id
    entry_working: bool = True  # until the entry order ends (filled, cancelled, rejected)

    @property
    def avg_entry(self) -> float:
        return self.entry_value / self.entry_qty if self.entry_qty else 0.0

    @property
    def working_qty(self) -> int:
        """Entry contracts still ordered and not filled: the position may yet grow by these."""
        return max(0, self.ordered_qty - self.entry_qty) if self.entry_working else 0


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
    # Learning: trades of earlier accounts (they count for strategy statistics, never for this
    # account's risk), shadow trades of disabled strategies, and when each was last disabled.
    carried: list[ClosedTrade] = field(default_factory=list)
    shadow: list[dict[str, Any]] = field(default_factory=list)
    disabled_at: dict[str, int] = field(default_factory=dict)
    # From when learning judges a strategy afresh: re-enabled after a disable, or its risk
    # restored on the evidence of its sized-out shadow trades.
    enabled_at: dict[str, int] = field(default_factory=dict)
    # When each strategy's risk last changed (an accepted risk_fraction or enabled change): an
    # enabled strategy's shadow trades (sized out) count from there.
    risk_changed_at: dict[str, int] = field(default_factory=dict)
    carried_notes: list[dict[str, Any]] = field(default_factory=list)  # from `learning_carry`
    # Ids written twice (two processes on one journal): flagged, never folded silently.
    conflicts: list[str] = field(default_factory=list)
    _trade_ids: set[str] = field(default_factory=set)
    _order_ids: dict[str, str] = field(default_factory=dict)
    # Orders the journal last saw open (client order id -> trade id): a restart closes them out.
    open_orders: dict[str, str | None] = field(default_factory=dict)
    kill_requests: set[str] = field(default_factory=set)  # `fabio kill` requests folded
    _perf_key: tuple[int, ...] | None = None
    _perf: dict[str, StrategyPerformance] = field(default_factory=dict)

    @classmethod
    def new(
        cls,
        spec: InstrumentSpec,
        defaults: dict[str, StrategyParams],
        risk: RiskEngine,
        guardrails: GuardrailConfig | None = None,
        symbol: str | None = None,
    ) -> Ledger:
        return cls(spec, StrategyBook(defaults, guardrails), risk, symbol=symbol)

    # ---------------------------------------------------------------- the fold
    def apply_record(self, rec: dict[str, Any]) -> None:
        """Fold one journal line (read back through its event type; unknown types count only)."""
        event = parse_record(rec)
        if event is None:
            if self.symbol is None or rec.get("symbol") in (None, self.symbol):
                self.records_applied += 1
            return
        self.apply(event)

    def apply(self, event: Event) -> None:
        if self.symbol is not None and event.symbol not in (None, self.symbol):
            return
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)
        self.records_applied += 1
        if event.symbol is not None:  # account-level records may carry another clock's time
            self.last_ts_ns = max(self.last_ts_ns, int(event.ts_ns or 0))

    def _strategy_change(self, e: StrategyChangeEvent) -> None:
        change = StrategyChange(
            ts_ns=int(e.ts_ns),
            strategy=e.strategy,
            field=e.field,
            old=e.old,
            proposed=e.proposed,
            new=e.new,
            accepted=bool(e.accepted),
            reason=str(e.reason),
            source=str(e.source),
        )
        self.track_change(change)
        self.book.apply_change(change)

    def track_change(self, c: StrategyChange) -> None:
        """The learning times an accepted change moves (call before the book applies it; the
        engine calls it for the changes its book already applied, a replay through the fold)."""
        if not c.accepted or c.field not in ("enabled", "risk_fraction"):
            return
        ts = int(c.ts_ns)
        params = self.book.strategy_state.get(c.strategy)
        if c.field == "enabled":
            if c.new is False:
                self.disabled_at[c.strategy] = ts
            elif c.new is True and c.strategy in self.disabled_at:
                self.enabled_at[c.strategy] = ts
        elif (
            params is not None
            and params.enabled
            and float(c.new) > float(c.old)
            and self.shadow_since(c.strategy)
        ):
            # A raise its sized-out shadow trades earned: judged afresh, like a re-enable.
            self.enabled_at[c.strategy] = ts
        self.risk_changed_at[c.strategy] = ts

    def shadow_since(self, name: str) -> list[dict[str, Any]]:
        """The shadow trades learning judges a strategy on: a disabled strategy's since it was
        disabled; an enabled one's (its setups sized out) since its risk last changed."""
        params = self.book.strategy_state.get(name)
        if params is None or not params.enabled:
            since = self.disabled_at.get(name)
            if since is None:
                return []
        else:
            since = max(
                self.risk_changed_at.get(name, 0),
                self.enabled_at.get(name, 0),
                self.disabled_at.get(name, 0),
            )
        return [
            r
            for r in self.shadow
            if r.get("strategy") == name and int(r.get("entry_ns", 0)) >= since
        ]

    def _check_ids(self, e: EntryEvent | OrderEvent) -> None:
        """Flag a trade id or order id written twice (two processes on one journal)."""
        where = f"record {self.records_applied + 1} ({e.type}, ts_ns {e.ts_ns})"
        trade_id = str(e.trade_id)
        if isinstance(e, EntryEvent):
            if trade_id in self._trade_ids:
                self.conflicts.append(f"{where}: duplicate trade id {trade_id}")
            self._trade_ids.add(trade_id)
        for order_id in e.orders:
            first = self._order_ids.get(str(order_id))
            if first is not None:
                self.conflicts.append(
                    f"{where}: duplicate order id {order_id} (first used by {first})"
                )
            self._order_ids[str(order_id)] = trade_id

    def _entry(self, e: EntryEvent) -> None:
        self._check_ids(e)
        self.open_trades[e.trade_id] = OpenTrade(
            trade_id=e.trade_id,
            symbol=str(e.symbol),
            strategy=e.strategy,
            regime=e.regime,
            side=int(e.side),
            trade_date=str(e.trade_date or self.trade_date or ""),
            stop_ticks=int(e.stop_ticks),
            target_ticks=int(e.target_ticks),
            risk_ticks=max(1, int(e.risk_ticks)),
            ordered_qty=max(0, int(e.qty)),
            entry_order=str(e.orders[0]) if e.orders else None,
        )
        self.book.record_entry(e.strategy)

    def _fill(self, e: FillEvent) -> None:
        trade = self.open_trades.get(e.trade_id)
        if trade is None:
            return  # a fill of a trade already closed or never opened: nothing to fold
        qty, side, price = int(e.qty), int(e.side), int(e.price_ticks)
        trade.fees += float(e.commission_usd)
        if e.role == OrderRole.ENTRY.value:
            trade.entry_qty += qty
            trade.entry_value += qty * price
            trade.entry_ns = trade.entry_ns or int(e.ts_ns)
        else:
            trade.exit_qty += qty
            trade.exit_value += qty * price
            trade.last_exit_role = str(e.reason or e.role)
        trade.qty += side * qty
        if trade.qty == 0 and trade.exit_qty > 0 and trade.exit_qty >= trade.entry_qty:
            self._close(trade, int(e.ts_ns))

    def _close(self, trade: OpenTrade, ts_ns: int) -> None:
        avg_exit = trade.exit_value / trade.exit_qty
        ticks = (avg_exit - trade.avg_entry) * trade.side
        gross = ticks * trade.entry_qty * self.spec.tick_value
        net = gross - trade.fees
        closed = ClosedTrade(
            trade_id=trade.trade_id,
            symbol=trade.symbol,
            strategy=trade.strategy,
            regime=trade.regime,
            side=trade.side,
            qty=trade.entry_qty,
            trade_date=trade.trade_date,
            entry_ns=trade.entry_ns or ts_ns,
            exit_ns=ts_ns,
            entry_price=round(self.spec.to_price(trade.avg_entry), 6),
            exit_price=round(self.spec.to_price(avg_exit), 6),
            gross_pnl_usd=round(gross, 2),
            fees_usd=round(trade.fees, 2),
            net_pnl_usd=round(net, 2),
            r_multiple=round(ticks / trade.risk_ticks, 3),
            exit_reason=trade.last_exit_role,
        )
        self.closed.append(closed)
        del self.open_trades[trade.trade_id]
        self.risk.on_trade_closed(closed.net_pnl_usd, ts_ns)

    def _session(self, e: SessionEvent) -> None:
        if e.event == "start":
            if self.trade_date != e.trade_date:
                self.book.new_session()
            self.trade_date = e.trade_date
            self.risk.start_day(e.trade_date, int(e.ts_ns))
        else:
            self.risk.end_day(e.trade_date)

    def _cancelled_entry(self, e: EntryCancelledEvent) -> None:
        trade = self.open_trades.get(e.trade_id)
        if trade is not None and trade.entry_qty == 0:
            del self.open_trades[e.trade_id]  # never filled: no trade

    def _bracket_modified(self, e: BracketModifiedEvent) -> None:
        trade = self.open_trades.get(e.trade_id)
        if trade is not None:
            trade.stop_ticks = int(e.stop_ticks if e.stop_ticks is not None else trade.stop_ticks)
            trade.target_ticks = int(
                e.target_ticks if e.target_ticks is not None else trade.target_ticks
            )

    def _shadow(self, e: ShadowTradeEvent) -> None:
        self.shadow.append(e.to_record())

    def _carry(self, e: LearningCarryEvent) -> None:
        """What an earlier account learned: statistics, shadow trades and strategy state."""
        self.carried = [ClosedTrade(**t) for t in e.trades]
        self.shadow = list(e.shadow) + self.shadow
        self.disabled_at.update({str(k): int(v) for k, v in e.disabled_at.items()})
        self.enabled_at.update({str(k): int(v) for k, v in e.enabled_at.items()})
        self.risk_changed_at.update({str(k): int(v) for k, v in e.risk_changed_at.items()})
        self.carried_notes = [n for n in e.notes if isinstance(n, dict)]
        for name, params in e.strategy_state.items():
            self.book.strategy_state[name] = StrategyParams(**params)
            if not params.get("enabled", True) and name in e.disabled_by_brain:
                self.book.disabled_by_brain.add(name)

    def learning_state(self) -> dict[str, Any]:
        """What a new account should inherit (the body of a `learning_carry` record)."""
        return {
            "trades": [t.to_dict() for t in (*self.carried, *self.closed)],
            "shadow": list(self.shadow),
            "disabled_at": dict(self.disabled_at),
            "enabled_at": dict(self.enabled_at),
            "risk_changed_at": dict(self.risk_changed_at),
            "strategy_state": {k: v.model_dump() for k, v in self.book.strategy_state.items()},
            "disabled_by_brain": sorted(self.book.disabled_by_brain),
        }

    def _order(self, e: OrderEvent) -> None:
        if e.event == "reprotected":
            self._check_ids(e)
        if e.order_id is None or e.status is None:
            return
        if OrderStatus(e.status).is_open:
            self.open_orders[e.order_id] = e.trade_id
        else:
            self.open_orders.pop(e.order_id, None)
            trade = self.open_trades.get(e.trade_id or "")
            if trade is not None and (
                e.order_id == trade.entry_order or e.role == OrderRole.ENTRY.value
            ):
                trade.entry_working = False  # the position grows no more

    def _kill(self, e: KillEvent) -> None:
        self.risk.kill(str(e.reason))

    def _kill_switch(self, e: KillSwitchEvent) -> None:
        if e.request_id is not None:
            self.kill_requests.add(e.request_id)
        if e.engaged:
            self.risk.engage_kill_switch(e.reason, e.source, int(e.ts_ns))
        else:
            self.risk.release_kill_switch()

    def open_orders_by_trade(self) -> dict[str, str]:
        return {o: t for o, t in self.open_orders.items() if t is not None}

    # ---------------------------------------------------------------- views
    def performance(self) -> dict[str, StrategyPerformance]:
        """Per-strategy results; recomputed only when a trade closes or the trade date moves."""
        key = (
            len(self.closed),
            len(self.carried),
            len(self.shadow),
            hash(tuple(self.disabled_at.items())),
            hash(tuple(self.enabled_at.items())),
            hash(tuple(self.risk_changed_at.items())),
            hash(tuple(p.enabled for p in self.book.strategy_state.values())),
            hash(self.trade_date),
        )
        if key != self._perf_key:
            shadow: dict[str, list[dict[str, Any]]] = {}
            for name in sorted({str(r.get("strategy")) for r in self.shadow}):
                recs = self.shadow_since(name)
                if recs:
                    shadow[name] = recs
            perf = performance_by_strategy(
                [*self.carried, *self.closed], self.trade_date, shadow, self.enabled_at
            )
            if self.carried:  # today's count is this account's own
                today = performance_by_strategy(self.closed, self.trade_date)
                perf = {
                    k: v.model_copy(
                        update={
                            "trades_this_session": today[k].trades_this_session if k in today else 0
                        }
                    )
                    for k, v in perf.items()
                }
            self._perf = perf
            self._perf_key = key
        return self._perf

    def sized_out(
        self,
        strategy: str,
        stop_distance_ticks: int | None = None,
        min_stop_ticks: int = 4,
        slippage_ticks: int = 2,
    ) -> str | None:
        """Why the strategy's own `risk_fraction` sizes an entry with this stop (default: the
        minimum stop, its cheapest) to zero contracts, or None when one contract fits.

        Only the strategy's budget counts (balance × risk_fraction against one contract's risk
        to the stop, widened to the minimum, plus the slippage allowance): never the account's
        limits (daily loss, position cap, kill switch), which refuse for reasons of their own.
        The defaults are tick data's (paper, live); bars use 8 and 8.
        """
        params = self.book.strategy_state.get(strategy)
        if params is None:
            return None
        stop = max(min_stop_ticks, int(stop_distance_ticks or 0))
        risk_ticks = stop + slippage_ticks
        if self.risk.contracts_in_budget(self.spec, params.risk_fraction, risk_ticks) >= 1:
            return None
        return (
            f"one {self.spec.root} contract risks ${risk_ticks * self.spec.tick_value:,.2f} "
            f"({stop} ticks + {slippage_ticks} slippage), more than {strategy}'s budget "
            f"${self.risk.account.balance * params.risk_fraction:,.2f} (risk_fraction "
            f"{params.risk_fraction:g})"
        )

    def sized_out_strategies(
        self, min_stop_ticks: int = 4, slippage_ticks: int = 2
    ) -> dict[str, str]:
        """Enabled strategies no setup can trade: sized out even at the minimum stop."""
        out = {}
        for name, params in self.book.strategy_state.items():
            why = (
                self.sized_out(name, None, min_stop_ticks, slippage_ticks)
                if params.enabled
                else None
            )
            if why is not None:
                out[name] = why
        return out

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
                {
                    "trade_id": t.trade_id,
                    "strategy": t.strategy,
                    "side": t.side,
                    "qty": t.qty,
                    "avg_entry": self.spec.to_price(t.avg_entry) if t.entry_qty else None,
                    "stop": self.spec.to_price(t.stop_ticks),
                    "target": self.spec.to_price(t.target_ticks),
                }
                for t in self.open_trades.values()
            ],
            "closed_trades": len(self.closed),
            "net_pnl_usd": round(sum(t.net_pnl_usd for t in self.closed), 2),
            "strategy_performance": {k: v.model_dump() for k, v in self.performance().items()},
            "sized_out": self.sized_out_strategies(),
            "risk": self.risk.to_dict(),
            "kill_switch": self.risk.kill_switch_status(),
        }


_HANDLERS: dict[type[Event], Any] = {
    StrategyChangeEvent: Ledger._strategy_change,
    EntryEvent: Ledger._entry,
    FillEvent: Ledger._fill,
    SessionEvent: Ledger._session,
    EntryCancelledEvent: Ledger._cancelled_entry,
    KillEvent: Ledger._kill,
    KillSwitchEvent: Ledger._kill_switch,
    BracketModifiedEvent: Ledger._bracket_modified,
    OrderEvent: Ledger._order,
    ShadowTradeEvent: Ledger._shadow,
    LearningCarryEvent: Ledger._carry,
}
