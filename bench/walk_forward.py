"""Walk-forward evaluation of learning: `python bench/walk_forward.py [--es] [--synthetic]
[--contracts HMUZ] [--jobs 2] [--out DIR] [--json]`.

Every account is a fresh TopStep 50K account (rule brain, costs, the default slippage model).
Three arms trade the same accounts in time order:

- `frozen`: strategy state never changes (`--no-learning`);
- `expectancy`: the default learning policy, what it learned carried from account to account;
- `seed`: the spec's rules (`--learning seed`), carried the same way.

ES: the 36 quarterly contract files of ../shared/data/es-5m-sierra (2015-2023), one account per
file, reported per year. Synthetic: each of our two labelled generators (`--generators`:
`synthetic` = generator 1 on ES, `msv` = generator 2, the Markov-switching market, on NQ),
`--seeds` markets of `--accounts` accounts of `--days` RTH sessions each (a new seed per
account, the same process), learning carried across a market's accounts; each generator is
reported on its own.

Uncertainty: 95 % bootstrap confidence intervals (`--boot` resamples of trade dates, with
replacement) of each arm's net P&L and of the paired difference learning - frozen (days without
trades count 0). Results are cached in `--out` (a rerun resumes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np


def _shared() -> Path:
    """../shared/data/es-5m-sierra beside the checkout (or beside a folder above a worktree)."""
    for up in Path(__file__).resolve().parents[1:]:
        found = up.parent / "shared" / "data" / "es-5m-sierra"
        if found.is_dir():
            return found
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "es-5m-sierra"


SHARED = _shared()
ARMS = ("frozen", "expectancy", "seed")


# ---------------------------------------------------------------- running the arms


def _run(feed: Any, arm: str, log_dir: Path, carry: dict[str, Any] | None) -> dict[str, Any]:
    from fabio.backtest.runner import run_backtest
    from fabio.brain.rules import RuleBrain

    learning = arm != "frozen"
    brain = RuleBrain(learning=arm if learning else "off")
    result = run_backtest(
        [feed], brain, log_dir, learning=learning, carry=carry if learning else None
    )
    return {
        "source": result.sources[0] if result.sources else "",
        "trades": [
            {"date": t.trade_date, "pnl": t.net_pnl_usd, "strategy": t.strategy}
            for t in result.closed_trades
        ],
        "breaches": result.summary["rule_breaches"],
        "changes": len(result.strategy_changes),
        "shadow": len(result.learning_state["shadow"]) if result.learning_state else 0,
        "state": result.learning_state,
        "strategy_state": result.strategy_state,
    }


def run_chain(task: tuple[str, str, list[Any], str]) -> list[dict[str, Any]]:
    """One arm over a sequence of accounts (learning carried in order); cached per account."""
    name, arm, feeds_spec, out = task
    from fabio.data import open_feed

    results: list[dict[str, Any]] = []
    carry: dict[str, Any] | None = None
    for i, spec in enumerate(feeds_spec):
        label = Path(spec).name if isinstance(spec, str) else f"seed{spec['seed']}"

        cache = Path(out) / name / arm / f"{i:03d}-{label}.json"
        if cache.exists():
            res = json.loads(cache.read_text())
        else:
            feed = open_feed(spec) if isinstance(spec, str) else _generated(spec)
            res = _run(feed, arm, Path(out) / name / arm / f"log{i:03d}", carry)
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(res, default=str))
        carry = res.pop("state")
        results.append(res)
    return results


def _generated(spec: dict[str, Any]) -> Any:
    """The feed of one synthetic account: generator 1 or 2, from its JSON-able spec."""
    from fabio.data.synthetic import SyntheticConfig, SyntheticFeed
    from fabio.data.synthetic_msv import MsvConfig, MsvFeed, MsvParams

    spec = dict(spec)
    generator = spec.pop("generator", "synthetic")
    trades = spec.pop("rth_trades")
    start = date.fromisoformat(spec.pop("start"))
    if generator == "msv":
        return MsvFeed(MsvConfig(**spec, start=start, params=MsvParams(rth_trades=trades)))
    return SyntheticFeed(SyntheticConfig(**spec, start=start, eth=False, rth_trades=trades))


# ---------------------------------------------------------------- statistics


def _tagged(results: list[dict[str, Any]], market: str) -> list[dict[str, Any]]:
    """`results` with each trade's date prefixed by its market: a market-day is one unit of
    the bootstrap (markets of one generator share their trade dates)."""
    return [
        {**r, "trades": [{**t, "date": f"{market}:{t['date']}"} for t in r["trades"]]}
        for r in results
    ]


def daily(results: list[dict[str, Any]]) -> dict[str, float]:
    days: dict[str, float] = defaultdict(float)
    for r in results:
        for t in r["trades"]:
            days[t["date"]] += t["pnl"]
    return dict(days)


def boot_ci(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> tuple[float, float]:
    """95 % percentile interval of the sum of `values` resampled with replacement."""
    if len(values) == 0:
        return 0.0, 0.0
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    sums = values[idx].sum(axis=1)
    lo, hi = np.percentile(sums, [2.5, 97.5])
    return round(float(lo), 2), round(float(hi), 2)


def compare(
    arms: dict[str, list[dict[str, Any]]], n_boot: int, key: str | None = None
) -> dict[str, Any]:
    """Per arm: net P&L, trades, CI; per learning arm: the paired difference to frozen."""
    rng = np.random.default_rng(7)
    days_by_arm = {a: daily(r) for a, r in arms.items()}
    all_days = sorted(set().union(*[set(d) for d in days_by_arm.values()]))
    if key is not None:
        all_days = [d for d in all_days if d.startswith(key)]
    out: dict[str, Any] = {}
    for arm, days in days_by_arm.items():
        v = np.array([days.get(d, 0.0) for d in all_days])
        trades = sum(
            1 for r in arms[arm] for t in r["trades"] if key is None or t["date"].startswith(key)
        )
        out[arm] = {
            "net_pnl_usd": round(float(v.sum()), 2),
            "trades": trades,
            "ci95": boot_ci(v, n_boot, rng),
        }
    base = np.array([days_by_arm["frozen"].get(d, 0.0) for d in all_days])
    for arm in arms:
        if arm == "frozen":
            continue
        v = np.array([days_by_arm[arm].get(d, 0.0) for d in all_days]) - base
        out[arm]["minus_frozen"] = {
            "net_pnl_usd": round(float(v.sum()), 2),
            "ci95": boot_ci(v, n_boot, rng),
        }
    return out


def summary(arms: dict[str, list[dict[str, Any]]], n_boot: int, by_year: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"total": compare(arms, n_boot)}
    for arm, results in arms.items():
        per_strategy: dict[str, int] = defaultdict(int)
        for r in results:
            for t in r["trades"]:
                per_strategy[t["strategy"]] += 1
        out["total"][arm]["per_strategy_trades"] = dict(sorted(per_strategy.items()))
        out["total"][arm]["rule_breaches"] = [b for r in results for b in r["breaches"]]
        out["total"][arm]["strategy_changes"] = sum(r["changes"] for r in results)
        out["total"][arm]["shadow_trades"] = results[-1]["shadow"] if results else 0
        out["total"][arm]["final_strategy_state"] = {
            k: {"enabled": v["enabled"], "risk_fraction": v["risk_fraction"]}
            for k, v in (results[-1]["strategy_state"] if results else {}).items()
        }
    if by_year:
        years = sorted({t["date"][:4] for rs in arms.values() for r in rs for t in r["trades"]})
        out["by_year"] = {y: compare(arms, n_boot, y) for y in years}
    return out


# ---------------------------------------------------------------- main


def es_tasks(out: str, months: str) -> list[tuple[str, str, list[Any], str]]:
    from fabio.backtest.cli_support import _chronological

    files = [str(p) for p in _chronological(sorted(SHARED.glob("*.txt.gz"))) if p.name[2] in months]
    return [("es", arm, files, out) for arm in ARMS]


GENERATOR_SYMBOL = {"synthetic": "ES", "msv": "NQ"}


def synthetic_tasks(
    out: str, generators: list[str], seeds: int, accounts: int, days: int, trades: int
) -> list[tuple[str, str, list[Any], str]]:
    from fabio.data.synthetic import SyntheticConfig

    dates = SyntheticConfig(days=accounts * days).trade_dates()
    tasks: list[tuple[str, str, list[Any], str]] = []
    for generator in generators:
        for seed in range(1, seeds + 1):
            specs = [
                {
                    "generator": generator,
                    "symbol": GENERATOR_SYMBOL[generator],
                    "days": days,
                    "seed": seed * 100 + k,
                    "rth_trades": trades,
                    "start": dates[k * days].isoformat(),
                }
                for k in range(accounts)
            ]
            tasks.extend((f"{generator}-{seed}", arm, specs, out) for arm in ARMS)
    return tasks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--es", action="store_true")
    ap.add_argument(
        "--contracts",
        default="HMUZ",
        help="ES contract months to include (HMUZ: all 36 files; HU: 18, one account "
        "per half year)",
    )
    ap.add_argument("--synthetic", action="store_true")
    ap.add_argument(
        "--generators",
        default="synthetic,msv",
        help="labelled generators for the synthetic part: synthetic (1), msv (2), or both",
    )
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--accounts", type=int, default=3)
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--trades", type=int, default=50_000)
    ap.add_argument("--boot", type=int, default=5000)
    ap.add_argument("--out", default="bench-walk-forward")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not args.es and not args.synthetic:
        args.es = args.synthetic = True
    if args.es and not SHARED.is_dir():
        sys.exit(
            f"no ES data at {SHARED}: run with --synthetic, or from a checkout beside ../shared"
        )
    tasks = []
    if args.es:
        tasks += es_tasks(args.out, args.contracts)
    if args.synthetic:
        generators = [g.strip() for g in args.generators.split(",") if g.strip()]
        unknown = sorted(set(generators) - set(GENERATOR_SYMBOL))
        if unknown:
            sys.exit(f"--generators: unknown {', '.join(unknown)} (synthetic, msv)")
        tasks += synthetic_tasks(
            args.out, generators, args.seeds, args.accounts, args.days, args.trades
        )
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        done = list(pool.map(run_chain, tasks))
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(dict)
    for (name, arm, _specs, _out), results in zip(tasks, done, strict=True):
        grouped[name][arm] = results
    report: dict[str, Any] = {"wall_s": round(time.perf_counter() - t0, 1)}
    if "es" in grouped:
        report["es"] = summary(grouped.pop("es"), args.boot, by_year=True)
    for generator in GENERATOR_SYMBOL:
        markets = {n: a for n, a in sorted(grouped.items()) if n.startswith(f"{generator}-")}
        if not markets:
            continue
        merged: dict[str, list[dict[str, Any]]] = defaultdict(list)
        per_seed = {}
        for name, arms in markets.items():
            for arm, results in arms.items():
                merged[arm].extend(_tagged(results, name))
            per_seed[name] = compare(arms, args.boot)
        report[generator] = summary(dict(merged), args.boot, by_year=False)
        report[generator]["per_seed"] = per_seed
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1) if args.json else _text(report))


def _text(report: dict[str, Any]) -> str:
    lines = [f"wall {report['wall_s']} s"]
    for part in ("es", *GENERATOR_SYMBOL):
        if part not in report:
            continue
        lines.append(f"== {part}")
        for arm, s in report[part]["total"].items():
            diff = s.get("minus_frozen")
            lines.append(
                f"{arm:>10}: net {s['net_pnl_usd']:>11,.2f} CI {s['ci95']}  trades "
                f"{s['trades']}  breaches {len(s['rule_breaches'])}  changes "
                f"{s['strategy_changes']}  by setup {s['per_strategy_trades']}"
                + (f"  - frozen {diff['net_pnl_usd']:,.2f} CI {diff['ci95']}" if diff else "")
            )
        for year, arms in report[part].get("by_year", {}).items():
            lines.append(
                f"  {year}: "
                + "  ".join(
                    f"{a} {s['net_pnl_usd']:,.0f}"
                    + (
                        f" (Δ {s['minus_frozen']['net_pnl_usd']:,.0f} "
                        f"CI {s['minus_frozen']['ci95']})"
                        if "minus_frozen" in s
                        else ""
                    )
                    for a, s in arms.items()
                )
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
