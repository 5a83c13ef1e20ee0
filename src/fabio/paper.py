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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from fabio.agent import Agent
from fabio.brain.decide import make_brain
from fabio.config import Settings
from fabio.domain import TradeBatch
from fabio.errors import FabioError
from fabio.events import Event
from fabio.execution.ledger import Ledger
from fabio.instruments import parse_symbol
from fabio.ports import MarketFeed
from fabio.sessions import cme_calendar
from fabio.shutdown import journal_shutdown, on_sigterm
from fabio.status import AgentStatus
from fabio.timeutil import format_ns
from fabio.wiring import AgentOptions, build_agent, read_state

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
    subscribers: list[Callable[[Event], None]] = field(default_factory=list)


def _next_trade_date(ledger: Ledger) -> date:
    """Continue after the last journaled trade date (a fresh journal starts on 2024-01-02)."""
    last = ledger.trade_date
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
    feed = SyntheticFeed(
        SyntheticConfig(
            symbol=root,
            days=WARMUP_SESSIONS + options.days,
            seed=day_seed(options.seed, start),
            start=first,
        )
    )
    return feed, cal.session(index).rth_open_ns


class PaperSession:
    """One paper-trading run: the agent, the pacing, the terminal view."""

    def __init__(self, settings: Settings, options: RunOptions) -> None:
        if settings.mode == "live":
            raise FabioError(
                "MODE=live trades a TopstepX account through the TopstepX adapter "
                "(`fabio run --mode live`), not the paper session: use MODE=test to paper-trade"
            )
        self.settings = settings
        self.options = options
        kind = options.brain or (
            "llm" if settings.openai_api_key or settings.openai_base_url else "rules"
        )
        self.brain = make_brain(kind, settings)
        self.started = time.monotonic()

    def _open(self, feed: MarketFeed) -> Agent:
        options = AgentOptions.from_settings(self.settings, "paper")
        agent = build_agent(feed.contract, self.brain, options)
        for subscriber in self.options.subscribers:
            agent.bus.subscribe(subscriber)
        return agent

    async def run(self) -> dict[str, Any]:
        from fabio.data import open_feed

        if self.options.feed_path is not None:
            feed: MarketFeed = open_feed(self.options.feed_path)
            trade_from = 0
        else:
            journaled = read_state(
                _contract(self.settings), self.settings.log_dir, self.settings.risk_config()
            )
            feed, trade_from = _synthetic(
                self.settings, _next_trade_date(journaled.ledger), self.options
            )
        agent = self._open(feed)
        self.agent = agent
        self.status = agent.status
        self.notices = _start_notices(agent.status)
        if not self.options.live_view:
            for notice in self.notices:
                Console(stderr=True).print(escape(notice), style="bold red")
        view = (
            Live(self._view(agent.status, None), refresh_per_second=4)
            if self.options.live_view
            else _NoView()
        )
        self.terminated = False
        pacing = asyncio.ensure_future(self._pace(agent, feed, trade_from, view))
        with view as live, on_sigterm(lambda: self._terminate(pacing)):
            try:
                await pacing
            except (KeyboardInterrupt, asyncio.CancelledError):
                pacing.cancel()
            finally:
                if self.terminated:
                    journal_shutdown(agent)
                else:
                    await agent.close_session()
                live.update(self._view(agent.status, "stopped"))
        return self.summary()

    def _terminate(self, pacing: asyncio.Future[None]) -> None:
        """SIGTERM (PM2, systemd): stop taking entries now; positions keep their stops."""
        self.terminated = True
        pacing.cancel()

    async def _pace(
        self, agent: Agent, feed: MarketFeed, trade_from: int, live: Live | _NoView
    ) -> None:
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
                live.update(self._view(agent.status, None))

    def _view(self, st: AgentStatus, status: str | None) -> Group:
        """The live view: drawn from the `AgentStatus` read model only."""
        if st.last_price is None:
            lines = [Text("starting…")]
            lines += [Text(n, style="bold red") for n in getattr(self, "notices", [])]
            return Group(*lines)
        snap_time = format_ns(st.market_ts_ns) if st.market_ts_ns else "—"
        p = st.position
        pos = (
            "flat"
            if not p or p.get("qty", 0) == 0
            else (f"{p['side']} {p['qty']} @ {p['avg_entry']:.2f} ({p.get('strategy')})")
        )
        risk = f"risk {st.risk_label}"
        if st.kill_switch.engaged:
            risk = f"[bold red]KILL SWITCH ENGAGED[/] ({escape(st.kill_switch.reason)})"
        head = Table.grid(padding=(0, 2))
        head.add_row(
            f"[bold]{escape(st.symbol or '')}[/] {snap_time}",
            f"last {st.last_price:.2f}",
            f"regime [cyan]{st.regime or '—'}[/]",
            f"position {escape(pos)}",
            f"closed P&L ${st.pnl.get('realised_usd', 0.0):,.2f}",
            risk,
            status or f"{self.options.speed:g}x",
        )
        if st.poc is not None:
            brain = st.brain
            head.add_row(
                f"POC {st.poc}",
                f"VAH {st.vah}",
                f"VAL {st.val}",
                f"decisions {brain.get('decisions', 0)}",
                f"fallbacks {brain.get('fallbacks', 0)}",
                f"LLM ${brain.get('cost_usd', 0.0):.4f}",
                _llm_status(self.brain),
            )
        table = Table(title="strategy_state", title_justify="left")
        for col in ("strategy", "on", "risk", "trades", "win rate", "net P&L"):
            table.add_column(col)
        for name, params in st.strategy_state.items():
            r = st.strategy_performance.get(name) or {}
            win = r.get("win_rate")
            table.add_row(
                escape(name),
                ("sized out" if name in st.sized_out else "yes") if params.get("enabled") else "no",
                f"{params.get('risk_fraction', 0):.4f}",
                str(r.get("trades", 0)),
                f"{win:.2f}" if win is not None else "—",
                f"{r.get('net_pnl', 0.0):,.2f}",
            )
        return Group(head, table)

    def summary(self) -> dict[str, Any]:
        st: AgentStatus | None = getattr(self, "status", None)
        if st is None:
            return {}
        brain = st.brain
        return {
            "symbol": st.symbol,
            "brain": self.brain.name,
            "decisions": brain.get("decisions", 0),
            "fallbacks": brain.get("fallbacks", 0),
            "stale_dropped": brain.get("stale_dropped", 0),
            "trades_closed": st.pnl.get("closed_trades", 0),
            "net_pnl_usd": st.pnl.get("realised_usd", 0.0),
            "llm_cost_usd": round(float(brain.get("cost_usd", 0.0)), 4),
            "llm_status": _llm_status(self.brain),
            "trading_state": st.risk_label,
            "kill_switch": "engaged: " + st.kill_switch.reason
            if st.kill_switch.engaged
            else "released",
            "wall_sec": round(time.monotonic() - self.started, 1),
            "journal": str(self.settings.log_dir),
        }


def _start_notices(st: AgentStatus) -> list[str]:
    """What a trader must know before the first print (shown at start-up)."""
    k = st.kill_switch
    if not k.engaged:
        return []
    when = format_ns(k.ts_ns) if k.ts_ns else "?"
    return [
        f"kill switch ENGAGED since {when} by {k.source}: {k.reason} — nothing will trade "
        "until `fabio kill --release`"
    ]


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


def _llm_status(brain: object) -> str:
    """The LLM's breaker and budget state for the view ('' for a brain without an LLM)."""
    from fabio.brain.llm import llm_brain_of

    llm = llm_brain_of(brain)
    if llm is None:
        return ""
    st = llm.stats()
    if st.breaker_state == "open":
        return f"[red]LLM breaker open[/] ({st.breaker_skipped} skipped)"
    if llm.budget_spent() is not None:
        return "[yellow]LLM budget spent: rules decide[/]"
    return f"LLM ok, cached {st.cached_tokens} tok"
