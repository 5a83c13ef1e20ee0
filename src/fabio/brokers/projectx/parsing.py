"""Wire payloads to venue records: pure functions, tolerant of what the gateway really sends.

Rules (PROJECTX.md §1.3, §2.3): a hub payload may be one record or a list of them; extra fields
are ignored; quotes are sparse (a missing field keeps its last value, never becomes 0); an
absent `side` is None, never a buy; a position size with an unknown type is an error, not flat;
timestamps without an offset are UTC; .NET's 7-digit fractions are kept to the nanosecond.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from fabio.brokers.projectx.errors import ParseError
from fabio.brokers.projectx.models import (
    PxAccount,
    PxContract,
    PxDepthLevel,
    PxDomType,
    PxFill,
    PxMarketTrade,
    PxOrder,
    PxOrderSide,
    PxOrderStatus,
    PxOrderType,
    PxPosition,
    PxPositionType,
    PxQuote,
)
from fabio.timeutil import datetime_to_ns

_TS_RE = re.compile(
    r"^(?P<base>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?)(?:\.(?P<frac>\d+))?"
    r"(?P<tz>Z|z|[+-]\d{2}:?\d{2})?$"
)


def records(payload: Any) -> list[dict[str, Any]]:
    """A hub payload as a list of records: one dict, a list of dicts, or nothing usable."""
    if isinstance(payload, dict):
        return [payload]
    if isinstance(payload, list | tuple):
        return [p for p in payload if isinstance(p, dict)]
    return []


def parse_ts(value: Any) -> int | None:
    """An ISO-8601 timestamp (offset optional, UTC assumed) to UTC ns; None if unreadable."""
    if not isinstance(value, str) or not value:
        return None
    m = _TS_RE.match(value.strip())
    if not m:
        return None
    base = m["base"].replace(" ", "T")
    tz = m["tz"]
    try:
        dt = datetime.fromisoformat(base)
    except ValueError:
        return None
    if tz and tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        offset_min = sign * (int(digits[:2]) * 60 + int(digits[2:]))
        ns = datetime_to_ns(dt.replace(tzinfo=UTC)) - offset_min * 60 * 1_000_000_000
    else:
        ns = datetime_to_ns(dt.replace(tzinfo=UTC))
    frac = m["frac"]
    if frac:
        ns += int((frac + "000000000")[:9])
    return ns


def format_ts(ns: int) -> str:
    """UTC ns to the gateway's ISO form with a 7-digit fraction and +00:00."""
    secs, rem = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(secs, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{rem // 100:07d}+00:00"


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _int(value: Any) -> int | None:
    f = _num(value)
    return None if f is None or f != int(f) else int(f)


def _req_int(rec: dict[str, Any], key: str, what: str) -> int:
    v = _int(rec.get(key))
    if v is None:
        raise ParseError(f"{what}: field '{key}' is missing or not a whole number")
    return v


def _enum(cls: Any, value: Any) -> Any:
    v = _int(value)
    if v is None:
        return None
    try:
        return cls(v)
    except ValueError:
        return None


def parse_account(rec: dict[str, Any]) -> PxAccount:
    return PxAccount(
        id=_req_int(rec, "id", "account"),
        name=str(rec.get("name") or ""),
        balance=_num(rec.get("balance")),
        can_trade=bool(rec.get("canTrade", False)),
        simulated=bool(rec.get("simulated", False)),
    )


def parse_contract(rec: dict[str, Any]) -> PxContract:
    cid = rec.get("id")
    if not isinstance(cid, str) or not cid:
        raise ParseError("contract: field 'id' is missing")
    tick_size = _num(rec.get("tickSize"))
    tick_value = _num(rec.get("tickValue"))
    if not tick_size or tick_size <= 0 or tick_value is None:
        raise ParseError(f"contract {cid}: tickSize/tickValue missing")
    return PxContract(
        id=cid,
        name=str(rec.get("name") or ""),
        description=str(rec.get("description") or ""),
        tick_size=tick_size,
        tick_value=tick_value,
        active=bool(rec.get("activeContract", False)),
        symbol_id=str(rec.get("symbolId") or ""),
    )


def select_contract(contracts: Iterable[PxContract], product: str) -> PxContract | None:
    """The active contract of exactly this product (`EP` for ES): search is fuzzy."""
    matches = [c for c in contracts if c.product == product.upper()]
    active = [c for c in matches if c.active]
    pool = active or matches
    return sorted(pool, key=lambda c: c.id)[0] if pool else None


def parse_order(rec: dict[str, Any]) -> PxOrder:
    oid = _req_int(rec, "id", "order")
    status = _enum(PxOrderStatus, rec.get("status"))
    if status is None:
        raise ParseError(f"order {oid}: unknown status {rec.get('status')!r}")
    tag = rec.get("customTag")
    return PxOrder(
        id=oid,
        account_id=_req_int(rec, "accountId", f"order {oid}"),
        contract_id=str(rec.get("contractId") or ""),
        status=status,
        type=_enum(PxOrderType, rec.get("type")) or PxOrderType.UNKNOWN,
        side=_enum(PxOrderSide, rec.get("side")),
        size=_int(rec.get("size")) or 0,
        limit_price=_num(rec.get("limitPrice")),
        stop_price=_num(rec.get("stopPrice")),
        fill_volume=_int(rec.get("fillVolume", rec.get("filledSize"))) or 0,
        filled_price=_num(rec.get("filledPrice")),
        custom_tag=tag if isinstance(tag, str) and tag else None,
        created_ns=parse_ts(rec.get("creationTimestamp")),
        updated_ns=parse_ts(rec.get("updateTimestamp")),
    )


def parse_position(rec: dict[str, Any]) -> PxPosition:
    cid = str(rec.get("contractId") or "")
    size = _int(rec.get("size"))
    if size is None or size < 0:
        raise ParseError(f"position {cid}: size {rec.get('size')!r} is not a count")
    kind = _enum(PxPositionType, rec.get("type"))
    if size and kind not in (PxPositionType.LONG, PxPositionType.SHORT):
        raise ParseError(f"position {cid}: {size} contracts with unknown type {rec.get('type')!r}")
    qty = size if kind is PxPositionType.LONG else -size
    return PxPosition(
        id=_int(rec.get("id")),
        account_id=_req_int(rec, "accountId", f"position {cid}"),
        contract_id=cid,
        qty=qty,
        average_price=_num(rec.get("averagePrice")) or 0.0,
        created_ns=parse_ts(rec.get("creationTimestamp")),
    )


def parse_fill(rec: dict[str, Any]) -> PxFill:
    fid = _req_int(rec, "id", "trade")
    price = _num(rec.get("price"))
    if price is None:
        raise ParseError(f"trade {fid}: price missing")
    return PxFill(
        id=fid,
        account_id=_req_int(rec, "accountId", f"trade {fid}"),
        contract_id=str(rec.get("contractId") or ""),
        ts_ns=parse_ts(rec.get("creationTimestamp")),
        price=price,
        profit_and_loss=_num(rec.get("profitAndLoss")),
        fees=_num(rec.get("fees")) or 0.0,
        side=_enum(PxOrderSide, rec.get("side")),
        size=_int(rec.get("size")) or 0,
        voided=bool(rec.get("voided", False)),
        order_id=_req_int(rec, "orderId", f"trade {fid}"),
    )


def parse_market_trades(contract_id: str, payload: Any) -> tuple[list[PxMarketTrade], int]:
    """`GatewayTrade` records routed by the hub's contract id; also the count of skipped ones."""
    out: list[PxMarketTrade] = []
    skipped = 0
    for rec in records(payload):
        price = _num(rec.get("price"))
        size = _int(rec.get("volume"))
        ts = parse_ts(rec.get("timestamp"))
        if price is None or price <= 0 or not size or size <= 0 or ts is None:
            skipped += 1
            continue
        kind = _int(rec.get("type"))
        side = 1 if kind == 0 else (-1 if kind == 1 else 0)
        out.append(PxMarketTrade(contract_id, ts, price, size, side))
    skipped += len(payload) - len(records(payload)) if isinstance(payload, list) else 0
    return out, skipped


class QuoteBook:
    """Merges sparse `GatewayQuote` updates per contract: a missing field keeps its value."""

    def __init__(self) -> None:
        self._state: dict[str, dict[str, float | int | None]] = {}

    def merge(self, contract_id: str, payload: Any) -> list[PxQuote]:
        out: list[PxQuote] = []
        for rec in records(payload):
            st = self._state.setdefault(contract_id, {"bid": None, "ask": None, "last": None})
            for src, dst in (("bestBid", "bid"), ("bestAsk", "ask"), ("lastPrice", "last")):
                if src in rec:
                    v = _num(rec[src])
                    if v is not None and v > 0:
                        st[dst] = v
            ts = parse_ts(rec.get("timestamp")) or parse_ts(rec.get("lastUpdated"))
            if ts is not None:
                st["ts"] = ts
            out.append(self.current(contract_id))
        return out

    def current(self, contract_id: str) -> PxQuote:
        st = self._state.get(contract_id, {})
        ts = st.get("ts")
        return PxQuote(
            contract_id,
            int(ts) if ts is not None else None,
            _num(st.get("bid")),
            _num(st.get("ask")),
            _num(st.get("last")),
        )


def parse_depth(payload: Any) -> list[PxDepthLevel]:
    out: list[PxDepthLevel] = []
    for rec in records(payload):
        kind = _enum(PxDomType, rec.get("type"))
        if kind is None:
            continue
        out.append(
            PxDepthLevel(
                parse_ts(rec.get("timestamp")),
                kind,
                _num(rec.get("price")),
                _int(rec.get("volume")) or 0,
            )
        )
    return out


def hub_args(arguments: Any) -> tuple[str | None, Any]:
    """A hub invocation's arguments as (contract id or None, payload).

    Market events come as `(contractId, data)`; user events as `(data)` (some servers add the
    account id first): the payload is always the last argument.
    """
    if not isinstance(arguments, list | tuple) or not arguments:
        return None, None
    if len(arguments) >= 2:
        first = arguments[0]
        return (str(first) if isinstance(first, str | int) else None), arguments[-1]
    return None, arguments[0]
