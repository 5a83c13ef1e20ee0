"""One account, one limit: every symbol's engine shares one risk engine, whose account-level
checks (contracts in minis, daily loss, trailing floor, trades) count every open position and
every entry in flight over all the symbols, checked and reserved in one step (issue 20 item 7).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fabio.brain.schema import TradeDecision
from fabio.domain import TradeBatch
from fabio.execution.broker import BrokerError, SimulatedBroker
from fabio.execution.engine import EXECUTION_JOURNAL, ExecutionEngine
from fabio.execution.risk import RiskConfig, RiskEngine
from fabio.instruments import Contract, parse_symbol
from fabio.journal import read_journal
from fabio.orders import BracketRequest, Order, OrderRole
from fabio.strategies import StrategyParams, initialize_default_strategies
from fabio.timeutil import CHICAGO, datetime_to_ns
from fabio.wiring import open_execution

ES = parse_symbol("ESH4", 2024)
NQ = parse_symbol("NQH4", 2024)
SEC = 1_000_000_000
PRICE = {ES.symbol: 4 * 5000, NQ.symbol: 4 * 17000}  # in ticks
MAX_MINIS = 5  # the 50K account
# Sized by the position cap, not by its budget: $1,000 buys 6 ES or 16 NQ at a 12-tick risk.
BIG = "Big"
STRATEGIES = {
    **initialize_default_strategies(),
    BIG: StrategyParams(
        enabled=True,
        risk_fraction=0.02,
        max_trades_per_session=50,
        min_rr=1.5,
        stop_ticks=10,
        target_ticks=20,
    ),
}


def ct(hh: int, mm: int, ss: int = 0) -> int:
    return datetime_to_ns(datetime(2024, 3, 5, hh, mm, ss, tzinfo=CHICAGO))


def tape(start: int, prices: list[int]) -> TradeBatch:
    n = len(prices)
    ts = start + np.arange(n, dtype=np.int64) * SEC
    return TradeBatch.from_arrays(ts, prices, np.full(n, 5), np.ones(n))


def enter(side: str = "long", strategy: str = BIG, **kw: Any) -> TradeDecision:
    return TradeDecision(action="enter", side=side, entry_condition_id=strategy, **kw)  # type: ignore[arg-type]


class Venue(SimulatedBroker):
    """The simulated venue, with hooks: `during_send` runs while a bracket is being sent (another
    symbol deciding in the same instant), `refuse` rejects the next bracket, `fail` raises."""

    def __init__(self, contract: Contract, next_order: int) -> None:
        super().__init__(contract.spec, contract.symbol, id_prefix=next_order)
        self.during_send: list[Callable[[], None]] = []
        self.refuse: str | None = None
        self.fail = False

    def submit_bracket(self, req: BracketRequest, now_ns: int) -> list[Order]:
        while self.during_send:
            self.during_send.pop(0)()
        if self.fail:
            self.fail = False
            raise BrokerError("connection lost while sending")
        return super().submit_bracket(req, now_ns)

    def _bracket_error(self, req: BracketRequest) -> str | None:
        if self.refuse is not None:
            why, self.refuse = self.refuse, None
            return why
        return super()._bracket_error(req)


def account(
    log_dir: Path | None, config: RiskConfig | None = None
) -> tuple[RiskEngine, dict[str, ExecutionEngine], dict[str, Venue]]:
    """ES and NQ on one account, as `fabio run --symbols ES,NQ` builds them (live.py)."""
    risk = RiskEngine(config or RiskConfig(max_trades_per_day=1000))
    engines: dict[str, ExecutionEngine] = {}
    venues: dict[str, Venue] = {}

    def factory(contract: Contract, n: int) -> Venue:
        venues[contract.symbol] = Venue(contract, n)
        return venues[contract.symbol]

    for contract in (ES, NQ):
        e = open_execution(contract, log_dir, broker=factory, defaults=STRATEGIES, risk=risk)
        e.start_session("2024-03-05", ct(8, 30))
        engines[contract.symbol] = e
    return risk, engines, venues


def venue_minis(venues: dict[str, Venue]) -> float:
    """What the venues hold or may yet fill (open entry orders), in minis: the account's truth."""
    total = 0.0
    for v in venues.values():
        held = sum(abs(p.qty) for p in v.positions())
        pending = sum(o.qty - o.filled_qty for o in v.open_orders() if o.role is OrderRole.ENTRY)
        total += (held + pending) * v.spec.mini_equivalent
    return total


def decide(e: ExecutionEngine, now: int, decision: TradeDecision) -> Any:
    return e.process_trade_decision(decision, now, PRICE[e.symbol])


def test_es_short_one_leaves_nq_four_not_five(tmp_path: Path) -> None:
    """The measured breach: ES short 1, then NQ entering 5 made 6 minis against the 50K's 5."""
    _, engines, venues = account(tmp_path)
    es, nq = engines[ES.symbol], engines[NQ.symbol]
    for e in (es, nq):
        e.on_trades(tape(ct(9, 0), [PRICE[e.symbol]] * 3))
    short = decide(es, ct(9, 0, 5), enter("short", "MeanReversionPOC_v2"))
    assert short.accepted and short.qty == 1
    es.on_trades(tape(ct(9, 0, 6), [PRICE[ES.symbol]]))
    assert es.position() is not None and es.position().qty == -1  # type: ignore[union-attr]
    nq_entry = decide(nq, ct(9, 0, 7), enter("long"))
    assert nq_entry.accepted and nq_entry.qty == 4
    nq.on_trades(tape(ct(9, 0, 8), [PRICE[NQ.symbol]]))
    assert venue_minis(venues) == MAX_MINIS
    again = decide(es, ct(9, 0, 9), enter("long"))  # ES is open: refused by its own rule
    assert not again.accepted


def test_two_symbols_entering_in_the_same_instant_never_exceed_the_limit(tmp_path: Path) -> None:
    """NQ decides while ES's bracket is on its way (checked, not yet journaled): ES's entry is
    reserved, so NQ is refused with the contract limit, and the refusal is journaled."""
    risk, engines, venues = account(tmp_path)
    es, nq = engines[ES.symbol], engines[NQ.symbol]
    now = ct(9, 0, 5)
    for e in (es, nq):
        e.on_trades(tape(ct(9, 0), [PRICE[e.symbol]] * 3))
    nq_results: list[Any] = []
    venues[ES.symbol].during_send.append(lambda: nq_results.append(decide(nq, now, enter())))
    es_result = decide(es, now, enter())
    [nq_result] = nq_results
    assert es_result.accepted and es_result.qty == MAX_MINIS
    assert not nq_result.accepted
    assert nq_result.reason.startswith("contract limit: 5 minis open + 1 NQ")
    assert venue_minis(venues) == MAX_MINIS
    for e in (es, nq):
        e.on_trades(tape(now + SEC, [PRICE[e.symbol]] * 2))
    assert venue_minis(venues) == MAX_MINIS and es.position().qty == MAX_MINIS  # type: ignore[union-attr]
    refusals = [
        r
        for r in read_journal(tmp_path / EXECUTION_JOURNAL).records
        if r["type"] == "decision" and r["symbol"] == NQ.symbol
    ]
    assert [r["accepted"] for r in refusals] == [False]
    assert "contract limit" in refusals[0]["reason"]
    # ES exits; its contracts are free again for NQ.
    decide(es, now + 5 * SEC, TradeDecision(action="exit", reason="done"))
    es.on_trades(tape(now + 6 * SEC, [PRICE[ES.symbol]]))
    assert es.position() is None
    assert risk.open_minis() == 0
    later = decide(nq, now + 7 * SEC, enter())
    assert later.accepted and later.qty == MAX_MINIS


@pytest.mark.parametrize("how", ["rejected", "raised"])
def test_a_reservation_is_released_when_the_venue_refuses(how: str) -> None:
    risk, engines, venues = account(None)
    es, nq = engines[ES.symbol], engines[NQ.symbol]
    now = ct(9, 0, 5)
    for e in (es, nq):
        e.on_trades(tape(ct(9, 0), [PRICE[e.symbol]] * 3))
    if how == "rejected":
        venues[ES.symbol].refuse = "venue: outside trading hours"
        result = decide(es, now, enter())
        assert not result.accepted and "venue: outside trading hours" in result.reason
    else:
        venues[ES.symbol].fail = True
        with pytest.raises(BrokerError):
            decide(es, now, enter())
    held = risk.exposure.get(ES.symbol)
    assert held is not None and (held.reserved, held.reservations) == (0, 0)
    assert risk.open_minis() == 0
    nq_entry = decide(nq, now, enter())
    assert nq_entry.accepted and nq_entry.qty == MAX_MINIS


def test_open_losses_and_risk_of_every_symbol_count_for_the_daily_limit() -> None:
    """An ES position under water leaves NQ only the daily room that is really left: the day's
    realised loss, ES's open loss and what ES still loses to its stop all count."""
    risk, engines, _ = account(None)
    es, nq = engines[ES.symbol], engines[NQ.symbol]
    p = PRICE[ES.symbol]
    for e in (es, nq):
        e.on_trades(tape(ct(9, 0), [PRICE[e.symbol]] * 3))
    risk.on_trade_closed(-600.0, ct(9, 0, 1))  # the day so far: $300 of room (limit - buffer)
    alone_risk = RiskEngine(RiskConfig(max_trades_per_day=1000))
    alone_risk.on_trade_closed(-600.0, ct(9, 0, 1))
    alone = open_execution(NQ, None, defaults=STRATEGIES, risk=alone_risk)
    alone.start_session("2024-03-05", ct(8, 30))
    alone.on_trades(tape(ct(9, 0), [PRICE[NQ.symbol]] * 3))
    solo = decide(alone, ct(9, 0, 9), enter())
    assert solo.accepted and solo.qty == 4  # 4 x (12 ticks x $5 + $5 fees) = $260 <= $300
    assert decide(es, ct(9, 0, 5), enter("long", "MeanReversionPOC_v2")).qty == 1
    es.on_trades(tape(ct(9, 0, 6), [p, p - 6]))  # 1 ES long, 7 ticks under water
    t = risk.exposure.totals()
    es_loss = t.open_risk_usd - t.open_losses_usd  # open loss + the rest of the way to the stop
    assert t.open_losses_usd < 0 and es_loss > 100 and t.open_trades == 1
    shared = decide(nq, ct(9, 0, 9), enter())
    assert shared.accepted and shared.qty < solo.qty
    nq_worst = shared.qty * (12 * NQ.spec.tick_value + 5.0)
    assert 600 + es_loss + nq_worst <= 900  # every stop hit: still inside the daily limit


def test_open_trades_of_every_symbol_count_for_the_trade_limit() -> None:
    _, engines, _ = account(None, RiskConfig(max_trades_per_day=1))
    es, nq = engines[ES.symbol], engines[NQ.symbol]
    for e in (es, nq):
        e.on_trades(tape(ct(9, 0), [PRICE[e.symbol]] * 3))
    assert decide(es, ct(9, 0, 5), enter(strategy="MeanReversionPOC_v2")).qty == 1
    refused = decide(nq, ct(9, 0, 6), enter())
    assert not refused.accepted
    assert refused.reason == "max trades per day: 0 closed + 1 open today, limit 1"


# --------------------------------------------------------------------------- random interleavings

SYMBOLS = (ES.symbol, NQ.symbol)
op_enter = st.tuples(
    st.just("enter"),
    st.sampled_from(SYMBOLS),
    st.sampled_from(["long", "short"]),
    st.sampled_from([BIG, "MeanReversionPOC_v2"]),
    st.booleans(),  # a limit entry (works until the price comes) or at market
)
op_tape = st.tuples(
    st.just("tape"), st.sampled_from(SYMBOLS), st.lists(st.integers(-6, 6), min_size=1, max_size=6)
)
op_exit = st.tuples(st.just("exit"), st.sampled_from(SYMBOLS))
op_same = st.tuples(
    st.just("same_instant"),
    st.sampled_from([(ES.symbol, NQ.symbol), (NQ.symbol, ES.symbol)]),
    st.sampled_from([BIG, "MeanReversionPOC_v2"]),
)
op_refuse = st.tuples(st.just("refuse"), st.sampled_from(SYMBOLS))


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(st.one_of(op_enter, op_tape, op_exit, op_same, op_refuse), max_size=30))
def test_random_interleavings_never_exceed_the_account_limit(ops: list[tuple[Any, ...]]) -> None:
    """Entries, fills, stops, targets, exits, venue rejects and same-instant decisions of ES
    and NQ in any order: what the venues hold plus what their open entry orders may still fill
    never exceeds the account's 5 minis, and the account's book agrees with the venues."""
    risk, engines, venues = account(None)
    price = dict(PRICE)
    now = ct(9, 0)
    for e in engines.values():
        e.on_trades(tape(now, [price[e.symbol]]))

    def decision(symbol: str, side: str, strategy: str, limit: bool) -> TradeDecision:
        if not limit:
            return enter(side, strategy)
        away = 3 if side == "long" else -3
        return enter(side, strategy, order_type="limit", limit_price=(price[symbol] - away) * 0.25)

    for op in ops:
        now += 7 * SEC
        kind = op[0]
        if kind == "enter":
            _, symbol, side, strategy, limit = op
            e = engines[symbol]
            e.process_trade_decision(decision(symbol, side, strategy, limit), now, price[symbol])
        elif kind == "tape":
            _, symbol, moves = op
            prices = []
            for m in moves:
                price[symbol] += m
                prices.append(price[symbol])
            engines[symbol].on_trades(tape(now, prices))
        elif kind == "exit":
            engines[op[1]].process_trade_decision(
                TradeDecision(action="exit", reason="random"), now, price[op[1]]
            )
        elif kind == "refuse":
            venues[op[1]].refuse = "venue: refused"
        else:
            _, (first, second), strategy = op
            e1, e2 = engines[first], engines[second]
            other = decision(second, "long", strategy, False)

            def meanwhile(
                e2: ExecutionEngine = e2, d: TradeDecision = other, at: int = now
            ) -> None:
                e2.process_trade_decision(d, at, price[e2.symbol])

            venues[first].during_send.append(meanwhile)
            e1.process_trade_decision(decision(first, "short", strategy, False), now, price[first])
            venues[first].during_send.clear()
        assert venue_minis(venues) <= MAX_MINIS, (op, venue_minis(venues))
        assert risk.open_minis() == venue_minis(venues), op  # no reservation left behind


def test_a_second_exit_while_one_is_working_sends_nothing() -> None:
    """Found by the interleavings: two brain exits before the first one fills sent two market
    exits, and the second opened the other side (5 ES short, naked, that the journal lacked)."""
    _, engines, venues = account(None)
    es, p = engines[ES.symbol], PRICE[ES.symbol]
    es.on_trades(tape(ct(9, 0), [p] * 3))
    assert decide(es, ct(9, 0, 5), enter()).qty == MAX_MINIS
    es.on_trades(tape(ct(9, 0, 6), [p]))
    out = TradeDecision(action="exit", reason="invalidated")
    assert decide(es, ct(9, 0, 7), out).reason.startswith("exit sent")
    again = decide(es, ct(9, 0, 8), out)
    assert again.accepted and again.reason.startswith("exit already working")
    es.on_trades(tape(ct(9, 0, 9), [p]))
    assert venues[ES.symbol].positions() == [] and es.position() is None
    exits = [o for o in venues[ES.symbol].orders.values() if o.role is OrderRole.EXIT]
    assert len(exits) == 1
