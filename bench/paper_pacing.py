"""Paper pacing: does `fabio run` make the same decisions at any speed, on a busy machine too?

Runs `fabio run --duration 1h --json` (the synthetic market, the rule brain, a fresh journal each
time) at `--speed 120` and `--speed 3000`, first as the machine is, then with `--busy N` busy
loops beside it, and prints decisions, decisions dropped as stale, trades and the speed each run
achieved, with the ratio of decisions at 3000x to decisions at 120x (issue 21: >= 0.8; the replay
waits for the brain, so it should be 1.0).

    python bench/paper_pacing.py [--busy 2] [--speeds 120,3000] [--duration 1h]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _spin() -> None:
    while True:
        pass


def run_once(speed: float, duration: str, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fabio-pacing-") as tmp:
        env = {
            **os.environ,
            "LOGS_DIR": str(Path(tmp) / "logs"),
            "LOG_DIR": str(Path(tmp) / "logs"),
            "OPENAI_API_KEY": "",
            "OPENAI_BASE_URL": "",
            "XDG_CACHE_HOME": str(Path(tmp) / "cache"),
        }
        cmd = [sys.executable, "-m", "fabio.cli", "run", "--speed", str(speed)]
        cmd += ["--duration", duration, "--seed", str(seed), "--json"]
        t0 = time.monotonic()
        done = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, check=False)
        wall = time.monotonic() - t0
    if done.returncode != 0:
        why = done.stderr[-800:]
        raise SystemExit(f"fabio run --speed {speed} failed ({done.returncode}): {why}")
    summary = json.loads(done.stdout[done.stdout.index("{") :])
    summary["bench_wall_sec"] = round(wall, 1)
    return summary


def measure(speeds: list[float], duration: str, seed: int) -> list[dict[str, Any]]:
    rows = []
    for speed in speeds:
        s = run_once(speed, duration, seed)
        rows.append(
            {
                "speed": speed,
                "decisions": s.get("decisions"),
                "stale_dropped": s.get("stale_dropped"),
                "trades_closed": s.get("trades_closed"),
                "net_pnl_usd": s.get("net_pnl_usd"),
                "achieved_speed": s.get("achieved_speed"),
                "wall_sec": s["bench_wall_sec"],
            }
        )
    return rows


def show(label: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{label}")
    print(
        f"{'speed':>7} {'decisions':>9} {'stale':>6} {'trades':>6} {'net $':>9} "
        f"{'achieved':>9} {'wall s':>7}"
    )
    for r in rows:
        achieved = "-" if r["achieved_speed"] is None else f"{r['achieved_speed']:g}x"
        print(
            f"{r['speed']:>7g} {r['decisions']:>9} {r['stale_dropped']:>6} {r['trades_closed']:>6} "
            f"{r['net_pnl_usd']:>9.2f} {achieved:>9} {r['wall_sec']:>7.1f}"
        )
    base, fast = rows[0]["decisions"] or 0, rows[-1]["decisions"] or 0
    if base:
        print(f"decisions at {rows[-1]['speed']:g}x / at {rows[0]['speed']:g}x = {fast / base:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--speeds", default="120,3000")
    ap.add_argument("--duration", default="1h")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--busy", type=int, default=2, help="busy loops for the loaded pass (0: none)")
    args = ap.parse_args()
    speeds = [float(s) for s in args.speeds.split(",")]
    show("as the machine is", measure(speeds, args.duration, args.seed))
    if args.busy > 0:
        loops = [mp.Process(target=_spin, daemon=True) for _ in range(args.busy)]
        for p in loops:
            p.start()
        try:
            rows = measure(speeds, args.duration, args.seed)
            show(f"with {args.busy} busy loops beside it", rows)
        finally:
            for p in loops:
                p.terminate()


if __name__ == "__main__":
    main()
