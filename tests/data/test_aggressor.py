"""Aggressor classification rules, their state across batches, and accuracy on real ES prints."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fabio.data.aggressor import TickRule, count_sources, lee_ready, quote_rule, tick_rule
from fabio.data.dbn import decode_columns
from fabio.domain import AggressorSource, TradeBatch

nan = float("nan")


def test_quote_rule_at_and_outside_the_quotes() -> None:
    price = [101, 102, 100, 99, 100.5, 100, 100]
    bid = [100, 100, 100, 100, 100, nan, 100]
    ask = [101, 101, 101, 101, 101, 101, 100]  # last: locked book, both tests true
    assert quote_rule(price, bid, ask).tolist() == [1, 1, -1, -1, 0, 0, 0]


def test_tick_rule_zero_ticks_repeat_the_last_nonzero_tick() -> None:
    assert tick_rule([10, 11, 11, 10, 10, 12, 12]).tolist() == [0, 1, 1, -1, -1, 1, 1]
    assert tick_rule([10, 10, 10]).tolist() == [0, 0, 0]
    assert tick_rule([10, 10], prev_price=9).tolist() == [1, 1]
    assert tick_rule([10, 10], prev_price=10, prev_side=-1).tolist() == [-1, -1]
    assert tick_rule([]).tolist() == []


def test_tick_rule_ignores_missing_prices() -> None:
    assert tick_rule([10, nan, 11, nan, 11]).tolist() == [0, 0, 1, 0, 1]


def _reference_tick_rule(prices: list[int]) -> list[int]:
    out, last_price, last_side = [], None, 0
    for p in prices:
        if last_price is not None and p != last_price:
            last_side = 1 if p > last_price else -1
        out.append(last_side)
        last_price = p
    return out


@settings(max_examples=200, deadline=None)
@given(
    prices=st.lists(st.integers(min_value=95, max_value=105), min_size=0, max_size=60),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=5),
)
def test_tick_rule_carries_state_across_batches(prices: list[int], cuts: list[int]) -> None:
    expected = _reference_tick_rule(prices)
    assert tick_rule(prices).tolist() == expected
    rule = TickRule()
    bounds = [0, *sorted(c for c in cuts if c <= len(prices)), len(prices)]
    got: list[int] = []
    for a, b in itertools.pairwise(bounds):
        got.extend(rule.classify(np.asarray(prices[a:b], dtype=np.float64)).tolist())
    assert got == expected


def test_lee_ready_uses_the_midpoint_then_the_tick_rule() -> None:
    price = [100.0, 101.0, 100.5, 100.5, 100.25, 100.75, 100.5]
    bid = [100.0, 100.0, 100.0, 100.0, 100.0, 100.0, nan]
    ask = [101.0, 101.0, 101.0, 101.0, 101.0, 101.0, nan]
    # at bid -> sell, at ask -> buy, at the mid after a downtick -> sell, again (zero tick)
    # -> sell, below the mid -> sell, above -> buy, no quotes -> tick rule (downtick) -> sell
    assert lee_ready(price, bid, ask).tolist() == [-1, 1, -1, -1, -1, 1, -1]
    assert lee_ready([100.5], [100.0], [101.0], prev_price=100.25).tolist() == [1]
    assert lee_ready([100.5], [100.0], [101.0], prev_price=100.5, prev_side=-1).tolist() == [-1]


def test_count_sources_splits_exchange_inferred_and_unknown() -> None:
    batch = TradeBatch.from_arrays(
        [1, 2, 3, 4], [1, 1, 1, 1], [1, 1, 1, 1], [1, -1, 1, 0], [False, False, True, True]
    )
    counts = count_sources(batch, AggressorSource.LEE_READY)
    assert counts == {"exchange": 2, "lee_ready": 1, "unknown": 1}


def _mbp1_trades(shared: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    cols = decode_columns(shared / "databento" / MBP1_NAME)
    t = cols["action"] == ord("T")
    true = np.where(cols["side"][t] == ord("B"), 1, -1)
    return cols["price"][t] * 1e-9, cols["bid_px"][t] * 1e-9, cols["ask_px"][t] * 1e-9, true


MBP1_NAME = "futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02.dbn.zst"


def test_classification_accuracy_on_real_esu4_prints(SHARED_DATA: Path) -> None:
    """The 4-minute ESU4 MBP-1 file reports the true side: the rules are scored against it."""
    price, bid, ask, true = _mbp1_trades(SHARED_DATA)
    assert len(true) == 120
    assert int((quote_rule(price, bid, ask) == true).sum()) == 120  # 100 %
    assert int((lee_ready(price, bid, ask) == true).sum()) == 120  # 100 %
    ticks = tick_rule(price)
    assert int((ticks == true).sum()) == 76  # 63.3 %: most prints are zero ticks
    assert int((ticks == 0).sum()) == 9  # leading zero ticks before the first price change


def test_tick_rule_accuracy_on_the_mbo_hour(SHARED_DATA: Path) -> None:
    cols = decode_columns(SHARED_DATA / "databento" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst")
    t = cols["action"] == ord("T")
    side = cols["side"][t]
    true = np.where(side == ord("B"), 1, np.where(side == ord("A"), -1, 0))
    ticks = tick_rule(cols["price"][t] * 1e-9)
    known = true != 0
    assert int(known.sum()) == 2972
    assert int((ticks[known] == true[known]).sum()) == 2222  # 74.8 %


@pytest.mark.parametrize("n", [0, 1, 5])
def test_rules_accept_empty_and_tiny_inputs(n: int) -> None:
    p = np.full(n, 100.0)
    assert len(quote_rule(p, p - 0.25, p + 0.25)) == n
    assert len(lee_ready(p, p - 0.25, p + 0.25)) == n
    assert len(TickRule().classify(p)) == n
