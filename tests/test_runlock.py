"""The run lock: one trading process per logs folder and per broker account."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fabio.errors import FabioError
from fabio.runlock import RunLock


def test_one_holder_per_logs_folder_and_per_account(tmp_path: Path) -> None:
    accounts = tmp_path / "locks"
    first = RunLock(tmp_path / "a", "PRAC-V2-1234", lock_dir=accounts).acquire()
    try:
        with pytest.raises(FabioError, match=rf"pid {os.getpid()}\b.*logs folder"):
            RunLock(tmp_path / "a").acquire()
        # Another folder, same account: still refused (the account is the real exposure).
        with pytest.raises(FabioError, match=r"account PRAC-V2-1234"):
            RunLock(tmp_path / "b", "PRAC-V2-1234", lock_dir=accounts).acquire()
        RunLock(tmp_path / "c", "OTHER", lock_dir=accounts).acquire().release()
    finally:
        first.release()
    with RunLock(tmp_path / "a", "PRAC-V2-1234", lock_dir=accounts):  # released: free again
        assert (tmp_path / "a" / "fabio.lock").read_text().strip() == str(os.getpid())


def test_paper_journals_are_durable_and_locked_backtests_are_neither(tmp_path: Path) -> None:
    from fabio.brain.rules import RuleBrain
    from fabio.instruments import parse_symbol
    from fabio.wiring import AgentOptions, build_agent

    es = parse_symbol("ESH4", 2024)
    paper = build_agent(es, RuleBrain(), AgentOptions(mode="paper", log_dir=tmp_path / "p"))
    journal = paper.execution.journal
    assert journal is not None and journal.fsync and "decision" in journal.buffered_types
    with pytest.raises(FabioError, match=rf"pid {os.getpid()}"):
        build_agent(es, RuleBrain(), AgentOptions(mode="paper", log_dir=tmp_path / "p"))
    paper.run_lock.release()
    backtest = build_agent(es, RuleBrain(), AgentOptions(mode="backtest", log_dir=tmp_path / "b"))
    assert backtest.execution.journal is not None and not backtest.execution.journal.fsync
    assert backtest.run_lock is None
