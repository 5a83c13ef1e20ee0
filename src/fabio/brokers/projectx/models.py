"""ProjectX wire enums and the venue records parsing produces (prices as floats, as sent).

Enums follow the gateway's swagger (PROJECTX.md §1.6); they are integers on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class PxOrderType(IntEnum):
    UNKNOWN = 0
    LIMIT = 1
    MARKET = 2
    STOP_LIMIT = 3
    STOP = 4
    TRAILING_STOP = 5
    JOIN_BID = 6
    JOIN_ASK = 7


class PxOrderSide(IntEnum):
    BID = 0  # buy
    ASK = 1  # sell


class PxOrderStatus(IntEnum):
    NONE = 0
    OPEN = 1
    FILLED = 2
    CANCELLED = 3
    EXPIRED = 4
    REJECTED = 5
    PENDING = 6
    PENDING_CANCELLATION = 7
    SUSPENDED = 8

    @property
    def is_working(self) -> bool:
        """Can still fill, now or once its parent fills (a suspended bracket child)."""
        return self in (
            PxOrderStatus.OPEN,
            PxOrderStatus.PENDING,
            PxOrderStatus.PENDING_CANCELLATION,
            PxOrderStatus.SUSPENDED,
        )


class PxPositionType(IntEnum):
    UNDEFINED = 0
    LONG = 1
    SHORT = 2


class PxDomType(IntEnum):
    UNKNOWN = 0
    ASK = 1
    BID = 2
    BEST_ASK = 3
    BEST_BID = 4
    TRADE = 5
    RESET = 6
    LOW = 7
    HIGH = 8
    NEW_BEST_BID = 9
    NEW_BEST_ASK = 10
    FILL = 11


ASK_DOM_TYPES = frozenset({PxDomType.ASK, PxDomType.BEST_ASK, PxDomType.NEW_BEST_ASK})
BID_DOM_TYPES = frozenset({PxDomType.BID, PxDomType.BEST_BID, PxDomType.NEW_BEST_BID})

# Order/place errorCode values (swagger PlaceOrderErrorCode).
PLACE_ERRORS = {
    1: "AccountNotFound",
    2: "OrderRejected",
    3: "InsufficientFunds",
    4: "AccountViolation",
    5: "OutsideTradingHours",
    6: "OrderPending",
    7: "UnknownError",
    8: "ContractNotFound",
    9: "ContractNotActive",
    10: "AccountRejected",
}
# errorCodes of Order/place meaning "we do not know whether it was accepted".
PLACE_UNCERTAIN_CODES = frozenset({6, 7})

LOGIN_ERRORS = {
    1: "user not found",
    2: "password verification failed",
    3: "invalid credentials",
    4: "app not found",
    5: "app verification failed",
    6: "invalid device",
    7: "agreements not signed",
    8: "unknown error (are the username and API key swapped?)",
    9: "no API subscription (the TopstepX API add-on is needed)",
    10: "API key authentication disabled",
}


@dataclass(frozen=True, slots=True)
class PxAccount:
    id: int
    name: str
    balance: float | None
    can_trade: bool
    simulated: bool


@dataclass(frozen=True, slots=True)
class PxContract:
    id: str
    name: str
    description: str
    tick_size: float
    tick_value: float
    active: bool
    symbol_id: str

    @property
    def product(self) -> str:
        """The product segment: `EP` in `CON.F.US.EP.Z25`."""
        parts = self.id.split(".")
        return parts[3] if len(parts) >= 5 else ""


@dataclass(frozen=True, slots=True)
class PxOrder:
    id: int
    account_id: int
    contract_id: str
    status: PxOrderStatus
    type: PxOrderType
    side: PxOrderSide | None  # None when absent: never read a missing side as a buy
    size: int
    limit_price: float | None
    stop_price: float | None
    fill_volume: int
    filled_price: float | None
    custom_tag: str | None
    created_ns: int | None
    updated_ns: int | None


@dataclass(frozen=True, slots=True)
class PxPosition:
    id: int | None
    account_id: int
    contract_id: str
    qty: int  # signed: > 0 long
    average_price: float
    created_ns: int | None


@dataclass(frozen=True, slots=True)
class PxFill:
    """One of our own executions (`GatewayUserTrade`, `Trade/search`)."""

    id: int
    account_id: int
    contract_id: str
    ts_ns: int | None
    price: float
    profit_and_loss: float | None  # None: an opening (half-turn) fill
    fees: float
    side: PxOrderSide | None
    size: int
    voided: bool
    order_id: int


@dataclass(frozen=True, slots=True)
class PxMarketTrade:
    """One print of the market hub's `GatewayTrade`; `side` +1 buy, -1 sell, 0 unknown."""

    contract_id: str
    ts_ns: int
    price: float
    size: int
    side: int


@dataclass(frozen=True, slots=True)
class PxQuote:
    """The merged top of book after a (sparse) `GatewayQuote` update."""

    contract_id: str
    ts_ns: int | None
    bid: float | None
    ask: float | None
    last: float | None


@dataclass(frozen=True, slots=True)
class PxDepthLevel:
    ts_ns: int | None
    type: PxDomType
    price: float | None
    volume: int
