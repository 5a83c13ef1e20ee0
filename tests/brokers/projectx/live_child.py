"""`fabio run --mode live` as a process of its own, with a brain that enters long at once.

The CLI, the live session, the venue clients and the execution engine are the real ones; only
the brain is scripted (it is not what these tests are about), so the run is in a position within
seconds instead of whenever a setup appears.

Usage: python live_child.py URL [extra `fabio run` options...] (credentials and LOG_DIR from the
environment, as for the real command). With DISK_FULL_TEST=1 a file size limit set on the process
(`prlimit`) makes a write fail with EFBIG, as on a full disk, instead of killing it (SIGXFSZ), and
compiled kernels are not cached (the limit would stop numba first).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import fabio.live
from fabio.brain.base import BrainReply
from fabio.brain.context import DecisionContext
from fabio.decision import Decision
from fabio.strategies import TREND_PULLBACK

TARGET_TICKS = 48


class EnterLongOnce:
    """Enters long on its first decision, then stands aside."""

    name = "enter-once"

    def __init__(self) -> None:
        self.calls = 0

    async def decide(self, context: DecisionContext) -> BrainReply:
        self.calls += 1
        trades: list[dict[str, Any]] = []
        if self.calls == 1:
            tick = context.tick_size
            trades.append(
                {
                    "action": "enter",
                    "side": "long",
                    "entry_condition_id": TREND_PULLBACK,
                    # No stop price: the engine puts the strategy's stop (16 ticks) from the
                    # price it enters at, so a tick of drift before the entry is not a refusal.
                    "target_price": context.price + TARGET_TICKS * tick,
                    "reason": "scripted entry (shutdown test)",
                }
            )
        decision = Decision.model_validate(
            {
                "market_assessment": {
                    "regime": "trend",
                    "market_state": "out_of_balance_up",
                    "location": "above_value",
                    "poc_side": "above_poc",
                    "confidence": 0.6,
                    "reasoning": "scripted",
                },
                "trade_decisions": trades,
            }
        )
        return BrainReply(decision=decision, brain=self.name, requested_brain=self.name)


def _patient(from_settings: Any) -> Any:
    """AgentOptions whose decisions are never dropped as stale. The simulated market runs at 60x:
    live staleness (10 s of market time) is then 0.17 s of wall time, which a loaded machine can
    miss, and this brain enters only once; these tests are about stopping, not staleness."""

    def build(settings: Any, mode: Any, **overrides: Any) -> Any:
        overrides.setdefault("stale_sec", 3600.0)
        return from_settings(settings, mode, **overrides)

    return build


def main() -> None:
    if os.environ.get("DISK_FULL_TEST") == "1":
        import numba.core.caching

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        numba.core.caching.Cache.save_overload = lambda self, sig, data: None  # type: ignore[method-assign]
    fabio.live.make_brain = lambda kind, settings, *a, **kw: EnterLongOnce()  # type: ignore[assignment]
    fabio.live.AgentOptions.from_settings = _patient(  # type: ignore[method-assign]
        fabio.live.AgentOptions.from_settings
    )
    from fabio.cli import main as cli_main

    sys.argv = ["fabio", "run", "--mode", "live", "--gateway", sys.argv[1], *sys.argv[2:]]
    cli_main()


if __name__ == "__main__":
    main()
