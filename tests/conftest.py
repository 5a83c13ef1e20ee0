"""Shared fixtures: the real ES data folder beside the project (present in CI)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real market data not found at {SHARED_DATA} (it sits beside the repo in CI)")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def _private_account_locks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Account locks (`fabio.runlock`) in this test session's own folder, not the user cache:
    a second test run on the machine (another checkout, another xdist worker) trading the same
    simulated account must not find it locked."""
    from fabio import runlock

    locks = tmp_path_factory.mktemp("account-locks")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runlock, "account_lock_dir", lambda: locks)
        yield
