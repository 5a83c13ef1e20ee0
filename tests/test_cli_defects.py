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
    for name in (
        "SYMBOL",
        "LOG_DIR",
        "LOGS_DIR",
        "MODE",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "DAILY_LOSS_LIMIT",
        "STRATEGIES_FILE",
    ):
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


# ------------------------------------------------------------- --symbol against the file's contract


def test_symbol_conflicting_with_the_files_contract_needs_force(fabio, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = str(write_bars(tmp_path / "ESM23-CME.scid_BarData__5m.txt"))
    one_line_error(fabio("profile", path, "--symbol", "NQH4", "--json"), "ESM3", "--force-symbol")
    one_line_error(fabio("backtest", path, "--symbol", "NQH4", "--json"), "--force-symbol")
    forced = fabio("profile", path, "--symbol", "NQH4", "--force-symbol", "--json")
    assert forced.code == 0, forced.err
    assert json.loads(forced.out)["symbol"] == "NQH4"
    for same in ("ES", "ESM23", "esm3"):
        ok = fabio("profile", path, "--symbol", same, "--json")
        assert ok.code == 0, ok.err
        assert json.loads(ok.out)["symbol"] == "ESM3"


# ------------------------------------------------------------- backtest: ranges, accounts, labels


@pytest.mark.parametrize(
    ("start", "end", "fragment"),
    [
        ("2023-05-10", "2023-05-08", "after --to"),
        ("2024-01-06", "2024-01-07", "no CME trade date"),
        ("2020-01-06", "2020-01-07", "no trade in this range"),
    ],
)
def test_an_empty_or_reversed_range_is_a_one_line_error(
    fabio,
    start: str,
    end: str,  # type: ignore[no-untyped-def]
    fragment: str,
) -> None:
    result = fabio("backtest", "--days", "1", "--from", start, "--to", end, "--json")
    one_line_error(result, fragment)


@pytest.fixture
def two_files(fabio, tmp_path: Path) -> list[str]:  # type: ignore[no-untyped-def]
    files = []
    for name, seed in (("a", "1"), ("b", "2")):
        out = tmp_path / f"{name}.parquet"
        made = fabio("synth", "--days", "2", "--seed", seed, "--out", str(out), "--json")
        assert made.code == 0, made.err
        files.append(str(out))
    return files


# 57 s (four CLI backtests of two files); the default run keeps the CLI sweep in
# tests/test_cli.py::test_backtest_cli_synthetic_and_sweep_resume
@pytest.mark.slow
def test_accounts_model_is_explicit_and_jobs_change_nothing(  # type: ignore[no-untyped-def]
    fabio, two_files: list[str], tmp_path: Path
) -> None:
    one_line_error(fabio("backtest", *two_files, "--jobs", "2", "--json"), "--accounts per-file")
    one_line_error(fabio("backtest", *two_files, "--accounts", "daily"), "continuous or per-file")
    serial = fabio("backtest", *two_files, "--accounts", "per-file", "--log-dir", "one", "--json")
    report = tmp_path / "r.html"
    parallel = fabio(
        "backtest",
        *two_files,
        "--accounts",
        "per-file",
        "--jobs",
        "2",
        "--log-dir",
        "two",
        "--report",
        str(report),
        "--json",
    )
    assert serial.code == 0 and parallel.code == 0, serial.err + parallel.err
    a, b = json.loads(serial.out), json.loads(parallel.out)
    assert a["files"] == b["files"] == 2
    for key in ("trades", "net_pnl_usd", "per_strategy", "per_year", "rule_breaches"):
        assert a[key] == b[key], key
    assert b["report"] == str(report) and report.exists()
    assert "Backtest report" in report.read_text()
    continuous = fabio("backtest", *two_files, "--log-dir", "three", "--json")
    assert continuous.code == 0, continuous.err
    assert "files" not in json.loads(continuous.out)  # one account through both files


def test_synthetic_results_are_labelled_everywhere(fabio, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = fabio("backtest", "--days", "1", "--json", "--report", "r.html")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["data_source"] == "synthetic"
    assert "says nothing about an edge" in summary["caveat"]
    assert "SYNTHETIC DATA" in (tmp_path / "r.html").read_text()
    human = fabio("backtest", "--days", "1", "--log-dir", "h")
    assert human.code == 0, human.err
    assert "SYNTHETIC DATA" in human.out and "synthetic" in human.out


def test_file_results_are_not_labelled_synthetic(fabio, two_files: list[str]) -> None:  # type: ignore[no-untyped-def]
    result = fabio("backtest", two_files[0], "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["data_source"] == "files" and "caveat" not in summary


def test_a_backtest_without_trades_says_why(  # type: ignore[no-untyped-def]
    fabio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A daily limit just above the loss buffer: the risk engine refuses every entry.
    monkeypatch.setenv("DAILY_LOSS_LIMIT", "101")
    result = fabio("backtest", "--days", "1", "--log-dir", "bt", "--report", "r.html", "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["trades"] == 0
    reason = summary["no_trades_reason"]
    assert "proposed entries were refused" in reason and "daily loss" in reason
    page = (tmp_path / "r.html").read_text()
    assert "No trades." in page and "daily loss" in page
    human = fabio("backtest", "--days", "1", "--log-dir", "bt2")
    assert "no trades:" in human.out
    # Every strategy switched off: no setup fires at all.
    monkeypatch.delenv("DAILY_LOSS_LIMIT")
    off = {"enabled": False}
    names = ("MeanReversionPOC_v2", "TrendLVN_Pullback_v1", "AbsorptionFade_v1")
    (tmp_path / "s.json").write_text(json.dumps(dict.fromkeys(names, off)))
    monkeypatch.setenv("STRATEGIES_FILE", str(tmp_path / "s.json"))
    quiet = fabio("backtest", "--days", "1", "--log-dir", "bt3", "--json")
    assert quiet.code == 0, quiet.err
    assert json.loads(quiet.out)["no_trades_reason"].startswith("no setup fired")


# ------------------------------------------------------------- fabio state


def test_state_lists_every_symbol_in_the_journal_and_exact_risk(  # type: ignore[no-untyped-def]
    fabio, tmp_path: Path
) -> None:
    lines = []
    for sym in ("ES", "NQ"):
        ran = fabio("backtest", "--symbol", sym, "--days", "2", "--log-dir", f"bt_{sym}", "--json")
        assert ran.code == 0, ran.err
        lines.append((tmp_path / f"bt_{sym}" / "execution.jsonl").read_text())
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "execution.jsonl").write_text("".join(lines))
    result = fabio("state", "--json")
    assert result.code == 0, result.err
    listing = json.loads(result.out)
    assert listing["symbols"] == ["ESH4", "NQH4"]
    for sym, state in listing["states"].items():
        assert state["symbol"] == sym and state["records_applied"] > 0
    human = fabio("state")
    assert human.code == 0, human.err
    assert "ESH4" in human.out and "NQH4" in human.out
    assert "0.005" in human.out and "0.004" in human.out
    one = fabio("state", "--symbol", "NQH4", "--json")
    assert json.loads(one.out)["symbol"] == "NQH4"


# ------------------------------------------------------------- conveniences


def test_version(fabio) -> None:  # type: ignore[no-untyped-def]
    from importlib.metadata import version

    result = fabio("--version")
    assert result.code == 0 and result.out.strip() == f"fabio {version('fabio')}"


def test_config_shows_effective_settings_their_source_and_masks_secrets(  # type: ignore[no-untyped-def]
    fabio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(
        "SYMBOL=NQZ5\nLOGS_DIR=journals\nTOPSTEP_PASSWORD=hunter2-secret\n"
    )
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-abcdefghijklmnop")
    result = fabio("config", "--json")
    assert result.code == 0, result.err
    rows = {r["variable"]: r for r in json.loads(result.out)["settings"]}
    assert rows["SYMBOL"] == {"variable": "SYMBOL", "value": "NQZ5", "source": ".env"}
    assert rows["LOGS_DIR"] == {"variable": "LOGS_DIR", "value": "journals", "source": ".env"}
    assert rows["OPENAI_API_KEY"]["source"] == "env"
    assert rows["OPENAI_API_KEY"]["value"] == rows["TOPSTEP_PASSWORD"]["value"] == "********"
    assert rows["MODE"]["source"] == "default"
    human = fabio("config")
    for text in (result.out, human.out):
        assert "sk-live" not in text and "hunter2" not in text
    assert "LOGS_DIR" in human.out and "journals" in human.out


def test_trades_exports_closed_trades_from_the_journal(fabio, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    ran = fabio("backtest", "--days", "3", "--log-dir", "bt", "--json")
    assert ran.code == 0, ran.err
    summary = json.loads(ran.out)
    assert summary["trades"] > 0
    frames = {}
    for name in ("t.csv", "t.parquet", "t.json"):
        result = fabio("trades", "--log-dir", "bt", "--out", name, "--json")
        assert result.code == 0, result.err
        assert json.loads(result.out)["trades"] == summary["trades"]
    frames["csv"] = pd.read_csv(tmp_path / "t.csv")
    frames["parquet"] = pd.read_parquet(tmp_path / "t.parquet")
    frames["json"] = pd.DataFrame(json.loads((tmp_path / "t.json").read_text()))
    for fmt, frame in frames.items():
        assert len(frame) == summary["trades"], fmt
        assert round(frame["net_pnl_usd"].sum(), 2) == summary["net_pnl_usd"], fmt
        assert {"trade_id", "strategy", "entry_time", "exit_price"} <= set(frame.columns)
    one_line_error(fabio("trades", "--log-dir", "bt", "--out", "t.xlsx"), "--format")
    one_line_error(fabio("trades", "--log-dir", "nowhere", "--out", "t.csv"), "no such journal")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("90", 90),
        ("2 hours", 7200),
    ],
)
def test_duration_is_read_by_a_kept_library(text: str, seconds: float) -> None:
    assert cli._duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-5m", "0", "nan", "1e999"])
def test_a_bad_duration_is_a_one_line_error(fabio, text: str) -> None:  # type: ignore[no-untyped-def]
    one_line_error(fabio("run", "--duration", text, "--quiet"), "--duration")


# ------------------------------------------------------------- issue 22: refuse, never destroy


@pytest.mark.parametrize(
    ("name", "content"),
    [
        (".bashrc", b"export PATH=$HOME/bin:$PATH\nalias ll='ls -l'\n\nalias x=y\n"),
        ("bars.csv", bytes(range(256)) * 8 + b"\n" + bytes(range(256)) + b"\n\n"),
        ("other.jsonl", b'{"a": 1}\nnot json\n{"b": 2}\n'),
    ],
)
def test_journal_repair_refuses_a_file_that_is_not_a_fabio_journal(  # type: ignore[no-untyped-def]
    fabio, tmp_path: Path, name: str, content: bytes
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    target = home / name
    target.write_bytes(content)
    result = fabio("journal-repair", str(target))
    one_line_error(result, "not a Fabio journal", "nothing was changed")
    assert len(result.err.strip().splitlines()) == 1
    assert target.read_bytes() == content
    assert sorted(p.name for p in home.iterdir()) == [name]  # no fabio.lock, .bak, .corrupt


def test_journal_repair_still_repairs_a_fabio_journal(fabio, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    logs = tmp_path / "logs"
    logs.mkdir()
    good = '{"type":"session","schema_version":1,"ts_ns":1,"symbol":"ESH4","event":"start"}'
    (logs / "execution.jsonl").write_text(f"{good}\ngarbage\n{good}\n")
    result = fabio("journal-repair")
    assert result.code == 0, result.err
    assert "moved 1 unreadable line(s) (2)" in " ".join(result.out.split())
    assert (logs / "execution.jsonl").read_text() == f"{good}\n{good}\n"


def test_gateway_sim_on_a_busy_port_is_one_line(fabio) -> None:  # type: ignore[no-untyped-def]
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = fabio("gateway-sim", "--port", str(port), "--days", "1")
    one_line_error(result, "the simulator cannot listen on", str(port), "in use")
    assert len(result.err.strip().splitlines()) == 1, result.err


# ------------------------------------------------ issue 22: backtest says what it skipped


def write_trades_with_nan(path: Path, n: int = 3000) -> Path:
    """`n` ES trades in the RTH of 2024-01-02, one in three with a NaN price."""
    start = 1704205800_000_000_000  # 2024-01-02 08:30 CT
    rows = ["ts,price,size,side"]
    for i in range(n):
        price = "nan" if i % 3 == 0 else f"{4800 + (i % 7) * 0.25:.2f}"
        rows.append(f"{start + i * 5_000_000_000},{price},1,{'A' if i % 2 else 'B'}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_backtest_reports_skipped_rows_and_progress_when_piped(fabio, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = str(write_trades_with_nan(tmp_path / "es.csv"))
    result = fabio("backtest", data, "--symbol", "ESH4", "--log-dir", "bt", "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["skipped_rows"] == 1000
    assert summary["skipped_by_reason"] == {"price is NaN or infinite": 1000}
    assert "skipped 1000" in result.flat_err and "NaN" in result.flat_err
    # stderr is not a terminal here: progress is a plain line per trade date
    assert "backtest: es.csv trade date 2024-01-02" in result.flat_err
    human = fabio("backtest", data, "--symbol", "ESH4", "--log-dir", "bt2")
    assert human.code == 0, human.err
    assert "skipped 1000" in human.flat_err and "trade date 2024-01-02" in human.flat_err
    assert "━" not in human.err  # no progress bar drawn into a pipe


def test_backtest_of_clean_data_reports_no_skipped_rows(fabio) -> None:  # type: ignore[no-untyped-def]
    result = fabio("backtest", "--days", "1", "--log-dir", "bt", "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["skipped_rows"] == 0 and summary["skipped_by_reason"] == {}


# ------------------------------------------------ issue 22: synth files name their contract


@pytest.mark.parametrize("name", ["nq.csv", "nq.csv.gz", "nq.parquet"])
def test_a_synth_file_is_read_back_without_symbol(fabio, tmp_path: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    made = fabio("synth", "--symbol", "NQ", "--days", "1", "--out", name, "--json")
    assert made.code == 0, made.err
    for command in (("profile", name, "--json"), ("features", name, "--json")):
        result = fabio(*command)
        assert result.code == 0, result.err
        assert json.loads(result.out)["symbol"] == "NQH4"
    clash = fabio("profile", name, "--symbol", "ESH4", "--json")
    one_line_error(clash, "--force-symbol")


def test_a_csv_comment_line_keeps_line_numbers_true(tmp_path: Path) -> None:
    from fabio.data import open_feed

    path = tmp_path / "t.csv"
    path.write_text(
        "# fabio.symbol=ESH4\nts,price,size,side\n"
        "1704205800000000000,4800.00,1,B\n1704205801000000000,nan,1,A\n"
        "1704205802000000000,4800.25,1,A\n"
    )
    feed = open_feed(path)
    assert feed.contract.symbol == "ESH4"
    assert sum(len(b.trades) for b in feed.batches()) == 2
    assert feed.report.examples == {"price is NaN or infinite": "line 4"}


def test_regime_out_writes_the_minutes_to_the_file_not_the_terminal(fabio, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    made = fabio("synth", "--symbol", "NQ", "--days", "2", "--out", "nq.parquet", "--json")
    assert made.code == 0, made.err
    result = fabio("regime", "nq.parquet", "--warmup", "1", "--out", "timeline.csv")
    assert result.code == 0, result.err
    assert len((tmp_path / "timeline.csv").read_text().splitlines()) == 391
    assert "Regime changes" not in result.out and "regime changes: see" in result.out
    assert len(result.out.splitlines()) < 20, result.out
    on_screen = fabio("regime", "nq.parquet", "--warmup", "1")
    assert "Regime changes" in on_screen.out


# ------------------------------------------------ issue 22: machine output is plain


def dead_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once closed


def test_run_json_carries_no_markup_when_the_llm_breaker_is_open(  # type: ignore[no-untyped-def]
    fabio, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{dead_port()}/v1")
    result = fabio("run", "--duration", "30m", "--speed", "100000", "--quiet", "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["brain"].startswith("llm")
    status = summary["llm_status"]
    assert "breaker open" in status and "[" not in status, status
    for text in result.out.split('"'):
        assert not any(tag in text for tag in ("[red]", "[/]", "[yellow]", "[bold")), text


def test_help_text_loses_nothing_to_rich_markup() -> None:
    """`fabio[ray]` in a help string was printed as `fabio` (rich took `[ray]` for a tag)."""
    import typer
    from rich.text import Text

    root = typer.main.get_command(cli.app)
    texts = []
    for command in root.commands.values():  # type: ignore[attr-defined]
        texts.append(command.help or "")
        texts += [getattr(p, "help", None) or "" for p in command.params]
    for text in texts:
        assert Text.from_markup(text).plain == text.replace("\\[", "["), text
    assert any("fabio\\[ray]" in t for t in texts)


def test_state_is_readable_at_80_columns_when_piped(fabio, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ran = fabio("backtest", "--days", "1", "--log-dir", "bt", "--json")
    assert ran.code == 0, ran.err
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "execution.jsonl").write_text(
        (tmp_path / "bt" / "execution.jsonl").read_text()
    )
    assert cli.out.width == 80 and not cli.out.is_terminal  # as `fabio state | less`
    result = fabio("state")
    assert result.code == 0, result.err
    assert "…" not in result.out, result.out  # nothing cut to "stra…"
    assert all(len(line.rstrip()) <= 80 for line in result.out.splitlines()), result.out
    for name in ("MeanReversionPOC_v2", "TrendLVN_Pullback_v1", "AbsorptionFade_v1"):
        assert name in result.out
    assert "day_started_ns" in result.out and "2024-01-02 08:30:00.000 CST" in result.out
    assert "1,704," not in result.out  # a time, not nanoseconds
    as_json = json.loads(fabio("state", "--symbol", "ESH4", "--json").out)
    assert isinstance(as_json["risk"]["day_started_ns"], int)  # machines still get ns


def test_backtest_tables_are_readable_at_80_columns_when_piped(fabio) -> None:  # type: ignore[no-untyped-def]
    result = fabio("backtest", "--days", "2", "--log-dir", "bt")
    assert result.code == 0, result.err
    assert "Per strategy" in result.out
    assert "…" not in result.out, result.out  # no "Absorption…", "profit_fa…"
    assert all(len(line.rstrip()) <= 80 for line in result.out.splitlines()), result.out
    assert "TrendLVN_Pullback_v1" in result.out
