"""Performance from closed trades, per strategy and per regime (the regime recorded at entry)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from fabio.execution.types import ClosedTrade
from fabio.strategies import StrategyPerformance


def _stats(trades: list[ClosedTrade], today: str | None) -> StrategyPerformance:
    n = len(trades)
    if n == 0:
        return StrategyPerformance()
    pnls = [t.net_pnl_usd for t in trades]
    wins = sum(1 for p in pnls if p > 0)
    gross_win = sum(p for p in pnls if p > 0)
    gross_loss = -sum(p for p in pnls if p < 0)
    rs = [t.r_multiple for t in trades if t.r_multiple is not None]
    equity = peak = drawdown = 0.0
    for p in pnls:
        equity += p
        peak = max(peak, equity)
        drawdown = max(drawdown, peak - equity)
    sessions = {t.trade_date for t in trades}
    return StrategyPerformance(
        trades=n,
        wins=wins,
        win_rate=round(wins / n, 4),
        net_pnl=round(sum(pnls), 2),
        avg_pnl=round(sum(pnls) / n, 2),
        net_r=round(sum(rs), 3) if rs else None,
        avg_r=round(sum(rs) / len(rs), 3) if rs else None,
        profit_factor=round(gross_win / gross_loss, 3) if gross_loss > 0 else None,
        max_drawdown=round(drawdown, 2),
        avg_time_in_trade_sec=round(sum((t.exit_ns - t.entry_ns) / 1e9 for t in trades) / n, 1),
        trades_per_session=round(n / len(sessions), 2),
        trades_this_session=sum(1 for t in trades if t.trade_date == today),
    )


def performance_by_strategy(
    trades: Iterable[ClosedTrade], today: str | None = None
) -> dict[str, StrategyPerformance]:
    """Metrics per strategy, each with a `by_regime` breakdown (trades, win_rate, net_pnl, R)."""
    by_strategy: dict[str, list[ClosedTrade]] = defaultdict(list)
    for t in trades:
        by_strategy[t.strategy].append(t)
    out: dict[str, StrategyPerformance] = {}
    for name, items in sorted(by_strategy.items()):
        regimes: dict[str, list[ClosedTrade]] = defaultdict(list)
        for t in items:
            regimes[t.regime or "unknown"].append(t)
        breakdown = {}
        for regime, rt in sorted(regimes.items()):
            s = _stats(rt, today)
            breakdown[regime] = {
                "trades": s.trades,
                "win_rate": s.win_rate or 0.0,
                "net_pnl": s.net_pnl,
                "avg_r": s.avg_r if s.avg_r is not None else 0.0,
            }
        out[name] = _stats(items, today).model_copy(update={"by_regime": breakdown})
    return out
