"""Journal size of a nine-year rule-brain bar backtest: `python bench/journal_size.py [--json]`.

Runs what `fabio backtest ../shared/data/es-5m-sierra/*.txt.gz` runs (one continuous account,
the rule brain, every 2015-2023 ES 5-minute bar file in expiry order) and reports the size of
each journal it writes, the records in `llm_exchanges.jsonl` by kind, and how many lines the
spec's debug greps find (`grep poc_cross_stats` ...). Goal: all journals together <= 50 MB.
`--files N` runs only the first N contract files (a quicker look).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from fabio.backtest.cli_support import _chronological
from fabio.backtest.runner import run_backtest
from fabio.brain.rules import RuleBrain
from fabio.data import open_feed

# ../shared/data beside the repository (or beside a folder holding it, e.g. a worktree).
SHARED = next(
    (
        p / "shared" / "data" / "es-5m-sierra"
        for p in Path(__file__).resolve().parents[1:4]
        if (p / "shared" / "data" / "es-5m-sierra").is_dir()
    ),
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "es-5m-sierra",
)
SPEC_GREPS = (
    "poc_cross_stats",
    "strategy_tweaks",
    "strategy_performance",
    "market_assessment",
    "strategy_updates",
)
GOAL_MB = 50.0


def measure(data: Path, files: int | None) -> dict[str, object]:
    paths = _chronological(sorted(data.glob("*.txt*")))[:files]
    with tempfile.TemporaryDirectory() as d:
        log_dir = Path(d) / "bt"
        t0 = time.perf_counter()
        result = run_backtest([open_feed(p) for p in paths], RuleBrain(), log_dir)
        elapsed = time.perf_counter() - t0
        sizes = {p.name: p.stat().st_size for p in sorted(log_dir.iterdir()) if p.is_file()}
        kinds: Counter[str] = Counter()
        greps = dict.fromkeys(SPEC_GREPS, 0)
        with (log_dir / "llm_exchanges.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                kinds[str(json.loads(line).get("type"))] += 1
                for key in SPEC_GREPS:
                    greps[key] += key in line
    total = sum(sizes.values())
    return {
        "files": len(paths),
        "sessions_traded": result.summary["sessions_traded"],
        "decisions": result.summary["decisions"],
        "trades": result.summary["trades"],
        "backtest_s": round(elapsed, 1),
        "journal_mb": {k: round(v / 1e6, 2) for k, v in sizes.items()},
        "journals_total_mb": round(total / 1e6, 2),
        "exchange_records": dict(kinds),
        "spec_grep_lines": greps,
        "goal_total_mb_le_50": total / 1e6 <= GOAL_MB,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--files", type=int, default=None)
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"no bar data at {args.data}")
    result = measure(args.data, args.files)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for k, v in result.items():
            print(f"{k:>20}: {v}")


if __name__ == "__main__":
    main()
