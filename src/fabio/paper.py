"""`fabio run`: paper trading (MODE=test) through the same agent, paced by the wall clock.

The default needs nothing: the synthetic market, the rule brain, journals under `logs/`. Market
time runs `speed` times faster than the wall clock; the brain (the LLM when configured) runs as a
task while data keeps flowing, and a stale answer is dropped. Restarting continues from the
journaled state, on the next trade date after the last one traded.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from fabio.agent import Agent
from fabio.brain.cadence import Cadence
from fabio.brain.decide import make_brain, secret_values
from fabio.config import Settings
from fabio.data.base import MarketFeed
from fabio.domain import TradeBatch
from fabio.errors import FabioError
from fabio.execution.engine import ExecutionEngine
from fabio.features.engine import FeatureEngine
from fabio.instruments import parse_symbol
from fabio.journal import LLM_EXCHANGES, Journal, read_journal
from fabio.sessions import cme_calendar
from fabio.strategies import load_strategies
from fabio.timeutil import format_ns

NS = 1_000_000_000
WARMUP_SESSIONS = 5


@dataclass(slots=True)
class RunOptions:
    speed: float = 600.0
    duration_sec: float | None = None
    feed_path: Path | None = None
    brain: str | None = None
    days: int = 1
    seed: int = 1
    live_view: bool = True


def _next_trade_date(engine: ExecutionEngine) -> date:
    """Continue after the last journaled trade date (a fresh journal starts on 2024-01-02)."""
    last = engine.ledger.trade_date
    cal = cme_calendar()
    if last is None:
        return date(2024, 1, 2)
    following = cal.next_trade_dates(date.fromisoformat(last), 2)
    return following[1] if len(following) > 1 else following[0]


def day_seed(seed: int, trade_date: date) -> int:
    """The synthetic market's seed for a paper session: each trade date its own market (a
    restart continues on a new day), the same date and `--seed` always the same market."""
    return seed * 1_000_000 + trade_date.toordinal()


def _synthetic(settings: Settings, start: date, options: RunOptions) -> tuple[MarketFeed, int]:
    """Warm-up sessions (history for the range percentile) plus the sessions to paper-trade."""
    from fabio.data.synthetic import SyntheticConfig, SyntheticFeed

    cal = cme_calendar()
    index = cal.index_on(start)
    assert index is not None
    first = cal.trade_dates[max(0, index - WARMUP_SESSIONS)]
    root = parse_symbol(settings.symbol).spec.root
    feed = SyntheticFeed(SyntheticConfig(symbol=root, days=WARMUP_SESSIONS + options.days,
                                         seed=day_seed(options.seed, start), start=first))
    return feed, cal.session(index).rth_open_ns


class PaperSession:
    """One paper-trading run: the agent, the pacing, the terminal view."""

    def __init__(self, settings: Settings, options: RunOptions) -> None:
        if settings.mode == "live":
            raise FabioError(
                "MODE=live needs the TopstepX adapter, which is not built yet: use MODE=test "
                "(paper trading) or `fabio backtest`"
            )
        self.settings = settings
        self.options = options
        kind = options.brain or ("llm" if settings.openai_api_key or settings.openai_base_url
                                 else "rules")
        self.brain = make_brain(kind, settings)
        self.started = time.monotonic()

    def _open(self, feed: MarketFeed) -> Agent:
        s = self.settings
        execution = ExecutionEngine.open(
            feed.contract, s.log_dir, s.risk_config(), defaults=load_strategies(s.strategies_file),
            secrets=tuple(secret_values(s)),
        )
        notes = read_journal(s.log_dir / LLM_EXCHANGES).records
        cadence = Cadence(s.llm_decision_interval_default, s.llm_decision_interval_outer_band,
                          s.llm_decision_interval_inner_band)
        return Agent(
            FeatureEngine(feed.contract, s.feature_config()), execution, self.brain, cadence,
            exchanges=Journal(s.log_dir / LLM_EXCHANGES, secrets=secret_values(s)),
            live=True, note_records=notes,
        )

    async def run(self) -> dict[str, Any]:
        from fabio.data import open_feed

        probe = ExecutionEngine.open(_contract(self.settings), self.settings.log_dir,
                                     self.settings.risk_config())
        if self.options.feed_path is not None:
            feed: MarketFeed = open_feed(self.options.feed_path)
            trade_from = 0
        else:
            feed, trade_from = _synthetic(self.settings, _next_trade_date(probe), self.options)
        agent = self._open(feed)
        self.agent = agent
        view = Live(self._view(agent, None), refresh_per_second=4) if self.options.live_view \
            else _NoView()
        with view as live:
            try:
                await self._pace(agent, feed, trade_from, live)
            except (KeyboardInterrupt, asyncio.CancelledError):
                pass
            finally:
                await agent.close_session()
                live.update(self._view(agent, "stopped"))
        return self.summary()

    async def _pace(self, agent: Agent, feed: MarketFeed, trade_from: int,
                    live: Live | _NoView) -> None:
        clock0: float | None = None
        market0 = 0
        end_ns: int | None = None
        for batch in feed.batches():
            trades = batch.trades
            if len(trades) == 0:
                continue
            cut = int(np.searchsorted(trades.ts, trade_from))
            if cut:  # warm-up: history for the features, no trading
                agent.features.update(trades.slice(0, cut))
                trades = trades.slice(cut, len(trades))
                if len(trades) == 0:
                    continue
            for piece in _seconds(trades):
                now = int(piece.ts[-1])
                if clock0 is None:
                    clock0, market0 = time.monotonic(), int(piece.ts[0])
                    if self.options.duration_sec is not None:
                        end_ns = market0 + int(self.options.duration_sec * NS)
                if end_ns is not None and now > end_ns:
                    return
                wait = (now - market0) / NS / self.options.speed - (time.monotonic() - clock0)
                if wait > 0:
                    await asyncio.sleep(wait)
                await agent.feed(piece)
                live.update(self._view(agent, None))

    def _view(self, agent: Agent | None, status: str | None) -> Group:
        if agent is None or agent._last_price is None:
            return Group(Text("starting…"))
        snap_time = format_ns(agent._last_ts) if agent._last_ts else "—"
        ex = agent.execution
        trade = ex.position()
        pos = "flat" if trade is None or trade.qty == 0 else (
            f"{'long' if trade.side > 0 else 'short'} {abs(trade.qty)} @ "
            f"{ex.spec.to_price(trade.avg_entry):.2f} ({trade.strategy})")
        pnl = sum(t.net_pnl_usd for t in ex.ledger.closed)
        head = Table.grid(padding=(0, 2))
        head.add_row(
            f"[bold]{ex.symbol}[/] {snap_time}",
            f"last {ex.spec.to_price(agent._last_price):.2f}",
            f"regime [cyan]{agent._regime or '—'}[/]",
            f"position {pos}",
            f"closed P&L ${pnl:,.2f}",
            risk_label(ex.ledger.risk),
            status or f"{self.options.speed:g}x",
        )
        levels = agent.timeline
        if levels.poc:
            head.add_row(f"POC {levels.poc[-1]}", f"VAH {levels.vah[-1]}", f"VAL {levels.val[-1]}",
                         f"decisions {agent.stats.decisions}",
                         f"fallbacks {agent.stats.fallbacks}",
                         f"LLM ${agent.stats.cost_usd:.4f}", "")
        table = Table(title="strategy_state", title_justify="left")
        for col in ("strategy", "on", "risk", "trades", "win rate", "net P&L"):
            table.add_column(col)
        perf = ex.get_performance_stats()
        for name, p in ex.strategy_state.items():
            r = perf.get(name)
            table.add_row(name, "yes" if p.enabled else "no", f"{p.risk_fraction:.4f}",
                          str(r.trades if r else 0),
                          f"{r.win_rate:.2f}" if r and r.win_rate is not None else "—",
                          f"{r.net_pnl:,.2f}" if r else "0")
        return Group(head, table)

    def summary(self) -> dict[str, Any]:
        agent = getattr(self, "agent", None)
        if agent is None:
            return {}
        ex = agent.execution
        return {
            "symbol": ex.symbol,
            "brain": self.brain.name,
            "decisions": agent.stats.decisions,
            "fallbacks": agent.stats.fallbacks,
            "stale_dropped": agent.stats.stale_dropped,
            "trades_closed": len(ex.ledger.closed),
            "net_pnl_usd": round(sum(t.net_pnl_usd for t in ex.ledger.closed), 2),
            "llm_cost_usd": round(agent.stats.cost_usd, 4),
            "wall_sec": round(time.monotonic() - self.started, 1),
            "journal": str(self.settings.log_dir),
        }


def risk_label(risk: Any) -> str:
    """What the live view says about trading: an engaged kill switch is never "risk active"."""
    from fabio.execution.risk import HaltKind, kill_switch_reason

    path = risk.config.kill_switch_path
    if risk.kill_switch_active():
        reason = kill_switch_reason(path) if path is not None else None
        return f"[bold red]KILL SWITCH ENGAGED[/] ({escape(reason or 'no reason given')})"
    if risk.halt_kind is HaltKind.KILL:
        return f"[bold red]KILLED[/] ({escape(str(risk.account.halted_reason))})"
    if str(risk.state) != "active":
        why = risk.account.halted_reason or risk.reducing_reason
        return f"[red]risk {risk.state}[/]" + (f" ({escape(str(why))})" if why else "")
    return f"risk {risk.state}"


class _NoView:
    """Stands in for rich's Live when there is no terminal view (--quiet, tests)."""

    def __enter__(self) -> _NoView:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, renderable: object) -> None:
        return None


def _contract(settings: Settings) -> Any:
    from fabio.data.synthetic import front_contract
    from fabio.instruments import parse_symbol

    contract = parse_symbol(settings.symbol)
    if contract.month_code is None:
        return front_contract(contract.spec.root, date(2024, 1, 2))
    return contract


def _seconds(trades: TradeBatch) -> list[TradeBatch]:
    """Split a batch into one-second pieces of market time (the pacing grain)."""
    sec = trades.ts // NS
    cuts = np.flatnonzero(np.diff(sec)) + 1
    bounds = [0, *cuts.tolist(), len(trades)]
    return [trades.slice(a, b) for a, b in itertools.pairwise(bounds)]
