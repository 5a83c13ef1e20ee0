"""`fabio.brain.regime_timeline`: the per-minute regime timeline, labels and scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fabio.brain.regime_timeline import (
    Labels,
    by_since,
    minutes_since_switch,
    read_labels,
    regime_timeline,
    score_timeline,
    scores,
)
from fabio.data.synthetic import SyntheticConfig, SyntheticFeed
from fabio.errors import DataError
from fabio.timeutil import NS_PER_MIN


@pytest.fixture(scope="module")
def feed() -> SyntheticFeed:
    return SyntheticFeed(SyntheticConfig(days=3, seed=4, eth=True, rth_trades=60_000))


def test_one_row_per_rth_minute_after_the_warmup(feed: SyntheticFeed) -> None:
    tl = regime_timeline(feed, warmup_sessions=1)
    assert tl.warmup_dates == ["2024-01-02"]
    dates = sorted(set(tl.trade_date))
    assert dates == ["2024-01-03", "2024-01-04"]
    for d in dates:
        minutes = [t for t, dd in zip(tl.minute_ts, tl.trade_date, strict=True) if dd == d]
        assert len(minutes) == 390  # 08:30-15:00 CT, every minute, ETH trades ignored
        assert np.all(np.diff(minutes) == NS_PER_MIN)
    assert set(tl.regime) <= {"trend", "range", "chop"}
    assert all(0.05 <= c <= 0.95 for c in tl.confidence)


def test_scored_against_the_generators_labels(feed: SyntheticFeed) -> None:
    tl = regime_timeline(feed, warmup_sessions=1)
    lab = feed.labels
    res = score_timeline(tl, Labels(lab.minute_ts.astype(np.int64), lab.regime.astype(np.int64)))
    assert res["minutes"] == 780 and res["unlabelled_minutes"] == 0
    assert np.asarray(res["confusion"]).sum() == 780
    assert 0.34 < res["balanced_accuracy"] <= 1.0  # better than chance on its own market
    assert set(res["by_minutes_since_switch"]) >= {"0-5", "15+"}


def test_scores_and_since_switch() -> None:
    truth = np.array([0, 0, 1, 1, 1, 2, 2, 2], dtype=np.int64)
    pred = np.array([0, 1, 1, 1, 2, 2, 2, 0], dtype=np.int64)
    s = scores(truth, pred)
    assert s["recall"] == {"trend": 0.5, "range": 2 / 3, "chop": 2 / 3}
    assert s["balanced_accuracy"] == pytest.approx((0.5 + 2 / 3 + 2 / 3) / 3)
    assert s["confusion"] == [[1, 1, 0], [0, 2, 1], [1, 0, 2]]
    sess = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=np.int64)
    assert minutes_since_switch(truth, sess).tolist() == [0, 1, 0, 1, 0, 0, 1, 2]
    b = by_since(truth, pred, minutes_since_switch(truth, sess))
    assert b["0-5"]["share"] == 1.0 and b["15+"]["balanced_accuracy"] is None
    # a class absent from the truth does not count in the balanced accuracy
    only = scores(np.array([0, 0]), np.array([0, 1]))
    assert only["balanced_accuracy"] == 0.5 and only["recall"]["chop"] is None


def test_read_labels_formats(tmp_path: Path) -> None:
    p = tmp_path / "l.csv"
    p.write_text(
        "ts,regime\n2024-01-03T14:30:00Z,trend\n2024-01-03T08:31:00-06:00,Range\n"
        "1704292320000000000,chop\n\n",
        encoding="utf-8",
    )
    lab = read_labels(p)
    assert lab.regime.tolist() == [0, 1, 2]
    assert lab.minute_ts[1] - lab.minute_ts[0] == NS_PER_MIN
    gen = tmp_path / "g.labels.csv"
    gen.write_text("minute_start_ts,minute_start_ct,trade_date,regime\n"
                   "1704292200000000000,2024-01-03 08:30,2024-01-03,range\n")  # fmt: skip
    assert read_labels(gen).regime.tolist() == [1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("time_x,label\n1,trend\n", "need the columns ts, regime"),
        ("ts,regime\n2024-01-03T14:30:00Z,sideways\n", ":2: regime 'sideways'"),
        ("ts,regime\nyesterday,trend\n", ":2: bad ts 'yesterday'"),
        ("ts,regime\n2024-01-03T14:30:00,trend\n", "needs a UTC offset"),
        ("ts,regime\n2024-01-03T14:30:00Z\n", ":2: expected 2 columns"),
        ("ts,regime\n", "no labels"),
        ("ts,regime\n2024-01-03T14:30:00Z,trend\n2024-01-03T14:30:20Z,chop\n", "labelled twice"),
    ],
)
def test_bad_labels_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message) as exc:
        read_labels(p)
    assert "\n" not in str(exc.value)


def test_labels_of_another_market_do_not_score(feed: SyntheticFeed) -> None:
    tl = regime_timeline(feed, warmup_sessions=2)
    far = Labels(np.array([0, NS_PER_MIN], dtype=np.int64), np.array([0, 1], dtype=np.int64))
    with pytest.raises(DataError, match="no timeline minute has a label"):
        score_timeline(tl, far)
