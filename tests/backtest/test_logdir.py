"""`--log-dir` never deletes a folder a backtest did not write (issue 13, item 0)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fabio.backtest.logdir import MARKER, claim_backtest_dir
from fabio.errors import FabioError


def test_a_users_folder_is_refused_and_kept(tmp_path: Path) -> None:
    (tmp_path / "thesis.docx").write_text("years of work")
    (tmp_path / "execution.jsonl").write_text("{}\n")
    with pytest.raises(FabioError, match="nothing was deleted"):
        claim_backtest_dir(tmp_path)
    assert (tmp_path / "thesis.docx").read_text() == "years of work"
    assert (tmp_path / "execution.jsonl").exists()


def test_the_paper_journal_is_never_claimed(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    with pytest.raises(FabioError, match="paper/live journal"):
        claim_backtest_dir(logs, protected=logs)
    with pytest.raises(FabioError, match="paper/live journal"):
        claim_backtest_dir(tmp_path / "logs" / ".." / "logs", protected=logs)


def test_a_new_or_empty_folder_is_claimed(tmp_path: Path) -> None:
    claim_backtest_dir(tmp_path / "new" / "bt")
    assert (tmp_path / "new" / "bt" / MARKER).is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    claim_backtest_dir(empty)
    assert (empty / MARKER).is_file()


def test_a_rerun_replaces_only_its_own_journals(tmp_path: Path) -> None:
    claim_backtest_dir(tmp_path)
    (tmp_path / "execution.jsonl").write_text("old\n")
    (tmp_path / "llm_exchanges.jsonl").write_text("old\n")
    (tmp_path / "jobs").mkdir()
    (tmp_path / "report.html").write_text("the user's report")
    claim_backtest_dir(tmp_path)
    assert not (tmp_path / "execution.jsonl").exists()
    assert not (tmp_path / "llm_exchanges.jsonl").exists()
    assert not (tmp_path / "jobs").exists()
    assert (tmp_path / "report.html").read_text() == "the user's report"


def test_a_file_is_not_a_folder(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(FabioError, match="not a folder"):
        claim_backtest_dir(f)


def test_a_rerun_keeps_a_users_files_under_results_and_jobs(tmp_path: Path) -> None:
    """Issue 22: a rerun deleted everything under results/ (rmtree), a user's file with it."""
    claim_backtest_dir(tmp_path)
    job = tmp_path / "jobs" / "a.parquet"
    claim_backtest_dir(job)  # a sweep's job folder, as run_backtest claims it
    (job / "execution.jsonl").write_text("old\n")
    results = tmp_path / "results"
    results.mkdir()
    for name in ("a.parquet.json", "a.parquet.learning.json"):
        (results / name).write_text("{}")
    (results / "my_analysis.json").write_text("the user's")
    (results / "b.parquet.json").write_text("no job of ours wrote it")
    (tmp_path / "jobs" / "notes").mkdir()
    (tmp_path / "jobs" / "notes" / "todo.txt").write_text("the user's")
    claim_backtest_dir(tmp_path)
    assert not job.exists()
    assert not (results / "a.parquet.json").exists()
    assert not (results / "a.parquet.learning.json").exists()
    assert (results / "my_analysis.json").read_text() == "the user's"
    assert (results / "b.parquet.json").exists()
    assert (tmp_path / "jobs" / "notes" / "todo.txt").read_text() == "the user's"
