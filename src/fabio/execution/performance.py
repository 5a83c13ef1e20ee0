"""Performance from closed trades, per strategy and per regime (the regime recorded at entry)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from fabio.execution.types import ClosedTrade
from fabio.strategies import StrategyPerformance

# Learning judges a strategy on its most recent trades: old results age out.
RECENT_TRADES = 100


def net_r(t: ClosedTrade) -> float | None:
    """The trade's R multiple after costs (R = the initial risk; fees scale it down)."""
    r = t.r_multiple
    if r is None:
        return None
    if t.gross_pnl_usd and r:
        return r * t.net_pnl_usd / t.gross_pnl_usd
    return r


def r_summary(rs: list[float]) -> dict[str, float]:
    """trades, avg_r, r_std (sample standard deviation; 0 with one trade), wins."""
    n = len(rs)
    if n == 0:
        return {"trades": 0}
    mean = sum(rs) / n
    var = sum((x - mean) ** 2 for x in rs) / (n - 1) if n > 1 else 0.0
    return {
        "trades": n,
        "avg_r": round(mean, 4),
        "r_std": round(math.sqrt(var), 4),
        "wins": sum(1 for x in rs if x > 0),
    }


def _stats(
    trades: list[ClosedTrade], today: str | None, since_ns: int | None = None
) -> StrategyPerformance:
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
    net_rs = [r for r in (net_r(t) for t in trades) if r is not None]
    # learning judges the trades since the strategy was last re-enabled, the last 100 of them
    fresh = [
        r
        for t in trades
        if since_ns is None or t.entry_ns >= since_ns
        for r in (net_r(t),)
        if r is not None
    ]
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
        r_std=r_summary(net_rs).get("r_std"),
        recent=r_summary(fresh[-RECENT_TRADES:]),
    )


def performance_by_strategy(
    trades: Iterable[ClosedTrade],
    today: str | None = None,
    shadow: Mapping[str, list[dict[str, Any]]] | None = None,
    since: Mapping[str, int] | None = None,
) -> dict[str, StrategyPerformance]:
    """Metrics per strategy, each with a `by_regime` breakdown (trades, win_rate, net_pnl, R,
    and the recent trades' R after costs: recent_trades, recent_avg_r, recent_r_std), and the
    shadow trades it took since it was disabled (`shadow`: trades, avg_r, r_std, wins, sessions).
    `since` maps a strategy to the time it was last re-enabled: its `recent` figures start there.
    """
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
            s = _stats(rt, today, (since or {}).get(name))
            recent = s.recent
            breakdown[regime] = {
                "trades": s.trades,
                "win_rate": s.win_rate or 0.0,
                "net_pnl": s.net_pnl,
                "avg_r": s.avg_r if s.avg_r is not None else 0.0,
                "recent_trades": recent.get("trades", 0),
                "recent_avg_r": recent.get("avg_r", 0.0),
                "recent_r_std": recent.get("r_std", 0.0),
            }
        update: dict[str, object] = {"by_regime": breakdown}
        if shadow and shadow.get(name):
            update["shadow"] = shadow_summary(shadow[name])
        out[name] = _stats(items, today, (since or {}).get(name)).model_copy(update=update)
    for name, recs in (shadow or {}).items():
        if name not in out and recs:
            out[name] = StrategyPerformance(shadow=shadow_summary(recs))
    return out


def shadow_summary(records: list[dict[str, Any]]) -> dict[str, float]:
    """R statistics of shadow trades and the number of sessions they span."""
    out = r_summary([float(r["r_multiple"]) for r in records])
    out["sessions"] = len({r.get("trade_date") for r in records})
    return out
