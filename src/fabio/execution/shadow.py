"""Shadow trading: what a strategy learning took out would have done, had it traded.

A strategy the brain disabled keeps being tracked, and so does an enabled strategy whose own
`risk_fraction` sizes a setup to zero contracts ("sized out": the cut risk cannot buy one
contract at the setup's stop plus the slippage allowance): each setup its detector finds (within its
`max_trades_per_session`, one at a time) becomes a shadow trade, entered at the last price one
tick worse, with the candidate's stop (at least `min_stop_ticks` away) and target. It exits at
its stop one tick worse, at its target only when a print trades through it, or at the last price
when the session ends; when a batch of prints reaches both, the one reached first decides. Each
closed shadow trade is journaled (`shadow_trade`, with its R multiple and its `cause`: disabled or
sized_out) through the engine, so the ledger folds it and learning can let the strategy earn its
way back (re-enabled, or its risk restored).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from fabio.domain import TradeBatch
from fabio.events import ShadowCause, ShadowTradeEvent
from fabio.playbook.base import SetupCandidate


@dataclass(slots=True)
class ShadowPosition:
    strategy: str
    regime: str | None
    side: int
    trade_date: str
    entry_ns: int
    entry: int
    stop: int
    target: int
    cause: ShadowCause = "disabled"


class ShadowBook:
    """Open shadow positions of disabled strategies, closed against the tape."""

    def __init__(
        self,
        tick_size: float,
        emit: Callable[[ShadowTradeEvent], None],
        symbol: str,
        min_stop_ticks: int = 4,
        slippage_ticks: int = 1,
    ) -> None:
        self.tick = tick_size
        self.emit = emit
        self.symbol = symbol
        self.min_stop_ticks = min_stop_ticks
        self.slippage_ticks = slippage_ticks
        self.open: dict[str, ShadowPosition] = {}
        self.taken: dict[tuple[str, str], int] = {}  # (strategy, trade_date) -> entries

    def consider(
        self,
        candidates: Iterable[SetupCandidate],
        max_per_session: dict[str, int],
        now_ns: int,
        last_ticks: int,
        regime: str | None,
        trade_date: str,
        cause: ShadowCause = "disabled",
    ) -> None:
        """Open a shadow trade for each candidate whose strategy has none open."""
        for cand in candidates:
            name = cand.strategy
            if name in self.open or name not in max_per_session:
                continue
            if self.taken.get((name, trade_date), 0) >= max_per_session[name]:
                continue
            side = 1 if cand.side == "long" else -1
            entry = last_ticks + side * self.slippage_ticks
            stop = round(cand.stop_price / self.tick)
            stop = (
                min(stop, entry - self.min_stop_ticks)
                if side > 0
                else max(stop, entry + self.min_stop_ticks)
            )
            target = round(cand.target_price / self.tick)
            if side * (target - entry) <= 0:
                continue  # the slippage already ate the target
            self.open[name] = ShadowPosition(
                name, regime, side, trade_date, now_ns, entry, stop, target, cause
            )
            self.taken[(name, trade_date)] = self.taken.get((name, trade_date), 0) + 1

    def on_trades(self, trades: TradeBatch) -> None:
        """Close shadow positions whose stop or target the prints reached."""
        if not self.open or len(trades) == 0:
            return
        prices = trades.price
        for name in list(self.open):
            pos = self.open[name]
            after = trades.ts >= pos.entry_ns
            if pos.side > 0:
                stop_hit = after & (prices <= pos.stop)
                target_hit = after & (prices > pos.target)
            else:
                stop_hit = after & (prices >= pos.stop)
                target_hit = after & (prices < pos.target)
            i_stop = int(np.argmax(stop_hit)) if stop_hit.any() else None
            i_target = int(np.argmax(target_hit)) if target_hit.any() else None
            if i_stop is None and i_target is None:
                continue
            if i_target is None or (i_stop is not None and i_stop <= i_target):
                assert i_stop is not None
                # a stop fills at its price or the gap beyond it, one tick worse
                fill = int(prices[i_stop])
                exit_ticks = (
                    min(fill, pos.stop) if pos.side > 0 else max(fill, pos.stop)
                ) - pos.side * self.slippage_ticks
                self._close(name, exit_ticks, int(trades.ts[i_stop]), "stop")
            else:
                self._close(name, pos.target, int(trades.ts[i_target]), "target")

    def close_all(self, now_ns: int, last_ticks: int | None) -> None:
        """The session ended: close every shadow position at the last price, one tick worse."""
        for name in list(self.open):
            pos = self.open[name]
            price = last_ticks if last_ticks is not None else pos.entry
            self._close(name, price - pos.side * self.slippage_ticks, now_ns, "session_end")

    def _close(self, name: str, exit_ticks: int, now_ns: int, reason: str) -> None:
        pos = self.open.pop(name)
        risk = abs(pos.entry - pos.stop)
        r = pos.side * (exit_ticks - pos.entry) / risk
        self.emit(
            ShadowTradeEvent(
                ts_ns=now_ns,
                symbol=self.symbol,
                strategy=pos.strategy,
                regime=pos.regime,
                side=pos.side,
                trade_date=pos.trade_date,
                entry_ns=pos.entry_ns,
                entry_ticks=pos.entry,
                stop_ticks=pos.stop,
                target_ticks=pos.target,
                exit_ticks=exit_ticks,
                exit_reason=reason,
                r_multiple=round(r, 4),
                cause=pos.cause,
            )
        )
