"""Dashboard page load with a full journal: `python bench/dashboard_load.py [--decisions 10000]`.

Writes journals for 2 symbols (ESH4, NQH4) with `--decisions` brain exchanges in all (records of
the size the rule brain writes, ~5 KB each) and a trade every 50 decisions, starts `fabio serve`
over them, and opens the page in headless chromium (Playwright with the system executable).
Prints the server's start-up time (reading the journals), the snapshot size, and the page load
time (navigation to both symbols drawn: price, chart, strategy table, decisions), cold and warm.
Target: under 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

NS = 1_000_000_000
T0 = 1_704_205_800_000_000_000  # 2024-01-02 08:30 CT
SYMBOLS = {"ESH4": (4735.0, 0.25), "NQH4": (16750.0, 0.25)}
STRATEGIES = ["MeanReversionPOC_v2", "TrendLVN_Pullback_v1", "AbsorptionFade_v1"]


def exchange(symbol: str, i: int, ts: int, price: float) -> dict[str, Any]:
    stats = {f"stat_{k}": round(price * 0.001 * k, 3) for k in range(30)}
    return {
        "type": "llm_exchange",
        "market_time": f"2024-01-02 decision {i}",
        "market_time_ns": ts,
        "wall_time": "2026-12-02T03:00:00.000+00:00",
        "symbol": symbol,
        "brain": "rules",
        "requested_brain": "rules",
        "fallback_reason": None,
        "trigger": "interval_inside",
        "context": {
            "symbol": symbol,
            "price": price,
            "market_stats": stats,
            "profile": {
                "poc": price - 2,
                "vah": price + 3,
                "val": price - 4,
                "high": price + 5,
                "low": price - 6,
                "hvn": [price - 2, price + 2],
                "lvn": [price],
            },
            "strategy_state": {
                s: {
                    "enabled": True,
                    "risk_fraction": 0.005,
                    "max_trades_per_session": 3,
                    "min_rr": 1.5,
                    "stop_ticks": 12,
                    "target_ticks": 24,
                }
                for s in STRATEGIES
            },
            "historical_notes": [
                {"text": "regime ran trend after a failed auction " * 8, "outcome": "win"}
                for _ in range(6)
            ],
        },
        "raw_response": None,
        "decision": {
            "market_assessment": {
                "regime": ("trend", "range", "chop")[i % 3],
                "market_state": "balanced",
                "confidence": 0.5 + (i % 5) / 10,
                "reasoning": "scores trend 0.94 / range 0.00 / chop 0.23; "
                "trend indicators holding: distance_to_poc, few_poc_crosses",
                "chosen_model": STRATEGIES[i % 3],
            },
            "trade_decisions": [],
            "strategy_updates": {"active_strategies": [STRATEGIES[i % 3]], "strategy_tweaks": []},
            "importance_zones": [
                {
                    "id": "poc",
                    "center_price": price - 2,
                    "priority": 2,
                    "inner_band_ticks": 4,
                    "outer_band_ticks": 12,
                    "reason": "session POC",
                }
            ],
            "notes_to_future_self": ["watch the VAH retest"] if i % 40 == 0 else [],
        },
        "accepted": {},
        "rejected": [],
        "latency_ms": 0.4,
        "tokens": {"prompt": 0, "completion": 0, "cached": 0},
        "cost_usd": 0.0,
    }


def trade(symbol: str, n: int, ts: int, price_ticks: int) -> list[dict[str, Any]]:
    tid = f"{symbol}-T{n}"
    side = 1 if n % 2 else -1
    exit_ticks = price_ticks + side * (8 if n % 3 else -6)
    base = {"symbol": symbol, "strategy": STRATEGIES[n % 3], "trade_id": tid}
    return [
        {
            **base,
            "type": "entry",
            "ts_ns": ts,
            "regime": "range",
            "side": side,
            "qty": 1,
            "entry_type": "market",
            "entry_ref_ticks": price_ticks,
            "stop_ticks": price_ticks - side * 6,
            "target_ticks": price_ticks + side * 8,
            "risk_ticks": 6,
            "risk_usd": 75.0,
            "trade_date": "2024-01-02",
            "orders": [],
        },
        {
            **base,
            "type": "fill",
            "ts_ns": ts + NS,
            "order_id": f"{tid}-1",
            "side": side,
            "qty": 1,
            "price_ticks": price_ticks,
            "commission_usd": 2.5,
            "role": "entry",
        },
        {
            **base,
            "type": "fill",
            "ts_ns": ts + 60 * NS,
            "order_id": f"{tid}-2",
            "side": -side,
            "qty": 1,
            "price_ticks": exit_ticks,
            "commission_usd": 2.5,
            "role": "target" if n % 3 else "stop",
            "reason": "target" if n % 3 else "stop",
        },
    ]


def write_journals(log_dir: Path, decisions: int) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    per_symbol = decisions // len(SYMBOLS)
    with (
        (log_dir / "llm_exchanges.jsonl").open("w") as ex,
        (log_dir / "execution.jsonl").open("w") as ej,
    ):
        for symbol in SYMBOLS:
            ej.write(
                json.dumps(
                    {
                        "type": "session",
                        "event": "start",
                        "trade_date": "2024-01-02",
                        "ts_ns": T0,
                        "symbol": symbol,
                    }
                )
                + "\n"
            )
        for i in range(per_symbol):
            ts = T0 + i * 5 * NS
            for symbol, (base, tick) in SYMBOLS.items():
                price = base + tick * ((i * 7919) % 40 - 20)
                ex.write(json.dumps(exchange(symbol, i, ts, price)) + "\n")
                if i % 50 == 25:
                    for rec in trade(symbol, i // 50, ts, round(price / tick)):
                        ej.write(json.dumps(rec) + "\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--decisions", type=int, default=10_000)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    chromium = os.environ.get("FABIO_CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        sys.exit("chromium is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "logs"
        write_journals(logs, args.decisions)
        size_mb = sum(p.stat().st_size for p in logs.iterdir()) / 1e6
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        env = {**os.environ, "LOG_DIR": str(logs), "DASHBOARD_TOKEN": "bench-token-0123456789"}
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "fabio.cli", "serve", "--port", str(port)],
            cwd=tmp,
            env=env,
            stderr=subprocess.DEVNULL,
        )
        try:
            while True:
                try:
                    snapshot = httpx.get(url + "api/snapshot", timeout=5).content
                    break
                except httpx.HTTPError:
                    time.sleep(0.05)
            startup = time.perf_counter() - started
            loads = []
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                context = browser.new_context(viewport={"width": 1600, "height": 1000})
                for _ in range(args.loads):
                    page = context.new_page()
                    t = time.perf_counter()
                    page.goto(url)
                    page.wait_for_selector("body[data-ready='1']")
                    page.wait_for_function(
                        "() => document.querySelectorAll('[data-symbol] .chart canvas')"
                        ".length >= 2 && document.querySelectorAll('.decision').length >= 2"
                    )
                    loads.append(time.perf_counter() - t)
                    page.close()
                browser.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
    result = {
        "symbols": len(SYMBOLS),
        "decisions": args.decisions,
        "journal_mb": round(size_mb, 1),
        "server_startup_sec": round(startup, 2),
        "snapshot_kb": round(len(snapshot) / 1e3, 1),
        "page_load_cold_sec": round(loads[0], 3),
        "page_load_warm_median_sec": round(statistics.median(loads[1:] or loads), 3),
        "page_load_max_sec": round(max(loads), 3),
        "target_sec": 2.0,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:28s} {value}")


if __name__ == "__main__":
    main()
