"""The unexplained-state rule: what the venue holds that our books cannot account for.

Venue-neutral, over the `Broker` port alone (`positions()`, `open_orders()`), so the simulated
broker and a live venue (ProjectX) are judged by the same rule. Two problems, each a one-line
string that starts with the symbol (or the venue's contract id) and a colon:

- "<symbol>: the venue holds +N, the journal expects +M" — the venue's position of a contract
  differs from the journal's (also a venue position on a contract no broker of ours trades:
  the journal expects nothing there);
- "<symbol>: +N contracts without a working stop" — the position agrees, but the working stops
  on the closing side cover fewer contracts than it holds.

What to do about a problem (kill switch, flatten) is the caller's policy (`fabio.live`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from fabio.orders import Order, OrderRole
from fabio.ports import Broker


def position_problem(
    symbol: str, venue_qty: int, expected_qty: int, working: Iterable[Order], *, stops: bool = True
) -> str | None:
    """The problem with one contract's position, or None when the journal explains it.

    `venue_qty` and `expected_qty` are signed (> 0 long); `working` are the contract's open
    orders. `stops=False` skips the stop check (a shadow run places no stop)."""
    if venue_qty != expected_qty:
        return f"{symbol}: the venue holds {venue_qty:+d}, the journal expects {expected_qty:+d}"
    if venue_qty == 0 or not stops:
        return None
    closing = -1 if venue_qty > 0 else 1
    covered = sum(
        o.qty - o.filled_qty for o in working if o.role is OrderRole.STOP and o.side == closing
    )
    if covered < abs(venue_qty):
        return f"{symbol}: {venue_qty:+d} contracts without a working stop"
    return None


def unexplained(
    brokers: Iterable[Broker],
    expected: Callable[[str], int],
    *,
    untraded: Mapping[str, int] | None = None,
    stops: bool = True,
) -> list[str]:
    """Every problem of the account, sorted by symbol; empty when all is well.

    `brokers`: one per contract we trade; `expected(symbol)` is the journal's signed position.
    `untraded`: signed positions the venue reports on contracts none of `brokers` trades, by
    contract id (the journal expects none). `stops=False`: no stop check (shadow)."""
    found: dict[str, str] = {}
    for broker in brokers:
        venue_qty = sum(p.qty for p in broker.positions())
        problem = position_problem(
            broker.symbol, venue_qty, expected(broker.symbol), broker.open_orders(), stops=stops
        )
        if problem is not None:
            found[broker.symbol] = problem
    for contract_id, qty in (untraded or {}).items():
        problem = position_problem(contract_id, qty, 0, (), stops=False)
        if problem is not None:
            found[contract_id] = problem
    return [found[name] for name in sorted(found)]
