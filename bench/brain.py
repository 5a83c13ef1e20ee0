"""Brain benchmark: `python bench/brain.py [--sessions N] [--json]`.

Replays synthetic RTH sessions second by second through the feature engine, the setup
detectors, the cadence (30 s / 15 s / 5 s by the importance zones the brain itself sets, at once
on a newly triggered setup with a 2 s floor) and the rule brain, and measures:
- decisions per RTH session, by what triggered them;
- the dynamic context's size in tokens (o200k), next to the static system prompt's;
- the rule brain's decision latency.
No execution exists yet, so "position closed" events do not occur in this replay.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter

import numpy as np

from fabio.brain.cadence import Cadence
from fabio.brain.context import build_context, count_tokens
from fabio.brain.prompt import system_prompt, user_prompt
from fabio.brain.rules import RuleBrain
from fabio.brain.schema import ImportanceZone
from fabio.brain.thresholds import LearningRules, RegimeThresholds
from fabio.data.synthetic import SyntheticConfig, iter_sessions
from fabio.features.engine import FeatureEngine
from fabio.features.zones import Band
from fabio.instruments import parse_symbol
from fabio.playbook.setups import detect_setups
from fabio.sessions import SessionKind
from fabio.strategies import initialize_default_strategies

NS = 1_000_000_000


def run(sessions: int, warmup: int, seed: int) -> dict[str, object]:
    cfg = SyntheticConfig(symbol="ES", days=warmup + sessions, seed=seed, eth=False)
    contract = parse_symbol("ESH4", 2024)
    tick = contract.spec.tick_size
    engine = FeatureEngine(contract)
    state = initialize_default_strategies()
    brain = RuleBrain(RegimeThresholds(), LearningRules())
    loop = asyncio.new_event_loop()
    per_session: list[int] = []
    triggers: Counter[str] = Counter()
    tokens: list[int] = []
    latency_us: list[float] = []
    for i, s in enumerate(iter_sessions(cfg)):
        trades = s.trades
        if i < warmup:
            engine.update(trades)
            continue
        open_ns, close_ns = s.session.bounds(SessionKind.RTH)
        cadence = Cadence()
        zones: list[ImportanceZone] = []
        last_setups: set[str] = set()
        count = 0
        edges = np.searchsorted(trades.ts, np.arange(open_ns + NS, close_ns + 1, NS))
        start = 0
        for k, stop in enumerate(edges.tolist()):
            engine.update(trades.slice(start, stop))
            start = stop
            now = open_ns + (k + 1) * NS
            snap = engine.snapshot(now)
            if snap.price is None or snap.market_stats is None:
                continue
            setups = detect_setups(snap, state, tick)
            names = {c.strategy for c in setups}
            event = bool(names - last_setups)
            last_setups = names
            band = cadence.band(snap.price, tick, zones)
            if not cadence.due(now, band, event):
                continue
            trigger = "setup" if event else f"interval_{band.value}"
            ctx = build_context(
                snap, tick, state, triggered_setups=setups, trigger=trigger, importance_zones=zones
            )
            t0 = time.perf_counter()
            reply = loop.run_until_complete(brain.decide(ctx))
            latency_us.append((time.perf_counter() - t0) * 1e6)
            zones = reply.decision.importance_zones or zones
            cadence.mark(now)
            count += 1
            triggers[trigger if event or band is not Band.OUTSIDE else "interval_outside"] += 1
            if count % 10 == 1:
                tokens.append(count_tokens(user_prompt(ctx)))
        per_session.append(count)
    loop.close()
    sys_tokens = count_tokens(system_prompt(RegimeThresholds(), LearningRules(), state))
    tok = np.array(tokens)
    lat = np.array(latency_us)
    return {
        "sessions": sessions,
        "decisions_per_rth_session_mean": float(np.mean(per_session)),
        "decisions_per_rth_session_min": int(np.min(per_session)),
        "decisions_per_rth_session_max": int(np.max(per_session)),
        "decisions_by_trigger": dict(triggers),
        "system_prompt_tokens": sys_tokens,
        "dynamic_context_tokens_p50": float(np.percentile(tok, 50)),
        "dynamic_context_tokens_p95": float(np.percentile(tok, 95)),
        "dynamic_context_tokens_max": int(tok.max()),
        "rule_brain_latency_us_p50": float(np.percentile(lat, 50)),
        "rule_brain_latency_us_p99": float(np.percentile(lat, 99)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=5, help="sessions of history first")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.sessions, args.warmup, args.seed)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for key, value in result.items():
            print(f"{key:>34}: {value}")


if __name__ == "__main__":
    main()
