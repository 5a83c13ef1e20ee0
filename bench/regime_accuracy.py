"""Regime accuracy of the rule brain on both labelled synthetic generators.

`python bench/regime_accuracy.py [--generator both|synthetic|msv] [--seeds 20] [--seed-start 1]
[--draws 10] [--draw-seed-start 1001] [--days 15] [--warmup 5] [--jobs 2] [--json] [--real]`

For each seed: `--days` RTH sessions of the generator's market; the first `--warmup` only feed
the engine (range percentile and typical-range history). Then `fabio regime`'s own code
(`fabio.brain.regime_timeline`): at the end of every RTH minute a feature snapshot, the
decision context the brains see, and the rule brain's regime (asked in order, so hysteresis
works), compared with the generator's true label of that minute. Prints balanced accuracy,
per-class recall and the confusion matrix, per seed, and by minutes since the true regime last
switched (or the session opened), for each generator at its default parameters and on
`--draws` random parameter draws of it (scale, volatility, trades per minute, regime mix and
strength; see `draw_synthetic` and `MsvParams.draw`).

Seeds: the thresholds and weights were calibrated on generator 1 (`synthetic`) seeds 101-120,
generator 2 (`msv`) seeds 301-320 and random draws 2001-2020 of each (issue 12, rounds 3 and 4;
docs/brain.md). The default reported seeds (1-20, draws 1001-1010) were not used for
calibration. `--real` also runs the 36 real ES 5-minute bar files
(../shared/data) and prints the real-ES percentiles of the statistics the regime table uses
and the share of real snapshots each indicator holds on and each regime wins.
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
from fabio.brain.regime_timeline import (
    Labels,
    by_since,
    matched,
    regime_timeline,
    scores,
)
from fabio.brain.rules import REGIMES, MarketScale, score_regimes
from fabio.brain.thresholds import RegimeThresholds
from fabio.data.synthetic import RegimeParams, SyntheticConfig, SyntheticFeed
from fabio.data.synthetic_msv import MsvConfig, MsvFeed, MsvParams
from fabio.features.engine import FeatureEngine
from fabio.features.replay import sample_rth_snapshots
from fabio.strategies import initialize_default_strategies

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "es-5m-sierra"


def draw_synthetic(seed: int, days: int) -> SyntheticConfig:
    """Generator 1 with random parameters: product, volatility, trades, regime mix and shape."""
    rng = np.random.default_rng([seed, 0x5E1])
    mix = rng.dirichlet([6.0, 6.0, 5.0])
    lo = rng.uniform(0.6, 1.1)
    params = RegimeParams(
        rth_probs=(float(mix[0]), float(mix[1]), float(mix[2])),
        segment_mean_min=float(rng.uniform(45, 90)),
        trend_drift=(lo, lo + float(rng.uniform(0.4, 1.0))),
        trend_imbalance=(float(rng.uniform(0.06, 0.1)), float(rng.uniform(0.11, 0.18))),
        range_half_width=(float(rng.uniform(4, 7)), float(rng.uniform(9, 15))),
        range_period_min=(float(rng.uniform(8, 12)), float(rng.uniform(16, 28))),
        range_imbalance=(float(rng.uniform(0.03, 0.05)), float(rng.uniform(0.06, 0.1))),
        chop_noise=float(rng.uniform(0.7, 1.4)),
    )
    return SyntheticConfig(
        symbol=str(rng.choice(["ES", "NQ", "MES", "MNQ"])),
        days=days,
        seed=seed,
        eth=False,
        volatility=float(np.exp(rng.uniform(np.log(0.5), np.log(2.5)))),
        rth_trades=int(np.exp(rng.uniform(np.log(60_000), np.log(900_000)))),
        regimes=params,
    )


def make_feed(generator: str, seed: int, days: int, draw: bool) -> Any:
    if generator == "synthetic":
        cfg = (
            draw_synthetic(seed, days)
            if draw
            else SyntheticConfig(symbol="ES", days=days, seed=seed, eth=False)
        )
        return SyntheticFeed(cfg)
    params = MsvParams.draw(np.random.default_rng([seed, 0x35F])) if draw else MsvParams()
    return MsvFeed(MsvConfig(symbol="NQ", days=days, seed=seed, params=params))


def run_seed(generator: str, seed: int, days: int, warmup: int, draw: bool) -> dict[str, Any]:
    """True and inferred regime codes for every RTH minute after the warm-up."""
    feed = make_feed(generator, seed, days, draw)
    t0 = time.perf_counter()
    timeline = regime_timeline(feed, warmup_sessions=warmup)
    elapsed = time.perf_counter() - t0
    lab = feed.labels
    truth, pred, since, _ = matched(
        timeline, Labels(lab.minute_ts.astype(np.int64), lab.regime.astype(np.int64))
    )
    return {
        "generator": generator,
        "seed": seed,
        "draw": draw,
        "symbol": feed.contract.symbol,
        "truth": truth.tolist(),
        "pred": pred.tolist(),
        "since": since.tolist(),
        "seconds": elapsed,
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    truth = np.concatenate([np.asarray(r["truth"], dtype=np.int64) for r in runs])
    pred = np.concatenate([np.asarray(r["pred"], dtype=np.int64) for r in runs])
    since = np.concatenate([np.asarray(r["since"], dtype=np.int64) for r in runs])
    per_seed = {
        f"{r['seed']}{':' + r['symbol'] if r['draw'] else ''}": scores(
            np.asarray(r["truth"], dtype=np.int64), np.asarray(r["pred"], dtype=np.int64)
        )["balanced_accuracy"]
        for r in runs
    }
    bal = [v for v in per_seed.values() if v is not None]
    return {
        "seeds": [r["seed"] for r in runs],
        "overall": scores(truth, pred),
        "by_minutes_since_switch": by_since(truth, pred, since),
        "per_seed_balanced_accuracy": per_seed,
        "per_seed_min_median_max": [min(bal), float(np.median(bal)), max(bal)],
    }


def synthetic_report(args: argparse.Namespace) -> dict[str, Any]:
    gens = ["synthetic", "msv"] if args.generator == "both" else [args.generator]
    jobs: list[tuple[str, int, int, int, bool]] = []
    seeds = range(args.seed_start, args.seed_start + args.seeds)
    draws = range(args.draw_seed_start, args.draw_seed_start + args.draws)
    for g in gens:
        jobs += [(g, s, args.days, args.warmup, False) for s in seeds]
        jobs += [(g, s, args.days, args.warmup, True) for s in draws]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(run_seed, *zip(*jobs, strict=True)))
    else:
        runs = [run_seed(*j) for j in jobs]
    report: dict[str, Any] = {
        "config": {
            "days": args.days,
            "warmup": args.warmup,
            "seeds": f"{args.seed_start}-{args.seed_start + args.seeds - 1}",
            "draw_seeds": f"{args.draw_seed_start}-{args.draw_seed_start + args.draws - 1}",
            "calibration_seeds": "synthetic 101-120, msv 301-320, draws 2001-2020",
            "thresholds": RegimeThresholds().model_dump(),
        },
        "seconds": round(sum(r["seconds"] for r in runs), 1),
    }
    for g in gens:
        for draw, name in ((False, "default"), (True, "random_draws")):
            part = [r for r in runs if r["generator"] == g and r["draw"] == draw]
            if part:
                report[f"{g}:{name}"] = summarise(part)
    return report


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

    sc = score_regimes(ms, pcs, t, MarketScale.of(ms, t))
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


def real_report(jobs: int, files: int, folder: Path = SHARED) -> dict[str, Any]:
    if not folder.is_dir():
        return {"skipped": f"no ES bar data at {folder}"}
    paths = sorted(folder.glob("*.txt.gz"))
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


def _print_part(name: str, rep: dict[str, Any]) -> None:
    ov = rep["overall"]
    print(f"\n== {name}: seeds {rep['seeds'][0]}-{rep['seeds'][-1]}, {ov['minutes']} minutes")
    print(f"balanced accuracy {ov['balanced_accuracy']:.3f}  (accuracy {ov['accuracy']:.3f})")
    print("recall  " + "  ".join(f"{k} {v:.3f}" for k, v in ov["recall"].items()))
    print("confusion (rows true, columns inferred)")
    print(f"{'':>8}" + "".join(f"{r:>8}" for r in REGIMES))
    for label, row in zip(REGIMES, ov["confusion"], strict=True):
        print(f"{label:>8}" + "".join(f"{x:>8}" for x in row))
    lo, med, hi = rep["per_seed_min_median_max"]
    print(f"per seed balanced accuracy: min {lo:.3f} median {med:.3f} max {hi:.3f}")
    print("  " + " ".join(f"{k}:{v:.3f}" for k, v in rep["per_seed_balanced_accuracy"].items()))
    print("by minutes since the true regime switched (share of minutes, balanced accuracy):")
    for k, v in rep["by_minutes_since_switch"].items():
        print(f"  {k:>9} min  {v['share']:.3f}  {v['balanced_accuracy']:.3f}")


def _print_synthetic(rep: dict[str, Any]) -> None:
    cfg = rep["config"]
    print(
        f"{cfg['days']} RTH sessions per seed ({cfg['warmup']} warm-up); seeds {cfg['seeds']}, "
        f"random draws {cfg['draw_seeds']}; calibration: {cfg['calibration_seeds']}"
    )
    for key, part in rep.items():
        if ":" in key:
            _print_part(key, part)
    print(f"\n(timeline time summed over runs: {rep['seconds']} s)")


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
    parser.add_argument("--generator", choices=["both", "synthetic", "msv"], default="both")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--seed-start", type=int, default=1)
    parser.add_argument("--draws", type=int, default=10, help="random parameter draws")
    parser.add_argument("--draw-seed-start", type=int, default=1001)
    parser.add_argument("--days", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=1, help="processes (seeds run in parallel)")
    parser.add_argument("--real", action="store_true", help="also check on real ES bars")
    parser.add_argument("--real-files", type=int, default=0, help="only the first N files")
    parser.add_argument(
        "--real-dir", type=Path, default=SHARED, help="folder of the ES 5-minute bar files"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.warmup >= args.days:
        sys.exit("--warmup must be smaller than --days")
    report: dict[str, Any] = {"synthetic": synthetic_report(args)}
    if args.real:
        report["real_es"] = real_report(args.jobs, args.real_files, args.real_dir)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    _print_synthetic(report["synthetic"])
    if args.real:
        _print_real(report["real_es"])


if __name__ == "__main__":
    main()
