"""`fabio run` regressions: a new market every trade date; the live view and the kill switch;
the replay paces to the brain (issue 21)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from fabio.agent import Agent
from fabio.brain.base import Brain, BrainReply
from fabio.brain.context import DecisionContext
from fabio.brain.decide import make_brain
from fabio.brain.learning import FrozenPolicy
from fabio.config import Settings
from fabio.data.base import MarketFeed
from fabio.data.synthetic import write_synthetic
from fabio.domain import TradeBatch
from fabio.events import FillEvent
from fabio.journal import read_journal
from fabio.paper import NS, WARMUP_SESSIONS, PaperSession, RunOptions, _synthetic
from fabio.wiring import AgentOptions, build_agent, read_state


def _traded_prices(feed: MarketFeed, trade_from: int) -> np.ndarray:
    prices = [b.trades.price[b.trades.ts >= trade_from] for b in feed.batches()]
    return np.concatenate(prices)


def test_each_trade_date_gets_its_own_synthetic_market() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    options = RunOptions(seed=1)
    first, t1 = _synthetic(settings, date(2024, 1, 2), options)
    again, t1b = _synthetic(settings, date(2024, 1, 2), options)
    nxt, t2 = _synthetic(settings, date(2024, 1, 3), options)
    a, b, c = _traded_prices(first, t1), _traded_prices(again, t1b), _traded_prices(nxt, t2)
    assert np.array_equal(a, b)  # the same date and seed: the same market
    n = min(len(a), len(c))
    # The next day is not the same day shifted in time: its path differs.
    assert not np.array_equal(np.diff(a[:n]), np.diff(c[:n]))
    assert WARMUP_SESSIONS > 0


def test_live_view_never_says_risk_active_with_the_kill_switch_engaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fabio.killswitch import request_kill_switch

    monkeypatch.chdir(tmp_path)
    logs = tmp_path / "logs"
    settings = Settings(_env_file=None, log_dir=logs)  # type: ignore[call-arg]
    request_kill_switch(logs, True, "desk says stop", "cli", ())
    session = PaperSession(settings, RunOptions(speed=1e6, duration_sec=600, live_view=False))
    asyncio.run(session.run())

    def shown() -> str:
        console = Console(record=True, width=300)
        console.print(session._view(session.agent.status, None))
        return console.export_text()

    text = shown()
    assert "risk active" not in text
    assert "KILL SWITCH ENGAGED" in text and "desk says stop" in text


# ---------------------------------------------------------------- the replay paces to the brain
HOUR = 3600.0


class WallClockBrain:
    """A brain that takes wall-clock time for every decision (a slow LLM on a busy machine)."""

    def __init__(self, inner: Brain, seconds: float) -> None:
        self.inner = inner
        self.name = inner.name
        self.seconds = seconds
        self.calls = 0

    async def decide(self, context: DecisionContext) -> BrainReply:
        self.calls += 1
        await asyncio.sleep(self.seconds)
        return await self.inner.decide(context)


def _decisions(agent: Agent) -> list[tuple[int, str | None, float, int]]:
    return [(d["ts_ns"], d["regime"], d["price"], d["entries"]) for d in agent.timeline.decisions]


@pytest.fixture(scope="module")
def backtest_hour(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Any], list[Any]]:
    """The decisions and closed trades of a backtest of the hour `fabio run --duration 1h`
    trades on a fresh journal: the same warm-up, then the hour fed as one batch."""
    logs = tmp_path_factory.mktemp("backtest")
    settings = Settings(_env_file=None, log_dir=logs)  # type: ignore[call-arg]
    feed, trade_from = _synthetic(settings, date(2024, 1, 2), RunOptions(seed=1))
    agent = build_agent(
        feed.contract,
        make_brain("rules", settings),
        AgentOptions.from_settings(settings, "backtest"),
    )
    traded = []
    for batch in feed.batches():
        trades = batch.trades
        cut = int(np.searchsorted(trades.ts, trade_from))
        agent.features.update(trades.slice(0, cut))
        traded.append(trades.slice(cut, len(trades)))
    hour = TradeBatch.concat(traded)
    end = int(hour.ts[0]) + int(HOUR * NS)
    hour = hour.slice(0, int(np.searchsorted(hour.ts, end, side="right")))

    async def go() -> None:
        await agent.feed(hour)
        await agent.close_session()

    asyncio.run(go())
    closed = [(t.entry_ns, t.exit_ns, t.net_pnl_usd) for t in agent.execution.ledger.closed]
    return _decisions(agent), closed


def _paper_hour(logs: Path, speed: float, slow_sec: float = 0.0) -> tuple[PaperSession, Any]:
    settings = Settings(_env_file=None, log_dir=logs)  # type: ignore[call-arg]
    session = PaperSession(
        settings, RunOptions(speed=speed, duration_sec=HOUR, live_view=False, brain="rules")
    )
    if slow_sec:
        session.brain = WallClockBrain(session.brain, slow_sec)
    summary = asyncio.run(session.run())
    return session, summary


def test_paper_at_3000x_makes_the_decisions_a_backtest_of_the_same_hour_makes(
    tmp_path: Path, backtest_hour: tuple[list[Any], list[Any]]
) -> None:
    """Issue 21: at 3000x one synthetic hour gave 6 decisions (453 at 120x); the rest were
    dropped as stale or never asked. Paper now steps where a backtest steps and waits for
    every decision, so the speed changes nothing but the wall time."""
    decisions, closed = backtest_hour
    session, summary = _paper_hour(tmp_path / "logs", 3000.0)
    assert summary["stale_dropped"] == 0
    assert _decisions(session.agent) == decisions and len(decisions) > 300
    assert [
        (t.entry_ns, t.exit_ns, t.net_pnl_usd) for t in session.agent.execution.ledger.closed
    ] == closed
    assert summary["decisions"] == len(decisions)
    assert summary["speed"] == 3000.0 and summary["achieved_speed"] is not None


def test_a_brain_slower_than_the_replay_holds_the_market_back_and_drops_nothing(
    tmp_path: Path,
    backtest_hour: tuple[list[Any], list[Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A brain that takes 10 ms of wall time per decision cannot keep up with 3000x (one
    decision every ~8 s of market time = 2.7 ms of wall time): the market waits for it, every
    decision is applied as in the backtest, and the run says once what speed it achieved."""
    decisions, closed = backtest_hour
    session, summary = _paper_hour(tmp_path / "logs", 3000.0, slow_sec=0.010)
    assert summary["stale_dropped"] == 0
    assert _decisions(session.agent) == decisions
    assert [
        (t.entry_ns, t.exit_ns, t.net_pnl_usd) for t in session.agent.execution.ledger.closed
    ] == closed
    # Each decision slept 10 ms: the hour took at least len(decisions) * 10 ms of wall time.
    assert summary["achieved_speed"] <= HOUR / (len(decisions) * 0.010) < 0.9 * 3000
    err = capsys.readouterr().err
    assert err.count("the brain or the machine sets the pace") == 1, err
    assert "not 3000x" in err


# ---------------------------------------------------------------- restarts continue the market
GAP_TICKS = 6 * 6 + 4  # six standard deviations of the ES overnight gap, and the first print


async def _run_until_entry(
    session: PaperSession, min_qty: int, on_entry: Callable[[FillEvent], None]
) -> bool:
    """Run until a position of at least `min_qty` is open, call `on_entry` right there (in the
    middle of the agent's step, as a signal would land) and stop; False: none opened."""
    opened = asyncio.Event()

    def watch(event: object) -> None:
        if opened.is_set() or not isinstance(event, FillEvent) or event.role != "entry":
            return
        trade = session.agent.execution.position()
        if trade is not None and abs(trade.qty) >= min_qty:
            opened.set()
            on_entry(event)

    session.options.subscribers.append(watch)
    run = asyncio.ensure_future(session.run())
    entry = asyncio.ensure_future(opened.wait())
    await asyncio.wait({run, entry}, timeout=600, return_when=asyncio.FIRST_COMPLETED)
    if not run.done():
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
    entry.cancel()
    return opened.is_set()


def _session(logs: Path) -> PaperSession:
    """A paper session as fast as the machine goes, over the first two hours of a trade date.
    Every session should be able to enter: the rule brain's learning is off (strategies losing
    on carried positions stay enabled), and a $25k balance under the 150K preset's maximum loss
    trades one lot with room for the overnight moves of ten carried positions (real losses)."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, log_dir=logs, account_preset="150K", account_balance=25_000.0
    )
    session = PaperSession(
        settings, RunOptions(speed=1e9, duration_sec=2 * HOUR, live_view=False, brain="rules")
    )
    session.brain.learning = FrozenPolicy()  # type: ignore[attr-defined]
    return session


def _restart_closes(journal: Path) -> list[dict[str, Any]]:
    """The trades a restart closed: side, qty, average entry and exit (ticks), dates."""
    records = read_journal(journal).records
    fills = [r for r in records if r.get("type") == "fill"]
    out = []
    for r in fills:
        if r["role"] != "exit" or not r.get("reason", "").startswith("restart:"):
            continue
        entries = [f for f in fills if f["trade_id"] == r["trade_id"] and f["role"] == "entry"]
        qty = sum(f["qty"] for f in entries)
        avg = sum(f["qty"] * f["price_ticks"] for f in entries) / qty
        out.append(
            {
                "trade_id": r["trade_id"],
                "side": entries[0]["side"],
                "qty": r["qty"],
                "entry": avg,
                "exit": r["price_ticks"],
            }
        )
    return out


def test_ten_kill_dash_nine_restarts_book_only_what_the_market_moved(tmp_path: Path) -> None:
    """Issue 21: a restart moved to a new trade date whose market started at an unrelated
    price and closed the carried position there (+$45.8k of fictitious P&L in ten restarts).
    A crash is simulated exactly: the logs folder is copied the instant a position is open (a
    kill -9 leaves the files as they are), and the next run starts on the copy."""
    crashes: list[tuple[str, int]] = []  # the carried trade, the session it was entered in
    ranges: list[tuple[int, int]] = []
    logs = tmp_path / "run0"
    for k in range(15):
        if len(crashes) == 10:
            break
        session = _session(logs)
        crashed = tmp_path / f"run{k + 1}"

        def kill_dash_nine(
            fill: FillEvent, src: Path = logs, dst: Path = crashed, k: int = k
        ) -> None:
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("fabio.lock"))
            crashes.append((fill.trade_id, k))

        if not asyncio.run(_run_until_entry(session, 1, kill_dash_nine)):
            shutil.copytree(logs, crashed, ignore=shutil.ignore_patterns("fabio.lock"))
        ranges.append(session.printed_range)
        logs = crashed
    assert len(crashes) == 10, "ten sessions with a position open"
    session = _session(logs)  # the tenth restart closes the tenth carried position
    asyncio.run(_run_until_entry(session, 1, lambda fill: None))
    ranges.append(session.printed_range)

    closes = {c["trade_id"]: c for c in _restart_closes(logs / "execution.jsonl")}
    assert set(closes) == {trade for trade, _ in crashes}
    tick_value = session.agent.execution.spec.tick_value
    moved = allowed = 0.0
    for trade, k in crashes:
        c = closes[trade]
        ticks = c["side"] * (c["exit"] - c["entry"])
        # The market's own range: what the crashed session printed, the overnight gap, and
        # what the next trade date printed (its overnight session included) up to the close.
        own = (ranges[k][1] - ranges[k][0]) + GAP_TICKS + (ranges[k + 1][1] - ranges[k + 1][0])
        assert abs(ticks) <= own, (c, ranges[k], ranges[k + 1])
        moved += ticks * c["qty"] * tick_value
        allowed += own * c["qty"] * tick_value
    assert abs(moved) <= allowed


def test_a_restart_after_sigterm_with_two_lots_open_books_only_what_the_market_moved(
    tmp_path: Path,
) -> None:
    """Issue 21: after SIGTERM with 2 lots open, the restart closed them -$1,905 in a market
    that had nothing to do with the one they were bought in, and halted the account (seed 3:
    the unrelated market books -1,130 ticks on 2 lots)."""
    logs = tmp_path / "logs"
    settings = Settings(_env_file=None, log_dir=logs)  # type: ignore[call-arg]
    first = PaperSession(
        settings,
        RunOptions(speed=1e9, duration_sec=6.5 * HOUR, live_view=False, brain="rules", seed=3),
    )
    first.brain.learning = FrozenPolicy()  # type: ignore[attr-defined]
    carried: list[FillEvent] = []

    def sigterm(fill: FillEvent) -> None:
        carried.append(fill)
        os.kill(os.getpid(), signal.SIGTERM)  # handled by the session's event loop

    assert asyncio.run(_run_until_entry(first, 2, sigterm)), "no 2-lot position opened"
    records = read_journal(logs / "execution.jsonl").records
    [shutdown] = [r for r in records if r.get("type") == "shutdown"]
    assert shutdown["open_trade"] == carried[0].trade_id
    first.agent.run_lock.release()  # the process ended
    again = PaperSession(
        settings, RunOptions(speed=1e9, duration_sec=HOUR, live_view=False, brain="rules", seed=3)
    )
    summary = asyncio.run(again.run())
    [c] = _restart_closes(logs / "execution.jsonl")
    assert c["trade_id"] == carried[0].trade_id and c["qty"] >= 2
    ticks = c["side"] * (c["exit"] - c["entry"])
    own = [hi - lo for lo, hi in (first.printed_range, again.printed_range)]
    assert abs(ticks) <= own[0] + GAP_TICKS + own[1], (c, first.printed_range, again.printed_range)
    assert "breached" not in summary["trading_state"]


def test_a_file_replay_restart_continues_after_the_last_journaled_time(tmp_path: Path) -> None:
    """A restart on a file used to replay it from its first print, trading the same hours
    again; it continues from the file's next print after the last journaled time."""
    data = tmp_path / "es.parquet"
    write_synthetic(data, "ES", 1, 5, rth_trades=60_000)
    settings = Settings(_env_file=None, log_dir=tmp_path / "logs")  # type: ignore[call-arg]
    runs = []
    for hours in (17, 1):  # the overnight session and the first 1.5 h of RTH, then one hour
        options = RunOptions(speed=1e9, duration_sec=hours * HOUR, feed_path=data, live_view=False)
        session = PaperSession(settings, options)
        asyncio.run(session.run())
        session.agent.run_lock.release()  # the process ended
        runs.append(session)
        if len(runs) == 1:
            stopped = read_state(session.agent.execution.contract, settings.log_dir).ledger
    first, second = (r.agent.timeline.decisions for r in runs)
    assert first and second
    assert second[0]["ts_ns"] > stopped.last_ts_ns >= first[-1]["ts_ns"]
