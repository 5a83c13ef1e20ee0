"""Distributions of the regime statistics over real ES sessions.

`python bench/feature_distributions.py [--json] [--files N]` runs every ES 5-minute bar file in
../shared/data/es-5m-sierra through the feature engine (RTH sessions), takes a snapshot every
30 minutes from 09:00 to 15:00 CT, and prints the percentiles of each statistic, plus how often
each of the spec's regime thresholds holds. Bar data is spread over each bar's range (FACTS.md
§3), so POC crosses and CVD slopes are at 5-minute resolution: treat them as estimates.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import time
from pathlib import Path

import numpy as np

from fabio.config import FeatureConfig
from fabio.data import MarketFeed, open_feed
from fabio.data.synthetic import SyntheticConfig, SyntheticFeed
from fabio.features.engine import FeatureEngine
from fabio.features.replay import sample_rth_snapshots
from fabio.features.snapshot import FeatureSnapshot

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "es-5m-sierra"
SAMPLE_TIMES = [time(h, m) for h in range(9, 15) for m in (0, 30)] + [time(14, 59)]
PCTS = [5, 10, 25, 50, 75, 90, 95]


def sample_file(path: Path, rows: list[dict[str, float]]) -> None:
    sample_feed(open_feed(path), rows)


def sample_feed(feed: MarketFeed, rows: list[dict[str, float]]) -> None:
    engine = FeatureEngine(feed.contract, FeatureConfig())
    for snap in sample_rth_snapshots(engine, feed, SAMPLE_TIMES):
        collect(snap, rows)


def collect(snap: FeatureSnapshot, rows: list[dict[str, float]]) -> None:
    ms, pcs = snap.market_stats, snap.poc_cross_stats
    if ms is None or pcs is None or snap.session is None or not snap.session.is_open:
        return
    elapsed = ms.time_above_value_sec + ms.time_below_value_sec + ms.time_in_value_sec
    row = {
        "minutes_into_session": snap.session.minutes_into_session,
        "session_range_ticks": ms.session_range_ticks,
        "abs_distance_to_poc_ticks": abs(ms.distance_to_poc_ticks or 0),
        "time_outside_value_share": (
            (ms.time_above_value_sec + ms.time_below_value_sec) / elapsed if elapsed else np.nan
        ),
        "abs_cvd_slope_5min": abs(ms.cvd_slope_5min) if ms.cvd_slope_5min is not None else np.nan,
        "abs_cvd_slope_15min": (
            abs(ms.cvd_slope_15min) if ms.cvd_slope_15min is not None else np.nan
        ),
        "poc_crosses_last_30min": pcs.count_last_30min,
        "session_range_percentile": (
            ms.session_range_percentile if ms.session_range_percentile is not None else np.nan
        ),
    }
    rows.append(row)


def summarise(rows: list[dict[str, float]]) -> dict[str, object]:
    table = {}
    for key in rows[0]:
        values = np.array([r[key] for r in rows], dtype=float)
        values = values[np.isfinite(values)]
        table[key] = {f"p{p}": round(float(np.percentile(values, p)), 3) for p in PCTS}
    col = {k: np.array([r[k] for r in rows], dtype=float) for k in rows[0]}
    with np.errstate(invalid="ignore"):
        thresholds = {
            "trend: session_range_percentile > 0.6": np.nanmean(
                col["session_range_percentile"] > 0.6
            ),
            "trend: |distance_to_poc| > 20 ticks": np.mean(col["abs_distance_to_poc_ticks"] > 20),
            "trend: time outside value > 50%": np.nanmean(col["time_outside_value_share"] > 0.5),
            "trend: |cvd_slope_5min| > 0.5": np.nanmean(col["abs_cvd_slope_5min"] > 0.5),
            "trend: poc crosses < 10 / 30 min": np.mean(col["poc_crosses_last_30min"] < 10),
            "chop: session_range_percentile < 0.3": np.nanmean(
                col["session_range_percentile"] < 0.3
            ),
            "chop: |distance_to_poc| < 5 ticks": np.mean(col["abs_distance_to_poc_ticks"] < 5),
            "chop: poc crosses > 25 / 30 min": np.mean(col["poc_crosses_last_30min"] > 25),
            "chop: |cvd_slope_5min| < 0.1": np.nanmean(col["abs_cvd_slope_5min"] < 0.1),
        }
    return {
        "snapshots": len(rows),
        "percentiles": table,
        "share_meeting_spec_threshold": {k: round(float(v), 3) for k, v in thresholds.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--files", type=int, default=0, help="only the first N files")
    parser.add_argument(
        "--synthetic",
        type=int,
        default=0,
        metavar="DAYS",
        help="sample DAYS sessions of the synthetic ES market (seed 7) instead of the real data",
    )
    args = parser.parse_args()
    rows: list[dict[str, float]] = []
    files: list[Path] = []
    if args.synthetic:
        sample_feed(SyntheticFeed(SyntheticConfig(symbol="ES", days=args.synthetic, seed=7)), rows)
    else:
        if not SHARED.is_dir():
            sys.exit(f"no ES bar data at {SHARED}")
        files = sorted(SHARED.glob("*.txt.gz"))
        files = files[: args.files] if args.files else files
        for path in files:
            sample_file(path, rows)
    result = summarise(rows)
    result["files"] = len(files)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    source = f"{args.synthetic} synthetic sessions" if args.synthetic else f"{len(files)} files"
    print(f"{result['snapshots']} snapshots from {source}")
    print(f"{'statistic':<28}" + "".join(f"{'p' + str(p):>9}" for p in PCTS))
    for key, pct in result["percentiles"].items():  # type: ignore[attr-defined]
        print(f"{key:<28}" + "".join(f"{v:>9.3g}" for v in pct.values()))
    print()
    for key, share in result["share_meeting_spec_threshold"].items():  # type: ignore[attr-defined]
        print(f"{share:>6.1%}  {key}")


if __name__ == "__main__":
    main()
