"""Backtests on either synthetic generator are labelled synthetic."""

from __future__ import annotations


def test_both_generators_are_labelled_synthetic() -> None:
    from fabio.backtest.runner import is_synthetic, label_data_source
    from fabio.data.synthetic_msv import MsvConfig, MsvFeed

    msv = MsvFeed(MsvConfig(days=1, seed=1))
    assert is_synthetic([msv.report.source])
    assert label_data_source({}, [msv.report.source])["data_source"] == "synthetic"
    assert not is_synthetic(["/data/ESH4.dbn"])
