"""The chaos harness, short: kill -9 of `fabio run --mode live` at three chosen moments.

Each crash runs on a fresh simulator and journal, so each moment is tested on its own.
The agent is killed the moment the simulator receives its order (before it answers), the
moment the venue cancels its stop, and after a trader closes its position by hand; it stays
down while the simulator keeps matching, restarts, and after its start reconciliation the
journal must equal the venue (position, balance, every fill once), with no duplicate tag, no
position unprotected for more than a second while it is up, no position it did not intend and
no protected position flattened. The long run is `python bench/live_chaos.py`.
"""

from __future__ import annotations

from pathlib import Path

from .chaos import ChaosConfig, run_chaos


def test_restarts_after_kill_9_converge_to_the_venue(tmp_path: Path) -> None:
    report = run_chaos(
        ChaosConfig(
            crashes=3,
            speed=60.0,
            seed=1,
            scenarios=("after_send", "stop_cancelled", "hand_close"),
            up_sec=(0.2, 1.0),
            down_sec=(0.5, 2.0),
            hand_action_chance=0.0,
            isolate=True,
            condition_timeout_sec=30.0,
            settle_timeout_sec=5.0,
            keep_dir=tmp_path,
        )
    )
    assert len(report.crashes) == 3
    assert all(c.reached for c in report.crashes), report.table()
    details = "\n".join(
        f"crash {c.index + 1} {c.scenario}: {d}" for c in report.crashes for d in c.details
    )
    assert report.violations() == 0, f"{report.table()}\n{details}"
