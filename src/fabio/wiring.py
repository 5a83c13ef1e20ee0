"""The composition root: the one place that builds an agent (ARCHITECTURE.md §9, "Wiring").

`build_agent(contract, brain, options)` wires features, execution (on a `Broker`), brain,
cadence, journals, the event bus and the `AgentStatus` read model for a mode: `backtest`,
`paper`, `live` or `decide`. The backtest runner, paper trading, `fabio decide` and the CLI call
it (or `open_execution` / `read_state` for the execution part alone); nothing else constructs
an agent or an execution engine.

The venue is chosen by a `BrokerFactory` (contract, next order number -> Broker): the simulated
broker for backtest and paper. Live mode has no default venue: its caller (`fabio.live`, on a
connected ProjectX session) passes the factory in `AgentOptions.broker`; without one it refuses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fabio.account_archive import recover_partial
from fabio.agent import Agent
from fabio.brain.base import Brain
from fabio.brain.cadence import Cadence
from fabio.brain.decide import secret_values
from fabio.config import FeatureConfig, Settings
from fabio.errors import FabioError
from fabio.events import EventBus, Subscriber
from fabio.execution.broker import SimBrokerConfig, SimulatedBroker
from fabio.execution.engine import ExecutionEngine
from fabio.execution.ledger import Ledger
from fabio.execution.risk import RiskConfig, RiskEngine
from fabio.execution.strategy_book import GuardrailConfig
from fabio.features.engine import FeatureEngine
from fabio.instruments import Contract
from fabio.journal import LLM_EXCHANGES, Journal, read_journal
from fabio.killswitch import EXECUTION_JOURNAL, KillSwitchMailbox
from fabio.ports import Broker
from fabio.runlock import RunLock
from fabio.sessions import SessionKind
from fabio.status import AgentStatus
from fabio.strategies import StrategyParams, initialize_default_strategies, load_strategies

Mode = Literal["backtest", "paper", "live", "decide"]
MODES: tuple[Mode, ...] = ("backtest", "paper", "live", "decide")
# (contract, the next unused order number from the journal) -> the venue for that contract.
BrokerFactory = Callable[[Contract, int], Broker]


def sim_broker(config: SimBrokerConfig | None = None) -> BrokerFactory:
    """The simulated venue (backtest, paper)."""

    def build(contract: Contract, next_order: int) -> Broker:
        return SimulatedBroker(contract.spec, contract.symbol, config, id_prefix=next_order)

    return build


def broker_for(options: AgentOptions) -> BrokerFactory:
    """The venue an agent trades on: `options.broker`, else the simulated broker. Live mode
    has no default: a live run passes its venue's factory (`fabio run --mode live`)."""
    if options.broker is not None:
        return options.broker
    if options.mode == "live":
        raise FabioError(
            "mode 'live' trades on a venue the caller connects: AgentOptions.broker is unset "
            "(run `fabio run --mode live`, or MODE=test for paper trading)"
        )
    return sim_broker(options.broker_config)


@dataclass(slots=True)
class AgentOptions:
    """Everything but the contract and the brain that an agent is built from."""

    mode: Mode = "backtest"
    log_dir: Path | None = None
    feature_config: FeatureConfig = field(default_factory=FeatureConfig)
    risk_config: RiskConfig | None = None
    strategies: dict[str, StrategyParams] | None = None
    guardrails: GuardrailConfig | None = None
    cadence: Cadence | None = None
    learning: bool = True
    secrets: tuple[str, ...] = ()
    resolution_sec: float = 0.0  # bar data: the bar length (coarse data widens stops)
    risk: RiskEngine | None = None  # share one account between symbols
    broker: BrokerFactory | None = None  # None: the simulated broker (required in live)
    broker_config: SimBrokerConfig | None = None
    note_records: list[dict[str, Any]] | None = None  # None: read from the exchange journal
    stale_sec: float = 10.0
    durable: bool | None = None  # fsync state records; None: all but backtests
    account: str | None = None  # the broker account (live): one process per account
    run_lock: RunLock | None = None  # held by the caller for several agents (live symbols)
    trading_session: SessionKind = SessionKind.RTH  # live --eth: Globex overnight too

    @classmethod
    def from_settings(cls, settings: Settings, mode: Mode, **overrides: Any) -> AgentOptions:
        if mode not in MODES:
            raise FabioError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
        base: dict[str, Any] = {
            "mode": mode,
            "log_dir": settings.log_dir,
            "feature_config": settings.feature_config(),
            "risk_config": settings.risk_config(),
            "strategies": load_strategies(settings.strategies_file),
            "cadence": Cadence(
                settings.llm_decision_interval_default,
                settings.llm_decision_interval_outer_band,
                settings.llm_decision_interval_inner_band,
            ),
            "secrets": tuple(secret_values(settings)),
            "account": settings.topstep_account_id if mode == "live" else None,
        }
        base.update(overrides)
        return cls(**base)


def open_execution(
    contract: Contract,
    log_dir: Path | None,
    risk_config: RiskConfig | None = None,
    *,
    broker: BrokerFactory | None = None,
    defaults: dict[str, StrategyParams] | None = None,
    guardrails: GuardrailConfig | None = None,
    secrets: tuple[str, ...] = (),
    risk: RiskEngine | None = None,
    min_stop_ticks: int = 4,
    slippage_allowance_ticks: int = 2,
    publish: Subscriber | None = None,
    broker_config: SimBrokerConfig | None = None,
    recover: bool = True,
    durable: bool = True,
) -> ExecutionEngine:
    """One symbol's execution engine on its venue, rebuilt from the journal and recovered once.

    The simulated venue unless `broker` says otherwise. `durable`: fsync state records.
    """
    factory = broker or sim_broker(broker_config)
    engine = ExecutionEngine.open(
        contract,
        log_dir,
        lambda n: factory(contract, n),
        risk_config,
        defaults,
        guardrails,
        secrets,
        risk,
        min_stop_ticks,
        slippage_allowance_ticks,
        publish,
        durable=durable,
    )
    if recover:
        engine.recover()
    return engine


@dataclass(slots=True)
class StateView:
    """The journaled state, read without writing anything (`fabio state`, `fabio decide`)."""

    ledger: Ledger
    problems: list[str]
    journal: Path | None


def read_state(
    contract: Contract,
    log_dir: Path | None,
    risk_config: RiskConfig | None = None,
    defaults: dict[str, StrategyParams] | None = None,
) -> StateView:
    """Fold the execution journal into a ledger; no broker, no journal writer, no recovery."""
    ledger = Ledger.new(
        contract.spec,
        defaults or initialize_default_strategies(),
        RiskEngine(risk_config or RiskConfig()),
        symbol=contract.symbol,
    )
    if log_dir is None:
        return StateView(ledger, [], None)
    path = log_dir / EXECUTION_JOURNAL
    read = read_journal(path)
    read.raise_if_corrupt(path)
    for rec in read.records:
        ledger.apply_record(rec)
    return StateView(ledger, read.problems + [f"{path}: {c}" for c in ledger.conflicts], path)


def journal_symbols(log_dir: Path) -> list[str]:
    """Every symbol the execution journal mentions, in order of first appearance."""
    seen: dict[str, None] = {}
    for rec in read_journal(log_dir / EXECUTION_JOURNAL).records:
        sym = rec.get("symbol")
        if isinstance(sym, str) and sym:
            seen.setdefault(sym, None)
    return list(seen)


def _risk_config(contract: Contract, options: AgentOptions) -> RiskConfig:
    """The risk configuration with the agent's trading window (RTH, or ETH with --eth)."""
    config = options.risk_config or RiskConfig()
    kind = options.trading_session
    if config.trading_session is not kind:
        config = config.model_copy(update={"trading_session": kind})
    shared = options.risk
    if shared is not None and shared.config.trading_session is not kind:
        raise FabioError(
            f"the shared risk engine trades {shared.config.trading_session.value.upper()}, "
            f"the {contract.symbol} agent {kind.value.upper()}: one window per account"
        )
    return config


def build_agent(contract: Contract, brain: Brain, options: AgentOptions) -> Agent:
    """The agent for `options.mode`: the one place where the object graph is put together."""
    if options.mode == "decide":
        raise FabioError("mode 'decide' reads the journaled state: use read_state")
    broker = broker_for(options)  # before the run lock: a refusal leaves nothing behind
    bus = EventBus()
    status = AgentStatus(symbol=contract.symbol)
    bus.subscribe(status.apply)
    coarse = options.resolution_sec > 5
    cadence = options.cadence
    if cadence is None and coarse:
        # Bars: nothing changes inside a bar, so decide (and step) at most once per bar.
        r = options.resolution_sec
        cadence = Cadence(
            default_sec=max(30.0, r), outer_sec=max(15.0, r), inner_sec=r, floor_sec=r
        )
    risk_config = _risk_config(contract, options)
    lock = options.run_lock
    trading = options.mode in ("paper", "live")
    if lock is None and trading and options.log_dir is not None:
        lock = RunLock(options.log_dir, options.account).acquire()  # before any write
    if trading and options.log_dir is not None:
        recover_partial(options.log_dir)  # an interrupted `fabio new-account`: finish or undo
    durable = options.mode != "backtest" if options.durable is None else options.durable
    execution = open_execution(
        contract,
        options.log_dir,
        risk_config,
        broker=broker,
        defaults=options.strategies,
        guardrails=options.guardrails,
        secrets=options.secrets,
        risk=options.risk,
        min_stop_ticks=8 if coarse else 4,
        slippage_allowance_ticks=8 if coarse else 2,
        publish=bus.publish,
        recover=False,  # after the conflict check below
        durable=durable,
    )
    if trading and execution.ledger.conflicts:
        if lock is not None and options.run_lock is None:
            lock.release()
        conflicts = execution.ledger.conflicts
        raise FabioError(
            f"{options.log_dir}/{EXECUTION_JOURNAL}: {conflicts[0]} ({len(conflicts)} "
            "conflict(s): two processes wrote this journal?); refusing to trade on an "
            "ambiguous state: review it with `fabio state`"
        )
    execution.recover()
    exchanges = None
    notes = options.note_records
    mailbox = None
    if options.log_dir is not None:
        exchanges = Journal(options.log_dir / LLM_EXCHANGES, secrets=options.secrets)
        if notes is None and options.mode != "backtest":
            notes = read_journal(options.log_dir / LLM_EXCHANGES).records
        if options.mode in ("paper", "live"):
            mailbox = KillSwitchMailbox(options.log_dir)
    features = options.feature_config
    if coarse and not features.bar_absorption_sec:
        # Bars: absorption is read per bar against the three bars before it.
        bar = int(options.resolution_sec)
        features = features.model_copy(
            update={
                "bar_absorption_sec": bar,
                "signal_window_sec": max(features.signal_window_sec, 4 * bar),
            }
        )
    agent = Agent(
        FeatureEngine(contract, features),
        execution,
        brain,
        cadence or Cadence(),
        exchanges=exchanges,
        learning=options.learning,
        live=options.mode in ("paper", "live"),
        bus=bus,
        setup_check_sec=max(5, int(options.resolution_sec)),
        stale_sec=options.stale_sec,
        note_records=notes,
        status=status,
        kill_requests=mailbox.take if mailbox is not None else None,
        trading_session=options.trading_session,
        market_waits=options.mode != "live",  # paper replays wait for the brain
    )
    agent.run_lock = lock
    agent.start()
    return agent
