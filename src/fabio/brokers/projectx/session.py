"""One ProjectX account session: login, account and contracts, both hubs, reconciliation.

`ProjectXSession.connect(symbols)` logs in, resolves the account (id or name) and each symbol's
contract (exact product match, the configured data tier), starts the user hub (orders,
positions, trades, account) and the market hub (quotes and trades of every contract), and loads
the venue's working orders and positions. It then hands out one `ProjectXBroker` and one
`LiveFeed` per symbol; every user-hub event is routed to the broker of its contract, every
market-hub event to the feed named by the hub's contract-id argument.

Reconciliation (`reconcile()`, at start, after every user-hub reconnect, and every
`reconcile_every_sec`): fills and order states we missed are applied through the brokers (so
the engine journals them), and the venue's positions are compared with what each broker knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from fabio.brokers.projectx.broker import ProjectXBroker
from fabio.brokers.projectx.config import ProjectXConfig
from fabio.brokers.projectx.errors import GatewayError
from fabio.brokers.projectx.feed import LiveFeed
from fabio.brokers.projectx.http import ProjectXHttp
from fabio.brokers.projectx.hub import HubSupervisor, quiet_cancelled_sockets
from fabio.brokers.projectx.models import PxAccount, PxContract, PxFill, PxOrder, PxPosition
from fabio.brokers.projectx.parsing import (
    QuoteBook,
    hub_args,
    parse_account,
    parse_fill,
    parse_market_trades,
    parse_order,
    parse_position,
    records,
    select_contract,
)
from fabio.brokers.projectx.tape import TapeRecorder
from fabio.errors import FabioError
from fabio.instruments import Contract, parse_symbol

log = logging.getLogger("fabio.projectx")

StateListener = Callable[[str, str, str], None]  # (component, status, detail)


class ProjectXSession:
    """Everything account-level; the per-symbol brokers and feeds hang off it."""

    def __init__(
        self,
        config: ProjectXConfig,
        *,
        shadow: bool = False,
        tape: TapeRecorder | None = None,
        reconcile_every_sec: float = 30.0,
        on_state: StateListener | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        http: ProjectXHttp | None = None,
    ) -> None:
        self.config = config
        self.shadow = shadow
        self.tape = tape
        self.reconcile_every = reconcile_every_sec
        self._on_state = on_state
        self._clock = clock_ns
        self.http = http or ProjectXHttp(config, on_state=self._state("gateway login"))
        self.run_id = secrets.token_hex(3)
        self.brackets = "auto"  # "own" once the account refuses brackets
        self.account: PxAccount = PxAccount(0, "", None, False, False)
        self.contracts: dict[str, PxContract] = {}  # root -> contract
        self.brokers: dict[str, ProjectXBroker] = {}  # contract id -> broker
        self.feeds: dict[str, LiveFeed] = {}  # contract id -> feed
        self.venue_positions: dict[str, PxPosition] = {}
        self.orders_by_tag: dict[str, PxOrder] = {}
        self.venue_orders: dict[int, PxOrder] = {}
        self.venue_fills: dict[int, PxFill] = {}
        self.journal_orders: dict[str, list[dict[str, Any]]] = {}  # symbol -> left open
        self.journal_fills: dict[str, list[str]] = {}  # symbol -> venue fill ids journaled
        self.closing: set[str] = set()  # contracts we closed with Position/closeContract
        self.quotes = QuoteBook()
        self.problems: list[str] = []
        self.protection_alerts: list[str] = []
        self.user_hub: HubSupervisor | None = None
        self.market_hub: HubSupervisor | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reconcile_wanted = asyncio.Event()
        self._wake = asyncio.Event()
        self.started_at = datetime.now(UTC)
        self.last_market_ns = 0
        self.reconciles = 0

    # ------------------------------------------------------------------ plumbing
    def clock_ns(self) -> int:
        """Market time when the feed runs (exchange timestamps), else the wall clock."""
        return self.last_market_ns or self._clock()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.problems.append(f"background task failed: {type(exc).__name__}: {exc}")
            log.error(self.problems[-1])

    def notify(self) -> None:
        self._wake.set()

    async def wait_activity(self, timeout: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    def request_reconcile(self) -> None:
        self._reconcile_wanted.set()

    def protection_failed(self, symbol: str, why: str) -> None:
        self.protection_alerts.append(f"{symbol}: a protective order was refused ({why})")

    def _state(self, component: str) -> Callable[[str, str], None]:
        def report(status: str, detail: str) -> None:
            if component == "user hub" and status == "connected":
                self.request_reconcile()
            if self._on_state is not None:
                self._on_state(component, status, detail)

        return report

    def last_price_ticks(self, contract_id: str) -> int | None:
        feed = self.feeds.get(contract_id)
        return None if feed is None else feed.last_price

    # ------------------------------------------------------------------ connect
    async def connect(self, symbols: list[str]) -> None:
        """Login, account, contracts, hubs, first reconciliation. One-line errors on failure."""
        quiet_cancelled_sockets(asyncio.get_running_loop())
        logging.getLogger("pysignalr").setLevel(logging.ERROR)  # our supervisor reports
        await self.http.login()
        self.account = await self._find_account()
        if not self.account.can_trade and not self.shadow:
            raise FabioError(f"account {self.account.name} cannot trade now (canTrade=false)")
        for symbol in symbols:
            contract = parse_symbol(symbol)
            root = contract.spec.root
            found = await self.http.search_contracts(root)
            px = select_contract(found, contract.spec.projectx_root)
            if px is None:
                tier = "live" if self.config.live_data else "non-live"
                raise FabioError(
                    f"no {root} contract (product {contract.spec.projectx_root}) in the "
                    f"gateway's {tier} data tier; found {', '.join(c.id for c in found) or 'none'}"
                )
            self.contracts[root] = px
            self.feeds[px.id] = LiveFeed(contract, px.id, px.tick_size)
        self._start_hubs()
        await self.reconcile()
        self.spawn(self._reconciler())

    async def _find_account(self) -> PxAccount:
        accounts = await self.http.accounts(only_active=True)
        wanted = self.config.account.strip()
        for acct in accounts:
            if str(acct.id) == wanted or acct.name.lower() == wanted.lower():
                return acct
        names = ", ".join(f"{a.name} ({a.id})" for a in accounts) or "none"
        raise FabioError(f"account '{wanted}' not found among the active accounts: {names}")

    def broker_for(self, contract: Contract, first_number: int) -> ProjectXBroker:
        px = self.contracts.get(contract.spec.root)
        if px is None:
            raise FabioError(f"{contract.symbol} is not among the connected symbols")
        broker = self.brokers.get(px.id)
        if broker is None:
            broker = ProjectXBroker(self, contract.symbol, px.id, px.tick_size, first_number)
            broker.seed(
                self.journal_orders.get(contract.symbol, []),
                self.journal_fills.get(contract.symbol, []),
            )
            self.brokers[px.id] = broker
            self._load_known(broker)
            broker.settle_seeded()
        return broker

    def feed_for(self, contract: Contract) -> LiveFeed:
        px = self.contracts.get(contract.spec.root)
        if px is None:
            raise FabioError(f"{contract.symbol} is not among the connected symbols")
        return self.feeds[px.id]

    def _start_hubs(self) -> None:
        c = self.config
        user = HubSupervisor(
            "user",
            c.user_hub_url,
            self.http.token,
            self.http.renew,
            stale_after_sec=None,
            connect_timeout_sec=c.hub_connect_timeout_sec,
            backoff_initial_sec=c.hub_backoff_initial_sec,
            backoff_max_sec=c.hub_backoff_max_sec,
            max_frame_bytes=c.hub_max_frame_bytes,
            on_state=self._state("user hub"),
        )
        user.on("GatewayUserOrder", self._on_user_order)
        user.on("GatewayUserTrade", self._on_user_trade)
        user.on("GatewayUserPosition", self._on_user_position)
        user.on("GatewayUserAccount", self._on_user_account)
        user.subscribe("SubscribeAccounts")
        for method in ("SubscribeOrders", "SubscribePositions", "SubscribeTrades"):
            user.subscribe(method, self.account.id)
        market = HubSupervisor(
            "market",
            c.market_hub_url,
            self.http.token,
            self.http.renew,
            stale_after_sec=c.hub_stale_after_sec,
            connect_timeout_sec=c.hub_connect_timeout_sec,
            backoff_initial_sec=c.hub_backoff_initial_sec,
            backoff_max_sec=c.hub_backoff_max_sec,
            max_frame_bytes=c.hub_max_frame_bytes,
            on_state=self._state("market hub"),
        )
        market.on("GatewayTrade", self._on_market_trade)
        market.on("GatewayQuote", self._on_market_quote)
        market.on("GatewayDepth", self._on_market_depth)
        for px in self.contracts.values():
            market.subscribe("SubscribeContractQuotes", px.id)
            market.subscribe("SubscribeContractTrades", px.id)
        self.user_hub, self.market_hub = user, market
        user.start()
        market.start()

    async def close(self) -> None:
        for hub in (self.market_hub, self.user_hub):
            if hub is not None:
                await hub.stop()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for feed in self.feeds.values():
            feed.close()
        if self.tape is not None:
            self.tape.close()
        await self.http.aclose()

    async def wait_connected(self, timeout: float) -> bool:
        hubs = [h for h in (self.user_hub, self.market_hub) if h is not None]
        try:
            await asyncio.wait_for(asyncio.gather(*(h.connected.wait() for h in hubs)), timeout)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------------ hub handlers
    async def _on_user_order(self, args: list[Any]) -> None:
        _, payload = hub_args(args)
        for rec in records(payload):
            try:
                order = parse_order(rec)
            except FabioError as exc:
                self.problems.append(f"order update skipped: {exc}")
                continue
            self._route_order(order)

    def _route_order(self, order: PxOrder) -> None:
        if order.account_id != self.account.id:
            return
        if order.custom_tag:
            self.orders_by_tag[order.custom_tag] = order
        self.venue_orders[order.id] = order
        broker = self.brokers.get(order.contract_id)
        if broker is not None:
            broker.on_order(order)

    async def _on_user_trade(self, args: list[Any]) -> None:
        _, payload = hub_args(args)
        for rec in records(payload):
            try:
                fill = parse_fill(rec)
            except FabioError as exc:
                self.problems.append(f"fill skipped: {exc}")
                continue
            if fill.account_id != self.account.id:
                continue
            self.venue_fills[fill.id] = fill
            broker = self.brokers.get(fill.contract_id)
            if broker is not None:
                broker.on_fill(fill)

    async def _on_user_position(self, args: list[Any]) -> None:
        _, payload = hub_args(args)
        for rec in records(payload):
            try:
                pos = parse_position(rec)
            except FabioError as exc:  # unknown side with a size: reconcile by REST
                self.problems.append(f"position update unreadable: {exc}")
                self.request_reconcile()
                continue
            if pos.account_id != self.account.id:
                continue
            self.venue_positions[pos.contract_id] = pos
            broker = self.brokers.get(pos.contract_id)
            if broker is not None:
                broker.on_position(pos)

    async def _on_user_account(self, args: list[Any]) -> None:
        _, payload = hub_args(args)
        for rec in records(payload):
            with contextlib.suppress(FabioError):
                acct = parse_account(rec)
                if acct.id == self.account.id:
                    self.account = acct

    async def _on_market_trade(self, args: list[Any]) -> None:
        received = time.perf_counter_ns()
        contract_id, payload = hub_args(args)
        feed = self.feeds.get(contract_id or "")
        if feed is None:
            return
        trades, skipped = parse_market_trades(feed.contract_id, payload)
        if skipped:
            feed.report.skip("unreadable GatewayTrade record", skipped)
        batch = feed.on_trades(trades, received)
        if len(batch):
            self.last_market_ns = max(self.last_market_ns, int(batch.ts[-1]))
            if self.tape is not None:
                tick = feed.tick_size
                bid = feed.bid * tick if feed.bid is not None else None
                ask = feed.ask * tick if feed.ask is not None else None
                for ts, p, s, side in zip(
                    batch.ts.tolist(),
                    batch.price.tolist(),
                    batch.size.tolist(),
                    batch.side.tolist(),
                    strict=True,
                ):
                    self.tape.trade(
                        feed.contract.spec.root,
                        feed.contract.symbol,
                        ts,
                        p * tick,
                        s,
                        side,
                        bid,
                        ask,
                    )
        self.notify()

    async def _on_market_quote(self, args: list[Any]) -> None:
        contract_id, payload = hub_args(args)
        feed = self.feeds.get(contract_id or "")
        if feed is None:
            return
        for quote in self.quotes.merge(feed.contract_id, payload):
            top = feed.on_quote(quote)
            if top is not None and self.tape is not None:
                ts, bid, ask = top
                self.tape.quote(
                    feed.contract.spec.root, ts, bid * feed.tick_size, ask * feed.tick_size
                )

    async def _on_market_depth(self, args: list[Any]) -> None:
        return None  # subscribed only when asked; depth is not used by the features yet

    # ------------------------------------------------------------------ reconciliation
    def _load_known(self, broker: ProjectXBroker) -> None:
        """A new broker learns what the venue has on its contract: orders (in the order the
        venue created them, whatever their state: a leg that filled while no process ran is
        matched too), then fills. A left-open order of the journal is first matched to the
        last venue order its client id tagged (a stop re-placed as `ES-2@run/r1` after the venue
        cancelled the bracket's stop is that stop now, not the cancelled one)."""
        broker.match_tagged([o for o in self.venue_orders.values() if o.custom_tag])
        for oid in sorted(self.venue_orders):
            order = self.venue_orders[oid]
            if order.contract_id == broker.contract_id:
                broker.on_order(order)
        for fid in sorted(self.venue_fills):
            fill = self.venue_fills[fid]
            if fill.contract_id == broker.contract_id:
                broker.on_fill(fill)

    async def _reconciler(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._reconcile_wanted.wait(), self.reconcile_every)
            self._reconcile_wanted.clear()
            try:
                await self.reconcile()
            except (GatewayError, FabioError) as exc:
                self.problems.append(f"reconciliation failed: {exc}")
                log.warning(self.problems[-1])

    async def reconcile(self) -> None:
        """Venue orders, fills and positions against what the brokers know."""
        acct = self.account.id
        since = min(self.started_at, datetime.now(UTC)) - timedelta(hours=12)
        orders = await self.http.search_orders(acct, since)
        for order in sorted(orders, key=lambda o: o.id):
            self._route_order(order)
        for fill in await self.http.fills(acct, since):
            self.venue_fills[fill.id] = fill
            broker = self.brokers.get(fill.contract_id)
            if broker is not None and fill.ts_ns is not None:
                broker.on_fill(fill)
        positions = await self.http.positions(acct)
        seen = {p.contract_id for p in positions}
        for pos in positions:
            self.venue_positions[pos.contract_id] = pos
        # Position/searchOpen lists open positions only: every other contract we trade is flat.
        for cid in {*self.venue_positions, *(px.id for px in self.contracts.values())}:
            if cid not in seen:
                self.venue_positions[cid] = PxPosition(None, acct, cid, 0, 0.0, None)
        self.reconciles += 1
        self.notify()
