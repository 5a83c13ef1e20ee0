"""`fabio new-account`: a new account that keeps what the agent learned; the old account's
journals archived (never deleted); refused under a run; safe when interrupted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fabio.account_archive import ACCOUNTS_DIR, recover_partial
from fabio.accounts import start_new_account
from fabio.backtest.runner import run_backtest
from fabio.brain.rules import RuleBrain
from fabio.data.synthetic import SyntheticConfig, SyntheticFeed
from fabio.errors import FabioError
from fabio.execution.risk import RiskConfig
from fabio.instruments import parse_symbol
from fabio.journal import LLM_EXCHANGES, Journal, read_journal
from fabio.runlock import RunLock
from fabio.strategies import TREND_PULLBACK
from fabio.wiring import journal_symbols, read_state


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A logs folder with an account that traded (a backtest's journal) and a note."""
    logs = tmp_path_factory.mktemp("account") / "logs"
    feed = SyntheticFeed(SyntheticConfig(symbol="ES", days=3, seed=3, eth=False, rth_trades=40_000))
    result = run_backtest([feed], RuleBrain(), logs)
    assert result.closed_trades
    # as if learning had cut a strategy, and the brain had left a note
    Journal(logs / "execution.jsonl").append(
        {
            "type": "strategy_change",
            "schema_version": 1,
            "ts_ns": 10**18 * 2,
            "symbol": result.symbol,
            "strategy": TREND_PULLBACK,
            "field": "risk_fraction",
            "old": 0.005,
            "proposed": 0.003,
            "new": 0.003,
            "accepted": True,
            "reason": "test",
            "source": "brain",
        }
    )
    Journal(logs / LLM_EXCHANGES).append(
        {
            "type": "llm_exchange",
            "symbol": result.symbol,
            "market_time_ns": 10**18 * 2,
            "decision": {
                "market_assessment": {"regime": "range"},
                "notes_to_future_self": ["fades at the VAL held all week"],
            },
        }
    )
    return logs


def copy_of(account: Path, tmp_path: Path) -> Path:
    import shutil

    logs = tmp_path / "logs"
    shutil.copytree(account, logs)
    return logs


def snapshot(logs: Path) -> dict[str, Any]:
    symbol = journal_symbols(logs)[0]
    ledger = read_state(parse_symbol(symbol), logs, RiskConfig()).ledger
    return {
        "closed": len(ledger.closed),
        "carried": len(ledger.carried),
        "risk": ledger.book.strategy_state[TREND_PULLBACK].risk_fraction,
        "balance": ledger.risk.account.balance,
    }


def test_new_account_archives_and_carries_the_learning(account: Path, tmp_path: Path) -> None:
    logs = copy_of(account, tmp_path)
    old = snapshot(logs)
    old_bytes = (logs / "execution.jsonl").read_bytes()
    done = start_new_account(logs, RiskConfig())
    # archived, not deleted: the same bytes under accounts/<UTC stamp>/
    assert done.archive.parent == logs / ACCOUNTS_DIR and done.archive.is_dir()
    assert (done.archive / "execution.jsonl").read_bytes() == old_bytes
    assert (done.archive / LLM_EXCHANGES).exists() and not (logs / LLM_EXCHANGES).exists()
    records = read_journal(logs / "execution.jsonl").records
    assert [r["type"] for r in records] == ["learning_carry"]
    assert records[0]["archive"] == f"{ACCOUNTS_DIR}/{done.archive.name}"
    assert any("VAL held" in n["text"] for n in records[0]["notes"])
    new = snapshot(logs)
    # a fresh account: no trade of its own, the starting balance, the learned state kept
    assert new == {
        "closed": 0,
        "carried": old["closed"],
        "risk": 0.003,
        "balance": RiskConfig().account_balance,
    }
    assert not list((logs / ACCOUNTS_DIR).glob("*.partial"))
    # a second new account carries the first one's carried trades too
    again = start_new_account(logs, RiskConfig())
    assert again.archive != done.archive
    assert snapshot(logs)["carried"] == old["closed"]


def test_new_account_refuses_while_a_run_holds_the_folder(account: Path, tmp_path: Path) -> None:
    logs = copy_of(account, tmp_path)
    before = (logs / "execution.jsonl").read_bytes()
    with RunLock(logs), pytest.raises(FabioError, match="already trading on the logs folder"):
        start_new_account(logs, RiskConfig())
    assert (logs / "execution.jsonl").read_bytes() == before
    assert not (logs / ACCOUNTS_DIR).exists()


@pytest.mark.parametrize("at", ["archived", "written", "committed"])
def test_an_interrupted_new_account_loses_nothing(account: Path, tmp_path: Path, at: str) -> None:
    logs = copy_of(account, tmp_path)
    old = snapshot(logs)
    old_bytes = (logs / "execution.jsonl").read_bytes()

    def stop(step: str) -> None:
        if step == at:
            raise Interrupted(step)

    with pytest.raises(Interrupted):
        start_new_account(logs, RiskConfig(), step=stop)
    if at == "committed":  # the new account is in place; the old one is in the archive
        assert snapshot(logs)["carried"] == old["closed"]
        [partial] = (logs / ACCOUNTS_DIR).glob("*.partial")
        assert (partial / "execution.jsonl").read_bytes() == old_bytes
    else:  # the old account is still in place, whole
        assert (logs / "execution.jsonl").read_bytes() == old_bytes
        assert snapshot(logs) == old
    # the next start (a run, or new-account) finishes or undoes it
    recover_partial(logs)
    assert not list((logs / ACCOUNTS_DIR).glob("*.partial"))
    archives = list((logs / ACCOUNTS_DIR).iterdir())
    if at == "committed":
        assert len(archives) == 1 and (archives[0] / "execution.jsonl").read_bytes() == old_bytes
        assert not (logs / LLM_EXCHANGES).exists()
    else:
        assert archives == [] and (logs / "execution.jsonl").read_bytes() == old_bytes
        assert not (logs / "execution.jsonl.new-account").exists()
        done = start_new_account(logs, RiskConfig())  # and it can be done again
        assert (done.archive / "execution.jsonl").read_bytes() == old_bytes


def test_new_account_refuses_an_open_position(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    Journal(logs / "execution.jsonl").append(
        {
            "type": "entry",
            "schema_version": 1,
            "ts_ns": 1,
            "symbol": "ESH4",
            "trade_id": "ESH4-T1",
            "strategy": TREND_PULLBACK,
            "regime": "trend",
            "side": 1,
            "qty": 1,
            "entry_type": "market",
            "entry_ref_ticks": 20000,
            "stop_ticks": 19990,
            "target_ticks": 20020,
            "risk_ticks": 10,
            "risk_usd": 125.0,
            "trade_date": "2024-03-05",
            "orders": ["o1"],
        }
    )
    with pytest.raises(FabioError, match="open position"):
        start_new_account(logs, RiskConfig())
    assert not (logs / ACCOUNTS_DIR).exists()
    assert json.loads((logs / "execution.jsonl").read_text())["type"] == "entry"
