"""`fabio run --mode live` end to end: the whole agent trades a replay on the simulator.

Real time, on purpose (a live run's clock is the wall clock, and the simulator's market runs at a
multiple of it): nothing here is timed; waits bound a hang, and the protection check is counted
in market events (`Watch`)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fabio.brokers.projectx.models import PxOrderStatus, PxOrderType
from fabio.brokers.projectx.sim.run import SimServer, build_sim, open_feeds
from fabio.brokers.projectx.sim.server import GatewaySim, SimFaults
from fabio.config import Settings
from fabio.errors import FabioError
from fabio.journal import read_journal
from fabio.killswitch import EXECUTION_JOURNAL
from fabio.live import LiveOptions, LiveRun
from fabio.timeutil import parse_at
from fabio.wiring import read_state

from .brokers.projectx.harness import Watch


def _settings(tmp: Path, **kw: object) -> Settings:
    base: dict[str, object] = dict(
        topstep_username="trader",
        topstep_api_key="k",
        topstep_account_id="PRAC-V2-SIM-50K",
        log_dir=tmp,
    )
    base.update(kw)
    return Settings(_env_file=None, **base)  # type: ignore[call-arg]


async def _live(
    tmp: Path,
    faults: SimFaults | None,
    duration_h: float,
    speed: float,
    symbols: list[str] | None = None,
    **settings: object,
) -> tuple[LiveRun, Watch]:
    feeds = open_feeds([], symbols or ["ES"], days=2, seed=7)
    sim = build_sim(feeds, speed, faults, start_ns=parse_at("2024-01-02 08:30"))
    watch = Watch(sim).install()  # the market waits while a position lacks its stop
    async with SimServer(sim) as server:
        watcher = asyncio.get_running_loop().create_task(watch.run())
        run = LiveRun(
            _settings(tmp, **settings),
            LiveOptions(
                symbols=symbols or ["ES"],
                gateway=server.url,
                duration_sec=duration_h * 3600,
                quiet=True,
                config_overrides={"order_timeout_sec": 1.0, "hub_backoff_initial_sec": 0.2},
            ),
        )
        try:
            await run.run()
        finally:
            watcher.cancel()
        return run, watch


@pytest.mark.slow  # six market hours at 300x: 72 s of wall time; the default run keeps
# test_the_dashboard_watches_a_live_run_in_process as its whole live run
def test_a_replayed_session_trades_through_faults(tmp_path: Path) -> None:
    faults = SimFaults(disconnect_every_sec=5.0, http_500_rate=0.05)
    run, watch = asyncio.run(_live(tmp_path, faults, duration_h=6.0, speed=300))
    summary = run.summary()
    assert summary["orders_sent"] >= 1
    assert watch.duplicate_tags() == []
    assert watch.unprotected_events == 0
    assert summary["alerts"] == []
    assert summary["reconnects"]["market"] >= 1
    journal = read_journal(tmp_path / EXECUTION_JOURNAL).records
    assert any(r.get("type") == "fill" for r in journal)
    # What `fabio state` shows is what the venue did: the journal's P&L is the venue's.
    state = read_state(run.agents["ES"].execution.contract, tmp_path)
    venue_change = watch.sim.venue.account.balance - 50_000.0
    assert state.ledger.summary()["net_pnl_usd"] == pytest.approx(venue_change, abs=0.02)
    tape = list((tmp_path / "tape" / "ES").glob("*.parquet"))
    assert any(p.name.startswith("2024-01-02") for p in tape)


def test_bad_credential_and_unknown_account_are_one_line_errors(tmp_path: Path) -> None:
    async def attempt(**kw: object) -> str:
        feeds = open_feeds([], ["ES"], days=1, seed=7)
        sim = build_sim(feeds, 1.0, None, required_key="right-key", replay=False)
        async with SimServer(sim) as server:
            run = LiveRun(
                _settings(tmp_path, **kw),
                LiveOptions(symbols=["ES"], gateway=server.url, quiet=True),
            )
            with pytest.raises(FabioError) as info:
                await run.run()
            assert sim.counters["place"] == 0
            return str(info.value)

    bad_key = asyncio.run(attempt(topstep_api_key="wrong"))
    assert "login failed" in bad_key and "wrong" not in bad_key and "\n" not in bad_key
    unknown = asyncio.run(attempt(topstep_api_key="right-key", topstep_account_id="NOPE"))
    assert "account 'NOPE' not found" in unknown


def test_no_exact_contract_and_venue_down(tmp_path: Path) -> None:
    async def no_nq() -> str:
        feeds = open_feeds([], ["ES"], days=1, seed=7)
        sim = build_sim(feeds, 1.0, None, replay=False)
        async with SimServer(sim) as server:
            run = LiveRun(
                _settings(tmp_path), LiveOptions(symbols=["NQ"], gateway=server.url, quiet=True)
            )
            with pytest.raises(FabioError) as info:
                await run.run()
            return str(info.value)

    assert "no NQ contract (product ENQ)" in asyncio.run(no_nq())

    async def down() -> str:
        run = LiveRun(
            _settings(tmp_path),
            LiveOptions(
                symbols=["ES"],
                gateway="http://127.0.0.1:9",
                quiet=True,
                config_overrides={"login_retry_sec": 3.0},  # 2 min by default
            ),
        )
        with pytest.raises(FabioError) as info:
            await run.run()
        return str(info.value)

    down_message = asyncio.run(down())
    assert "cannot connect" in down_message and "try again later" in down_message
    assert "\n" not in down_message


def test_a_busy_gateway_at_login_is_waited_for(tmp_path: Path) -> None:
    """The gateway answers the first logins 429, 503, 429 (`Retry-After` on the 429s): the
    live run waits and trades on (it used to stop at once: "login refused (HTTP 429)")."""

    async def go() -> dict[str, int]:
        feeds = open_feeds([], ["ES"], days=1, seed=7)
        faults = SimFaults(login_failures=(429, 503, 429), login_retry_after_sec=0.3)
        sim = build_sim(feeds, 600, faults, start_ns=parse_at("2024-01-02 08:30"))
        async with SimServer(sim) as server:
            run = LiveRun(
                _settings(tmp_path),
                LiveOptions(symbols=["ES"], gateway=server.url, duration_sec=300, quiet=True),
            )
            await run.run()
            return dict(sim.counters)

    counters = asyncio.run(go())
    assert counters["fault_login"] == 3 and counters["login"] >= 1


@pytest.mark.parametrize("eth", [True, False])
def test_eth_trades_the_overnight_session(tmp_path: Path, eth: bool) -> None:
    """`--eth` trades Globex overnight: entries at night are accepted by the risk engine and
    filled at the venue (not only decided); RTH (the default) stays out of the evening."""

    async def evening() -> int:
        feeds = open_feeds([], ["ES"], days=2, seed=7)
        sim = build_sim(feeds, 600, None, start_ns=parse_at("2024-01-01 18:00"))
        async with SimServer(sim) as server:
            run = LiveRun(
                _settings(tmp_path),
                LiveOptions(
                    symbols=["ES"], gateway=server.url, duration_sec=3600, quiet=True, eth=eth
                ),
            )
            await run.run()
            return int(run.summary()["ES"]["decisions"])

    decisions = asyncio.run(evening())
    assert (decisions > 0) is eth  # RTH (the default) stays out of the evening
    records = read_journal(tmp_path / EXECUTION_JOURNAL).records
    night_start, night_end = parse_at("2024-01-01 18:00"), parse_at("2024-01-02 08:30")
    entries = [
        r
        for r in records
        if r["type"] == "decision" and r["action"] == "enter" and r["accepted"] is True
    ]
    refused = [
        r["reason"]
        for r in records
        if r["type"] == "decision" and r["action"] == "enter" and r["accepted"] is False
    ]
    fills = [r for r in records if r["type"] == "fill" and r["role"] == "entry"]
    if not eth:
        assert entries == [] and fills == []
        return
    assert entries, f"no entry accepted overnight; refusals: {refused[:3]}"
    assert all(night_start <= r["ts_ns"] < night_end for r in entries)
    assert not [r for r in refused if "outside RTH" in r], refused
    assert fills and all(night_start <= r["ts_ns"] < night_end for r in fills)


def test_the_dashboard_watches_a_live_run_in_process(tmp_path: Path) -> None:
    """`fabio run --mode live --dashboard`: the agent's events reach the page's hub while the
    run goes, not only through the journals afterwards."""
    import httpx

    from fabio.cli import _event_service, _with_service
    from fabio.dashboard.server import DashboardServer

    settings = _settings(tmp_path)
    service = _event_service(settings, True, "127.0.0.1", 0)
    assert isinstance(service, DashboardServer)
    seen: list[str] = []

    def spy(event: object) -> None:
        seen.append(type(event).__name__)

    async def live() -> dict[str, object]:
        feeds = open_feeds([], ["ES"], days=2, seed=7)
        sim = build_sim(feeds, 600, None, start_ns=parse_at("2024-01-02 08:30"))
        async with SimServer(sim) as server:
            run = LiveRun(
                settings,
                LiveOptions(
                    symbols=["ES"],
                    gateway=server.url,
                    duration_sec=1800,
                    quiet=True,
                    subscribers=[service.hub.on_event, spy],
                ),
            )

            async def body() -> dict[str, object]:
                await run.run()
                url = f"http://127.0.0.1:{service.port}/api/snapshot"
                async with httpx.AsyncClient() as client:
                    # the dashboard serves on this loop, busy with the run's end: 60 s only
                    # bounds a hang (5 s timed out under load)
                    return dict((await client.get(url, timeout=60)).json())

            return await _with_service(service, body)

    snap = asyncio.run(live())
    assert seen, "no agent event reached the subscribers"
    assert any(s.startswith("ES") for s in snap["symbols"]), snap["symbols"]  # type: ignore[union-attr]


LIVE_CHILD = Path(__file__).parent / "brokers" / "projectx" / "live_child.py"


def _child_env(log_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOPSTEP_", "OPENAI_"))}
    env.update(
        TOPSTEP_USERNAME="trader",
        TOPSTEP_API_KEY="k",
        TOPSTEP_ACCOUNT_ID="PRAC-V2-SIM-50K",
        LOG_DIR=str(log_dir),
        PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"),
        XDG_CACHE_HOME=str(log_dir.parent / "cache"),  # its own account locks (runlock)
        ALERT_URLS="",
    )
    return env


async def _until(cond: Callable[[], bool], timeout: float, what: str, tmp_path: Path) -> None:
    end = time.monotonic() + timeout  # bounds a hang only: the machine may be busy
    while not cond():
        if time.monotonic() > end:
            err = (tmp_path / "err.txt").read_text()[-2000:]
            raise AssertionError(f"timed out waiting for {what}; the run's stderr: {err}")
        await asyncio.sleep(0.05)


def _protected_long(sim: GatewaySim) -> tuple[int, int]:
    """The venue's ES position and how much of it a working sell stop covers."""
    venue = sim.venue
    qty = sum(p.qty for p in venue.positions.values())
    covered = sum(
        o.remaining
        for o in venue.orders.values()
        if o.type == PxOrderType.STOP and o.status == PxOrderStatus.OPEN and o.sign < 0
    )
    return qty, covered


async def _start_child(
    tmp_path: Path,
    sim: GatewaySim,
    url: str,
    *options: str,
    subscribed: bool = True,
    env: dict[str, str] | None = None,
) -> asyncio.subprocess.Process:
    """`fabio run --mode live` (live_child.py: a brain that enters long at once) against `url`;
    its stdout and stderr go to out.txt and err.txt under `tmp_path`. The simulated market
    holds still until the run has subscribed to its prints (so a slow start costs no market
    time: the run sees the session from 08:30 whatever the machine's load)."""
    assert sim.replay is not None
    sim.replay.pause()
    if not subscribed:  # the run will not get as far: the market runs as usual
        sim.replay.resume()
    with (
        (tmp_path / "out.txt").open("wb") as out,
        (tmp_path / "err.txt").open("wb") as err,
    ):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(LIVE_CHILD),
            url,
            "--quiet",
            *options,
            cwd=tmp_path,
            env={**_child_env(tmp_path / "logs"), **(env or {})},
            stdout=out,
            stderr=err,
        )
    if not subscribed:
        return proc
    await _until(
        lambda: (
            any(c.hub == "market" and c.trades for c in sim.conns) or proc.returncode is not None
        ),
        120,
        "the run's market subscription",
        tmp_path,
    )
    sim.replay.resume()
    return proc


def _assert_clean_exit(err: str) -> None:
    """No pending-task warning (asyncio shut down cleanly) and no traceback on stderr."""
    assert "Task was destroyed" not in err, err[-3000:]
    assert "Traceback" not in err and "never retrieved" not in err, err[-3000:]


def _entry_fill_journaled(logs: Path) -> bool:
    path = logs / EXECUTION_JOURNAL
    if not path.exists():
        return False
    return any(
        r.get("type") == "fill" and r.get("role") == "entry" for r in read_journal(path).records
    )


def test_sigterm_in_a_position_keeps_the_venue_stop_and_exits_0(tmp_path: Path) -> None:
    """PM2/systemd stop a live run holding a position: exit 0, a journaled `shutdown`, the
    summary printed, the position and its stop still working at the venue, a clean asyncio
    shutdown (no pending-task warning, no traceback)."""
    logs = tmp_path / "logs"

    async def scenario() -> tuple[int | None, tuple[int, int], tuple[int, int]]:
        feeds = open_feeds([], ["ES"], days=2, seed=7)
        sim = build_sim(feeds, 60, None, start_ns=parse_at("2024-01-02 08:30"))
        async with SimServer(sim) as server:
            proc = await _start_child(tmp_path, sim, server.url)
            try:
                await _until(
                    lambda: _protected_long(sim)[0] > 0 or proc.returncode is not None,
                    120,
                    "a long position at the venue",
                    tmp_path,
                )
                assert proc.returncode is None, "the run ended before it entered"
                await _until(
                    lambda: _protected_long(sim)[1] >= _protected_long(sim)[0],
                    30,
                    "its stop working",
                    tmp_path,
                )
                sim.replay.pause()  # the market holds still: the stop cannot fill
                await _until(  # the venue's fill reaches the run over the hub: wait for it
                    lambda: _entry_fill_journaled(logs) or proc.returncode is not None,
                    60,
                    "the entry fill in the journal",
                    tmp_path,
                )
                before = _protected_long(sim)
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 60)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            return proc.returncode, before, _protected_long(sim)

    code, before, after = asyncio.run(scenario())
    out = (tmp_path / "out.txt").read_text()
    err = (tmp_path / "err.txt").read_text()
    assert code == 0, err[-2000:]
    assert after == before and after[0] > 0 and after[1] >= after[0]  # not flattened, protected
    records = read_journal(logs / EXECUTION_JOURNAL).records
    shutdown = [r for r in records if r.get("type") == "shutdown"]
    assert len(shutdown) == 1 and shutdown[0]["reason"] == "SIGTERM"
    assert shutdown[0]["open_trade"] is not None
    assert "Live session ended" in out and "SIGTERM" in out
    assert "ES long" in out and "stop" in out  # the summary says what stays open
    assert "left open: ES long 1" in err
    _assert_clean_exit(err)


def test_a_duration_end_in_a_position_says_what_stays_open(tmp_path: Path) -> None:
    """`--duration` ends while the position is open (the scripted entry comes at about 08:34,
    its stop and target are not reached before 09:34 in this market): the process exits 0
    and says, in its summary and on stderr, that the position stays open with its stop and
    target working at the venue; asyncio shuts down without a pending-task warning."""

    async def scenario() -> tuple[int | None, tuple[int, int]]:
        feeds = open_feeds([], ["ES"], days=2, seed=7)
        sim = build_sim(feeds, 60, None, start_ns=parse_at("2024-01-02 08:30"))
        async with SimServer(sim) as server:
            proc = await _start_child(tmp_path, sim, server.url, "--duration", "20m")
            try:
                await asyncio.wait_for(proc.wait(), 240)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            return proc.returncode, _protected_long(sim)

    code, venue = asyncio.run(scenario())
    out = (tmp_path / "out.txt").read_text()
    err = (tmp_path / "err.txt").read_text()
    assert code == 0, err[-2000:]
    assert venue[0] == 1 and venue[1] >= 1, venue  # the run left its position, protected
    assert "left open: ES long 1 @" in err and "stop" in err and "target" in err
    assert "ES long 1 @" in out and "SIGTERM" not in out
    records = read_journal(tmp_path / "logs" / EXECUTION_JOURNAL).records
    assert not [r for r in records if r.get("type") == "shutdown"]
    _assert_clean_exit(err)


def test_sigterm_while_the_login_is_retried_exits_0(tmp_path: Path) -> None:
    """The gateway answers every login 429: the run keeps retrying (start-up budget 2 min)
    and a SIGTERM then ends it at once, cleanly, with its summary and exit code 0."""

    async def scenario() -> tuple[int | None, int]:
        feeds = open_feeds([], ["ES"], days=1, seed=7)
        faults = SimFaults(login_failures=(429,) * 10_000, login_retry_after_sec=0.5)
        sim = build_sim(feeds, 60, faults, start_ns=parse_at("2024-01-02 08:30"))
        async with SimServer(sim) as server:
            proc = await _start_child(tmp_path, sim, server.url, subscribed=False)
            try:
                await _until(
                    lambda: sim.counters["fault_login"] >= 2 or proc.returncode is not None,
                    120,
                    "a retried login",
                    tmp_path,
                )
                assert proc.returncode is None, "the run gave up at the first 429"
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 60)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            return proc.returncode, sim.counters["login"]

    code, logins = asyncio.run(scenario())
    out = (tmp_path / "out.txt").read_text()
    err = (tmp_path / "err.txt").read_text()
    assert code == 0, err[-2000:]
    assert logins == 0
    assert "Live session ended" in out and "SIGTERM" in out
    assert "rate limited (HTTP 429); retrying" in err  # said while waiting
    _assert_clean_exit(err)


def test_a_full_disk_in_a_position_stops_with_one_line_and_keeps_the_venue_stop(
    tmp_path: Path,
) -> None:
    """The journals' disk fills while a live run holds a protected long (a file size limit put
    on the process: every journal write fails with EFBIG). The run stops with one line and exit
    2, nothing flattened or cancelled at the venue, no traceback, no torn journal line; the next
    run, with space, takes the position over from the journal (its stop still working)."""
    import resource

    logs = tmp_path / "logs"
    journals = [logs / EXECUTION_JOURNAL, logs / "llm_exchanges.jsonl"]

    async def scenario() -> tuple[int | None, tuple[int, int], tuple[int, int], int | None]:
        feeds = open_feeds([], ["ES"], days=2, seed=7)
        sim = build_sim(feeds, 60, None, start_ns=parse_at("2024-01-02 08:30"))
        async with SimServer(sim) as server:
            proc = await _start_child(tmp_path, sim, server.url, env={"DISK_FULL_TEST": "1"})
            try:
                await _until(
                    lambda: _protected_long(sim)[0] > 0 or proc.returncode is not None,
                    120,
                    "a long position at the venue",
                    tmp_path,
                )
                assert proc.returncode is None, "the run ended before it entered"
                await _until(
                    lambda: _protected_long(sim)[1] >= _protected_long(sim)[0],
                    30,
                    "its stop working",
                    tmp_path,
                )
                sim.replay.pause()
                before = _protected_long(sim)
                full = max(p.stat().st_size for p in journals)  # no journal can grow
                resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (full, full))
                sim.replay.resume()  # the next record (a decision, a minute) fails
                await asyncio.wait_for(proc.wait(), 120)
                sim.replay.pause()
                after = _protected_long(sim)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            code = proc.returncode
            (tmp_path / "err.txt").replace(tmp_path / "full.txt")
            sim.replay.resume()
            again = await _start_child(tmp_path, sim, server.url, "--duration", "1m")
            try:
                await asyncio.wait_for(again.wait(), 240)
            finally:
                if again.returncode is None:
                    again.kill()
                    await again.wait()
            return code, before, after, again.returncode

    code, before, after, again = asyncio.run(scenario())
    full = (tmp_path / "full.txt").read_text()
    assert code == 2, full[-2000:]
    [line] = [x for x in full.splitlines() if "error" in x]
    assert "cannot write the journal" in line and "disk full" in line, full
    assert "the venue keeps every stop and target" in line
    _assert_clean_exit(full)
    err = (tmp_path / "err.txt").read_text()
    assert again == 0, err[-2000:]
    assert before[0] > 0 and after == before  # not flattened, the stop still working
    for path in journals:
        assert path.read_bytes().endswith(b"\n")
        assert not read_journal(path).problems
    records = read_journal(logs / EXECUTION_JOURNAL).records
    adopted = [r for r in records if r.get("type") == "recovery" and r.get("what") == "adopted"]
    assert adopted, "the next run did not take the position over"
    _assert_clean_exit(err)
