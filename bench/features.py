"""Feature engine benchmark: `python bench/features.py [--json] [--skip-bars]`.

Prints figures measured in this one run (the machine is shared and noisy: compare the ratios):
- throughput: 1,000,000 synthetic trades (one RTH session) through the whole engine, the
  developing POC/VA rolled every second of market time, against `np.bincount` of the same
  trades (the bare volume profile) measured in the same run;
- the live path: a batch of 10 trades in and a snapshot out, p50/p99 latency;
- all ES 5-minute bar files in ../shared/data (about 2,280 sessions) read and run through the
  engine, with a snapshot at the end of each session, and the process's peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

from fabio.config import FeatureConfig
from fabio.data.synthetic import SyntheticConfig, generate_session
from fabio.domain import TradeBatch
from fabio.features.engine import FeatureEngine
from fabio.instruments import parse_symbol

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "es-5m-sierra"


def best_of(repeats: int, fn: object) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return min(times)


def throughput(trades: TradeBatch, symbol: str) -> dict[str, float]:
    contract = parse_symbol(symbol)
    FeatureEngine(contract).update(trades.slice(0, 10_000))  # compile/load the kernels

    def run() -> None:
        engine = FeatureEngine(contract)
        engine.update(trades)
        engine.snapshot()

    engine_s = best_of(3, run)
    rows = trades.price - trades.price.min()
    bincount_s = best_of(5, lambda: np.bincount(rows, weights=trades.size))
    return {
        "trades": len(trades),
        "engine_s": engine_s,
        "trades_per_s": len(trades) / engine_s,
        "bincount_s": bincount_s,
        "ratio_to_bincount": engine_s / bincount_s,
    }


def live_path(trades: TradeBatch, symbol: str, batches: int = 5000) -> dict[str, float]:
    engine = FeatureEngine(parse_symbol(symbol))
    half = len(trades) // 2
    engine.update(trades.slice(0, half))
    engine.snapshot()
    lat = np.empty(batches)
    for k in range(batches):
        a = half + 10 * k
        t0 = time.perf_counter()
        engine.update(trades.slice(a, a + 10))
        engine.snapshot()
        lat[k] = time.perf_counter() - t0
    us = lat * 1e6
    return {
        "snapshot_p50_us": float(np.percentile(us, 50)),
        "snapshot_p99_us": float(np.percentile(us, 99)),
        "snapshot_max_us": float(us.max()),
    }


def es_bars() -> dict[str, float] | None:
    if not SHARED.is_dir():
        return None
    from fabio.data import open_feed

    files = sorted(SHARED.glob("*.txt.gz"))
    t0 = time.perf_counter()
    read_s = 0.0
    trades = sessions = 0
    for path in files:
        feed = open_feed(path)
        engine = FeatureEngine(feed.contract, FeatureConfig())
        t_read = time.perf_counter()
        for batch in feed.batches():
            read_s += time.perf_counter() - t_read
            engine.update(batch.trades)
            trades += len(batch.trades)
            t_read = time.perf_counter()
        read_s += time.perf_counter() - t_read
        engine.snapshot()
        sessions += engine.sessions_started
    total = time.perf_counter() - t0
    return {
        "files": len(files),
        "bar_trades": trades,
        "bar_rth_sessions": sessions,
        "bars_total_s": total,
        "bars_read_s": read_s,
        "bars_engine_s": total - read_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--skip-bars", action="store_true", help="skip the 36 ES bar files")
    parser.add_argument("--trades", type=int, default=1_000_000)
    args = parser.parse_args()

    t0 = time.perf_counter()
    session = generate_session(SyntheticConfig(symbol="ES", rth_trades=args.trades, eth=False))
    trades = session.trades
    result: dict[str, object] = {
        "synthetic_generate_s": time.perf_counter() - t0,
        **throughput(trades, "ESH4"),
        **live_path(trades, "ESH4"),
    }
    if not args.skip_bars:
        bars = es_bars()
        result.update(bars or {"bars": "skipped: ../shared/data/es-5m-sierra not found"})
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["goals"] = {
        "trades_per_s >= 10M": result["trades_per_s"] >= 10e6,  # type: ignore[operator]
        "ratio_to_bincount <= 60": result["ratio_to_bincount"] <= 60,  # type: ignore[operator]
        "snapshot_p99_us < 200": result["snapshot_p99_us"] < 200,  # type: ignore[operator]
        "bars_total_s < 60": (result.get("bars_total_s", 0) or 0) < 60,  # type: ignore[operator]
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2, default=float)
        sys.stdout.write("\n")
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value:,.4g}" if isinstance(value, float) else f"{key:>24}: {value}")


if __name__ == "__main__":
    main()
