"""`fabio run --mode live`: the agent on a ProjectX account (TopstepX, or `fabio gateway-sim`).

Order of things: connect (login, account, contracts, hubs), print the account, its risk limits
and the symbols, load what the journal left open, reconcile with the venue, build one agent per
symbol through the composition root (one account-level risk engine), then trade on the market
hub's prints. The agent's clock is the feed's exchange timestamps.

`--shadow` connects, reconciles, streams, records the tape and decides, but sends no order.

SIGTERM (PM2, systemd) stops new entries at once, leaves positions with their stop and target
working at the venue (nothing cancelled, nothing flattened), journals a `shutdown` record per
symbol, prints the summary and exits 0. The summary and stderr say what is left open at the
venue, also at the end of `--duration`.

Unexplained state policy (checked after every reconciliation, twice in a row to let in-flight
events land): a venue position the journal cannot explain, or a position without a working
stop, engages the kill switch (journaled; new entries halt; the engine flattens what it knows)
and flattens the venue's position of that contract at market. Release with
`fabio kill --release` after checking the account.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from fabio.agent import Agent
from fabio.brain.decide import make_brain
from fabio.brokers.projectx.config import projectx_config
from fabio.brokers.projectx.errors import GatewayError
from fabio.brokers.projectx.session import ProjectXSession
from fabio.brokers.projectx.standing import Standing, standing_at_venue
from fabio.brokers.projectx.tape import TapeRecorder, merge_parts
from fabio.config import Settings
from fabio.errors import FabioError
from fabio.events import Event
from fabio.execution.engine import ExecutionEngine
from fabio.execution.reconcile import unexplained
from fabio.execution.risk import RiskConfig, RiskEngine
from fabio.instruments import Contract, parse_symbol
from fabio.journal import JournalWriteError, read_journal
from fabio.killswitch import EXECUTION_JOURNAL
from fabio.runlock import RunLock
from fabio.sessions import SessionKind
from fabio.shutdown import journal_shutdown, on_sigterm
from fabio.wiring import AgentOptions, build_agent, read_state

NS = 1_000_000_000


@dataclass(slots=True)
class LiveOptions:
    symbols: list[str]
    gateway: str | None = None
    shadow: bool = False
    eth: bool = False
    duration_sec: float | None = None
    brain: str | None = None
    quiet: bool = False
    connect_timeout_sec: float = 20.0
    reconcile_every_sec: float = 30.0
    config_overrides: dict[str, Any] = field(default_factory=dict)
    # Called with every event of every symbol's agent (the in-process dashboard, alerts).
    subscribers: list[Callable[[Event], None]] = field(default_factory=list)


def left_open(
    log_dir: Path | None, contract: Contract, risk_config: RiskConfig | None = None
) -> list[dict[str, Any]]:
    """The SUBMITTED records of orders the journal leaves open for this symbol, and of the
    entries of their brackets (the venue's untagged legs are found after their entry), each
    with `filled_qty`: how much of it the journal already holds filled."""
    if log_dir is None:
        return []
    state = read_state(contract, log_dir, risk_config)
    open_ids = set(state.ledger.open_orders)
    submitted: dict[str, dict[str, Any]] = {}
    filled: dict[str, int] = {}
    for rec in read_journal(log_dir / EXECUTION_JOURNAL).records:
        if rec.get("symbol") != contract.symbol:
            continue
        if rec.get("type") == "order_event" and rec.get("status") == "submitted":
            submitted[str(rec.get("order_id"))] = rec
        elif rec.get("type") == "fill":
            oid = str(rec.get("order_id"))
            filled[oid] = filled.get(oid, 0) + int(rec.get("qty") or 0)
    wanted = {o for o in submitted if o in open_ids}
    wanted |= {str(submitted[o].get("parent_id")) for o in list(wanted)} & set(submitted)
    return [{**rec, "filled_qty": filled.get(o, 0)} for o, rec in submitted.items() if o in wanted]


def journaled_fills(log_dir: Path | None, symbol: str) -> list[str]:
    """The venue fill ids the journal holds for this symbol (each is journaled once)."""
    if log_dir is None:
        return []
    return [
        str(rec["venue_fill_id"])
        for rec in read_journal(log_dir / EXECUTION_JOURNAL).records
        if rec.get("type") == "fill"
        and rec.get("symbol") == symbol
        and rec.get("venue_fill_id") is not None
    ]


def journal_qty(engine: ExecutionEngine | None) -> int:
    trade = None if engine is None else engine.position()
    return 0 if trade is None else int(trade.qty)


def unexplained_at_venue(session: ProjectXSession, expected: Callable[[str], int]) -> list[str]:
    """The venue-neutral unexplained-state rule (`fabio.execution.reconcile`) on the session's
    brokers, and on every position the venue reports for a contract none of them trades.
    `expected(symbol)` is the journal's signed position; no stop is asked of a shadow run."""
    untraded = {
        cid: pos.qty for cid, pos in session.venue_positions.items() if cid not in session.brokers
    }
    return unexplained(
        session.brokers.values(), expected, untraded=untraded, stops=not session.shadow
    )


async def resolve_unexplained(
    session: ProjectXSession, engines: dict[str, ExecutionEngine], problem: str
) -> str:
    """What nothing at the venue explains (`unexplained_at_venue`): engage the kill
    switch (journaled; every engine flattens what it knows), close the venue's position of that
    contract at market, and when the venue is flat but the journal is not, close the journal's
    position at the last price (a `recovery` record says so). How it was resolved, in words."""
    now = session.clock_ns()
    for engine in engines.values():
        engine.set_kill_switch(True, f"reconciliation: {problem}", "risk", now)
    steps = ["kill switch engaged"]
    symbol = problem.split(":", 1)[0]
    cid = next((c for c, b in session.brokers.items() if b.symbol == symbol), symbol)
    pos = session.venue_positions.get(cid)
    venue_qty = 0 if pos is None else pos.qty
    if venue_qty != 0 and not session.shadow:
        try:
            session.closing.add(cid)
            await session.http.close_position(session.account.id, cid)
            steps.append(f"the venue's {venue_qty:+d} closed at market (Position/closeContract)")
        except GatewayError as exc:
            steps.append(f"closing the venue's {venue_qty:+d} failed: {exc}")
    held = engines.get(symbol)
    if held is not None and venue_qty == 0 and journal_qty(held) != 0:
        last = session.last_price_ticks(cid)
        if last is not None and held.close_unexplained(now, last, problem):
            steps.append("the journal's position closed at the last price (venue flat)")
    return "; ".join(steps)


class LiveRun:
    """One live (or shadow) session: the venue session, one agent per symbol, the loop."""

    def __init__(self, settings: Settings, options: LiveOptions) -> None:
        if options.eth:  # the features' session follows the trading window
            settings = settings.model_copy(update={"feature_session": SessionKind.ETH})
        self.settings = settings
        self.options = options
        self.run_lock: RunLock | None = None
        kind = options.brain or (
            "llm" if settings.openai_api_key or settings.openai_base_url else "rules"
        )
        self.brain_kind = kind
        self.console = Console(stderr=True, quiet=options.quiet)
        self.session: ProjectXSession | None = None
        self.agents: dict[str, Agent] = {}
        self.alerts: list[str] = []
        self.mismatches: list[dict[str, str]] = []  # found by reconciliation, and resolved how
        self._suspect: set[str] = set()
        self.started = time.monotonic()
        self.connection: dict[str, str] = {}
        self.terminated = False  # SIGTERM: no new entry, the loop ends, nothing is flattened
        self._connecting: asyncio.Future[ProjectXSession] | None = None
        self.left_at_venue: list[Standing] | None = None

    def _on_state(self, component: str, status: str, detail: str) -> None:
        self.connection[component] = status
        if status != "connected" and detail:
            self.console.print(f"[yellow]{component}[/]: {status} ({detail})")

    async def connect(self) -> ProjectXSession:
        cfg = projectx_config(self.settings, self.options.gateway, **self.options.config_overrides)
        tape = TapeRecorder(self.settings.log_dir / "tape")
        merge_parts(self.settings.log_dir / "tape")  # a crashed run's last parts
        session = ProjectXSession(
            cfg,
            shadow=self.options.shadow,
            tape=tape,
            reconcile_every_sec=self.options.reconcile_every_sec,
            on_state=self._on_state,
        )
        self.session = session
        contracts = [parse_symbol(s) for s in self.options.symbols]
        for c in contracts:
            session.journal_orders[c.symbol] = left_open(
                self.settings.log_dir, c, self.settings.risk_config()
            )
            session.journal_fills[c.symbol] = journaled_fills(self.settings.log_dir, c.symbol)
        try:
            await session.connect(self.options.symbols)
            if not await session.wait_connected(self.options.connect_timeout_sec):
                raise FabioError(
                    f"the gateway's hubs did not connect within "
                    f"{self.options.connect_timeout_sec:.0f} s ({self.connection})"
                )
        except GatewayError as exc:
            await session.close()
            raise FabioError(str(exc)) from None
        except (FabioError, asyncio.CancelledError):  # also SIGTERM while connecting
            await session.close()
            raise
        return session

    def banner(self) -> dict[str, Any]:
        assert self.session is not None
        s = self.session
        risk = self.settings.risk_config()
        return {
            "account": f"{s.account.name} ({s.account.id})",
            "balance": s.account.balance,
            "can_trade": s.account.can_trade,
            "mode": "shadow (no orders)" if self.options.shadow else "LIVE",
            "symbols": ", ".join(f"{root} → {c.id}" for root, c in s.contracts.items()),
            "account_preset": risk.preset,
            "max_loss_limit_usd": risk.limits.max_loss_usd,
            "daily_loss_limit_usd": risk.daily_loss_limit_usd,
            "max_position_minis": f"{risk.limits.max_minis:g} (micros count 10:1)",
            "flat_time_ct": str(risk.flat_time),
            "brackets": "venue (Auto OCO)" if s.brackets == "auto" else "own stop/limit",
        }

    def build(self) -> None:
        assert self.session is not None
        session = self.session
        brain = make_brain(self.brain_kind, self.settings)
        session_kind = SessionKind.ETH if self.options.eth else SessionKind.RTH
        # One risk engine for the account: every symbol's entries count against one limit.
        risk = RiskEngine(
            self.settings.risk_config().model_copy(update={"trading_session": session_kind})
        )
        # One lock for the whole run: every symbol's agent shares the logs folder and account.
        if self.run_lock is None:
            self.run_lock = RunLock(
                self.settings.log_dir, self.settings.topstep_account_id
            ).acquire()
        for symbol in self.options.symbols:
            contract = parse_symbol(symbol)
            options = AgentOptions.from_settings(
                self.settings,
                "live",
                risk=risk,
                run_lock=self.run_lock,
                trading_session=session_kind,
                broker=session.broker_for,  # (contract, next order number) -> its broker
            )
            agent = build_agent(contract, brain, options)
            for subscriber in self.options.subscribers:
                agent.bus.subscribe(subscriber)
            self.agents[contract.symbol] = agent

    async def run(self, on_connected: Callable[[], None] | None = None) -> dict[str, Any]:
        """Connect (then `on_connected`, e.g. to show the banner), build the agents, trade until
        the end (`--duration`, SIGTERM); the session is closed and the lock released after.
        What stays open at the venue is reported, never flattened."""
        with on_sigterm(self._terminate):
            self._connecting = asyncio.ensure_future(self.connect())
            try:
                session = await self._connecting
            except asyncio.CancelledError:
                if not self.terminated:
                    raise
                return self.summary()  # SIGTERM while connecting: nothing was traded
            if on_connected is not None:
                on_connected()
            try:
                self.build()
                if not self.terminated:
                    await self._loop(session)
                for agent in self.agents.values():
                    agent.execution.process_broker_events()
                    if self.terminated:
                        journal_shutdown(agent, ts_ns=session.clock_ns())
                await self._report_open(session)
            except JournalWriteError as exc:  # disk full: stop as it stands, one line
                for agent in self.agents.values():
                    agent.execution.halt_on_journal_failure(exc.reason)
                raise FabioError(
                    f"{exc}; trading stopped, no new entry (the venue keeps every stop and "
                    "target, nothing was flattened): free some space and run again, the next "
                    "start continues from the last whole record"
                ) from None
            finally:
                await session.close()
                self.release()
        return self.summary()

    def _terminate(self) -> None:
        """SIGTERM: stop taking entries now (the loop feeds no agent after this); the venue
        keeps every stop and target."""
        if self.terminated:
            return
        self.terminated = True
        self.console.print("SIGTERM: no new entries; stopping (venue orders stay working)")
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        elif self.session is not None:
            self.session.notify()

    async def _report_open(self, session: ProjectXSession) -> None:
        """Say on stderr (even with --quiet) and in the summary what stays open at the venue."""
        symbols = {cid: feed.contract.symbol for cid, feed in session.feeds.items()}
        self.left_at_venue, fresh = await standing_at_venue(
            session.account.id, symbols, session.http, session.venue_positions, session.venue_orders
        )
        warn = Console(stderr=True)
        for standing in self.left_at_venue:
            if standing.qty:
                source = "" if fresh else " (as last reported: the venue did not answer)"
                warn.print(f"[bold yellow]left open:[/] {standing.line()}{source}", soft_wrap=True)

    def release(self) -> None:
        """Let another process trade this folder and account once this run is over."""
        if self.run_lock is not None:
            self.run_lock.release()
            self.run_lock = None

    async def _loop(self, session: ProjectXSession) -> None:
        end_ns: int | None = None
        last_check = time.monotonic()
        reconciles = session.reconciles
        while not self.terminated:
            await session.wait_activity(0.25)
            for symbol, agent in self.agents.items():
                feed = session.feed_for(parse_symbol(symbol))
                for batch in feed.get_nowait():
                    if self.terminated:  # SIGTERM during this step: no more decisions
                        return
                    if end_ns is None and self.options.duration_sec is not None:
                        end_ns = int(batch.trades.ts[0]) + int(self.options.duration_sec * NS)
                    await agent.feed(batch.trades)
                agent.execution.process_broker_events()
            if session.reconciles != reconciles or time.monotonic() - last_check > 5:
                reconciles = session.reconciles
                last_check = time.monotonic()
                await self._check_unexplained(session)
            if end_ns is not None and session.last_market_ns >= end_ns:
                return

    async def _check_unexplained(self, session: ProjectXSession) -> None:
        engines = {symbol: agent.execution for symbol, agent in self.agents.items()}
        found = set(unexplained_at_venue(session, lambda symbol: journal_qty(engines.get(symbol))))
        confirmed = found & self._suspect
        self._suspect = found - confirmed
        for problem in sorted(confirmed):
            self.alerts.append(problem)
            self.console.print(
                f"[bold red]reconciliation:[/] {problem}; engaging the kill "
                "switch and flattening (release with `fabio kill --release`)"
            )
            resolution = await resolve_unexplained(session, engines, problem)
            self.mismatches.append({"problem": problem, "resolution": resolution})

    def open_at_end(self) -> dict[str, Any]:
        """Per symbol: the journal's position, the venue's, and our working protection."""
        out: dict[str, Any] = {}
        s = self.session
        for symbol, agent in self.agents.items():
            engine = agent.execution
            trade = engine.position()
            venue = sum(p.qty for p in engine.broker.positions() if p.symbol == symbol)
            tick = engine.spec.tick_size
            legs = [
                f"{o.role.value} {o.id} {o.qty - o.filled_qty} @ "
                f"{((o.stop_ticks if o.role.value == 'stop' else o.limit_ticks) or 0) * tick:g}"
                for o in engine.broker.open_orders()
                if o.role.value in ("stop", "target")
            ]
            if trade is None and venue == 0 and not legs:
                continue
            out[symbol] = {
                "journal": 0 if trade is None else int(trade.qty),
                "trade": None if trade is None else trade.trade_id,
                "avg_entry": (
                    engine.spec.to_price(trade.avg_entry) if trade and trade.entry_qty else None
                ),
                "venue": venue if s is not None else None,
                "protection": legs,
            }
        return out

    def summary(self) -> dict[str, Any]:
        s = self.session
        out: dict[str, Any] = {
            "mode": "shadow" if self.options.shadow else "live",
            "symbols": list(self.agents),
            "wall_sec": round(time.monotonic() - self.started, 1),
            "alerts": list(self.alerts),
            "open_at_end": self.open_at_end(),
            "mismatches": list(self.mismatches),
            "recoveries": [
                f"{r.symbol}: {r.what}: {r.why}"
                for agent in self.agents.values()
                for r in agent.execution.recoveries
            ],
        }
        if self.terminated:
            out["stopped_by"] = "SIGTERM (no new entries; venue orders kept, nothing flattened)"
        if self.left_at_venue is not None:
            out["left_at_venue"] = [s.line() for s in self.left_at_venue] or "nothing"
        for symbol, agent in self.agents.items():
            st = agent.status
            out[symbol] = {
                "trades_closed": st.pnl.get("closed_trades", 0),
                "net_pnl_usd": st.pnl.get("realised_usd", 0.0),
                "decisions": st.brain.get("decisions", 0),
            }
        if s is not None:
            out["account"] = s.account.name
            out["balance"] = s.account.balance
            out["orders_sent"] = sum(len(b.sent) for b in s.brokers.values())
            out["reconciliations"] = s.reconciles
            out["problems"] = (s.problems + [p for b in s.brokers.values() for p in b.problems])[
                -20:
            ]
            agreement = {f.contract.symbol: f.aggressor.agreement for f in s.feeds.values()}
            out["aggressor_type_agreement"] = agreement
            if s.user_hub is not None and s.market_hub is not None:
                out["reconnects"] = {
                    "user": s.user_hub.disconnects,
                    "market": s.market_hub.disconnects,
                }
        return out
