"""Regenerate the golden masters, deliberately: `python -m tests.golden.regenerate`.

The golden-master tests only compare; they never write, whatever the environment says. After a
change that is meant to move the results, run this, review the diff of the JSON files, and say
why in the commit message.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
BACKTEST_GOLDEN = HERE / "backtest_synthetic_es.json"
ENGINE_GOLDEN = HERE.parent / "execution" / "golden" / "execution_scenario.json"


def backtest_result(log_dir: Path) -> dict[str, Any]:
    """The pinned backtest summary: 4 synthetic ES sessions, seed 3, the rule brain."""
    from fabio.backtest.runner import run_backtest
    from fabio.brain.rules import RuleBrain
    from fabio.data.synthetic import SyntheticConfig, SyntheticFeed

    feed = SyntheticFeed(SyntheticConfig(symbol="ES", days=4, seed=3, eth=False, rth_trades=80_000))
    summary = run_backtest([feed], RuleBrain(), log_dir).summary
    return dict(json.loads(json.dumps(summary, sort_keys=True, default=str)))


def engine_result() -> dict[str, Any]:
    """The pinned execution scenario: a fixed session and decision script."""
    from tests.execution import scenario

    return dict(json.loads(json.dumps(scenario.summary(scenario.run(None)), sort_keys=True)))


def write(path: Path, data: dict[str, Any]) -> bool:
    """Write `data`; True when the file changed."""
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    old = path.read_text() if path.exists() else None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return old != text


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        results = {
            BACKTEST_GOLDEN: backtest_result(Path(tmp) / "backtest"),
            ENGINE_GOLDEN: engine_result(),
        }
    for path, data in results.items():
        print(f"{path}: {'CHANGED' if write(path, data) else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
