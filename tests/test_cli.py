"""End-to-end tests of the `fabio` command, run as a user would run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FABIO = [sys.executable, "-c", "from fabio.cli import main; main()"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FABIO, *args], capture_output=True, text=True, timeout=300, cwd=cwd, check=False
    )


@pytest.fixture(scope="module")
def synth_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "nq.parquet"
    result = run(
        "synth", "--symbol", "NQ", "--days", "7", "--seed", "3", "--out", str(out), "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["sessions"] == 7
    assert out.exists() and Path(summary["labels"]).exists()
    return out


def test_synth_features_and_profile_round_trip(synth_file: Path, tmp_path: Path) -> None:
    result = run("features", str(synth_file), "--at", "2024-01-10 10:15", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    snap = json.loads(result.stdout)
    assert snap["symbol"].startswith("NQ")
    assert snap["session"]["trade_date"] == "2024-01-10"
    assert snap["session"]["minutes_into_session"] == 105.0
    for key in (
        "session_range_ticks",
        "session_range_percentile",
        "distance_to_poc_ticks",
        "time_above_value_sec",
        "time_below_value_sec",
        "time_in_value_sec",
        "cvd_slope_5min",
        "cvd_slope_15min",
    ):
        assert key in snap["market_stats"]
    assert set(snap["poc_cross_stats"]) == {
        "count_last_5min",
        "count_last_15min",
        "count_last_30min",
        "time_since_last_cross_sec",
        "current_side",
    }
    assert snap["market_stats"]["sessions_in_percentile"] == 6

    prof = run("profile", str(synth_file), "--session", "2024-01-10", "--json", cwd=tmp_path)
    assert prof.returncode == 0, prof.stderr
    p = json.loads(prof.stdout)
    assert p["trade_date"] == "2024-01-10"
    assert p["val"] <= p["poc"] <= p["vah"]
    assert p["low"] <= p["val"] and p["vah"] <= p["high"]
    assert p["cvd"] == p["buy_volume"] - p["sell_volume"]
    # The same moment's snapshot and the whole-session profile agree at the session's end.
    end = run("features", str(synth_file), "--at", "2024-01-10 15:00", "--json", cwd=tmp_path)
    snap_end = json.loads(end.stdout)
    assert snap_end["profile"]["poc"] == p["poc"]
    assert snap_end["profile"]["volume"] == p["volume"]

    human = run("profile", str(synth_file), "--va-rows", "1", "--va-pct", "68", cwd=tmp_path)
    assert human.returncode == 0 and "1-row rule" in human.stdout and "68%" in human.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("features", "/no/such/file.csv"), "no such file"),
        (("profile", "/no/such/file.dbn"), "no such file"),
        (("features", "--at", "yesterday-ish"), "cannot read the time"),
        (("profile", "PLACEHOLDER", "--session", "2024-13-01"), "expected a date"),
        (("profile", "PLACEHOLDER", "--session", "2024-01-06"), "not a CME trading day"),
        (("profile", "PLACEHOLDER", "--va-rows", "4"), "1, 2 or 3"),
        (("synth", "--symbol", "CL", "--out", "x.parquet"), "CL"),
    ],
)
def test_errors_are_one_clear_line(
    args: tuple[str, ...], message: str, synth_file: Path, tmp_path: Path
) -> None:
    args = tuple(str(synth_file) if a == "PLACEHOLDER" else a for a in args)
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_bad_environment_is_reported(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LLM_DECISION_INTERVAL_DEFAULT=soon\n")
    result = run("profile", "/no/file.csv", cwd=tmp_path)
    assert result.returncode == 2
    assert "LLM_DECISION_INTERVAL_DEFAULT" in result.stderr


def test_real_dbn_hour(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "databento" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"
    result = run("profile", str(path), "--eth", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    p = json.loads(result.stdout)
    assert p["symbol"] == "ESH4" and p["trade_date"] == "2023-12-26" and p["trades"] == 2973
    feat = run("features", str(path), "--eth", "--at", "2023-12-25 17:30", cwd=tmp_path)
    assert feat.returncode == 0, feat.stderr
    assert "market_stats" in feat.stdout and "poc_cross_stats" in feat.stdout


def test_state_and_kill_switch(tmp_path: Path) -> None:
    empty = run("state", "--symbol", "ESH4", "--json", cwd=tmp_path)
    assert empty.returncode == 0, empty.stderr
    state = json.loads(empty.stdout)
    assert state["closed_trades"] == 0
    assert set(state["strategy_state"]) == {
        "MeanReversionPOC_v2",
        "TrendLVN_Pullback_v1",
        "AbsorptionFade_v1",
    }
    assert state["kill_switch"]["engaged"] is False
    killed = run("kill", "--reason", "test stop", cwd=tmp_path)
    assert killed.returncode == 0, killed.stderr
    journal = tmp_path / "logs" / "execution.jsonl"
    record = json.loads(journal.read_text().splitlines()[-1])
    assert record["type"] == "kill_switch" and record["engaged"] is True
    assert record["source"] == "cli" and record["reason"] == "test stop"
    assert record["schema_version"] >= 1 and record["ts_ns"] > 0
    before = journal.read_bytes()
    engaged = json.loads(run("state", "--symbol", "ESH4", "--json", cwd=tmp_path).stdout)
    assert engaged["kill_switch"]["engaged"] is True
    assert engaged["kill_switch"]["reason"] == "test stop"
    human = run("state", "--symbol", "ESH4", cwd=tmp_path)
    assert human.returncode == 0 and "KILL SWITCH ENGAGED" in human.stdout
    assert "killed" in human.stdout
    assert journal.read_bytes() == before  # `fabio state` never writes
    released = run("kill", "--release", cwd=tmp_path)
    assert released.returncode == 0, released.stderr
    after = json.loads(run("state", "--symbol", "ESH4", "--json", cwd=tmp_path).stdout)
    assert after["kill_switch"]["engaged"] is False
    human = run("state", "--symbol", "ESH4", cwd=tmp_path)
    assert human.returncode == 0 and "strategy_state" in human.stdout
    assert "KILL SWITCH" not in human.stdout


def test_backtest_cli_synthetic_and_sweep_resume(tmp_path: Path) -> None:
    result = run("backtest", "--days", "2", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["decisions"] > 0 and summary["rule_breaches"] == []
    for name, seed in (("a", "1"), ("b", "2")):
        made = run("synth", "--days", "2", "--seed", seed, "--out", f"{name}.parquet", cwd=tmp_path)
        assert made.returncode == 0, made.stderr
    files = [str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")]
    sweep = run("backtest", *files, "--accounts", "per-file", "--jobs", "2", "--json", cwd=tmp_path)
    assert sweep.returncode == 0, sweep.stderr
    merged = json.loads(sweep.stdout)
    results = tmp_path / "logs" / "backtest" / "results"
    assert sorted(p.name for p in results.glob("*.parquet.json")) == [
        "a.parquet.json",
        "b.parquet.json",
    ]
    (results / "b.parquet.json").unlink()  # as if interrupted before b finished
    again = run("backtest", *files, "--accounts", "per-file", "--jobs", "2", "--json", cwd=tmp_path)
    assert json.loads(again.stdout)["trades"] == merged["trades"]
    bad = run("backtest", "--from", "yesterday", cwd=tmp_path)
    assert bad.returncode == 2 and "expected a date" in bad.stderr


def test_backtest_log_dir_dot_deletes_nothing(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = run("backtest", "--days", "6", "--log-dir", ".", "--json", cwd=tmp_path)
    assert result.returncode == 2
    assert "nothing was deleted" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "KILL").write_text("halt")
    refused = run("backtest", "--days", "6", "--log-dir", "logs", "--json", cwd=tmp_path)
    assert refused.returncode == 2 and "paper/live journal" in refused.stderr
    assert (logs / "KILL").exists()


def test_new_account_then_state_shows_a_fresh_balance_with_the_learning(tmp_path: Path) -> None:
    from fabio.backtest.runner import run_backtest
    from fabio.brain.rules import RuleBrain
    from fabio.data.synthetic import SyntheticConfig, SyntheticFeed
    from fabio.runlock import RunLock

    logs = tmp_path / "logs"
    feed = SyntheticFeed(SyntheticConfig(symbol="ES", days=2, seed=3, eth=False))
    result = run_backtest([feed], RuleBrain(), logs)
    symbol = result.symbol
    before = json.loads(run("state", "--symbol", symbol, "--json", cwd=tmp_path).stdout)
    with RunLock(logs):
        held = run("new-account", cwd=tmp_path)
    assert held.returncode != 0 and "already trading" in held.stderr
    assert not (logs / "accounts").exists()
    made = run("new-account", "--json", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    done = json.loads(made.stdout)
    assert (tmp_path / done["archive"]).is_dir() and done["symbols"] == [symbol]
    after = json.loads(run("state", "--symbol", symbol, "--json", cwd=tmp_path).stdout)
    assert after["closed_trades"] == 0 and after["net_pnl_usd"] == 0
    account = after["risk"]["account"]
    assert account["balance"] == account["starting_balance"] == 50_000
    assert before["risk"]["account"]["balance"] != 50_000  # the old account had traded
    assert after["strategy_state"] == before["strategy_state"]
    for name, perf in before["strategy_performance"].items():
        assert after["strategy_performance"][name]["trades"] == perf["trades"]
    human = run("new-account", cwd=tmp_path)
    assert human.returncode == 0 and "archived in" in human.stdout


def readme_first_command() -> list[str]:
    """The `fabio …` part of the README's first command (install, then the main job)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("```bash", 1)[1].split("```", 1)[0]
    first = next(line for line in block.splitlines() if line and not line.startswith("#"))
    part = first.split("&&")[-1].split()
    assert part[0] == "fabio", first
    return part[1:]


def test_readme_first_command_paper_trades_a_session_offline_and_piped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A newcomer's first command runs the main job: a paper session ending with its summary."""
    args = readme_first_command()
    assert args[:1] == ["run"], args
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "MODE", "LOGS_DIR", "LOG_DIR", "SYMBOL"):
        monkeypatch.delenv(name, raising=False)
    # offline: any network use fails at once instead of reaching out
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    result = run(*args, cwd=tmp_path)  # stdout is a pipe: no terminal
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Paper session"), result.stdout  # the summary only, not glued
    body = " ".join(result.stdout.replace("│", " ").split())
    assert "brain rules" in body and "trading_state active" in body
    assert "decisions" in body and "net_pnl_usd" in body
    assert (tmp_path / "logs" / "execution.jsonl").is_file()
