"""Graceful stop on SIGTERM (PM2, systemd), shared by paper and live trading.

SIGTERM stops new entries at once and leaves open positions with their bracket orders (at the
venue in live trading): nothing is cancelled and nothing is flattened, a restart takes them
over. Each agent journals a `shutdown` record naming the trade it leaves open, and the process
prints its summary and exits 0. (Ctrl-C still ends a paper session flat.)
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from fabio.events import ShutdownEvent

if TYPE_CHECKING:
    from fabio.agent import Agent


@contextlib.contextmanager
def on_sigterm(callback: Callable[[], None]) -> Iterator[None]:
    """Call `callback` (in the event loop) on SIGTERM while inside; the default after.

    Where the loop cannot install a handler (not the main thread, Windows), SIGTERM keeps its
    default: the process ends at once, as after `kill -9`, and loses nothing journaled.
    """
    loop = asyncio.get_running_loop()
    installed = False
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGTERM, callback)
        installed = True
    try:
        yield
    finally:
        if installed:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGTERM)


def journal_shutdown(agent: Agent, reason: str = "SIGTERM", ts_ns: int = 0) -> None:
    """Journal that the agent stopped without flattening: its open trade keeps its orders.

    Stamped with the agent's market time, or `ts_ns` when later (the venue's last event)."""
    trade = agent.execution.position()
    agent.execution.emit(
        ShutdownEvent(
            ts_ns=max(agent.status.market_ts_ns or 0, ts_ns),
            symbol=agent.symbol,
            reason=reason,
            open_trade=None if trade is None or trade.qty == 0 else trade.trade_id,
        )
    )
