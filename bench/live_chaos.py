"""Chaos benchmark of live restarts: `python bench/live_chaos.py --crashes 50 --speed 60 --seed 1`.

Runs `fabio gateway-sim` in this process over real sockets and `fabio run --mode live` as a
child (a brain that enters often), kills the child with SIGKILL at seeded random instants
(after sending an order, in a position, while the venue has cancelled its stop, while a fill
arrives, after a hand-made close or stop cancellation), keeps it down a random time while the
simulator keeps matching, restarts it, and after each restart's start reconciliation checks the
invariants. Prints the count of violations per invariant over the crashes (`--json`: all of it,
crash by crash). The harness: tests/brokers/projectx/chaos.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.brokers.projectx.chaos import ChaosConfig, run_chaos


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crashes", type=int, default=50)
    ap.add_argument("--speed", type=float, default=60.0, help="market seconds per wall second")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="the whole report as JSON")
    ap.add_argument("--quiet", action="store_true", help="no line per crash")
    ap.add_argument(
        "--isolate",
        action="store_true",
        help="each crash on a fresh simulator and journal (one crash's damage cannot hide "
        "the next's)",
    )
    args = ap.parse_args()
    if args.crashes < 1 or args.speed <= 0:
        ap.error("--crashes and --speed must be positive")
    # Flat, the agent enters within a few market minutes: at 1x the waits are wall minutes.
    patience = max(20.0, 1200.0 / args.speed)
    config = ChaosConfig(
        crashes=args.crashes,
        speed=args.speed,
        seed=args.seed,
        condition_timeout_sec=patience,
        isolate=args.isolate,
        log=None if args.quiet or args.json else lambda line: print(line, flush=True),
    )
    report = run_chaos(config)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.table())


if __name__ == "__main__":
    main()
