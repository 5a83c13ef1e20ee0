"""`fabio run --mode live` end to end: the whole agent trades a replay on the simulator.

Real time, on purpose (a live run's clock is the wall clock, and the simulator's market runs at a
multiple of it): nothing here is timed; waits bound a hang, and the protection check is counted
in market events (`Watch`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fabio.brokers.projectx.sim.run import SimServer, build_sim, open_feeds
from fabio.brokers.projectx.sim.server import SimFaults
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
            LiveOptions(symbols=["ES"], gateway="http://127.0.0.1:9", quiet=True),
        )
        with pytest.raises(FabioError) as info:
            await run.run()
        return str(info.value)

    assert "cannot connect" in asyncio.run(down())


@pytest.mark.parametrize("eth", [True, False])
def test_eth_trades_the_overnight_session(tmp_path: Path, eth: bool) -> None:
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
