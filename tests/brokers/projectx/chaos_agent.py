"""`fabio run --mode live` whose brain enters often (the chaos harness's agent, killed -9).

Usage: python chaos_agent.py SEED [fabio run options…]

Everything is the real live run (`fabio.cli.main`: settings from the environment, login, the
journal, restart recovery, reconciliation, the execution engine, the broker) except the brain's
choice of trades: when flat, it enters long or short at market on a seeded coin with a bracket a
few ticks wide, so that positions, fills and exits happen every few market minutes. It never
exits by itself: every exit is the venue's stop or target, or the agent's own policy.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from typing import Any

from fabio import live
from fabio.brain.base import BrainReply
from fabio.brain.context import DecisionContext
from fabio.brain.rules import RuleBrain
from fabio.brain.schema import check_decision
from fabio.decision import StrategyUpdates, TradeDecision
from fabio.strategies import ABSORPTION_FADE, MEAN_REVERSION, TREND_PULLBACK

ENTER_CHANCE = 0.5  # per decision while flat (one every 30 s of market time)
STRATEGIES = (MEAN_REVERSION, TREND_PULLBACK, ABSORPTION_FADE)
# Written to STRATEGIES_FILE by the harness: enough trades a session, one contract a trade.
STRATEGY_PARAMS = {
    name: {"max_trades_per_session": 20, "risk_fraction": 0.004, "min_rr": 1.0, "stop_ticks": 20}
    for name in STRATEGIES
}


class ChaosBrain:
    """The rule brain's reading of the market, with the trades chosen by a seeded coin."""

    name = "chaos"

    def __init__(self, seed: int, bracket_ticks: tuple[int, int] = (8, 12)) -> None:
        self.rng = random.Random(seed)
        self.rules = RuleBrain()
        self.bracket_ticks = bracket_ticks  # stop and target drawn in it (ticks)

    async def decide(self, context: DecisionContext) -> BrainReply:
        decision = self.rules.decide_now(context)
        trades: list[TradeDecision] = []
        if context.position.side == "flat" and self.rng.random() < ENTER_CHANCE:
            side = self.rng.choice(("long", "short"))
            sign = 1 if side == "long" else -1
            stop = self.rng.randint(*self.bracket_ticks) * context.tick_size
            target = self.rng.randint(*self.bracket_ticks) * context.tick_size
            trades.append(
                TradeDecision(
                    action="enter",
                    side=side,
                    entry_condition_id=self.rng.choice(STRATEGIES),
                    stop_price=context.price - sign * stop,
                    target_price=context.price + sign * max(target, stop),
                    reason="chaos harness: a seeded coin",
                )
            )
        decision = decision.model_copy(
            update={
                "trade_decisions": trades,
                "strategy_updates": StrategyUpdates(active_strategies=list(STRATEGIES)),
                "notes_to_future_self": [],
            }
        )
        checked, rejections = check_decision(decision, context.check_context())
        return BrainReply(
            decision=checked, brain=self.name, requested_brain=self.name, rejections=rejections
        )


def main(argv: list[str]) -> None:
    seed = int(argv[0])
    low, high = (int(x) for x in os.environ.get("CHAOS_BRACKET_TICKS", "8,12").split(","))

    def make_brain(kind: str, settings: Any, learning: str = "expectancy") -> ChaosBrain:
        return ChaosBrain(seed, (low, high))

    live.make_brain = make_brain  # type: ignore[assignment]
    from fabio.cli import main as fabio_main

    sys.argv = ["fabio", "run", "--mode", "live", *argv[1:]]
    fabio_main()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    main(sys.argv[1:])
