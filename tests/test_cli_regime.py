"""`fabio regime` and `fabio synth --generator msv`, run as a user would run them."""

from __future__ import annotations

import csv
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
def msv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Generator 2 written as a user's CSV: ISO-8601 UTC ts, side B/S, labels ts,regime."""
    d = tmp_path_factory.mktemp("msv")
    out = d / "nq.csv"
    res = run("synth", "--generator", "msv", "--days", "3", "--seed", "9", "--out", str(out),
              "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["generator"].startswith("fabio.synthetic-msv") and summary["sessions"] == 3
    assert summary["symbol"].startswith("NQ")
    import pandas as pd

    trades = pd.read_csv(out, comment="#")  # `# fabio.symbol=NQH4` opens the file
    user = d / "trades.csv"
    pd.DataFrame({
        "ts": pd.to_datetime(trades["ts"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "price": trades["price"], "size": trades["size"],
        "side": trades["side"].map({"B": "B", "A": "S"}),
    }).to_csv(user, index=False)  # fmt: skip
    labels = pd.read_csv(summary["labels"])
    lab = d / "labels.csv"
    pd.DataFrame({
        "ts": pd.to_datetime(labels["minute_start_ts"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "regime": labels["regime"],
    }).to_csv(lab, index=False)  # fmt: skip
    return user, lab


def test_regime_timeline_and_score(msv: tuple[Path, Path], tmp_path: Path) -> None:
    data, labels = msv
    timeline = tmp_path / "timeline.csv"
    res = run("regime", str(data), "--symbol", "NQH4", "--labels", str(labels), "--warmup", "1",
              "--out", str(timeline), "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout)
    assert rep["sessions"] == 2 and rep["minutes"] == 780
    assert rep["warmup_sessions"] == ["2024-01-02"]
    score = rep["score"]
    assert score["minutes"] == 780 and score["unlabelled_minutes"] == 0
    assert 0.34 < score["balanced_accuracy"] <= 1
    assert set(score["recall"]) == {"trend", "range", "chop"}
    assert len(score["confusion"]) == 3 and sum(map(sum, score["confusion"])) == 780
    rows = list(csv.DictReader(timeline.open()))
    assert len(rows) == 780
    assert rows[0]["ts"] == "2024-01-03T14:30:00Z"
    assert rows[0]["regime"] in ("trend", "range", "chop")
    assert set(rows[0]) >= {"ts", "trade_date", "regime", "confidence", "price"}

    human = run("regime", str(data), "--symbol", "NQH4", "--labels", str(labels))
    assert human.returncode == 0, human.stderr
    assert "balanced_accuracy" in human.stdout and "Regime changes" in human.stdout
    stdout_csv = run("regime", str(data), "--symbol", "NQH4", "--out", "-")
    assert stdout_csv.returncode == 0 and stdout_csv.stdout.startswith("ts,trade_date,regime")
    assert len(stdout_csv.stdout.splitlines()) == 3 * 390 + 1


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no such file"),
        ("garbage", "error:"),
        ("bad_labels", "regime 'up' is not trend, range or chop"),
        ("warmup", "all inside --warmup 5"),
    ],
)
def test_bad_inputs_are_one_line_errors(
    msv: tuple[Path, Path], tmp_path: Path, setup: str, message: str
) -> None:
    data, _ = msv
    args = [str(data), "--symbol", "NQH4"]
    if setup == "missing":
        args[0] = str(tmp_path / "nope.csv")
    elif setup == "garbage":
        bad = tmp_path / "bad.csv"
        bad.write_bytes(b"\x00\x01garbage\xff" * 10)
        args[0] = str(bad)
    elif setup == "bad_labels":
        bad = tmp_path / "labels.csv"
        bad.write_text("ts,regime\n2024-01-03T14:30:00Z,up\n")
        args += ["--labels", str(bad)]
    else:
        args += ["--warmup", "5"]
    res = run("regime", *args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert message in " ".join(res.stderr.split())  # rich wraps long lines at 80 columns
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) <= 8  # the message (the format list may follow)


def test_synth_rejects_an_unknown_generator(tmp_path: Path) -> None:
    res = run("synth", "--generator", "garch", "--out", str(tmp_path / "x.csv"))
    assert res.returncode == 2 and "expected synthetic or msv" in res.stderr
