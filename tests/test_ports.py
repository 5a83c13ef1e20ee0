"""The ports, the typed events, AgentStatus, the kill switch and restart through the wiring."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fabio.decision import TradeDecision
from fabio.errors import FabioError
from fabio.events import (
    SCHEMA_VERSION,
    EventBus,
    FillEvent,
    JournalVersionError,
    KillSwitchEvent,
    OrderEvent,
    RiskStateEvent,
    TradeUpdate,
    parse_record,
)
from fabio.execution.engine import EXECUTION_JOURNAL, ExecutionEngine
from fabio.execution.risk import RiskConfig
from fabio.journal import read_journal
from fabio.killswitch import KillSwitchMailbox, request_kill_switch
from fabio.orders import BracketRequest, Fill, Order, OrderRole, OrderStatus, OrderType
from fabio.ports import (
    AccountSnapshot,
    Broker,
    BrokerEvent,
    MarketDrivenBroker,
    OrderUpdate,
    PositionSnapshot,
)
from fabio.status import AgentStatus
from fabio.wiring import open_execution, read_state
from tests.execution.test_engine import ES, P, ct, engine_at, enter, tape


class FakeVenue:
    """A venue that only records calls; the test decides what it reports and when (live-like)."""

    symbol = "ESH4"

    def __init__(self, next_order: int) -> None:
        self.n = next_order
        self.orders: dict[str, Order] = {}
        self.events: list[BrokerEvent] = []
        self.calls: list[str] = []

    def _order(
        self,
        side: int,
        qty: int,
        type_: OrderType,
        role: OrderRole,
        strategy: str,
        now: int,
        **prices: Any,
    ) -> Order:
        order = Order(f"ESH4-{self.n}", "ESH4", side, qty, type_, role, strategy, now, **prices)
        self.n += 1
        self.orders[order.id] = order
        return order

    def submit_bracket(self, request: BracketRequest, now_ns: int) -> list[Order]:
        self.calls.append("bracket")
        e = self._order(
            request.side, request.qty, request.entry_type, OrderRole.ENTRY, request.strategy, now_ns
        )
        s = self._order(
            -request.side,
            request.qty,
            OrderType.STOP,
            OrderRole.STOP,
            request.strategy,
            now_ns,
            stop_ticks=request.stop_ticks,
        )
        t = self._order(
            -request.side,
            request.qty,
            OrderType.LIMIT,
            OrderRole.TARGET,
            request.strategy,
            now_ns,
            limit_ticks=request.target_ticks,
        )
        return [e, s, t]

    def protect(
        self, *, side: int, qty: int, stop_ticks: int, target_ticks: int, strategy: str, now_ns: int
    ) -> list[Order]:
        self.calls.append("protect")
        return [
            self._order(
                -side, qty, OrderType.STOP, OrderRole.STOP, strategy, now_ns, stop_ticks=stop_ticks
            ),
            self._order(
                -side,
                qty,
                OrderType.LIMIT,
                OrderRole.TARGET,
                strategy,
                now_ns,
                limit_ticks=target_ticks,
            ),
        ]

    def submit_exit(self, side: int, qty: int, strategy: str, now_ns: int, reason: str) -> Order:
        self.calls.append("exit")
        return self._order(side, qty, OrderType.MARKET, OrderRole.EXIT, strategy, now_ns)

    def modify(
        self, order_id: str, stop_ticks: int | None = None, limit_ticks: int | None = None
    ) -> Order:
        self.calls.append(f"modify {order_id}")
        return self.orders[order_id]

    def cancel(self, order_id: str, reason: str, *, now_ns: int | None = None) -> Order:
        self.calls.append(f"cancel {order_id}")
        return self.orders[order_id]

    def cancel_all(self, reason: str, *, now_ns: int | None = None) -> list[Order]:
        self.calls.append("cancel_all")
        return []

    def drain_events(self) -> list[BrokerEvent]:
        events, self.events = self.events, []
        return events

    def open_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if o.status.is_open]

    def get_order(self, order_id: str) -> Order | None:
        return self.orders.get(order_id)

    def positions(self) -> list[PositionSnapshot]:
        return []

    def account(self) -> AccountSnapshot:
        return AccountSnapshot("fake", 50_000.0, True, simulated=False)

    def report(self, order: Order, status: OrderStatus, ts: int, price: int | None = None) -> None:
        order.status = status
        fill = None
        if price is not None:
            order.filled_qty = order.qty
            fill = Fill(
                order.id, "ESH4", ts, order.side, order.qty, price, 1.4, order.role, order.strategy
            )
        self.events.append(
            OrderUpdate(
                ts,
                order.id,
                "ESH4",
                status,
                "",
                order.role,
                order.type,
                order.side,
                order.qty,
                order.filled_qty,
                order.strategy,
                fill=fill,
            )
        )


def test_a_fake_broker_drives_the_engine_through_the_port(tmp_path: Path) -> None:
    venues: list[FakeVenue] = []

    def factory(contract: Any, n: int) -> Broker:
        venues.append(FakeVenue(n))
        return venues[-1]

    e = open_execution(ES, tmp_path, RiskConfig(), broker=factory)
    venue = venues[0]
    assert isinstance(venue, Broker) and not isinstance(venue, MarketDrivenBroker)
    e.start_session("2024-03-05", ct(8, 30))
    e.on_trades(tape(ct(9, 0), [P] * 3))  # a live venue is not fed the tape
    result = e.process_trade_decision(enter(), ct(9, 0, 5), P, "range")
    assert result.accepted and venue.calls == ["bracket"]
    entry, stop, target = list(venue.orders.values())
    assert e.ledger.closed == [] and e.position() is not None
    # The venue reports later: entry filled, then the target; the engine journals both.
    venue.report(entry, OrderStatus.FILLED, ct(9, 0, 6), P)
    venue.report(target, OrderStatus.FILLED, ct(9, 0, 9), P + 24)
    venue.report(stop, OrderStatus.CANCELLED, ct(9, 0, 9))
    e.on_trades(tape(ct(9, 0, 10), [P + 24]))
    [trade] = e.ledger.closed
    assert trade.exit_reason == "target" and trade.net_pnl_usd == pytest.approx(24 * 12.5 - 2.8)
    records = read_journal(tmp_path / EXECUTION_JOURNAL).records
    assert all(r["schema_version"] == SCHEMA_VERSION for r in records)
    assert [r["order_id"] for r in records if r["type"] == "fill"] == [entry.id, target.id]
    # A restart re-protects nothing (flat) and numbers orders on.
    again = open_execution(ES, tmp_path, RiskConfig(), broker=factory)
    assert venues[-1].calls == [] and venues[-1].n == venues[0].n
    assert again.ledger.closed == e.ledger.closed


def test_every_journal_record_reads_back_as_the_same_typed_event(tmp_path: Path) -> None:
    e = engine_at(tmp_path)
    e.on_trades(tape(ct(9, 0), [P] * 3))
    e.process_trade_decision(enter(), ct(9, 0, 5), P, "range")
    e.on_trades(tape(ct(9, 0, 6), [P, P + 25]))
    e.set_kill_switch(True, "test", "dashboard", ct(9, 1))
    records = read_journal(tmp_path / EXECUTION_JOURNAL).records
    kinds = {r["type"] for r in records}
    assert {"session", "decision", "entry", "fill", "order_event", "kill_switch"} <= kinds
    for rec in records:
        event = parse_record(rec)
        assert event is not None, rec
        assert event.to_record() == rec
    fill = next(parse_record(r) for r in records if r["type"] == "fill")
    assert isinstance(fill, FillEvent) and fill.trade_id == "ESH4-T1"


def test_old_and_newer_journal_records() -> None:
    old = {
        "type": "fill",
        "ts_ns": 5,
        "symbol": "ESH4",
        "trade_id": "ESH4-T1",
        "order_id": "ESH4-1",
        "side": 1,
        "qty": 1,
        "price_ticks": 20000,
        "commission_usd": 1.4,
        "role": "entry",
        "strategy": "s",
        "reason": "entry",
    }
    assert isinstance(parse_record(old), FillEvent)  # no schema_version: version 0, same fields
    assert parse_record({"type": "something_else", "ts_ns": 1}) is None
    with pytest.raises(JournalVersionError, match="upgrade Fabio"):
        parse_record({**old, "schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(FabioError, match="incomplete"):
        parse_record({"type": "fill", "ts_ns": 5})


def test_agent_status_folds_the_events() -> None:
    bus = EventBus()
    status = AgentStatus()
    bus.subscribe(status.apply)
    bus.publish(
        TradeUpdate(
            ts_ns=1,
            symbol="ESH4",
            price=5000.0,
            position={"side": "long", "qty": 1, "avg_entry": 4999.0},
            pnl={"realised_usd": 12.5},
            market_assessment={"regime": "trend", "market_state": "balanced"},
            strategy_state={"A": {"enabled": True, "risk_fraction": 0.005}},
            trading_state="active",
            brain={"decisions": 3},
        )
    )
    assert (status.symbol, status.last_price, status.regime) == ("ESH4", 5000.0, "trend")
    assert status.position["qty"] == 1 and status.brain["decisions"] == 3
    assert status.risk_label == "active"
    bus.publish(KillSwitchEvent(ts_ns=2, engaged=True, reason="news", source="dashboard"))
    assert status.risk_label == "killed" and status.kill_switch.source == "dashboard"
    bus.publish(
        RiskStateEvent(
            ts_ns=3, symbol="ESH4", state="halted", previous="active", reason="daily loss"
        )
    )
    assert status.trading_state == "halted"
    assert json.loads(json.dumps(status.to_dict()))["risk_label"] == "killed"


def test_kill_switch_is_journaled_survives_restart_and_reaches_a_running_engine(
    tmp_path: Path,
) -> None:
    e = engine_at(tmp_path)
    published: list[Any] = []
    e.publish = published.append
    e.on_trades(tape(ct(9, 0), [P] * 3))
    e.process_trade_decision(enter(), ct(9, 0, 5), P, "range")
    e.on_trades(tape(ct(9, 0, 6), [P, P + 1]))
    assert e.position() is not None and e.position().qty == 1  # type: ignore[union-attr]
    # `fabio kill` from another process: journaled at once, picked up from the request file.
    request_kill_switch(tmp_path, True, "fed day", "cli")
    request = KillSwitchMailbox(tmp_path).take()
    assert request is not None and not (tmp_path / "KILL").exists()
    assert e.apply_kill_switch_request(request) is True
    assert any(isinstance(x, KillSwitchEvent) for x in published)
    e.on_trades(tape(ct(9, 1), [P + 1, P + 1]))  # the exit fills: flat
    assert e.position() is None and e.ledger.closed[-1].exit_reason.startswith("kill switch")
    refused = e.process_trade_decision(enter(), ct(9, 2), P + 1)
    assert not refused.accepted and "kill switch engaged (cli): fed day" in refused.reason
    records = read_journal(tmp_path / EXECUTION_JOURNAL).records
    kills = [r for r in records if r["type"] == "kill_switch"]
    assert len(kills) == 1 and kills[0]["source"] == "cli"  # journaled once, by the CLI
    # A restart keeps it engaged; state shows it; releasing is journaled too.
    again = open_execution(ES, tmp_path, RiskConfig())
    assert again.ledger.risk.kill_switch_engaged
    assert read_state(ES, tmp_path).ledger.summary()["kill_switch"]["reason"] == "fed day"
    again.set_kill_switch(False, "all clear", "dashboard", ct(9, 5))
    assert not open_execution(ES, tmp_path, RiskConfig()).ledger.risk.kill_switch_engaged


def test_a_legacy_kill_file_is_read_as_an_engage_request(tmp_path: Path) -> None:
    (tmp_path / "KILL").write_text("old style stop\n")
    request = KillSwitchMailbox(tmp_path).take()
    assert request is not None and request.engaged and request.reason == "old style stop"
    assert request.request_id is None  # nobody journaled it: the agent that finds it will


def _open_position_journal(tmp_path: Path) -> None:
    e = engine_at(tmp_path)
    e.on_trades(tape(ct(9, 0), [P] * 3))
    e.process_trade_decision(enter(), ct(9, 0, 5), P, "range")
    e.on_trades(tape(ct(9, 0, 6), [P, P + 1]))  # long 1, stop and target working


def test_restart_recovers_once_and_closes_out_superseded_orders(tmp_path: Path) -> None:
    _open_position_journal(tmp_path)
    path = tmp_path / EXECUTION_JOURNAL
    before = path.read_bytes()
    view = read_state(ES, tmp_path)  # read-only: `fabio state`, the paper probe, decide
    assert len(view.ledger.open_orders) == 2 and path.read_bytes() == before
    engine = ExecutionEngine.open(ES, tmp_path, lambda n: _sim(n))
    assert path.read_bytes() == before  # opening alone writes nothing
    engine.recover()
    engine.recover()  # idempotent: one recovery per start
    records = [parse_record(r) for r in read_journal(path).records]
    reprotected = [r for r in records if isinstance(r, OrderEvent) and r.event == "reprotected"]
    assert len(reprotected) == 1 and len(reprotected[0].orders) == 2
    old = set(view.ledger.open_orders)
    cancelled = {
        r.order_id
        for r in records
        if isinstance(r, OrderEvent) and r.status == "cancelled" and r.reason.startswith("restart")
    }
    assert cancelled == old  # every superseded protective order ends journaled cancelled
    # A second restart: again exactly one pair, and the first restart's pair is closed out.
    open_execution(ES, tmp_path, RiskConfig())
    records = [parse_record(r) for r in read_journal(path).records]
    pairs = [r for r in records if isinstance(r, OrderEvent) and r.event == "reprotected"]
    assert len(pairs) == 2
    final = read_state(ES, tmp_path).ledger.open_orders
    assert set(final) == set(pairs[-1].orders)  # only the live pair is open


def _sim(n: int) -> Broker:
    from fabio.execution.broker import SimulatedBroker

    return SimulatedBroker(ES.spec, ES.symbol, id_prefix=n)


def test_trade_decision_is_a_domain_type() -> None:
    from fabio.brain import schema

    assert schema.TradeDecision is TradeDecision  # the brain re-exports the domain contract


def test_golden_masters_never_rewrite_themselves() -> None:
    """The tests compare only; regeneration is a separate command (tests.golden.regenerate)."""
    import inspect

    from tests import test_agent
    from tests.execution import test_engine

    for module in (test_agent, test_engine):
        source = inspect.getsource(module)
        assert "os.environ" not in source and "FABIO_UPDATE_GOLDEN" not in source
        assert ".write_text(" not in source.split("def test_golden_master")[-1][:800]


def test_a_paper_agent_starts_knowing_the_kill_switch_is_engaged(tmp_path: Path) -> None:
    from fabio.brain.rules import RuleBrain
    from fabio.wiring import AgentOptions, build_agent

    request_kill_switch(tmp_path, True, "pre-open stop", "cli")
    agent = build_agent(ES, RuleBrain(), AgentOptions(mode="paper", log_dir=tmp_path))
    assert agent.status.kill_switch.engaged and agent.status.risk_label == "killed"
    assert agent.status.kill_switch.reason == "pre-open stop"
    assert not (tmp_path / "KILL").exists()  # the request was taken
    kills = [
        r for r in read_journal(tmp_path / EXECUTION_JOURNAL).records if r["type"] == "kill_switch"
    ]
    assert len(kills) == 1


def test_live_mode_refuses_without_a_venue_and_trades_on_the_one_passed(tmp_path: Path) -> None:
    from fabio.brain.rules import RuleBrain
    from fabio.wiring import AgentOptions, build_agent

    with pytest.raises(FabioError, match="mode 'live' trades on a venue the caller connects"):
        build_agent(ES, RuleBrain(), AgentOptions(mode="live", log_dir=tmp_path))
    assert not (tmp_path / EXECUTION_JOURNAL).exists()  # refused before anything was written
    venues: list[FakeVenue] = []

    def factory(contract: Any, n: int) -> Broker:
        venues.append(FakeVenue(n))
        return venues[-1]

    agent = build_agent(
        ES, RuleBrain(), AgentOptions(mode="live", log_dir=tmp_path, broker=factory)
    )
    try:
        assert agent.execution.broker is venues[0] and agent.live
    finally:
        if agent.run_lock is not None:
            agent.run_lock.release()


def test_agents_and_engines_are_built_only_in_the_composition_root() -> None:
    src = Path(__file__).parents[1] / "src" / "fabio"
    builders = {"Agent(": set(), "ExecutionEngine.open(": set(), "SimulatedBroker(": set()}
    for path in src.rglob("*.py"):
        text = path.read_text()
        for needle, found in builders.items():
            if needle in text.replace(f"class {needle}", ""):
                found.add(path.relative_to(src).as_posix())
    assert builders["Agent("] == {"wiring.py"}
    assert builders["ExecutionEngine.open("] == {"wiring.py"}
    assert builders["SimulatedBroker("] == {"wiring.py"}
    engine = (src / "execution" / "engine.py").read_text()
    assert "SimulatedBroker" not in engine and "fabio.brain" not in engine


def test_a_venue_that_still_works_the_protection_keeps_it_at_restart(tmp_path: Path) -> None:
    _open_position_journal(tmp_path)
    journaled = read_state(ES, tmp_path).ledger.open_orders
    venues: list[FakeVenue] = []

    def factory(contract: Any, n: int) -> Broker:
        venue = FakeVenue(n)
        for order_id, role, type_ in zip(
            sorted(journaled),
            (OrderRole.STOP, OrderRole.TARGET),
            (OrderType.STOP, OrderType.LIMIT),
            strict=True,
        ):
            venue.orders[order_id] = Order(
                order_id, "ESH4", -1, 1, type_, role, "s", 0, status=OrderStatus.ACCEPTED
            )
        venues.append(venue)
        return venue

    before = (tmp_path / EXECUTION_JOURNAL).read_bytes()
    engine = open_execution(ES, tmp_path, RiskConfig(), broker=factory)
    assert venues[0].calls == []  # nothing cancelled, nothing re-placed
    after = (tmp_path / EXECUTION_JOURNAL).read_bytes()
    assert after.startswith(before)  # only one record says so: adopted
    added = [json.loads(line) for line in after[len(before) :].splitlines()]
    assert [(r["type"], r["what"]) for r in added] == [("recovery", "adopted")]
    assert set(engine.order_trade) >= set(journaled)


def test_both_journals_carry_the_schema_version(tmp_path: Path) -> None:
    from fabio.backtest.runner import run_backtest
    from fabio.brain.rules import RuleBrain
    from fabio.data.synthetic import SyntheticConfig, SyntheticFeed

    feed = SyntheticFeed(SyntheticConfig(symbol="ES", days=1, seed=3, eth=False, rth_trades=20_000))
    run_backtest([feed], RuleBrain(), tmp_path / "bt")
    for name in ("execution.jsonl", "llm_exchanges.jsonl"):
        records = read_journal(tmp_path / "bt" / name).records
        assert records and all(r["schema_version"] == SCHEMA_VERSION for r in records), name


def test_the_live_view_is_drawn_from_agent_status_only() -> None:
    from rich.console import Console

    from fabio.config import Settings
    from fabio.paper import PaperSession, RunOptions

    session = PaperSession(Settings(_env_file=None), RunOptions(live_view=False, brain="rules"))  # type: ignore[call-arg]
    status = AgentStatus(symbol="ESH4")
    status.apply(
        TradeUpdate(
            ts_ns=1_704_207_000_000_000_000,
            symbol="ESH4",
            price=4800.25,
            position={
                "side": "long",
                "qty": 1,
                "avg_entry": 4799.0,
                "strategy": "MeanReversionPOC_v2",
            },
            pnl={"realised_usd": 12.5},
            trading_state="active",
            strategy_state={"MeanReversionPOC_v2": {"enabled": True, "risk_fraction": 0.005}},
        )
    )
    status.apply(KillSwitchEvent(ts_ns=2, engaged=True, reason="[news] spike", source="cli"))
    console = Console(width=200, record=True)
    console.print(session._view(status, None))
    text = console.export_text()
    assert "KILL SWITCH ENGAGED ([news] spike)" in text and "risk active" not in text
    assert "long 1 @ 4799.00" in text and "0.0050" in text


class RejectingVenue(FakeVenue):
    """A venue that refuses every exit (e.g. the contract is halted, or the account locked).

    It holds the position the journal left open (long 1), as a real venue would."""

    def positions(self) -> list[PositionSnapshot]:
        return [PositionSnapshot(self.symbol, 1, float(P))]

    def submit_exit(self, side: int, qty: int, strategy: str, now_ns: int, reason: str) -> Order:
        order = super().submit_exit(side, qty, strategy, now_ns, reason)
        order.status = OrderStatus.REJECTED
        order.reason = "market closed"
        return order


def test_a_position_left_from_an_earlier_session_that_cannot_be_flattened_halts(
    tmp_path: Path,
) -> None:
    """Issue 13 item 1: flatten at once, or halt and say so when it cannot."""
    _open_position_journal(tmp_path)  # long 1 on 2024-03-05, then the process died
    e = open_execution(ES, tmp_path, RiskConfig(), broker=lambda c, n: RejectingVenue(n))
    next_day = ct(8, 30) + 24 * 3600 * 1_000_000_000
    e.start_session("2024-03-06", next_day)
    records = [parse_record(r) for r in read_journal(tmp_path / EXECUTION_JOURNAL).records]
    stale = [r for r in records if r is not None and r.type == "stale_position"]
    assert len(stale) == 1 and "2024-03-05" in stale[0].reason  # type: ignore[attr-defined]
    [kill] = [r for r in records if isinstance(r, KillSwitchEvent)]
    assert kill.engaged and kill.source == "restart"
    assert "cannot flatten" in kill.reason and "market closed" in kill.reason
    assert e.ledger.risk.kill_switch_engaged and any("cannot flatten" in p for p in e.problems)
    assert not e.process_trade_decision(enter(), next_day + 60_000_000_000, P).accepted


def test_a_journal_position_the_venue_does_not_hold_is_never_exited(tmp_path: Path) -> None:
    """The journal left long 1, but the venue is flat (its stop filled while we were down, or
    the trader closed it): a market exit would open a short. None is sent; trading halts and
    says why."""
    _open_position_journal(tmp_path)
    venue = FakeVenue(1)
    e = open_execution(ES, tmp_path, RiskConfig(), broker=lambda c, n: venue)
    e.start_session("2024-03-06", ct(8, 30) + 24 * 3600 * 1_000_000_000)
    assert not any(c.startswith("exit") for c in venue.calls), venue.calls
    assert e.ledger.risk.kill_switch_engaged
    assert any("venue holds 0" in p for p in e.problems)
