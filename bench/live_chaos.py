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
import signal
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
    ap.add_argument(
        "--realtime",
        action="store_true",
        help="a run whose waits are bounded at 1x: a livelier synthetic market (volatility "
        "6), the agent deciding every 5 s and bracketing 4-5 ticks wide, each wait for a "
        "position or an order at most 150 s, for a leg's fill 240 s (the same scenarios and "
        "invariants)",
    )
    ap.add_argument("--volatility", type=float, help="the synthetic market's (default 1)")
    ap.add_argument(
        "--decide-every", type=float, help="the agent's decision interval, market seconds"
    )
    ap.add_argument("--bracket", help="LOW,HIGH: the agent's stop and target widths, ticks")
    ap.add_argument(
        "--patience", type=float, help="bound on each wait for a scenario's moment, wall s"
    )
    args = ap.parse_args()
    if args.crashes < 1 or args.speed <= 0:
        ap.error("--crashes and --speed must be positive")
    # Flat, the agent enters within a few market minutes: at 1x the waits are wall minutes.
    patience = max(20.0, 1200.0 / args.speed)
    volatility, decide_every, bracket = 1.0, None, (8, 12)
    fill_patience = None  # 3 times patience: a leg's fill takes longer than an entry
    if args.realtime:
        volatility, decide_every, bracket, patience = 6.0, 5.0, (4, 5), 150.0
        fill_patience = 240.0
    volatility = args.volatility if args.volatility is not None else volatility
    decide_every = args.decide_every if args.decide_every is not None else decide_every
    patience = args.patience if args.patience is not None else patience
    if args.bracket:
        try:
            low, high = (int(x) for x in args.bracket.split(","))
        except ValueError:
            ap.error("--bracket: two whole numbers of ticks, LOW,HIGH")
        if not 1 <= low <= high:
            ap.error("--bracket: 1 <= LOW <= HIGH")
        bracket = (low, high)
    if not 0 < volatility <= 20 or (decide_every is not None and decide_every <= 0):
        ap.error("--volatility in (0, 20], --decide-every positive")
    config = ChaosConfig(
        crashes=args.crashes,
        speed=args.speed,
        seed=args.seed,
        condition_timeout_sec=patience,
        fill_timeout_sec=fill_patience,
        isolate=args.isolate,
        volatility=volatility,
        decision_interval_sec=decide_every,
        bracket_ticks=bracket,
        log=None if args.quiet or args.json else lambda line: print(line, flush=True),
    )

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # SIGTERM (or Ctrl-C): the table of the crashes done so far.
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    report = run_chaos(config)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.table())


if __name__ == "__main__":
    main()
