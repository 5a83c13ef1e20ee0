"""The agent: one event loop for every mode (ARCHITECTURE.md §2).

feed → features → cadence → brain → guardrails → risk → broker → fills → performance → journal,
with a bus of typed events (fabio.events) that views fold into an `AgentStatus`. The agent is
built by the composition root (fabio.wiring) and is the same code in backtest, paper and live.
Time comes from the events. Where the market waits for the brain (a backtest, and paper trading,
whose replay is paced by the wall clock but waits when the brain or the machine cannot keep up)
the agent awaits each decision and applies it once its latency has passed in market time, so a
paper run makes the decisions a backtest of the same data makes at any speed. Live, the market
does not wait: the brain runs as a task while market data keeps flowing, and a decision whose
snapshot is older than `stale_sec` when it comes back is dropped as stale.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fabio.brain.base import Brain, BrainReply
from fabio.brain.cadence import Cadence
from fabio.brain.context import DecisionContext, PositionView, build_context
from fabio.brain.exchange import RECORD_TYPE
from fabio.brain.notes import NoteStore
from fabio.decision import ImportanceZone
from fabio.domain import TradeBatch
from fabio.events import (
    EventBus,
    FeatureSummary,
    Heartbeat,
    KillSwitchEvent,
    TradeUpdate,
    learning_carry_event,
)
from fabio.exchange_journal import ExchangeJournal
from fabio.execution.engine import ExecutionEngine
from fabio.execution.shadow import ShadowBook
from fabio.features.engine import FeatureEngine
from fabio.features.snapshot import FeatureSnapshot
from fabio.journal import Journal, JournalWriteError
from fabio.playbook.setups import detect_setups
from fabio.sessions import SessionKind
from fabio.status import AgentStatus

NS = 1_000_000_000
KillRequests = Callable[[], KillSwitchEvent | None]

__all__ = ["Agent", "AgentStats", "EventBus", "Timeline"]


@dataclass(slots=True)
class AgentStats:
    decisions: int = 0
    fallbacks: int = 0
    stale_dropped: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    brains: dict[str, int] = field(default_factory=dict)
    entries_proposed: int = 0
    entries_refused: dict[str, int] = field(default_factory=dict)  # kind of refusal -> count
    refusal_examples: dict[str, str] = field(default_factory=dict)  # kind -> first reason


@dataclass(slots=True)
class Timeline:
    """What a report draws: prices and levels per minute, decisions, regime labels."""

    minute_ts: list[int] = field(default_factory=list)
    price: list[float] = field(default_factory=list)
    poc: list[float | None] = field(default_factory=list)
    vah: list[float | None] = field(default_factory=list)
    val: list[float | None] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)


class Agent:
    """One symbol's agent."""

    def __init__(
        self,
        features: FeatureEngine,
        execution: ExecutionEngine,
        brain: Brain,
        cadence: Cadence,
        exchanges: Journal | None = None,
        learning: bool = True,
        live: bool = False,
        bus: EventBus | None = None,
        setup_check_sec: int = 5,
        step_sec: float | None = None,
        stale_sec: float = 10.0,
        note_records: list[dict[str, Any]] | None = None,
        status: AgentStatus | None = None,
        kill_requests: KillRequests | None = None,
        trading_session: SessionKind = SessionKind.RTH,
        market_waits: bool | None = None,
    ) -> None:
        self.features = features
        self.trading_session = trading_session  # ETH: the Globex overnight session too
        self.execution = execution
        self.brain = brain
        self.cadence = cadence
        self.exchanges = exchanges
        self.exchange_journal = ExchangeJournal(exchanges)
        self.learning = learning
        self.live = live  # a trading process (paper or live): heartbeats for the views
        # The market waits for the brain (backtest, paper) or not (live): see the module doc.
        self.market_waits = not live if market_waits is None else market_waits
        self.bus = bus or EventBus()
        if status is None:
            status = AgentStatus(symbol=execution.symbol)
            self.bus.subscribe(status.apply)
        self.status = status  # the read model views show (folded from the bus)
        self.kill_requests = kill_requests
        self.setup_check_sec = setup_check_sec
        # The loop steps at the cadence's finest interval: decisions and risk checks happen on
        # that grid of market time, while the broker still fills order by order within a step.
        self.step_ns = int((step_sec or min(cadence.inner_sec, setup_check_sec)) * NS)
        self.stale_sec = stale_sec
        self.symbol = execution.symbol
        self.tick = execution.spec.tick_size
        self.zones: list[ImportanceZone] = []
        self.stats = AgentStats()
        self.timeline = Timeline()
        self.notes = NoteStore(self.symbol)
        # Strategies disabled by learning keep trading in shadow, so that they can earn their
        # way back; a frozen agent (learning off) has no use for it.
        self.shadow: ShadowBook | None = None
        if learning:
            self.shadow = ShadowBook(
                self.tick, execution.emit, self.symbol, min_stop_ticks=execution.min_stop_ticks
            )
        for rec in note_records or []:
            self.notes.add_record(rec)
        self.notes.add_exported(execution.ledger.carried_notes)  # an earlier account's notes
        self._session_index = -1
        self._session_open_ns = 0
        self._session_close_ns = 0
        self._last_price: int | None = None
        self._last_ts = 0
        self._last_setups: set[str] = set()
        self._closed_seen = len(execution.ledger.closed)
        self._next_setup_check = 0
        self._pending: asyncio.Task[tuple[DecisionContext, BrainReply]] | None = None
        # A backtest's decision that took time to come back: applied once market time has
        # moved on by its latency, as it would have been live (a rule brain's is instant).
        self._delayed: tuple[DecisionContext, BrainReply, int] | None = None
        self._minute = -1
        self._regime: str | None = None
        # Held for the agent's life (paper / live): one trading process per journal and account.
        self.run_lock: Any = None

    # ---------------------------------------------------------------- state for views
    def inherit(self, state: dict[str, Any]) -> None:
        """A new account takes what earlier accounts learned (`Ledger.learning_state` plus
        `notes`): journaled as the `learning_carry` record a restart folds again."""
        self.execution.emit(learning_carry_event(self.symbol, state))
        self.notes.add_exported(self.execution.ledger.carried_notes)

    def start(self) -> None:
        """Take a pending kill-switch request and publish the state the agent starts from."""
        self._poll_kill_switch()
        self.bus.publish(self._trade_update(self.execution.ledger.last_ts_ns, None, None))

    def _trade_update(
        self,
        now: int,
        price: float | None,
        d: Any,
        results: Sequence[Any] = (),
        changes: Sequence[Any] = (),
    ) -> TradeUpdate:
        ex = self.execution
        trade = ex.position()
        position: dict[str, Any] = {"side": "flat", "qty": 0}
        unrealized = 0.0
        if trade is not None and trade.qty != 0:
            position = {
                "side": "long" if trade.side > 0 else "short",
                "qty": abs(trade.qty),
                "avg_entry": ex.spec.to_price(trade.avg_entry),
                "stop": ex.spec.to_price(trade.stop_ticks),
                "target": ex.spec.to_price(trade.target_ticks),
                "strategy": trade.strategy,
                "trade_id": trade.trade_id,
            }
            if self._last_price is not None:
                unrealized = (
                    (self._last_price - trade.avg_entry)
                    * trade.side
                    * abs(trade.qty)
                    * ex.spec.tick_value
                )
        risk = ex.ledger.risk
        s = self.stats
        return TradeUpdate(
            ts_ns=now,
            symbol=self.symbol,
            price=price,
            position=position,
            pnl={
                "realised_usd": round(sum(t.net_pnl_usd for t in ex.ledger.closed), 2),
                "unrealised_usd": round(unrealized, 2),
                "day_usd": round(risk.day_pnl, 2),
                "closed_trades": len(ex.ledger.closed),
            },
            strategy_performance={k: v.model_dump() for k, v in ex.get_performance_stats().items()},
            active_strategies=list(d.strategy_updates.active_strategies)
            if d
            else [k for k, v in ex.strategy_state.items() if v.enabled],
            market_assessment=d.market_assessment.model_dump() if d else None,
            strategy_state={k: v.model_dump() for k, v in ex.strategy_state.items()},
            sized_out=ex.sized_out_strategies(),
            executions=[r.to_dict() for r in results],
            strategy_changes=[c.to_record() for c in changes],
            trading_state=str(risk.state),
            kill_switch=risk.kill_switch_status(),
            brain={
                "decisions": s.decisions,
                "fallbacks": s.fallbacks,
                "stale_dropped": s.stale_dropped,
                "cost_usd": round(s.cost_usd, 6),
                "brains": dict(s.brains),
            },
        )

    def _poll_kill_switch(self) -> None:
        if self.kill_requests is None:
            return
        request = self.kill_requests()
        if request is None:
            return
        if request.request_id is None:  # a legacy request file nobody journaled
            self.execution.set_kill_switch(
                request.engaged, request.reason, request.source, self.execution.ledger.last_ts_ns
            )
        else:
            self.execution.apply_kill_switch_request(request)

    @property
    def last_price_ticks(self) -> int | None:
        return self._last_price

    @property
    def regime(self) -> str | None:
        return self._regime

    # ---------------------------------------------------------------- feeding
    async def feed(self, trades: TradeBatch) -> None:
        """Process trades one step of market time at a time; decide when the cadence says so.

        A journal that cannot be written (disk full: `JournalWriteError`, from any journal of
        the agent) halts new entries in the execution engine and ends the feed."""
        try:
            await self._feed(trades)
        except JournalWriteError as exc:
            self.execution.halt_on_journal_failure(exc.reason)
            raise

    async def _feed(self, trades: TradeBatch) -> None:
        if len(trades) == 0:
            return
        step = self.step_ns
        first = int(trades.ts[0]) // step * step + step
        edges = np.arange(first, int(trades.ts[-1]) + step, step, dtype=np.int64)
        cuts = np.searchsorted(trades.ts, edges, side="left")
        start = 0
        for edge, cut in zip(edges.tolist(), cuts.tolist(), strict=True):
            if cut == start:
                continue
            await self._step(trades.slice(start, cut), edge)
            start = cut
        if start < len(trades):
            await self._step(trades.slice(start, len(trades)), int(trades.ts[-1]))

    async def _step(self, trades: TradeBatch, now: int) -> None:
        if self.kill_requests is not None:
            self._poll_kill_switch()
        await self._roll_session(int(trades.ts[0]))
        self.features.update(trades)
        self.execution.on_trades(trades)
        if self.shadow is not None:
            self.shadow.on_trades(trades)
        self._last_price = int(trades.price[-1])
        self._last_ts = int(trades.ts[-1])
        await self._collect_pending(now)
        self._collect_delayed(now)
        if self._session_index < 0 or now > self._session_close_ns:
            return
        event = len(self.execution.ledger.closed) > self._closed_seen
        self._closed_seen = len(self.execution.ledger.closed)
        snap: FeatureSnapshot | None = None
        if now >= self._next_setup_check:
            self._next_setup_check = now + self.setup_check_sec * NS
            snap = self.features.snapshot(now)
            self._record_minute(snap, now)
            self._publish_features(snap, now)
            setups = self._setups(snap)
            names = {s.strategy for s in setups}
            event = event or bool(names - self._last_setups)
            self._shadow_setups(snap, now, setups)
            self._last_setups = names
        band = self.cadence.band(self._last_price * self.tick, self.tick, self.zones)
        waiting = self._pending is not None or self._delayed is not None
        if not waiting and self.cadence.due(now, band, event):
            trigger = "event" if event else f"interval_{band.value}"
            await self._decide(snap or self.features.snapshot(now), now, trigger)

    async def _roll_session(self, ts: int) -> None:
        if self._session_open_ns <= ts < self._session_close_ns:
            return
        cal = self.features.calendar
        idx = int(cal.locate(np.array([ts], dtype=np.int64), self.trading_session)[0])
        if idx < 0 or idx == self._session_index:
            return
        await self.close_session()
        session = cal.session(idx)
        self._session_index = idx
        self._session_open_ns, self._session_close_ns = session.bounds(self.trading_session)
        self.execution.start_session(session.trade_date.isoformat(), self._session_open_ns, ts)
        self.cadence.last_decision_ns = None
        self.zones = []

    async def close_session(self) -> None:
        """Flat and closed at the session's end (also at the end of the data)."""
        if self._session_index < 0:
            self.exchange_journal.flush()
            return
        await self._drain_pending()
        self._drop_delayed()
        session = self.features.calendar.session(self._session_index)
        end_ns = (
            min(self._session_close_ns, self._last_ts) if self._last_ts else self._session_close_ns
        )
        self.execution.end_session(session.trade_date.isoformat(), end_ns, self._last_price)
        if self.shadow is not None:
            self.shadow.close_all(end_ns, self._last_price)
        self.exchange_journal.flush()
        price = self.execution.spec.to_price(self._last_price) if self._last_price else None
        self.bus.publish(self._trade_update(end_ns, price, None))
        self._session_index = -1
        self._session_open_ns = self._session_close_ns = 0

    # ---------------------------------------------------------------- deciding
    def _setups(self, snap: FeatureSnapshot) -> list[Any]:
        if snap.market_stats is None or snap.price is None:
            return []
        return detect_setups(snap, self.execution.strategy_state, self.tick)

    def _shadow_setups(self, snap: FeatureSnapshot, now: int, setups: Sequence[Any]) -> None:
        """Setups of strategies learning disabled, and the sized-out setups of enabled ones
        (their own risk_fraction buys no contract at the setup's stop), become shadow trades
        (in RTH, flat or not)."""
        if (
            self.shadow is None
            or snap.market_stats is None
            or snap.price is None
            or self._last_price is None
            or now > self._session_close_ns - 15 * 60 * NS
        ):
            return
        book = self.execution.ledger.book
        trade_date = self.execution.ledger.trade_date or ""
        state = self.execution.strategy_state
        disabled = {
            name: p.model_copy(update={"enabled": True})
            for name, p in state.items()
            if not p.enabled and name in book.disabled_by_brain
        }
        if disabled:
            found = detect_setups(snap, disabled, self.tick)
            limits = {name: p.max_trades_per_session for name, p in disabled.items()}
            self.shadow.consider(found, limits, now, self._last_price, self._regime, trade_date)
        sized_out = [c for c in setups if self._sized_out(c)]
        if sized_out:
            limits = {c.strategy: state[c.strategy].max_trades_per_session for c in sized_out}
            self.shadow.consider(
                sized_out, limits, now, self._last_price, self._regime, trade_date, "sized_out"
            )

    def _sized_out(self, cand: Any) -> bool:
        """An enabled strategy's setup its own risk_fraction sizes to zero contracts."""
        params = self.execution.strategy_state.get(cand.strategy)
        if params is None or not params.enabled or self._last_price is None:
            return False
        side = 1 if cand.side == "long" else -1
        stop_dist = side * (self._last_price - round(cand.stop_price / self.tick))
        if stop_dist <= 0:
            return False  # the stop is already through: no entry to size
        return self.execution.sized_out(cand.strategy, stop_dist) is not None

    def context(self, snap: FeatureSnapshot, trigger: str) -> DecisionContext | None:
        if snap.market_stats is None or snap.price is None or snap.session is None:
            return None
        setups = self._setups(snap)
        trade = self.execution.position()
        position = PositionView()
        if trade is not None and trade.qty != 0:
            position = PositionView(
                side="long" if trade.side > 0 else "short",
                size=abs(trade.qty),
                entry_price=self.execution.spec.to_price(trade.avg_entry),
                stop_price=self.execution.spec.to_price(trade.stop_ticks),
                target_price=self.execution.spec.to_price(trade.target_ticks),
                strategy=trade.strategy,
                unrealized_ticks=round((snap.price / self.tick - trade.avg_entry) * trade.side, 2),
            )
        notes = self.notes.select(
            snap.ts_ns,
            self._regime,
            {s.strategy for s in setups},
            closed_trades=self.execution.ledger.closed,
        )
        return build_context(
            snap,
            self.tick,
            self.execution.strategy_state,
            self.execution.get_performance_stats(),
            notes,
            position,
            self.zones,
            setups,
            trigger,
            sized_out=self.execution.sized_out_strategies(),
            initial_risk_fraction={
                k: v.risk_fraction for k, v in self.execution.ledger.book.defaults.items()
            },
        )

    async def _decide(self, snap: FeatureSnapshot, now: int, trigger: str) -> None:
        ctx = self.context(snap, trigger)
        if ctx is None:
            return
        self.cadence.mark(now)
        if not self.market_waits:
            self._pending = asyncio.create_task(self._ask(ctx))
            return
        reply = await self.brain.decide(ctx)
        if reply.latency_ms > 0:
            self._delayed = (ctx, reply, now + int(reply.latency_ms * 1e6))
            self._collect_delayed(now)
            return
        self._apply(ctx, reply, now)

    def _collect_delayed(self, now: int) -> None:
        """Apply an awaited decision (backtest, paper) once its latency has passed in market
        time; one slower than `stale_sec` is dropped as live would have dropped it. How long
        the replay itself waited for it does not count: the market waited."""
        if self._delayed is None or now < self._delayed[2]:
            return
        ctx, reply, _due = self._delayed
        self._delayed = None
        age = (now - ctx.market_time_ns) / NS
        if age > self.stale_sec:
            self.stats.stale_dropped += 1
            self._account(reply)
            self._journal(ctx, reply, dropped=f"stale: the snapshot was {age:.1f} s old")
            return
        self._apply(ctx, reply, now)

    def _drop_delayed(self) -> None:
        """The session ended before a delayed decision came back: journal it as dropped."""
        if self._delayed is None:
            return
        ctx, reply, _due = self._delayed
        self._delayed = None
        self.stats.stale_dropped += 1
        self._account(reply)
        self._journal(ctx, reply, dropped="the session ended before the decision came back")

    async def _ask(self, ctx: DecisionContext) -> tuple[DecisionContext, BrainReply]:
        return ctx, await self.brain.decide(ctx)

    async def _collect_pending(self, now: int) -> None:
        if self._pending is None or not self._pending.done():
            return
        ctx, reply = self._pending.result()
        self._pending = None
        if (now - ctx.market_time_ns) / NS > self.stale_sec:
            self.stats.stale_dropped += 1
            self._account(reply)  # asked and answered (or fell back): counted, as in replays
            age = (now - ctx.market_time_ns) / NS
            self._journal(ctx, reply, dropped=f"stale: the snapshot was {age:.1f} s old")
            return
        self._apply(ctx, reply, now)

    async def _drain_pending(self) -> None:
        if self._pending is not None:
            await self._pending
            await self._collect_pending(self._last_ts)

    def _apply(self, ctx: DecisionContext, reply: BrainReply, now: int) -> None:
        d = reply.decision
        self._account(reply)
        self._regime = d.market_assessment.regime
        self.zones = list(d.importance_zones)
        changes = []
        if self.learning:
            changes = self.execution.apply_strategy_updates(d.strategy_updates, now, reply.brain)
        results = [
            self.execution.process_trade_decision(t, now, self._last_price or 0, self._regime)
            for t in d.trade_decisions
        ]
        self._count_entries(d.trade_decisions, results)
        acted = any(r.accepted for r in results)
        record = self._journal(ctx, reply, acted=acted)
        if d.notes_to_future_self and record is not None:
            self.notes.add_record(record)
        event = self._trade_update(now, ctx.price, d, results, changes)
        self.timeline.decisions.append(
            {
                "ts_ns": now,
                "regime": self._regime,
                "market_state": d.market_assessment.market_state,
                "price": ctx.price,
                "entries": sum(1 for r in results if r.accepted),
            }
        )
        self.bus.publish(event)

    def _count_entries(self, decisions: list[Any], results: list[Any]) -> None:
        """Entries proposed and why they were refused (a backtest without trades says why)."""
        for decision, result in zip(decisions, results, strict=True):
            if decision.action != "enter":
                continue
            self.stats.entries_proposed += 1
            if not result.accepted:
                # Counted by kind (the text before any ':', numbers blanked), one example each.
                reason = str(result.reason)
                kind = re.sub(r"\$?-?\d[\d,.]*", "N", reason.split(":", 1)[0])[:80]
                refused = self.stats.entries_refused
                refused[kind] = refused.get(kind, 0) + 1
                self.stats.refusal_examples.setdefault(kind, reason[:240])

    def _account(self, reply: BrainReply) -> None:
        s = self.stats
        s.decisions += 1
        s.fallbacks += 1 if reply.fell_back else 0
        s.prompt_tokens += reply.prompt_tokens
        s.completion_tokens += reply.completion_tokens
        s.cached_tokens += reply.cached_tokens
        s.cost_usd += reply.cost_usd
        s.brains[reply.brain] = s.brains.get(reply.brain, 0) + 1

    def _journal(
        self,
        ctx: DecisionContext,
        reply: BrainReply,
        dropped: str | None = None,
        acted: bool = False,
    ) -> dict[str, Any] | None:
        # In full, or folded into a summary (a quiet rule-brain decision): exchange_journal.py.
        self.exchange_journal.record(ctx, reply, dropped, acted)
        d = reply.decision
        return {
            "type": RECORD_TYPE,
            "symbol": ctx.symbol,
            "market_time_ns": ctx.market_time_ns,
            "decision": {
                "market_assessment": d.market_assessment.model_dump(),
                "notes_to_future_self": list(d.notes_to_future_self),
            },
        }

    def _publish_features(self, snap: FeatureSnapshot, now: int) -> None:
        if snap.price is None:
            return
        prof = snap.profile
        self.bus.publish(
            FeatureSummary(
                ts_ns=now,
                symbol=self.symbol,
                price=snap.price,
                poc=prof.poc if prof else None,
                vah=prof.vah if prof else None,
                val=prof.val if prof else None,
            )
        )
        if self.live:
            self.bus.publish(
                Heartbeat(
                    ts_ns=now, symbol=self.symbol, market_ts_ns=self._last_ts, last_price=snap.price
                )
            )

    def _record_minute(self, snap: FeatureSnapshot, now: int) -> None:
        minute = now // (60 * NS)
        if minute == self._minute or snap.price is None:
            return
        self._minute = minute
        t = self.timeline
        t.minute_ts.append(now)
        t.price.append(snap.price)
        prof = snap.profile
        t.poc.append(prof.poc if prof else None)
        t.vah.append(prof.vah if prof else None)
        t.val.append(prof.val if prof else None)
