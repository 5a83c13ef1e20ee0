"""Regression tests for the defects a new user hit (issue 9) and bad CLI input (issue 13, 6-7).

The command runs in-process through `fabio.cli.main`, exactly as the console script does, so the
one-line error printer is exercised too.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fabio import cli

BAR_HEADER = "Date, Time, Open, High, Low, Last, Volume, NumberOfTrades, BidVolume, AskVolume"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def flat_err(self) -> str:
        return " ".join(self.err.split())


@pytest.fixture
def fabio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    for name in ("SYMBOL", "LOG_DIR", "LOGS_DIR", "MODE", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> Result:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["fabio", *args])
        code = 0
        try:
            cli.main()
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def one_line_error(result: Result, *fragments: str) -> None:
    assert result.code == 2, (result.out, result.err)
    assert result.err.startswith("error:"), result.err
    assert "Traceback" not in result.err and "MarkupError" not in result.err
    assert "internal error" not in result.err
    for fragment in fragments:
        assert fragment in result.flat_err, result.err


def write_bars(path: Path, n: int = 40) -> Path:
    rows = []
    for i in range(n):
        minute = 30 + 5 * i
        rows.append(
            f"2023/3/1, {8 + minute // 60:02d}:{minute % 60:02d}:00, 4000.00, 4001.00, "
            "3999.00, 4000.50, 100, 80, 50, 50"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([BAR_HEADER, *rows]) + "\n")
    return path


# ------------------------------------------------------------- symbols on the synthetic market


@pytest.mark.parametrize(("symbol", "root"), [("NQ", "NQ"), ("NQH4", "NQ"), ("MNQ", "MNQ")])
def test_features_symbol_trades_that_product_on_the_synthetic_market(
    fabio,
    symbol: str,
    root: str,  # type: ignore[no-untyped-def]
) -> None:
    result = fabio("features", "--symbol", symbol, "--json")
    assert result.code == 0, result.err
    snap = json.loads(result.out)
    assert snap["symbol"].startswith(root) and not snap["symbol"].startswith("ES")
    assert snap["data"]["source"] == "synthetic"


def test_backtest_symbol_trades_that_product_on_the_synthetic_market(fabio) -> None:  # type: ignore[no-untyped-def]
    result = fabio("backtest", "--symbol", "MNQ", "--days", "1", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["symbol"].startswith("MNQ")


def test_run_trades_the_configured_symbol(fabio, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SYMBOL", "NQ")
    result = fabio("run", "--duration", "5m", "--speed", "100000", "--quiet", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["symbol"].startswith("NQ")


@pytest.mark.parametrize("command", ["features", "backtest", "decide"])
def test_unknown_symbol_is_a_one_line_error(fabio, command: str) -> None:  # type: ignore[no-untyped-def]
    one_line_error(fabio(command, "--symbol", "CLZ4"), "CLZ4")


# ------------------------------------------------------------- rich markup in user/data text


@pytest.mark.parametrize("command", ["features", "profile", "backtest", "decide"])
def test_a_path_the_contract_cannot_be_read_from_is_a_clean_error(
    fabio,
    tmp_path: Path,
    command: str,  # type: ignore[no-untyped-def]
) -> None:
    path = write_bars(tmp_path / "home" / "me" / "mybars.txt").resolve()
    result = fabio(command, str(path))
    one_line_error(result, "--symbol", str(path))


def test_brackets_in_a_path_are_printed_as_they_are(fabio, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "[bold]x[/bold]" / "[/home]" / "nothere.csv"
    result = fabio("features", str(path))
    one_line_error(result, "no such file")
    assert "[bold]x[/bold]" in result.err and "[/home]" in result.err
