"""Live venue benchmark: `python bench/live_venue.py [--orders N] [--reconnects N] [--json]`.

Runs `fabio gateway-sim` in-process on 127.0.0.1 and a ProjectX session against it, and
measures:
- trade received → order sent: from the moment a `GatewayTrade` message reaches our hub
  handler to the moment the order's HTTP request leaves, through parsing, the live feed, the
  execution engine (risk checks, sizing, journal) and the broker. Each sample is one entry
  decided on the print just received (a limit far from the market, cancelled after its ack);
The simulator runs in its own process, as it would for a user rehearsing.
- reconnect → resubscribed: the simulator drops both hubs every second; from the moment our
  supervisor sees the connection lost to the moment the new one is subscribed again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from fabio.brokers.projectx.config import ProjectXConfig
from fabio.brokers.projectx.session import ProjectXSession
from fabio.decision import TradeDecision
from fabio.execution.risk import RiskConfig
from fabio.instruments import parse_symbol
from fabio.orders import OrderRole
from fabio.wiring import open_execution


def _config(url: str) -> ProjectXConfig:
    # The gateway allows 200 calls a minute; a sample costs about three (place, cancel,
    # reconciliation), so the limiter (correctly) makes a 200-sample run wait. The simulator has
    # no such limit: lift ours to measure the agent's own path, not the venue's quota.
    return ProjectXConfig(
        username="bench",
        api_key="k",
        account="PRAC-V2-SIM-50K",  # type: ignore[arg-type]
        api_url=url,
        rtc_url=url,
        hub_backoff_initial_sec=0.2,
        requests_per_minute=100_000,
    )


def _pcts(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {
        "n": len(a),
        "p50": round(float(np.percentile(a, 50)), 3),
        "p99": round(float(np.percentile(a, 99)), 3),
        "max": round(float(a.max()), 3),
    }


@contextlib.contextmanager
def sim_process(*flags: str) -> Iterator[str]:
    """`fabio gateway-sim` in its own process (so it does not share our event loop)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "fabio.cli",
        "gateway-sim",
        "--port",
        str(port),
        "--speed",
        "30",
        "--start",
        "2024-01-02 08:30",
        "--days",
        "1",
        *flags,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > end or proc.poll() is not None:
                    raise SystemExit("the simulator did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


async def order_latency(url: str, orders: int) -> dict[str, float]:
    samples: list[float] = []
    parts: list[tuple[float, float, float]] = []
    if True:
        session = ProjectXSession(_config(url))
        await session.connect(["ES"])
        await session.wait_connected(10)
        contract = parse_symbol("ES")
        with tempfile.TemporaryDirectory() as tmp:
            risk = RiskConfig(max_trades_per_day=1000)
            engine = open_execution(
                contract, Path(tmp), risk, broker=lambda c, n: session.broker_for(c, n)
            )
            broker = session.brokers[session.contracts["ES"].id]
            feed = session.feeds[broker.contract_id]
            while len(samples) < orders:
                batches = feed.get_nowait()
                if not batches:
                    await session.wait_activity(0.05)
                    continue
                last = int(batches[-1].trades.price[-1])
                # Each sample on a fresh trade date: a strategy's per-session trade cap is
                # not what is measured here.
                day = (date(2024, 1, 2) + timedelta(days=len(samples))).isoformat()
                engine.start_session(day, session.clock_ns())
                received = feed.received_ns
                woke = time.perf_counter_ns()
                sent_before = len(broker.sent)
                result = engine.process_trade_decision(
                    TradeDecision(
                        action="enter",
                        side="long",
                        order_type="limit",
                        entry_condition_id="MeanReversionPOC_v2",
                        limit_price=(last - 40) * 0.25,
                        stop_price=(last - 48) * 0.25,
                        target_price=(last - 20) * 0.25,
                        reason="bench",
                    ),
                    session.clock_ns(),
                    last,
                )
                engine.process_broker_events()
                decided = time.perf_counter_ns()
                if not result.accepted:
                    raise SystemExit(f"the engine refused the bench entry: {result.reason}")
                deadline = time.monotonic() + 5
                while len(broker.sent) == sent_before and time.monotonic() < deadline:
                    await asyncio.sleep(0)
                if len(broker.sent) == sent_before:
                    continue
                assert broker.last_send_ns is not None and received is not None
                samples.append((broker.last_send_ns - received) / 1e6)
                assert received is not None
                parts.append(
                    (
                        (woke - received) / 1e6,
                        (decided - woke) / 1e6,
                        (broker.last_send_ns - decided) / 1e6,
                    )
                )
                entry = next(
                    o for o in reversed(broker.orders.values()) if o.role is OrderRole.ENTRY
                )
                deadline = time.monotonic() + 5
                while (
                    broker.links[entry.id].venue_id is None
                    and entry.status.is_open
                    and (time.monotonic() < deadline)
                ):
                    await asyncio.sleep(0.001)
                engine.flatten(session.clock_ns(), "bench: next sample")
                for o in broker.open_orders():
                    broker.cancel(o.id, "bench")
                await asyncio.sleep(0.02)
                engine.process_broker_events()
                feed.get_nowait()  # the next sample is decided on a print not yet received
        await session.close()
    med = np.median(np.asarray(parts), axis=0)
    out = _pcts(samples)
    out.update(
        median_wake_ms=round(float(med[0]), 3),
        median_engine_ms=round(float(med[1]), 3),
        median_broker_ms=round(float(med[2]), 3),
    )
    return out


async def reconnect_latency(url: str, reconnects: int) -> dict[str, float]:
    if True:
        session = ProjectXSession(_config(url))
        await session.connect(["ES"])
        hubs = [session.user_hub, session.market_hub]
        end = time.monotonic() + reconnects * 1.5 + 10
        while sum(len(h.resubscribe_ms) for h in hubs if h) < reconnects:
            if time.monotonic() > end:
                break
            await asyncio.sleep(0.1)
        samples = [v for h in hubs if h for v in h.resubscribe_ms]
        await session.close()
    return _pcts(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--reconnects", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    out: dict[str, Any] = {}
    with sim_process() as url:
        out["trade_received_to_order_sent_ms"] = asyncio.run(order_latency(url, args.orders))
    with sim_process("--disconnect-every", "1") as url:
        out["reconnect_to_resubscribed_ms"] = asyncio.run(reconnect_latency(url, args.reconnects))
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for name, figures in out.items():
            print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
