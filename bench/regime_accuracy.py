"""Regime accuracy of the rule brain on the labelled synthetic market.

`python bench/regime_accuracy.py [--seeds 20] [--seed-start 1] [--json] [--real]`

For each seed: `--days` RTH sessions of the synthetic ES market (default 15); the first
`--warmup` (5) only feed the engine so that the range percentile has history. Then at the end
of every RTH minute: a feature snapshot, the decision context the brains see, and the rule
brain's regime (asked in order, so hysteresis works), compared with the generator's true label
of that minute. Prints balanced accuracy, per-class recall and the confusion matrix, overall
and per seed, accuracy by minutes since the last true regime switch, and the rule brain's
decision latency.

The thresholds were calibrated on seeds 101-120; the default reported seeds (1-20) are
separate. `--real` also runs the 36 real ES 5-minute bar files (../shared/data) and prints the
real-ES percentiles of the statistics the regime table uses and the share of real snapshots
each indicator holds on and each regime wins (sanity: thresholds sensible on real data).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import time as dtime
from pathlib import Path
from typing import Any

import numpy as np

from fabio.brain.context import DecisionContext, build_context
from fabio.brain.rules import REGIMES, RuleBrain, score_regimes
from fabio.brain.thresholds import RegimeThresholds
from fabio.data.synthetic import SyntheticConfig, front_contract, iter_sessions
from fabio.features.engine import FeatureEngine
from fabio.features.replay import sample_rth_snapshots
from fabio.features.snapshot import FeatureSnapshot
from fabio.playbook.setups import detect_setups
from fabio.strategies import initialize_default_strategies
from fabio.timeutil import NS_PER_MIN

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "es-5m-sierra"
CODE = {name: i for i, name in enumerate(REGIMES)}
SINCE_BUCKETS = ((0, 5), (5, 10), (10, 15), (15, 20), (20, 30), (30, 60), (60, 10_000))


def _context(snap: FeatureSnapshot, tick: float) -> DecisionContext | None:
    if snap.market_stats is None or snap.session is None or not snap.session.is_open:
        return None
    state = initialize_default_strategies()
    return build_context(snap, tick, state, triggered_setups=detect_setups(snap, state, tick))


def run_seed(seed: int, days: int, warmup: int, rth_trades: int | None) -> dict[str, Any]:
    """True and inferred regime codes for every RTH minute after the warm-up, and latencies."""
    cfg = SyntheticConfig(symbol="ES", days=days, seed=seed, eth=False, rth_trades=rth_trades)
    contract = front_contract("ES", cfg.trade_dates()[0])
    tick = contract.spec.tick_size
    engine = FeatureEngine(contract)
    brain = RuleBrain()
    timing = RuleBrain()  # a second brain for latency, so timing calls do not touch `brain`
    truth: list[int] = []
    pred: list[int] = []
    since: list[int] = []
    latency_us: list[float] = []
    for i, s in enumerate(iter_sessions(cfg)):
        trades = s.trades
        if i < warmup:
            engine.update(trades)
            continue
        open_ns, close_ns = s.session.rth_open_ns, s.session.rth_close_ns
        start, run, prev_label = 0, 0, -1
        for m in range((close_ns - open_ns) // NS_PER_MIN):
            at = open_ns + (m + 1) * NS_PER_MIN - 1
            cut = int(np.searchsorted(trades.ts, at, side="right"))
            engine.update(trades.slice(start, cut))
            start = cut
            label = int(s.labels.at(np.array([at], dtype=np.int64))[0])
            run = run + 1 if label == prev_label else 0
            prev_label = label
            ctx = _context(engine.snapshot(at), tick) if cut else None
            if ctx is None or label < 0:
                continue
            pred.append(CODE[brain.infer_regime(ctx)])
            truth.append(label)
            since.append(run)
            if m % 10 == 0:
                t0 = time.perf_counter()
                timing.decide_now(ctx)
                latency_us.append((time.perf_counter() - t0) * 1e6)
    return {"seed": seed, "truth": truth, "pred": pred, "since": since, "latency_us": latency_us}


def confusion(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    m = np.zeros((3, 3), dtype=np.int64)
    np.add.at(m, (truth, pred), 1)
    return m


def scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    m = confusion(truth, pred)
    rows = m.sum(axis=1)
    recall = [float(m[i, i] / rows[i]) if rows[i] else float("nan") for i in range(3)]
    present = [r for r, n in zip(recall, rows, strict=True) if n]
    return {
        "minutes": len(truth),
        "balanced_accuracy": float(np.mean(present)) if present else float("nan"),
        "accuracy": float(np.mean(truth == pred)) if len(truth) else float("nan"),
        "recall": dict(zip(REGIMES, recall, strict=True)),
        "confusion": m.tolist(),
    }


def synthetic_report(args: argparse.Namespace) -> dict[str, Any]:
    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    jobs = [(s, args.days, args.warmup, args.rth_trades) for s in seeds]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(run_seed, *zip(*jobs, strict=True)))
    else:
        runs = [run_seed(*j) for j in jobs]
    truth = np.concatenate([np.asarray(r["truth"], dtype=np.int64) for r in runs])
    pred = np.concatenate([np.asarray(r["pred"], dtype=np.int64) for r in runs])
    since = np.concatenate([np.asarray(r["since"], dtype=np.int64) for r in runs])
    per_seed = {r["seed"]: scores(np.asarray(r["truth"]), np.asarray(r["pred"])) for r in runs}
    bal = [v["balanced_accuracy"] for v in per_seed.values()]
    by_since = {}
    for a, b in SINCE_BUCKETS:
        sel = (since >= a) & (since < b)
        by_since[f"{a}-{b}"] = {
            "share": float(sel.mean()),
            "balanced_accuracy": scores(truth[sel], pred[sel])["balanced_accuracy"],
        }
    lat = np.concatenate([np.asarray(r["latency_us"]) for r in runs])
    return {
        "config": {
            "seeds": seeds,
            "days": args.days,
            "warmup": args.warmup,
            "rth_trades": args.rth_trades or "default (ES 500k)",
            "thresholds": RegimeThresholds().model_dump(),
        },
        "overall": scores(truth, pred),
        "per_seed_balanced_accuracy": {
            "min": min(bal),
            "median": float(np.median(bal)),
            "max": max(bal),
        },
        "per_seed": per_seed,
        "by_minutes_since_switch": by_since,
        "decide_latency_us": {
            "p50": float(np.percentile(lat, 50)),
            "p99": float(np.percentile(lat, 99)),
        },
    }


# ---------------------------------------------------------------- real ES


REAL_TIMES = [dtime(h, m) for h in range(9, 15) for m in (0, 30)] + [dtime(14, 59)]
REAL_STATS = (
    "abs_cvd_slope_5min",
    "abs_cvd_slope_15min",
    "abs_distance_to_poc_ticks",
    "share_outside_value_last_30min",
    "count_last_30min",
    "range_last_5min_ticks",
    "range_last_15min_ticks",
    "abs_price_change_last_15min_ticks",
)


def _real_row(ctx: DecisionContext, t: RegimeThresholds) -> dict[str, Any]:
    ms, pcs = ctx.market_stats, ctx.poc_cross_stats
    last30 = sum(
        ms[k] or 0.0
        for k in (
            "time_above_value_last_30min_sec",
            "time_below_value_last_30min_sec",
            "time_in_value_last_30min_sec",
        )
    )
    outside = ms["time_above_value_last_30min_sec"] + ms["time_below_value_last_30min_sec"]

    def absval(key: str) -> float:
        v = ms.get(key)
        return abs(v) if v is not None else float("nan")

    sc = score_regimes(ms, pcs, t)
    return {
        "abs_cvd_slope_5min": absval("cvd_slope_5min"),
        "abs_cvd_slope_15min": absval("cvd_slope_15min"),
        "abs_distance_to_poc_ticks": absval("distance_to_poc_ticks"),
        "share_outside_value_last_30min": outside / last30 if last30 else float("nan"),
        "count_last_30min": float(pcs["count_last_30min"]),
        "range_last_5min_ticks": float(ms["range_last_5min_ticks"]),
        "range_last_15min_ticks": float(ms["range_last_15min_ticks"]),
        "abs_price_change_last_15min_ticks": absval("price_change_last_15min_ticks"),
        "regime": sc.best,
        "holds": {f"{r.regime}:{r.name}": r.holds for r in sc.readings},
    }


def _real_file(path: Path) -> list[dict[str, Any]]:
    from fabio.data import open_feed

    feed = open_feed(path)
    engine = FeatureEngine(feed.contract)
    tick = feed.contract.spec.tick_size
    state = initialize_default_strategies()
    t = RegimeThresholds()
    rows = [
        _real_row(build_context(snap, tick, state), t)
        for snap in sample_rth_snapshots(engine, feed, REAL_TIMES)
    ]
    return rows


def real_report(jobs: int, files: int) -> dict[str, Any]:
    if not SHARED.is_dir():
        return {"skipped": f"no ES bar data at {SHARED}"}
    paths = sorted(SHARED.glob("*.txt.gz"))
    paths = paths[:files] if files else paths
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            parts = list(pool.map(_real_file, paths))
    else:
        parts = [_real_file(p) for p in paths]
    rows = [r for part in parts for r in part]
    pcts = (5, 10, 25, 50, 75, 90, 95)
    table = {}
    for key in REAL_STATS:
        v = np.array([r[key] for r in rows], dtype=float)
        v = v[np.isfinite(v)]
        table[key] = {f"p{p}": round(float(np.percentile(v, p)), 3) for p in pcts}
    holds: dict[str, float] = {}
    for key in rows[0]["holds"]:
        vals = [r["holds"][key] for r in rows if r["holds"][key] is not None]
        holds[key] = round(float(np.mean(vals)), 3) if vals else float("nan")
    regimes = [r["regime"] for r in rows]
    return {
        "files": len(paths),
        "snapshots": len(rows),
        "percentiles": table,
        "share_indicator_holds": holds,
        "share_regime_wins": {r: round(regimes.count(r) / len(regimes), 3) for r in REGIMES},
    }


# ---------------------------------------------------------------- output


def _print_synthetic(rep: dict[str, Any]) -> None:
    cfg, ov = rep["config"], rep["overall"]
    seeds = cfg["seeds"]
    print(
        f"synthetic ES, seeds {seeds[0]}-{seeds[-1]}, {cfg['days']} RTH sessions each "
        f"({cfg['warmup']} warm-up), rth_trades {cfg['rth_trades']}: {ov['minutes']} minutes"
    )
    print(f"balanced accuracy {ov['balanced_accuracy']:.3f}  (accuracy {ov['accuracy']:.3f})")
    print("recall  " + "  ".join(f"{k} {v:.3f}" for k, v in ov["recall"].items()))
    print("confusion (rows true, columns inferred)")
    print(f"{'':>8}" + "".join(f"{r:>8}" for r in REGIMES))
    for name, row in zip(REGIMES, ov["confusion"], strict=True):
        print(f"{name:>8}" + "".join(f"{x:>8}" for x in row))
    ps = rep["per_seed_balanced_accuracy"]
    print(
        f"per seed balanced accuracy: min {ps['min']:.3f} median {ps['median']:.3f} "
        f"max {ps['max']:.3f}"
    )
    print("  " + " ".join(f"{s}:{v['balanced_accuracy']:.3f}" for s, v in rep["per_seed"].items()))
    print("by minutes since the true regime switched (share of minutes, balanced accuracy):")
    for k, v in rep["by_minutes_since_switch"].items():
        print(f"  {k:>9} min  {v['share']:.3f}  {v['balanced_accuracy']:.3f}")
    lat = rep["decide_latency_us"]
    print(f"rule brain decide_now: p50 {lat['p50']:.0f} us, p99 {lat['p99']:.0f} us")


def _print_real(rep: dict[str, Any]) -> None:
    if "skipped" in rep:
        print(rep["skipped"])
        return
    print(f"\nreal ES: {rep['files']} files, {rep['snapshots']} snapshots (every 30 min)")
    print(
        f"{'statistic':<36}" + "".join(f"{k:>8}" for k in next(iter(rep["percentiles"].values())))
    )
    for key, row in rep["percentiles"].items():
        print(f"{key:<36}" + "".join(f"{v:>8.3g}" for v in row.values()))
    print("share of real snapshots each indicator holds on:")
    for key, v in rep["share_indicator_holds"].items():
        print(f"  {v:>6.1%}  {key}")
    print(
        "regime winning the (hysteresis-free) score on real snapshots: "
        + ", ".join(f"{k} {v:.1%}" for k, v in rep["share_regime_wins"].items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--seed-start", type=int, default=1)
    parser.add_argument("--days", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rth-trades", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=1, help="processes (seeds run in parallel)")
    parser.add_argument("--real", action="store_true", help="also check on real ES bars")
    parser.add_argument("--real-files", type=int, default=0, help="only the first N files")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.warmup >= args.days:
        sys.exit("--warmup must be smaller than --days")
    report: dict[str, Any] = {"synthetic": synthetic_report(args)}
    if args.real:
        report["real_es"] = real_report(args.jobs, args.real_files)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    _print_synthetic(report["synthetic"])
    if args.real:
        _print_real(report["real_es"])


if __name__ == "__main__":
    main()
