"""Orders, fills, positions, closed trades: re-exported from the domain layer (`fabio.orders`)."""

from fabio.orders import (
    AccountState,
    BracketRequest,
    ClosedTrade,
    Fill,
    Order,
    OrderRole,
    OrderStatus,
    OrderType,
    Position,
)

__all__ = [
    "AccountState",
    "BracketRequest",
    "ClosedTrade",
    "Fill",
    "Order",
    "OrderRole",
    "OrderStatus",
    "OrderType",
    "Position",
]
