"""Agent benchmark: `python bench/agent.py [--json] [--skip-bars]`.

Figures measured in this one run:
- one RTH session of ~1 M synthetic trades end to end (features, cadence, rule brain, execution,
  journals) — goal < 2 s (the synthetic generation is timed separately);
- the journal one trading day writes (goal < 50 MB);
- the cost of durability: the same session with order/fill/position records fsynced (group
  commit per step, decisions buffered) as paper and live trading journal them, and the latency
  of one fsynced append against a buffered one (on the disk under --dir);
- every 2015–2023 ES 5-minute bar session in ../shared/data as a sweep with 2 processes
  (one independent backtest per contract file) — goal < 5 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from fabio.backtest.runner import run_backtest
from fabio.backtest.sweep import SweepJob, run_sweep
from fabio.brain.rules import RuleBrain
from fabio.data.synthetic import SyntheticConfig, SyntheticFeed, generate_session

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "es-5m-sierra"


def one_session(tmp: Path) -> dict[str, float]:
    cfg = SyntheticConfig(symbol="ES", days=1, seed=7, eth=False, rth_trades=1_000_000)
    run_backtest([SyntheticFeed(cfg)], RuleBrain(), tmp / "warm")  # load compiled kernels
    t0 = time.perf_counter()
    trades = len(generate_session(cfg).trades)
    generate_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = run_backtest([SyntheticFeed(cfg)], RuleBrain(), tmp / "one")
    total_s = time.perf_counter() - t0
    journal = sum(p.stat().st_size for p in (tmp / "one").glob("*.jsonl"))
    return {
        "session_trades": trades,
        "session_total_s": round(total_s, 3),
        "session_generate_s": round(generate_s, 3),
        "session_agent_s": round(total_s - generate_s, 3),
        "session_decisions": result.summary["decisions"],
        "journal_mb_per_day": round(journal / 1e6, 2),
    }


def durability(tmp: Path) -> dict[str, float]:
    """What fsyncing the execution journal costs: a whole session, and one append."""
    from fabio.journal import Journal

    cfg = SyntheticConfig(symbol="ES", days=1, seed=7, eth=False, rth_trades=1_000_000)
    times: dict[bool, float] = {}
    calls = [0]
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        calls[0] += 1
        real_fsync(fd)

    os.fsync = counting_fsync
    try:
        for durable in (False, True, False, True):  # interleaved: less drift between the two
            calls[0] = 0
            t0 = time.perf_counter()
            run_backtest([SyntheticFeed(cfg)], RuleBrain(), tmp / f"d{durable}", durable=durable)
            elapsed = time.perf_counter() - t0
            times[durable] = min(times.get(durable, elapsed), elapsed)
            if durable:
                fsyncs = calls[0]
    finally:
        os.fsync = real_fsync
    records = sum(1 for _ in (tmp / "dTrue" / "execution.jsonl").open())
    n = 300
    per: dict[str, float] = {}
    for name, fsync in (("buffered", False), ("fsynced", True)):
        j = Journal(tmp / f"append-{name}.jsonl", fsync=fsync)
        t0 = time.perf_counter()
        for i in range(n):
            j.append({"type": "fill", "i": i, "price_ticks": 20000, "qty": 1})
        per[name] = (time.perf_counter() - t0) / n * 1e6
        j.close()
    return {
        "durable_session_s": round(times[True], 3),
        "buffered_session_s": round(times[False], 3),
        "durable_overhead_s": round(times[True] - times[False], 3),
        "durable_execution_records": records,
        "durable_fsyncs": fsyncs,
        "append_buffered_us": round(per["buffered"], 1),
        "append_fsynced_us": round(per["fsynced"], 1),
    }


def bar_sweep(tmp: Path) -> dict[str, float]:
    files = sorted(SHARED.glob("*.txt.gz"))
    jobs = [
        SweepJob(str(p), None, "rules", True, None, None, str(tmp / "jobs" / p.name), None)
        for p in files
    ]
    t0 = time.perf_counter()
    results = run_sweep(jobs, tmp / "results", workers=2)
    elapsed = time.perf_counter() - t0
    return {
        "bar_files": len(files),
        "bar_sweep_s": round(elapsed, 1),
        "bar_trades_closed": sum(len(r["closed_trades"]) for r in results),
        "bar_breaches": sum(len(r["summary"]["rule_breaches"]) for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--skip-bars", action="store_true")
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path.cwd(),
        help="Where the journals go (fsync is measured on that disk).",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix=".bench-") as d:
        tmp = Path(d)
        result: dict[str, object] = one_session(tmp)
        result.update(durability(tmp))
        if not args.skip_bars and SHARED.is_dir():
            result.update(bar_sweep(tmp))
    result["goals"] = {
        "session_total_s < 2": float(result["session_total_s"]) < 2,  # type: ignore[arg-type]
        "journal_mb_per_day < 50": float(result["journal_mb_per_day"]) < 50,  # type: ignore[arg-type]
        "bar_sweep_s < 300": float(result.get("bar_sweep_s", 0)) < 300,  # type: ignore[arg-type]
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for k, v in result.items():
            print(f"{k:>22}: {v}")


if __name__ == "__main__":
    main()
