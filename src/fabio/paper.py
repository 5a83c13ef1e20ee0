"""`fabio run`: paper trading (MODE=test) through the same agent, paced by the wall clock.

The default needs nothing: the synthetic market, the rule brain, journals under `logs/`. Market
time runs at most `speed` times faster than the wall clock, on the agent's step grid: the replay
waits for each brain decision (applied after its latency in market time, as a backtest does), so
a run makes the decisions a backtest of the same data makes at any speed. When the brain or the
machine cannot keep up, the run says so once on stderr and reports the speed it achieved.

Restarting continues from the journaled state. The synthetic market moves on to the next trade
date and continues from the price the previous market had at the last journaled time, with the
generator's own overnight gap (`paper_market.json` keeps which market traded which date, so it can
be regenerated); a file replay continues from the file's next print after the last journaled time.
A position a crash left open is closed (or, on the same trade date, re-protected) at that market's
prices, so its P&L is what the market did.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import Callable, Iterator
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
from fabio.data.synthetic import (
    SyntheticConfig,
    SyntheticFeed,
    anchored,
    generate_session,
    session_closes,
)
from fabio.domain import TradeBatch
from fabio.errors import FabioError
from fabio.events import Event
from fabio.execution.ledger import Ledger
from fabio.instruments import parse_symbol
from fabio.journal import JournalWriteError
from fabio.ports import MarketFeed
from fabio.sessions import cme_calendar
from fabio.shutdown import journal_shutdown, on_sigterm
from fabio.status import AgentStatus
from fabio.timeutil import format_ns
from fabio.wiring import AgentOptions, build_agent, read_state

NS = 1_000_000_000
WARMUP_SESSIONS = 5
MARKET_FILE = "paper_market.json"  # which synthetic market traded which trade date
MARKETS_KEPT = 30
BEHIND_NOTICE_SEC = 1.0  # wall seconds behind schedule before the run says so


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


def _synthetic(
    settings: Settings, start: date, options: RunOptions, anchor: int | None = None
) -> tuple[SyntheticFeed, int]:
    """Warm-up sessions (history for the range percentile) plus the sessions to paper-trade.

    `anchor`: the price (ticks) the previous trade date's market was at; the warm-up history is
    shifted to end there, and the first traded session opens on the generator's own overnight
    gap from it. None (a fresh journal): the product's usual level, as before."""
    cal = cme_calendar()
    index = cal.index_on(start)
    assert index is not None
    first_index = max(0, index - WARMUP_SESSIONS)
    warmup = index - first_index
    root = parse_symbol(settings.symbol).spec.root
    config = SyntheticConfig(
        symbol=root,
        days=warmup + options.days,
        seed=day_seed(options.seed, start),
        start=cal.trade_dates[first_index],
    )
    if anchor is not None:
        config = (
            anchored(config, warmup - 1, anchor)
            if warmup
            else config.model_copy(update={"open_ticks": anchor})
        )
    return SyntheticFeed(config), cal.session(index).rth_open_ns


def _read_markets(log_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((log_dir / MARKET_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    markets = data.get("markets") if isinstance(data, dict) else None
    return markets if isinstance(markets, dict) else {}


def _record_market(log_dir: Path, config: SyntheticConfig, days: int) -> None:
    """Note the market of each trade date this run trades (its last `days` sessions), before
    the first print is traded."""
    markets = _read_markets(log_dir)
    for d in config.trade_dates()[-days:]:
        markets[d.isoformat()] = config.model_dump(mode="json")
    keep = dict(sorted(markets.items())[-MARKETS_KEPT:])
    path = log_dir / MARKET_FILE
    tmp = path.with_name(path.name + ".tmp")
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"markets": keep}) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        from fabio.errors import FabioError

        raise FabioError(f"cannot write {path}: {exc}") from None


def _price_when_stopped(log_dir: Path, root: str, trade_date: str, ts_ns: int) -> int | None:
    """The price (ticks) of the synthetic market that traded `trade_date` at `ts_ns` (the last
    journaled time): regenerated from `paper_market.json`; None when it is not known."""
    record = _read_markets(log_dir).get(trade_date)
    if record is None:
        return None
    try:
        config = SyntheticConfig.model_validate(record)
    except ValueError:
        return None
    dates = [d.isoformat() for d in config.trade_dates()]
    if config.symbol != root or trade_date not in dates:
        return None
    i = dates.index(trade_date)
    prev = session_closes(config.model_copy(update={"days": i}))[-1] if i else None
    trades = generate_session(config, i, prev).trades
    if len(trades) == 0:
        return None
    k = int(np.searchsorted(trades.ts, ts_ns, side="right")) - 1
    return int(trades.price[max(k, 0)])


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
        self.notices: list[str] = []

    def _open(self, feed: MarketFeed) -> Agent:
        options = AgentOptions.from_settings(self.settings, "paper")
        agent = build_agent(feed.contract, self.brain, options)
        for subscriber in self.options.subscribers:
            agent.bus.subscribe(subscriber)
        return agent

    async def run(self) -> dict[str, Any]:
        self.market_from = 0
        feed, trade_from = self._market()
        agent = self._open(feed)
        self.agent = agent
        self.status = agent.status
        self.notices += _start_notices(agent.status)
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
        failure: JournalWriteError | None = None
        with view as live, on_sigterm(lambda: self._terminate(pacing)):
            try:
                await pacing
            except (KeyboardInterrupt, asyncio.CancelledError):
                pacing.cancel()
            except JournalWriteError as exc:
                failure = exc
            finally:
                if failure is not None or agent.execution.journal_failure is not None:
                    pass  # nothing more can be journaled: stop as it stands (journal_stopped)
                elif self.terminated:
                    journal_shutdown(agent)
                else:
                    await agent.close_session()
                live.update(self._view(agent.status, "stopped"))
        if failure is not None:
            raise FabioError(journal_stopped(agent, failure)) from None
        return self.summary()

    def _market(self) -> tuple[MarketFeed, int]:
        """The market this run trades and the time trading starts (earlier prints: warm-up;
        `market_from`: where the traded dates' market starts, its overnight session included).

        A restart continues the market where the journal left it (module docstring)."""
        from fabio.data import open_feed

        self.notices = []
        log_dir = self.settings.log_dir
        risk = self.settings.risk_config()
        if self.options.feed_path is not None:
            feed: MarketFeed = open_feed(self.options.feed_path)
            last_ts = read_state(feed.contract, log_dir, risk).ledger.last_ts_ns
            if last_ts:
                self.notices.append(
                    f"continuing {self.options.feed_path.name} after the last journaled time "
                    f"{format_ns(last_ts)}"
                )
            self.market_from = last_ts + 1 if last_ts else 0
            return feed, self.market_from
        ledger = read_state(_contract(self.settings), log_dir, risk).ledger
        start = _next_trade_date(ledger)
        root = parse_symbol(self.settings.symbol).spec.root
        anchor = None
        if ledger.trade_date is not None:
            anchor = _price_when_stopped(log_dir, root, ledger.trade_date, ledger.last_ts_ns)
            if anchor is None:
                self.notices.append(
                    f"no record of the market that traded {ledger.trade_date} in "
                    f"{log_dir / MARKET_FILE}: {start} starts a new synthetic market"
                )
        synthetic, trade_from = _synthetic(self.settings, start, self.options, anchor)
        _record_market(log_dir, synthetic.config, self.options.days)
        session = cme_calendar().session(cme_calendar().index_on(start) or 0)
        self.market_from = session.eth_open_ns if synthetic.config.eth else trade_from
        return synthetic, trade_from

    def _terminate(self, pacing: asyncio.Future[None]) -> None:
        """SIGTERM (PM2, systemd): stop taking entries now; positions keep their stops."""
        self.terminated = True
        pacing.cancel()

    async def _pace(
        self, agent: Agent, feed: MarketFeed, trade_from: int, live: Live | _NoView
    ) -> None:
        """Feed the market one step of the agent's grid at a time, never faster than `speed`;
        a step (and the brain decision it awaits) that takes longer holds the market back."""
        pacer = self.pacer = _Pacer(self.options.speed)
        end_ns: int | None = None

        def warm(trades: TradeBatch) -> None:
            agent.features.update(trades)
            self._printed(
                trades.slice(int(np.searchsorted(trades.ts, self.market_from)), len(trades))
            )

        for piece in _steps(feed, agent.step_ns, trade_from, warm):
            if end_ns is None and self.options.duration_sec is not None:
                end_ns = int(piece.ts[0]) + int(self.options.duration_sec * NS)
            if end_ns is not None and int(piece.ts[-1]) > end_ns:
                piece = piece.slice(0, int(np.searchsorted(piece.ts, end_ns, side="right")))
                if len(piece) == 0:
                    return
            await pacer.until(int(piece.ts[-1]))
            self._printed(piece)
            await agent.feed(piece)
            pacer.done(int(piece.ts[-1]))
            if pacer.behind_notice():
                Console(stderr=True).print(escape(pacer.notice()), style="yellow")
            live.update(self._view(agent.status, None))
            if end_ns is not None and int(piece.ts[-1]) >= end_ns:
                return

    def _printed(self, trades: TradeBatch) -> None:
        """The range of the prices the traded dates' market printed (ticks; its overnight
        session too): what the market did, against which a P&L can be judged."""
        if len(trades) == 0:
            return
        lo, hi = int(trades.price.min()), int(trades.price.max())
        low, high = getattr(self, "printed_range", (lo, hi))
        self.printed_range = (min(low, lo), max(high, hi))

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
            status or self._speed_label(),
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
                _llm_status(self.brain, markup=True),
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

    def _speed_label(self) -> str:
        pacer: _Pacer | None = getattr(self, "pacer", None)
        achieved = pacer.achieved() if pacer is not None else None
        if pacer is None or achieved is None or not pacer.behind():
            return f"{self.options.speed:g}x"
        return f"{achieved:.0f}x of {self.options.speed:g}x"

    def _market_range(self) -> list[float] | None:
        printed: tuple[int, int] | None = getattr(self, "printed_range", None)
        agent: Agent | None = getattr(self, "agent", None)
        if printed is None or agent is None:
            return None
        return [
            agent.execution.spec.to_price(printed[0]),
            agent.execution.spec.to_price(printed[1]),
        ]

    def summary(self) -> dict[str, Any]:
        st: AgentStatus | None = getattr(self, "status", None)
        if st is None:
            return {}
        brain = st.brain
        agent: Agent | None = getattr(self, "agent", None)
        if agent is not None:  # the agent's own counts: the status only moves on applied ones
            s = agent.stats
            brain = {
                **brain,
                "decisions": s.decisions,
                "fallbacks": s.fallbacks,
                "stale_dropped": s.stale_dropped,
                "cost_usd": s.cost_usd,
            }
        return {
            "symbol": st.symbol,
            "brain": self.brain.name,
            "decisions": brain.get("decisions", 0),
            "fallbacks": brain.get("fallbacks", 0),
            "stale_dropped": brain.get("stale_dropped", 0),
            "speed": self.options.speed,
            "achieved_speed": _round(pacer.achieved())
            if (pacer := getattr(self, "pacer", None))
            else None,
            "trades_closed": st.pnl.get("closed_trades", 0),
            "market_range": self._market_range(),
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


def journal_stopped(agent: Agent, failure: JournalWriteError) -> str:
    """The one line a run ends with when a journal write failed (disk full): the file, the
    cause, what was kept and how to continue. Nothing was flattened or journaled after it."""
    trade = agent.execution.position()
    if trade is not None and trade.qty != 0:
        kept = f"{trade.trade_id} ({trade.qty:+d} {agent.symbol}) keeps its stop and target"
    elif trade is not None:
        kept = f"the pending entry {trade.trade_id} is cancelled by the next start"
    else:
        kept = "no position was open"
    return (
        f"{failure}; trading stopped, no new entry ({kept}): free some space and run again, "
        "the next start continues from the last whole record"
    )


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


def _steps(
    feed: MarketFeed, step_ns: int, trade_from: int, warm: Callable[[TradeBatch], None]
) -> Iterator[TradeBatch]:
    """The prints from `trade_from` on, one step of the agent's grid at a time (a step that
    straddles two batches is one piece), so the agent steps where a backtest steps; the prints
    before `trade_from` go to `warm` (history for the features, no trading)."""
    carry: TradeBatch | None = None
    for batch in feed.batches():
        trades = batch.trades
        if len(trades) == 0:
            continue
        cut = int(np.searchsorted(trades.ts, trade_from))
        if cut:
            warm(trades.slice(0, cut))
            trades = trades.slice(cut, len(trades))
            if len(trades) == 0:
                continue
        if carry is not None:
            trades = TradeBatch.concat([carry, trades])
        step = trades.ts // step_ns
        bounds = [0, *(np.flatnonzero(np.diff(step)) + 1).tolist(), len(trades)]
        for a, b in itertools.pairwise(bounds[:-1]):
            yield trades.slice(a, b)
        carry = trades.slice(bounds[-2], len(trades))  # the last step may go on in the next batch
    if carry is not None and len(carry):
        yield carry


class _Pacer:
    """Market time at most `speed` times the wall clock; late, the schedule moves instead of
    the market hurrying to catch up, and the lag is counted (the achieved speed)."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.wall0: float | None = None
        self.started = 0.0
        self.market0 = 0
        self.market_last = 0
        self.behind_sec = 0.0
        self.noticed = False
        self.steps = 0

    async def until(self, market_ns: int) -> None:
        now = time.monotonic()
        self.steps += 1
        if self.wall0 is None or self.steps == 2:
            # Anchored again at the second step: the first one pays the start-up (compiled
            # kernels, the first snapshot), which is not the pace the replay keeps.
            self.wall0 = self.started = now
            self.market0 = self.market_last = market_ns
            self.behind_sec = 0.0
        wait = (market_ns - self.market0) / NS / self.speed - (now - self.wall0)
        if wait > 0:
            await asyncio.sleep(wait)
        else:
            self.wall0 -= wait  # behind: the schedule moves on from here
            self.behind_sec -= wait
            await asyncio.sleep(0)  # let the other tasks (the dashboard, signals) run

    def done(self, market_ns: int) -> None:
        self.market_last = market_ns

    def achieved(self) -> float | None:
        wall = time.monotonic() - self.started
        market = (self.market_last - self.market0) / NS
        return market / wall if self.wall0 is not None and wall > 0 and market > 0 else None

    def behind(self) -> bool:
        achieved = self.achieved()
        return (
            self.behind_sec > BEHIND_NOTICE_SEC
            and achieved is not None
            and achieved < 0.9 * self.speed
        )

    def behind_notice(self) -> bool:
        """True once: the first time the replay is behind its schedule."""
        if self.noticed or not self.behind():
            return False
        self.noticed = True
        return True

    def notice(self) -> str:
        return (
            f"the replay runs at {self.achieved() or 0:.0f}x, not {self.speed:g}x: the brain or "
            "the machine sets the pace (the market waits for every decision, as a backtest does)"
        )


def _round(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.3g}")


def _llm_status(brain: object, markup: bool = False) -> str:
    """The LLM's state ('' for a brain without one): plain text for summaries and --json, with
    rich markup for the live view."""
    from fabio.brain.llm import llm_status

    level, text = llm_status(brain)
    style = {"failure": "red", "warning": "yellow"}.get(level)
    return f"[{style}]{escape(text)}[/]" if markup and style else escape(text) if markup else text
