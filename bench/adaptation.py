"""Adaptation on labelled synthetic markets: `python bench/adaptation.py [--seeds 20] [--json]`.

For each seed, a long synthetic ES backtest with learning. For every strategy the brain disabled,
count the strategy's trades from the moment it stopped working (its last equity peak before the
disabling) to the disabling; also report strategies never disabled and how the learning run
compares with the same market traded with frozen strategy state (`--no-learning`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from fabio.backtest.runner import run_backtest
from fabio.brain.rules import RuleBrain
from fabio.data.synthetic import SyntheticConfig, SyntheticFeed


def one_seed(args: tuple[int, int, int]) -> dict[str, Any]:
    seed, days, rth_trades = args
    cfg = SyntheticConfig(symbol="ES", days=days, seed=seed, eth=False, rth_trades=rth_trades)
    with tempfile.TemporaryDirectory() as d:
        learn = run_backtest([SyntheticFeed(cfg)], RuleBrain(), Path(d) / "l")
        static = run_backtest([SyntheticFeed(cfg)], RuleBrain(), Path(d) / "s", learning=False)
    lags = []
    for change in learn.strategy_changes:
        if change["field"] != "enabled" or change["new"] is not False:
            continue
        name, at = change["strategy"], int(change["ts_ns"])
        pnl = [t.net_pnl_usd for t in learn.closed_trades if t.strategy == name and t.exit_ns <= at]
        if not pnl:
            continue
        equity = np.cumsum(pnl)
        peak = int(np.argmax(equity)) + 1 if equity.max() > 0 else 0
        lags.append(
            {
                "strategy": name,
                "trades_after_peak": len(pnl) - peak,
                "trades_before_disable": len(pnl),
            }
        )
    return {
        "seed": seed,
        "disabled": lags,
        "learn_net": learn.summary["net_pnl_usd"],
        "static_net": static.summary["net_pnl_usd"],
        "learn_dd": learn.summary["max_drawdown_usd"],
        "static_dd": static.summary["max_drawdown_usd"],
        "breaches": len(learn.summary["rule_breaches"]) + len(static.summary["rule_breaches"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--days", type=int, default=40)
    parser.add_argument("--rth-trades", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = [(s, args.days, args.rth_trades) for s in range(1, args.seeds + 1)]
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(one_seed, work))
    lags = [d["trades_after_peak"] for r in rows for d in r["disabled"]]
    result = {
        "seeds": args.seeds,
        "sessions_per_seed": args.days,
        "disable_events": len(lags),
        "trades_after_peak_until_disabled": (
            {f"p{p}": float(np.percentile(lags, p)) for p in (25, 50, 75, 90)} if lags else None
        ),
        "seeds_learning_beats_static": sum(1 for r in rows if r["learn_net"] > r["static_net"]),
        "learn_net_total": round(sum(r["learn_net"] for r in rows), 2),
        "static_net_total": round(sum(r["static_net"] for r in rows), 2),
        "rule_breaches": sum(r["breaches"] for r in rows),
        "per_seed": rows,
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for k, v in result.items():
            if k != "per_seed":
                print(f"{k:>34}: {v}")


if __name__ == "__main__":
    main()
