"""The `fabio` command line: human output by default (rich), `--json` for machines."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fabio.config import FeatureConfig, Settings, load_settings
from fabio.errors import FabioError
from fabio.sessions import SessionKind

if TYPE_CHECKING:
    from fabio.dashboard.server import AlertWatcher, DashboardServer

app = typer.Typer(
    name="fabio",
    help="Fabio: a self-learning order-flow trading agent for CME index futures.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        out.print(f"fabio {version('fabio')}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Fabio: a self-learning order-flow trading agent for CME index futures."""


DEFAULT_SYNTH_DAYS = 25
DEFAULT_SYNTH_SEED = 7

DataArg = Annotated[
    Path | None,
    typer.Argument(
        help="Data file: .dbn[.zst], Sierra .txt[.gz], .csv[.gz] or .parquet. "
        "Omitted: the built-in synthetic market."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]
SymbolOpt = Annotated[
    str | None, typer.Option("--symbol", help="Contract, e.g. ESH4, when the file does not say.")
]
ForceSymbolOpt = Annotated[
    bool,
    typer.Option(
        "--force-symbol",
        help="Relabel the data as --symbol even though the file names another contract.",
    ),
]
RthOpt = Annotated[
    bool | None,
    typer.Option(
        "--rth/--eth",
        help="Regular trading hours (08:30–15:00 CT) or the whole "
        "Globex trade date. Default: FEATURE_SESSION (rth).",
    ),
]
VaPctOpt = Annotated[
    float | None, typer.Option("--va-pct", help="Value area share, e.g. 0.70 or 70.")
]
AtOpt = Annotated[
    str | None,
    typer.Option(
        "--at",
        help="Moment 'YYYY-MM-DD HH:MM[:SS]' (America/Chicago unless an "
        "offset is given). Default: the last trade (synthetic: 11:00 CT of the last "
        "session).",
    ),
]
HostOpt = Annotated[
    str | None,
    typer.Option(
        "--host",
        help="Dashboard address (default DASHBOARD_HOST, 127.0.0.1); any "
        "other than loopback needs DASHBOARD_TOKEN.",
    ),
]
PortOpt = Annotated[
    int | None,
    typer.Option("--port", min=0, max=65535, help="Dashboard port (default DASHBOARD_PORT, 8765)."),
]
VaRowsOpt = Annotated[
    int | None, typer.Option("--va-rows", help="Value area rule: 1, 2 (CBOT, default) or 3 rows.")
]


def _settings() -> Settings:
    from fabio.config import unknown_settings

    settings = load_settings()
    for warning in unknown_settings():
        err.print(f"warning: {warning}", soft_wrap=True, markup=False, style="yellow")
    return settings


def _feature_config(
    settings: Settings, rth: bool | None, va_pct: float | None, va_rows: int | None
) -> FeatureConfig:
    base = settings.feature_config()
    changes: dict[str, Any] = {}
    if rth is not None:
        changes["session"] = SessionKind.RTH if rth else SessionKind.ETH
    if va_pct is not None:
        pct = va_pct / 100 if va_pct > 1 else va_pct
        if not 0 < pct <= 1:
            raise FabioError(f"--va-pct {va_pct}: give a share in (0, 1] or a percentage (0, 100]")
        changes["value_area_pct"] = pct
    if va_rows is not None:
        if va_rows not in (1, 2, 3):
            raise FabioError(f"--va-rows {va_rows}: the value area rule takes 1, 2 or 3 rows")
        changes["value_area_rows"] = va_rows
    return base.model_copy(update=changes) if changes else base


def _open(
    data: Path | None, symbol: str | None, settings: Settings, force_symbol: bool = False
) -> Any:
    """A feed over `data`, or the built-in synthetic market."""
    if data is None:
        from fabio.data.synthetic import SyntheticConfig, SyntheticFeed
        from fabio.instruments import parse_symbol

        root = parse_symbol(symbol or settings.symbol).spec.root
        return SyntheticFeed(
            SyntheticConfig(symbol=root, days=DEFAULT_SYNTH_DAYS, seed=DEFAULT_SYNTH_SEED)
        )
    from fabio.data import open_feed

    return open_feed(data, symbol=symbol, force_symbol=force_symbol)


def _report_skips(feed: Any) -> None:
    report = getattr(feed, "report", None)
    if report is not None and report.skipped:
        err.print(f"[yellow]note:[/] {escape(report.summary())}")
        for reason, example in report.examples.items():
            err.print(escape(f"  first '{reason}': {example}"))
        for note in report.notes:
            err.print(escape(f"  {note}"))


def _fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value) or "—"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _fmt_field(key: str, value: object) -> str:
    """A value for humans: a `*_ns` timestamp as a Chicago time, not 1,704,205,800,000,000,000."""
    if key.endswith("_ns") and isinstance(value, int) and not isinstance(value, bool) and value:
        from fabio.timeutil import format_ns

        return format_ns(value)
    return _fmt(value)


def _kv_table(title: str, data: dict[str, Any]) -> Table:
    """Name/value rows; a nested dict is one `a=1, b=2` row when short, else a row per key."""
    table = Table(title=escape(title), show_header=False, title_justify="left", pad_edge=False)
    table.add_column("name", style="cyan", no_wrap=True)
    table.add_column("value", justify="right", overflow="fold")
    for key, value in data.items():
        if isinstance(value, dict):
            joined = ", ".join(f"{k}={_fmt_field(str(k), v)}" for k, v in value.items())
            if len(joined) <= 40:
                table.add_row(escape(str(key)), escape(joined))
                continue
            for k, v in value.items():
                table.add_row(escape(f"{key}.{k}"), escape(_fmt_field(str(k), v)))
            continue
        table.add_row(escape(str(key)), escape(_fmt_field(str(key), value)))
    return table


def _print_json(payload: dict[str, Any]) -> None:
    """Standard JSON only: a NaN or an infinity is printed as null, never `Infinity`."""
    from fabio.journal import to_json_safe

    sys.stdout.write(
        json.dumps(to_json_safe(payload), indent=2, default=str, allow_nan=False) + "\n"
    )


@app.command()
def features(
    data: DataArg = None,
    at: AtOpt = None,
    symbol: SymbolOpt = None,
    force_symbol: ForceSymbolOpt = False,
    rth: RthOpt = None,
    va_pct: VaPctOpt = None,
    va_rows: VaRowsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The feature snapshot at a moment: market_stats, poc_cross_stats, profile, order flow."""
    from fabio.features.engine import FeatureEngine
    from fabio.features.replay import snapshot_at

    settings = _settings()
    config = _feature_config(settings, rth, va_pct, va_rows)
    feed = _open(data, symbol, settings, force_symbol)
    at_ns = _moment(at, feed, data)
    engine = FeatureEngine(feed.contract, config)
    snap = snapshot_at(engine, feed, at_ns)
    _report_skips(feed)
    payload = snap.to_dict()
    payload["data"] = {"source": str(data) if data else "synthetic", **_engine_counts(engine)}
    if json_out:
        _print_json(payload)
        return
    if snap.session is None:
        out.print(
            f"[yellow]No trades in a {config.session.value.upper()} session up to "
            f"{escape(str(snap.time or 'the end of the data'))}.[/]"
        )
        if snap.prior_session:
            out.print(_kv_table("Prior session", snap.prior_session))
        return
    s = snap.session
    out.print(
        f"[bold]{snap.symbol}[/] {escape(str(snap.time))}  last {_fmt(snap.price)}  "
        f"session {s.trade_date} {s.kind.upper()} "
        f"({'open' if s.is_open else 'closed'}, {s.minutes_into_session:g} min, "
        f"{s.trades:,} trades)"
    )
    assert snap.profile is not None
    out.print(_kv_table("Profile", payload["profile"]))
    out.print(_kv_table("market_stats", payload["market_stats"]))
    out.print(_kv_table("poc_cross_stats", payload["poc_cross_stats"]))
    flow = dict(payload["orderflow"])
    flow["recent_big_prints"] = len(flow["recent_big_prints"])
    out.print(_kv_table("Order flow", flow))
    if snap.prior_session:
        out.print(_kv_table("Prior session", snap.prior_session))


def _engine_counts(engine: Any) -> dict[str, int]:
    return {
        "trades_seen": engine.total_trades,
        "outside_session_trades": engine.outside_session_trades,
        "closed_session_trades": engine.closed_session_trades,
    }


def _moment(at: str | None, feed: Any, data: Path | None) -> int | None:
    """`--at` in UTC ns; without it the end of the data, or for the built-in synthetic market
    11:00 CT of its last session (a mid-morning moment with history behind it)."""
    from fabio.timeutil import CHICAGO, datetime_to_ns, parse_at

    if at:
        return parse_at(at)
    if data is not None:
        return None
    last: date = feed.config.trade_dates()[-1]
    return datetime_to_ns(datetime.combine(last, time(11, 0), CHICAGO))


@app.command()
def profile(
    data: Annotated[Path, typer.Argument(help="Data file (see `fabio features --help`).")],
    session: Annotated[
        str | None, typer.Option("--session", help="Trade date YYYY-MM-DD. Default: the last.")
    ] = None,
    symbol: SymbolOpt = None,
    force_symbol: ForceSymbolOpt = False,
    rth: RthOpt = None,
    va_pct: VaPctOpt = None,
    va_rows: VaRowsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """A session's volume profile: poc, vah, val, high, low, volume, buy/sell, cvd, hvn, lvn."""
    from fabio.features.session_profile import build_session_profile

    settings = _settings()
    config = _feature_config(settings, rth, va_pct, va_rows)
    trade_date = None
    if session:
        try:
            trade_date = date.fromisoformat(session)
        except ValueError:
            raise FabioError(f"--session '{session}': expected a date YYYY-MM-DD") from None
    feed = _open(data, symbol, settings, force_symbol)
    result = build_session_profile(feed, config, trade_date)
    _report_skips(feed)
    if json_out:
        _print_json(result.to_dict())
        return
    out.print(
        _kv_table(
            f"{result.symbol} {result.trade_date} {result.session.upper()} profile "
            f"(VA {result.value_area_pct:.0%}, {result.value_area_rows}-row rule)",
            result.to_dict(),
        )
    )


BrainOpt = Annotated[
    str,
    typer.Option(
        "--brain",
        help="rules (offline, default), llm (OPENAI_API_KEY / "
        "OPENAI_BASE_URL; rules as fallback) or cache (replay recorded LLM answers).",
    ),
]


@app.command()
def decide(
    data: DataArg = None,
    at: AtOpt = None,
    brain: BrainOpt = "rules",
    symbol: SymbolOpt = None,
    force_symbol: ForceSymbolOpt = False,
    rth: RthOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Ask the brain at a moment; print the decision and journal the exchange."""
    from fabio.decide import decide_at

    settings = _settings()
    config = _feature_config(settings, rth, None, None)
    feed = _open(data, symbol, settings, force_symbol)
    at_ns = _moment(at, feed, data)
    record = decide_at(feed, config, settings, brain, at_ns)
    _report_skips(feed)
    if json_out:
        _print_json(record)
        return
    _print_decision(record)


def _print_decision(record: dict[str, Any]) -> None:
    d = record["decision"]
    ctx = record["context"]
    ma = d["market_assessment"]
    out.print(
        f"[bold]{record['symbol']}[/] {record['market_time']}  price {_fmt(ctx['price'])}  "
        f"brain [cyan]{record['brain']}[/]"
        + (
            escape(f" (asked {record['requested_brain']}: {record['fallback_reason']})")
            if record.get("fallback_reason")
            else ""
        )
    )
    out.print(_kv_table("market_assessment", ma))
    if d["trade_decisions"]:
        table = Table(title="trade_decisions", title_justify="left")
        for col in (
            "action",
            "side",
            "entry_condition_id",
            "order_type",
            "limit_price",
            "stop_price",
            "target_price",
            "risk_fraction",
            "reason",
        ):
            table.add_column(col)
        for t in d["trade_decisions"]:
            table.add_row(
                *(
                    escape(_fmt(t[c]))
                    for c in (
                        "action",
                        "side",
                        "entry_condition_id",
                        "order_type",
                        "limit_price",
                        "stop_price",
                        "target_price",
                        "risk_fraction",
                        "reason",
                    )
                )
            )
        out.print(table)
    else:
        out.print("trade_decisions: none")
    su = d["strategy_updates"]
    for tw in su["strategy_tweaks"]:
        changes = ", ".join(f"{k}={v}" for k, v in tw["changes"].items() if v is not None)
        out.print(escape(f"strategy_tweak {tw['name']}: {changes} ({tw['reason']})"))
    for z in d["importance_zones"]:
        out.print(
            escape(
                f"importance_zone {z['id']} @ {_fmt(z['center_price'])} "
                f"±{z['inner_band_ticks']}/{z['outer_band_ticks']} ticks, "
                f"priority {z['priority']}: {z['reason']}"
            )
        )
    for note in d["notes_to_future_self"]:
        out.print(escape(f"note: {note}"))
    for r in record["rejected"]:
        out.print(
            f"[yellow]{escape(str(r['action']))}[/] "
            + escape(f"{r['path']}: {r['reason']} {r['value']}")
        )
    tokens = record["tokens"]
    out.print(
        f"latency {record['latency_ms']:.1f} ms, tokens {tokens['prompt']} in / "
        f"{tokens['completion']} out ({tokens['cached']} cached), "
        f"cost ${record['cost_usd']:.4f}; journaled to {escape(str(record['journal']))}"
    )


@app.command()
def run(
    speed: Annotated[
        float, typer.Option("--speed", min=0.01, help="Market seconds per wall-clock second.")
    ] = 600.0,
    duration: Annotated[
        str | None,
        typer.Option("--duration", help="Stop after this much market time: 90s, 30m, 2h."),
    ] = None,
    feed: Annotated[
        Path | None,
        typer.Option("--feed", help="Replay this data file instead of the synthetic market."),
    ] = None,
    brain: Annotated[
        str | None,
        typer.Option(
            "--brain",
            help="rules, llm or cache. Default: llm when "
            "OPENAI_API_KEY or OPENAI_BASE_URL is set, else rules.",
        ),
    ] = None,
    days: Annotated[int, typer.Option("--days", min=1, help="Synthetic sessions to trade.")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Synthetic market seed.")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", help="No live view; summary only.")] = False,
    dashboard: Annotated[
        bool,
        typer.Option(
            "--dashboard", help="Serve the web dashboard from this process (paper and live)."
        ),
    ] = False,
    host: HostOpt = None,
    port: PortOpt = None,
    json_out: JsonOpt = False,
    mode: Annotated[
        str | None, typer.Option("--mode", help="test (paper, default: MODE) or live.")
    ] = None,
    gateway: Annotated[
        str | None,
        typer.Option(
            "--gateway",
            help="Live: the gateway URL for both REST and "
            "hubs, e.g. a `fabio gateway-sim` at http://127.0.0.1:8790.",
        ),
    ] = None,
    symbols: Annotated[
        str | None,
        typer.Option(
            "--symbols",
            help="Live: symbols traded by one agent, e.g. ES,NQ (default: SYMBOLS or SYMBOL).",
        ),
    ] = None,
    shadow: Annotated[
        bool,
        typer.Option(
            "--shadow",
            help="Live: connect, reconcile, stream, record and decide, but send no order.",
        ),
    ] = False,
    eth: Annotated[
        bool,
        typer.Option(
            "--eth",
            help="Live: trade the Globex overnight session too "
            "(the firm's flat time still applies).",
        ),
    ] = False,
) -> None:
    """Paper-trade (MODE=test), or trade a TopstepX account (--mode live)."""
    from fabio.paper import PaperSession, RunOptions

    settings = _settings()
    if (mode or settings.mode).strip().lower() == "live":
        _run_live(
            settings,
            gateway,
            symbols,
            shadow,
            eth,
            _duration(duration),
            brain,
            quiet or json_out,
            json_out,
            _event_service(settings, dashboard, host, port),
        )
        return
    options = RunOptions(
        speed=speed,
        duration_sec=_duration(duration),
        feed_path=feed,
        brain=brain,
        days=days,
        seed=seed,
        # piped (no terminal): no live view, whose last frame would be glued to the summary
        live_view=not (quiet or json_out) and out.is_terminal,
    )
    session = PaperSession(settings, options)
    service = _event_service(settings, dashboard, host, port)
    if service is not None:
        options.subscribers.append(service.hub.on_event)

    _run_to_summary(_with_service(service, session.run), session.summary, "Paper session", json_out)


@app.command()
def serve(
    host: HostOpt = None,
    port: PortOpt = None,
) -> None:
    """The web dashboard over every agent's journals under LOG_DIR (running or finished)."""
    import asyncio

    from fabio.dashboard.app import announce, build_dashboard, serve_until_signal

    settings = _settings()
    server = build_dashboard(settings, host, port)
    asyncio.run(serve_until_signal(server, lambda: announce(server)))


def _event_service(
    settings: Settings, dashboard: bool, host: str | None, port: int | None
) -> DashboardServer | AlertWatcher | None:
    """What listens to a run's events in-process: the dashboard (`--dashboard`, which also
    sends the alerts), else the alert watcher when ALERT_URLS is set, else nothing."""
    from fabio.dashboard.app import build_alert_watcher, build_dashboard

    if dashboard:
        return build_dashboard(settings, host, port)
    return build_alert_watcher(settings)


async def _with_service(
    service: DashboardServer | AlertWatcher | None,
    body: Callable[[], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """Run `body` with the event service started before it and stopped after it."""
    from fabio.dashboard.app import announce
    from fabio.dashboard.server import DashboardServer

    if service is None:
        return await body()
    await service.start()
    if isinstance(service, DashboardServer):
        announce(service)
    try:
        return await body()
    finally:
        await service.stop()


def _run_live(
    settings: Settings,
    gateway: str | None,
    symbols: str | None,
    shadow: bool,
    eth: bool,
    duration_sec: float | None,
    brain: str | None,
    quiet: bool,
    json_out: bool,
    service: DashboardServer | AlertWatcher | None = None,
) -> None:
    from fabio.live import LiveOptions, LiveRun

    names = _symbol_list(symbols or settings.symbols or settings.symbol)
    if eth:
        settings = settings.model_copy(update={"feature_session": SessionKind.ETH})
    run = LiveRun(
        settings,
        LiveOptions(
            symbols=names,
            gateway=gateway,
            shadow=shadow,
            eth=eth,
            duration_sec=duration_sec,
            brain=brain,
            quiet=quiet,
            subscribers=[] if service is None else [service.hub.on_event],
        ),
    )

    def banner() -> None:
        if not json_out:
            out.print(_kv_table("Live session", run.banner()))

    _run_to_summary(
        _with_service(service, lambda: run.run(banner)),
        run.summary,
        "Live session ended",
        json_out,
    )


def _run_to_summary(
    main: Coroutine[Any, Any, dict[str, Any]],
    summary_so_far: Callable[[], dict[str, Any]],
    title: str,
    json_out: bool,
) -> None:
    """Run a session to its end (Ctrl-C ends it early) and print its summary."""
    import asyncio

    try:
        summary = asyncio.run(main)
    except KeyboardInterrupt:
        summary = summary_so_far()
    if json_out:
        _print_json(summary)
    else:
        out.print(_kv_table(title, summary))


def _symbol_list(text: str) -> list[str]:
    from fabio.instruments import parse_symbol

    names = [s.strip().upper() for s in text.split(",") if s.strip()]
    if not names:
        raise FabioError("--symbols: give at least one symbol, e.g. ES or ES,NQ")
    roots = [parse_symbol(n).spec.root for n in names]
    if len(set(roots)) != len(roots):
        raise FabioError(f"--symbols {text}: one contract per product")
    return names


@app.command("gateway-sim")
def gateway_sim(
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1.")] = (
        8790
    ),
    feed: Annotated[
        list[Path] | None,
        typer.Option(
            "--feed",
            help="Data file to replay (repeat for "
            "several contracts). Omitted: the synthetic market.",
        ),
    ] = None,
    symbols: Annotated[
        str, typer.Option("--symbols", help="Synthetic market symbols, e.g. ES,NQ.")
    ] = "ES",
    speed: Annotated[
        float, typer.Option("--speed", min=0.01, help="Market seconds per wall-clock second.")
    ] = 1.0,
    start: Annotated[
        str | None,
        typer.Option(
            "--start",
            help="Start the replay at 'YYYY-MM-DD HH:MM' "
            "(America/Chicago unless an offset is given).",
        ),
    ] = None,
    now: Annotated[
        bool, typer.Option("--now", help="Stamp the replay with the present time.")
    ] = False,
    disconnect_every: Annotated[
        float | None,
        typer.Option("--disconnect-every", help="Drop every hub connection every N seconds."),
    ] = None,
    http_429: Annotated[
        float, typer.Option("--http-429", min=0, max=1, help="Share of REST calls answered 429.")
    ] = 0.0,
    http_500: Annotated[
        float, typer.Option("--http-500", min=0, max=1, help="Share of REST calls answered 500.")
    ] = 0.0,
    lose_order_response: Annotated[
        float,
        typer.Option(
            "--lose-order-response",
            min=0,
            max=1,
            help="Share of order placements accepted but their answer lost.",
        ),
    ] = 0.0,
    token_expiry: Annotated[
        float | None, typer.Option("--token-expiry", help="Tokens expire N seconds after issue.")
    ] = None,
    reject: Annotated[
        float, typer.Option("--reject", min=0, max=1, help="Share of orders rejected.")
    ] = 0.0,
    position_brackets: Annotated[
        bool,
        typer.Option(
            "--position-brackets",
            help="The account is in Position-Brackets mode: bracket orders are refused.",
        ),
    ] = False,
    thin_book: Annotated[
        int | None,
        typer.Option(
            "--thin-book", min=1, help="A resting limit fills at most N contracts per print."
        ),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="Accept only this API key (default: any).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Fault and synthetic market seed.")] = 7,
    days: Annotated[int, typer.Option("--days", min=1, help="Synthetic sessions.")] = 2,
) -> None:
    """A local ProjectX Gateway: REST and hubs over a replayed market, faults on demand.

    Test-only: POST /sim/close {"contractId"}: a trader closes the position by hand.

    POST /sim/cancel {"orderId"} or {"contractId"}: cancel it, or the contract's working stops.

    POST /sim/pause, /sim/resume: hold market time. GET /sim/orders, /sim/state: the books.
    """
    import asyncio

    from fabio.brokers.projectx.sim.run import SimServer, build_sim, open_feeds
    from fabio.brokers.projectx.sim.server import SimFaults
    from fabio.timeutil import parse_at

    faults = SimFaults(
        disconnect_every_sec=disconnect_every,
        http_429_rate=http_429,
        http_500_rate=http_500,
        lose_order_response_rate=lose_order_response,
        token_expiry_sec=token_expiry,
        reject_rate=reject,
        position_brackets=position_brackets,
        limit_fill_per_print=thin_book,
        seed=seed,
    )
    feeds = open_feeds(
        list(feed or []), _symbol_list(symbols) if not feed else [], days=days, seed=seed
    )
    sim = build_sim(
        feeds,
        speed,
        faults,
        start_ns=parse_at(start) if start else None,
        shift_to_now=now,
        required_key=api_key,
    )

    async def serve() -> None:
        server = SimServer(sim, port=port)
        await server.start()
        err.print(
            f"ProjectX simulator on {server.url} (REST /api, hubs /hubs/user and "
            f"/hubs/market, order log /sim/orders); contracts: "
            f"{', '.join(c.id for c, _ in feeds)}; speed {speed:g}x"
        )
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        err.print("simulator stopped")


def _duration(text: str | None) -> float | None:
    """Market time in seconds from `90s`, `30m`, `2h`, `1h30m`, `1.5h` (pandas' Timedelta) or a
    bare number of seconds."""
    if not text:
        return None
    import pandas as pd

    raw = text.strip()
    try:
        seconds = (
            float(raw) if raw.replace(".", "", 1).isdigit() else pd.Timedelta(raw).total_seconds()
        )
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise FabioError(
            f"--duration '{text}': expected a positive duration, e.g. 90s, 30m, 2h or 1h30m"
        )
    return seconds


@app.command()
def backtest(
    data: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Data files (any format `fabio features` reads). Omitted: the "
            "synthetic market, with its true regimes for the report."
        ),
    ] = None,
    brain: BrainOpt = "rules",
    start: Annotated[
        str | None, typer.Option("--from", help="First trade date YYYY-MM-DD.")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last trade date YYYY-MM-DD.")] = None,
    symbol: SymbolOpt = None,
    force_symbol: ForceSymbolOpt = False,
    accounts: Annotated[
        str,
        typer.Option(
            "--accounts",
            help="continuous: one account carried through the files in expiry order (default); "
            "per-file: a fresh account (and strategy state) per file. The result does not "
            "depend on --jobs.",
        ),
    ] = "continuous",
    no_learning: Annotated[
        bool, typer.Option("--no-learning", help="Freeze strategy state: the static baseline.")
    ] = False,
    learning_policy: Annotated[
        str,
        typer.Option(
            "--learning",
            help="How learning judges strategies: expectancy "
            "(expectancy in R with its uncertainty; default) or seed (the spec's "
            "win-rate rules).",
        ),
    ] = "expectancy",
    report: Annotated[
        Path | None, typer.Option("--report", help="Write an HTML report here.")
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            min=1,
            help="With --accounts per-file: run the files in "
            "N parallel processes (results resume).",
        ),
    ] = 1,
    executor: Annotated[
        str, typer.Option("--executor", help="local, or ray (pip install 'fabio\\[ray]').")
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="With --executor ray: the cluster "
            "(ray://head:10001 or head:6379); default RAY_ADDRESS, else a "
            "local Ray instance.",
        ),
    ] = None,
    days: Annotated[int, typer.Option("--days", min=1, help="Synthetic sessions.")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Synthetic market seed.")] = 7,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--log-dir",
            help="Where the backtest journals go: a new or empty "
            "folder, or one an earlier backtest wrote (only its journals are replaced). "
            "Default: logs/backtest.",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Replay data through the agent as fast as possible; summary, journals and a report."""
    from fabio.backtest.cli_support import BacktestRequest, run_cli_backtest

    settings = _settings()
    request = BacktestRequest(
        data=data or [],
        brain=brain,
        start=start,
        end=end,
        symbol=symbol,
        force_symbol=force_symbol,
        accounts=accounts,
        learning=not no_learning,
        policy=learning_policy,
        report=report,
        jobs=jobs,
        executor=executor,
        ray_address=ray_address,
        days=days,
        seed=seed,
        log_dir=out_dir or settings.log_dir / "backtest",
        quiet=json_out,
    )
    summary = run_cli_backtest(settings, request, console=err)
    if json_out:
        _print_json(summary)
        return
    _print_backtest_summary(summary)


_SUMMARY_COLUMNS = (
    "trades",
    "win_rate",
    "net_pnl_usd",
    "net_pnl",
    "avg_r",
    "profit_factor",
    "max_drawdown_usd",
    "max_drawdown",
)


_SHORT_HEADINGS = {
    "win_rate": "win",
    "net_pnl_usd": "net",
    "net_pnl": "net",
    "avg_r": "avg R",
    "profit_factor": "PF",
    "max_drawdown_usd": "max DD",
    "max_drawdown": "max DD",
}


def _print_backtest_summary(s: dict[str, Any]) -> None:
    head: dict[str, Any] = {
        k: s[k]
        for k in (
            "data_source",
            "symbol",
            "brain",
            "learning",
            "sessions_traded",
            "trades",
            "net_pnl_usd",
            "fees_usd",
            "win_rate",
            "profit_factor",
            "max_drawdown_usd",
            "sharpe_daily",
            "final_balance",
            "decisions",
            "llm_fallbacks",
            "llm_cost_usd",
        )
        if k in s
    }
    if s.get("skipped_rows"):
        head["skipped_rows"] = s["skipped_rows"]
    head["rule_breaches"] = len(s.get("rule_breaches", []))
    head["tokens"] = s.get("tokens", {})
    out.print(_kv_table("Backtest summary (after costs)", head))
    if s.get("caveat"):
        out.print(f"[bold yellow]SYNTHETIC DATA:[/] {escape(str(s['caveat']))}")
    if s.get("no_trades_reason"):
        out.print(f"[yellow]no trades:[/] {escape(str(s['no_trades_reason']))}")
    _print_breakdowns(s)
    if s.get("llm_failure"):
        out.print(f"[yellow]LLM:[/] {escape(str(s['llm_failure']))}")
    for breach in s.get("rule_breaches", []):
        out.print(f"[red]rule breach:[/] {escape(str(breach))}")
    for extra in ("note", "journal", "report"):
        if s.get(extra):
            out.print(escape(f"{extra}: {s[extra]}"))


def _print_breakdowns(s: dict[str, Any]) -> None:
    """Per strategy, regime and year: short headings, no vertical rules (fits 80 columns)."""
    for title, key in (
        ("Per strategy", "per_strategy"),
        ("Per regime", "per_regime"),
        ("Per year", "per_year"),
    ):
        rows = s.get(key) or {}
        if not rows:
            continue
        cols = [c for c in next(iter(rows.values())) if c in _SUMMARY_COLUMNS]
        table = Table(
            title=title,
            title_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            padding=(0, 1, 0, 0),
        )
        table.add_column(key.split("_", 1)[1], no_wrap=True)
        for c in cols:
            table.add_column(_SHORT_HEADINGS.get(c, c), justify="right", no_wrap=True)
        for name, row in rows.items():
            table.add_row(escape(str(name)), *(_fmt(row[c]) for c in cols))
        out.print(table)
    if s.get("per_strategy") or s.get("per_regime") or s.get("per_year"):
        out.print("PF: profit factor; DD: drawdown; net, DD in $", style="dim", markup=False)


@app.command()
def state(
    symbol: Annotated[
        str | None,
        typer.Option("--symbol", help="Contract, e.g. ESH4. Default: every symbol in the journal."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """What a restart rebuilds from the journal: strategy_state, performance, positions, limits.

    Read-only: it never writes to the journal.
    """
    from fabio.journal import read_journal

    settings = _settings()
    journal = settings.log_dir / "execution.jsonl"
    if symbol is not None:
        symbols = [symbol]
    else:
        seen = {str(r["symbol"]) for r in read_journal(journal).records if r.get("symbol")}
        symbols = sorted(seen) or [settings.symbol]
    summaries = {s: _state_of(s, settings) for s in symbols}
    if json_out:
        if symbol is not None:
            _print_json(summaries[symbol])
        else:
            _print_json({"journal": str(journal), "symbols": list(summaries), "states": summaries})
        return
    for name, summary in summaries.items():
        _print_state(name, summary)


def _state_of(symbol: str, settings: Settings) -> dict[str, Any]:
    from fabio.instruments import parse_symbol
    from fabio.strategies import load_strategies
    from fabio.wiring import read_state

    contract = parse_symbol(symbol)
    view = read_state(
        contract,
        settings.log_dir,
        settings.risk_config(),
        load_strategies(settings.strategies_file),
    )
    summary = view.ledger.summary()
    summary["symbol"] = contract.symbol
    summary["journal"] = str(settings.log_dir / "execution.jsonl")
    summary["journal_problems"] = view.problems
    return summary


def _print_state(symbol: str, summary: dict[str, Any]) -> None:
    for problem in summary["journal_problems"]:
        err.print(f"[yellow]note:[/] {escape(str(problem))}")
    kill_switch = summary["kill_switch"]
    if kill_switch["engaged"]:
        out.print(
            f"[bold red]KILL SWITCH ENGAGED[/] by {escape(kill_switch['source'])}: "
            f"{escape(kill_switch['reason'])} (release: fabio kill --release)"
        )
    # Short headings and no vertical rules: the table fits 80 columns, names never cut
    table = Table(
        title=f"{escape(symbol)} strategy_state ({summary['records_applied']} journal records)",
        title_justify="left",
        box=box.SIMPLE_HEAD,  # a space between columns, a rule under the headings
        pad_edge=False,
        padding=(0, 1, 0, 0),
    )
    table.add_column("strategy", no_wrap=True)
    for col in ("on", "risk", "max", "RR", "stop", "tgt", "trades", "win", "net P&L"):
        table.add_column(col, justify="left" if col == "on" else "right", no_wrap=True)
    perf = summary["strategy_performance"]
    sized_out = summary.get("sized_out", {})
    for name, params in summary["strategy_state"].items():
        p = perf.get(name, {})
        table.add_row(
            escape(name),
            "sized out" if name in sized_out else _fmt(params["enabled"]),
            repr(params["risk_fraction"]),  # exactly: 0.005 is not 0.01
            *(
                _fmt(params[c])
                for c in ("max_trades_per_session", "min_rr", "stop_ticks", "target_ticks")
            ),
            _fmt(p.get("trades", 0)),
            _fmt(p.get("win_rate")),
            _fmt(p.get("net_pnl", 0.0)),
        )
    out.print(table)
    out.print(
        "on: enabled; risk: risk_fraction; max: max_trades_per_session; RR: min_rr; "
        "stop, tgt: stop_ticks, target_ticks; win: win_rate",
        style="dim",
        markup=False,
    )
    for name, why in sized_out.items():
        out.print(
            escape(
                f"{name} is enabled but sized out: {why}; it trades in shadow and learning "
                "restores its risk when its shadow trades earn it"
            )
        )
    risk = dict(summary["risk"])
    if kill_switch["engaged"]:
        risk["state"] = f"killed ({risk.get('state')})"
    out.print(_kv_table(f"{symbol} risk", risk))
    out.print(
        f"closed trades {summary['closed_trades']}, net P&L ${summary['net_pnl_usd']:,.2f}, "
        f"open {escape(str(summary['open_trades'] or 'none'))}"
    )


@app.command("new-account")
def new_account(json_out: JsonOpt = False) -> None:
    """Start a new account (the next combine) that keeps what the agent learned.

    Moves this account's journals (LOGS_DIR) into logs/accounts/<UTC time>/ (never deleted) and
    starts a fresh execution journal whose first record carries the strategy state, statistics,
    shadow trades and notes. The balance and limits are ACCOUNT_PRESET / ACCOUNT_BALANCE's.
    Refused while a run trades on the folder, or with a position open.
    """
    from fabio.accounts import start_new_account
    from fabio.strategies import load_strategies

    settings = _settings()
    done = start_new_account(
        settings.log_dir,
        settings.risk_config(),
        load_strategies(settings.strategies_file),
        _secrets(settings),
    )
    if json_out:
        _print_json(done.to_dict())
        return
    out.print(escape(f"previous account archived in {done.archive} ({', '.join(done.moved)})"))
    for symbol in done.symbols:
        out.print(
            escape(
                f"{symbol}: carried {done.carried_trades[symbol]} closed trades, "
                f"{done.carried_shadow[symbol]} shadow trades, {done.carried_notes[symbol]} "
                f"notes and the strategy state into a new {done.journal}"
            )
        )
    if done.kill_switch_kept:
        out.print("[red]the kill switch stays engaged[/] (release: fabio kill --release)")
    out.print("see it with: fabio state")


@app.command()
def kill(
    reason: Annotated[str, typer.Option("--reason", help="Why (journaled).")] = "manual kill",
    release: Annotated[
        bool, typer.Option("--release", help="Release the kill switch instead.")
    ] = False,
) -> None:
    """The kill switch: a running agent flattens and halts; nothing trades until released.

    The change is journaled at once (reason, time, source cli) and survives restarts.
    """
    from fabio.killswitch import request_kill_switch

    settings = _settings()
    reason = reason if not release or reason != "manual kill" else "manual release"
    request_kill_switch(settings.log_dir, not release, reason, "cli", _secrets(settings))
    journal = escape(str(settings.log_dir / "execution.jsonl"))
    if release:
        out.print(f"kill switch released (journaled in {journal})")
    else:
        out.print(f"[red]kill switch engaged[/]: flatten and halt (journaled in {journal})")


@app.command()
def config(json_out: JsonOpt = False) -> None:
    """The effective settings and where each came from (env, .env, default); secrets masked."""
    from fabio.config_sources import effective_settings
    from fabio.strategies import strategy_bounds

    rows = effective_settings(_settings())
    bounds = strategy_bounds()
    if json_out:
        _print_json(
            {"settings": rows, "env_file": str(Path(".env").resolve()), "strategy_bounds": bounds}
        )
        return
    table = Table(title="Effective settings", title_justify="left")
    for col in ("variable", "value", "source"):
        table.add_column(col)
    for row in rows:
        shown = "—" if row["value"] is None else str(row["value"])
        table.add_row(row["variable"], escape(shown), row["source"])
    out.print(table)
    limits = Table(
        title="Strategy parameter bounds (STRATEGIES_FILE and every brain change "
        "stay inside; a proposal beyond the outer limits is rejected)",
        title_justify="left",
    )
    for col in ("parameter", "min", "max", "rejected below", "rejected above"):
        limits.add_column(col)
    for row in bounds:
        limits.add_row(
            *(
                escape(_fmt(row[k]))
                for k in (
                    "parameter",
                    "min",
                    "max",
                    "proposal_reject_below",
                    "proposal_reject_above",
                )
            )
        )
    out.print(limits)


@app.command()
def trades(
    out_path: Annotated[Path, typer.Option("--out", help="Output file: .csv, .parquet or .json.")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv, parquet or json (default: from --out).")
    ] = None,
    symbol: Annotated[
        str | None, typer.Option("--symbol", help="Only this contract. Default: every symbol.")
    ] = None,
    log_dir: Annotated[
        Path | None,
        typer.Option("--log-dir", help="Journal folder, e.g. logs/backtest. Default: LOGS_DIR."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Export the closed trades of a journal (paper, live or a backtest's) to CSV/Parquet/JSON."""
    from fabio.trades_export import closed_trades, export_trades

    folder = log_dir or _settings().log_dir
    closed, problems = closed_trades(folder, symbol)
    for problem in problems:
        err.print(f"[yellow]note:[/] {escape(str(problem))}")
    written = export_trades(closed, out_path, fmt)
    summary = {
        "trades": len(closed),
        "format": written,
        "out": str(out_path),
        "journal": str(folder / "execution.jsonl"),
        "net_pnl_usd": round(sum(t.net_pnl_usd for t in closed), 2),
    }
    if json_out:
        _print_json(summary)
    else:
        out.print(escape(f"{len(closed)} closed trades ({written}) -> {out_path}"))


@app.command("journal-repair")
def journal_repair(
    path: Annotated[
        Path | None,
        typer.Argument(help="Journal to repair. Default: the execution journal under LOGS_DIR."),
    ] = None,
) -> None:
    """Move the unreadable lines of a journal aside (after a backup), so Fabio can start again.

    Stop Fabio first. Records on those lines are lost to the rebuilt state: review the
    `.corrupt` file (and `fabio state`) before trading on.
    """
    from fabio.journal import repair_journal
    from fabio.runlock import RunLock

    settings = _settings()
    target = path or settings.log_dir / "execution.jsonl"
    if not target.is_file():
        raise FabioError(f"{target}: no such journal")
    _refuse_unless_journal(target)  # before the lock: nothing is written beside another file
    with RunLock(target.parent):  # never under a running agent
        backup, quarantine, lines = repair_journal(target)
    if not lines:
        out.print(f"{target}: no corrupt line, nothing changed")
        return
    out.print(
        f"{target}: moved {len(lines)} unreadable line(s) ({', '.join(map(str, lines))}) "
        f"to {quarantine}; original kept as {backup}"
    )


def _refuse_unless_journal(path: Path) -> None:
    """A Fabio journal is JSON Lines (`.jsonl`) whose readable lines are records with a `type`."""
    from fabio.journal import read_journal

    reason = None
    if not path.name.endswith(".jsonl"):
        reason = "its name does not end in .jsonl"
    else:
        read = read_journal(path)
        typed = [r for r in read.records if isinstance(r.get("type"), str)]
        if not read.records and not read.corrupt and not read.torn_tail:
            return  # empty: nothing to repair, said below
        if not typed:
            reason = "no line in it is a Fabio journal record"
    if reason is not None:
        raise FabioError(f"{path}: not a Fabio journal ({reason}); nothing was changed")


def _secrets(settings: Settings) -> tuple[str, ...]:
    from fabio.brain.decide import secret_values

    return tuple(secret_values(settings))


@app.command()
def regime(
    data: Annotated[
        Path,
        typer.Argument(
            help="Data file: .dbn[.zst], Sierra .txt[.gz], .csv[.gz] or .parquet (e.g. CSV "
            "trades ts,price,size,side with ISO-8601 UTC ts and side B/S)."
        ),
    ],
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            help="CSV ts,regime (minute start, trend/range/chop) to score the timeline against.",
        ),
    ] = None,
    warmup: Annotated[
        int,
        typer.Option("--warmup", min=0, help="First sessions that only warm the engine up."),
    ] = 0,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="Write the per-minute timeline as CSV ('-': stdout)."),
    ] = None,
    symbol: SymbolOpt = None,
    force_symbol: ForceSymbolOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """The rule brain's regime for every RTH minute, and its score against labels."""
    from fabio.brain.regime_timeline import read_labels, regime_timeline, score_timeline
    from fabio.data import open_feed

    feed = open_feed(data, symbol=symbol, force_symbol=force_symbol)
    label_set = read_labels(labels) if labels is not None else None  # bad labels fail first
    timeline = regime_timeline(feed, warmup_sessions=warmup)
    _report_skips(feed)
    if len(timeline) == 0:
        sessions = len(timeline.warmup_dates)
        raise FabioError(
            f"{data}: no RTH minute to report ({sessions} RTH session(s) found"
            + (f", all inside --warmup {warmup})" if warmup and sessions else ")")
        )
    summary = _regime_summary(timeline, warmup)
    if label_set is not None:
        summary["score"] = score_timeline(timeline, label_set)
    if out_path is not None:
        if str(out_path) == "-":
            timeline.write_csv_to(sys.stdout)
            return
        timeline.write_csv(out_path)
        summary["timeline"] = str(out_path)
    if json_out:
        _print_json(summary)
        return
    _print_regime(summary)


def _regime_summary(timeline: Any, warmup: int) -> dict[str, Any]:
    from fabio.timeutil import format_ns

    counts = {r: timeline.regime.count(r) for r in ("trend", "range", "chop")}
    switches = []
    for i, reg in enumerate(timeline.regime):
        new_day = i == 0 or timeline.trade_date[i] != timeline.trade_date[i - 1]
        if new_day or reg != timeline.regime[i - 1]:
            when = format_ns(timeline.minute_ts[i])
            switches.append({"time_ct": when, "regime": reg, "price": timeline.price[i]})
    return {
        "symbol": timeline.symbol,
        "warmup_sessions": timeline.warmup_dates,
        "sessions": len(dict.fromkeys(timeline.trade_date)),
        "minutes": len(timeline),
        "minutes_by_regime": counts,
        "switches": switches,
    }


def _print_regime(summary: dict[str, Any]) -> None:
    head = {k: summary[k] for k in ("symbol", "sessions", "minutes", "minutes_by_regime")}
    if summary.get("timeline"):
        head["timeline"] = summary["timeline"]
    out.print(_kv_table("Regime timeline (rule brain, RTH minutes)", head))
    if summary.get("timeline"):  # the minutes are in the file: no table of them here
        out.print(f"{len(summary['switches']):,} regime changes: see the timeline file")
    else:
        _print_switches(summary["switches"])
    _print_score(summary.get("score"))


def _print_switches(switches: list[dict[str, Any]]) -> None:
    table = Table(title="Regime changes (and each session's first minute)", title_justify="left")
    for col in ("minute (CT)", "regime", "price"):
        table.add_column(col)
    for sw in switches[:200]:
        table.add_row(sw["time_ct"], sw["regime"], _fmt(sw["price"]))
    out.print(table)
    if len(switches) > 200:
        out.print(f"… {len(switches) - 200} more (use --out or --json)")


def _print_score(score: dict[str, Any] | None) -> None:
    if score is None:
        return
    out.print(
        f"balanced_accuracy {score['balanced_accuracy']:.3f}  accuracy {score['accuracy']:.3f}  "
        f"({score['minutes']} labelled minutes, {score['unlabelled_minutes']} without a label)"
    )
    out.print(
        "recall  "
        + "  ".join(f"{k} {'—' if v is None else f'{v:.3f}'}" for k, v in score["recall"].items())
    )
    cm = Table(title="Confusion (rows true, columns inferred)", title_justify="left")
    cm.add_column("")
    for r in ("trend", "range", "chop"):
        cm.add_column(r, justify="right")
    for name, row in zip(("trend", "range", "chop"), score["confusion"], strict=True):
        cm.add_row(name, *(f"{x:,}" for x in row))
    out.print(cm)
    since = Table(title="By minutes since the true regime switched", title_justify="left")
    for col in ("minutes", "share", "balanced_accuracy"):
        since.add_column(col, justify="right")
    for k, v in score["by_minutes_since_switch"].items():
        ba = v["balanced_accuracy"]
        since.add_row(k, f"{v['share']:.3f}", "—" if ba is None else f"{ba:.3f}")
    out.print(since)


@app.command()
def synth(
    out_path: Annotated[Path, typer.Option("--out", help="Output .parquet, .csv or .csv.gz.")],
    symbol: Annotated[
        str | None,
        typer.Option("--symbol", help="ES, NQ, MES or MNQ (default ES; msv: NQ)."),
    ] = None,
    days: Annotated[int, typer.Option("--days", min=1, max=2000, help="Sessions.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same file).")] = 1,
    start: Annotated[
        str | None, typer.Option("--start", help="First trade date YYYY-MM-DD.")
    ] = None,
    generator: Annotated[
        str,
        typer.Option(
            "--generator",
            help="synthetic (generator 1, ETH+RTH) or msv (generator 2: Markov-switching "
            "volatility, RTH only; docs/synthetic.md).",
        ),
    ] = "synthetic",
    json_out: JsonOpt = False,
) -> None:
    """Write a synthetic market (trades, quotes) and its per-minute regime labels."""
    from fabio.data.synthetic import write_synthetic
    from fabio.data.synthetic_msv import write_msv

    if generator not in ("synthetic", "msv"):
        raise FabioError(f"--generator '{generator}': expected synthetic or msv")

    start_date = None
    if start:
        try:
            start_date = date.fromisoformat(start)
        except ValueError:
            raise FabioError(f"--start '{start}': expected a date YYYY-MM-DD") from None
    if generator == "msv":
        summary = write_msv(out_path, symbol or "NQ", days, seed, start=start_date)
    else:
        summary = write_synthetic(out_path, symbol or "ES", days, seed, start=start_date)
    if json_out:
        _print_json(summary)
    else:
        out.print(_kv_table(f"Wrote {out_path}", summary))


def main() -> None:
    """Entry point: errors become one clear message and a non-zero exit, never a traceback."""
    try:
        app()
    except FabioError as exc:
        # soft_wrap: one line that the terminal wraps, never broken inside a path
        err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise SystemExit(130) from None
    except Exception as exc:  # a bug: say so plainly, keep the traceback behind a switch
        if os.environ.get("FABIO_DEBUG"):
            raise
        err.print(
            f"[red]internal error:[/] {type(exc).__name__}: {escape(str(exc))} "
            "(set FABIO_DEBUG=1 to see the traceback)",
            soft_wrap=True,
        )
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
