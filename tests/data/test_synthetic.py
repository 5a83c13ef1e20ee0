"""The synthetic market: determinism, tape invariants, regime labels, files, calibration."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from fabio.data.base import MarketFeed
from fabio.data.synthetic import (
    REGIME_NAMES,
    Regime,
    RegimeLabels,
    SyntheticConfig,
    SyntheticFeed,
    SyntheticSession,
    _day_volatility,
    front_contract,
    generate_session,
    iter_sessions,
    write_synthetic,
)
from fabio.errors import ConfigError
from fabio.sessions import SessionKind, cme_calendar
from fabio.timeutil import NS_PER_MIN, format_ns

REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
COLUMNS = ["ts", "price", "size", "side", "bid", "ask", "bid_size", "ask_size"]


@pytest.fixture(scope="module")
def small() -> SyntheticSession:
    return generate_session(SyntheticConfig(seed=11, rth_trades=40_000))


@pytest.fixture(scope="module")
def ten_rth() -> list[SyntheticSession]:
    """Ten RTH sessions, busy enough for 10-minute imbalance to be measured cleanly."""
    return list(iter_sessions(SyntheticConfig(days=10, seed=3, rth_trades=100_000, eth=False)))


def _same(a: SyntheticSession, b: SyntheticSession) -> bool:
    pairs: list[tuple[np.ndarray, np.ndarray]] = [
        (a.trades.ts, b.trades.ts),
        (a.trades.price, b.trades.price),
        (a.trades.size, b.trades.size),
        (a.trades.side, b.trades.side),
        (a.quotes.bid, b.quotes.bid),
        (a.quotes.ask_size, b.quotes.ask_size),
        (a.labels.minute_ts, b.labels.minute_ts),
        (a.labels.regime, b.labels.regime),
    ]
    return all(x.shape == y.shape and np.array_equal(x, y) for x, y in pairs)


def test_same_seed_same_arrays_and_different_seed_differs(small: SyntheticSession) -> None:
    again = generate_session(SyntheticConfig(seed=11, rth_trades=40_000))
    other = generate_session(SyntheticConfig(seed=12, rth_trades=40_000))
    assert _same(small, again)
    assert not _same(small, other)


def test_sessions_do_not_depend_on_how_many_days_are_asked_for() -> None:
    short = list(iter_sessions(SyntheticConfig(days=2, seed=5, rth_trades=5_000)))
    long = list(iter_sessions(SyntheticConfig(days=3, seed=5, rth_trades=5_000)))
    assert all(_same(a, b) for a, b in zip(short, long[:2], strict=False))
    cfg = SyntheticConfig(seed=5)
    assert np.array_equal(_day_volatility(cfg, 5), _day_volatility(cfg, 300)[:5])


def test_tape_invariants(small: SyntheticSession) -> None:
    t, q = small.trades, small.quotes
    assert len(t) > 40_000
    assert np.all(np.diff(t.ts) >= 0)
    assert t.price.dtype == np.int64 and np.all(t.price > 0)
    assert t.size.dtype == np.int64 and np.all(t.size >= 1)
    assert set(np.unique(t.side).tolist()) == {-1, 1}
    assert not t.inferred.any()
    assert np.array_equal(q.ts, t.ts)
    assert np.all(q.ask - q.bid == 1)
    assert np.all(t.price[t.side > 0] == q.ask[t.side > 0])
    assert np.all(t.price[t.side < 0] == q.bid[t.side < 0])
    assert np.all(q.bid_size >= 1) and np.all(q.ask_size >= 1)
    buys = t.side > 0
    assert np.all(q.ask_size[buys] >= t.size[buys])


def test_size_distribution_is_heavy_tailed_like_es(small: SyntheticSession) -> None:
    s = small.trades.size
    assert 0.6 < np.mean(s == 1) < 0.8
    assert 1.4 < s.mean() < 2.5
    assert 6 <= np.percentile(s, 99) <= 40
    assert s.max() >= 50


def test_trades_only_inside_cme_session_hours() -> None:
    cal = cme_calendar()
    # Includes MLK day (early close 12:00 CT) and Good Friday 2024 (Globex closes 08:15 CT).
    for start, days in ((date(2024, 1, 12), 2), (date(2024, 3, 28), 2)):
        for eth in (True, False):
            cfg = SyntheticConfig(start=start, days=days, seed=1, rth_trades=5_000, eth=eth)
            for s in iter_sessions(cfg):
                idx = cal.index_on(s.session.trade_date)
                kind = SessionKind.ETH if eth else SessionKind.RTH
                assert np.all(cal.locate(s.trades.ts, kind) == idx)
    good_friday = generate_session(
        SyntheticConfig(start=date(2024, 3, 29), rth_trades=5_000, eth=False)
    )
    assert len(good_friday.trades) == 0 and len(good_friday.labels) == 0
    assert good_friday.labels.at(np.array([good_friday.session.eth_open_ns]))[0] == -1


def test_early_close_has_fewer_trades() -> None:
    cfg = SyntheticConfig(start=date(2024, 1, 12), days=2, seed=2, rth_trades=20_000)
    friday, mlk = iter_sessions(cfg)
    assert mlk.session.early_close and not friday.session.early_close
    assert len(mlk.trades) < 0.8 * len(friday.trades)


def test_labels_cover_every_minute_with_trades(small: SyntheticSession) -> None:
    minutes = np.unique(small.trades.ts - small.trades.ts % NS_PER_MIN)
    assert np.array_equal(small.labels.minute_ts, minutes)
    assert set(np.unique(small.labels.regime).tolist()) <= {int(r) for r in Regime}
    assert set(small.labels.names()) <= set(REGIME_NAMES)
    assert np.all(small.labels.at(small.trades.ts) >= 0)
    assert small.labels.at(np.array([small.trades.ts[0] - 3600 * 10**9]))[0] == -1


def test_all_regimes_appear_over_ten_sessions(ten_rth: list[SyntheticSession]) -> None:
    labels = RegimeLabels.concat([s.labels for s in ten_rth])
    by_regime = labels.minutes_by_regime()
    assert set(by_regime) == {"trend", "range", "chop"}
    assert all(n >= 200 for n in by_regime.values()), by_regime


def _window_stats(sessions: list[SyntheticSession], width: int = 10) -> dict[str, np.ndarray]:
    """|net aggressor volume / volume| and |price change| over pure-regime 10-minute windows."""
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in REGIME_NAMES}
    for s in sessions:
        t = s.trades
        minute = (t.ts - t.ts[0] + t.ts[0] % NS_PER_MIN) // NS_PER_MIN
        n = int(minute[-1]) + 1
        vol = np.bincount(minute, t.size, n)
        delta = np.bincount(minute, t.size * t.side, n)
        last = np.zeros(n, dtype=np.int64)
        last[minute] = t.price
        reg = s.labels.at(t.ts[0] - t.ts[0] % NS_PER_MIN + np.arange(n) * NS_PER_MIN)
        for a in range(0, n - width, width):
            w = reg[a : a + width]
            if w[0] >= 0 and np.all(w == w[0]) and vol[a : a + width].sum() > 0:
                imb = abs(delta[a : a + width].sum()) / vol[a : a + width].sum()
                move = abs(int(last[a + width - 1]) - int(last[a]))
                out[REGIME_NAMES[int(w[0])]].append((imb, move))
    return {k: np.array(v) for k, v in out.items()}


def test_regimes_are_distinguishable_from_the_tape(ten_rth: list[SyntheticSession]) -> None:
    stats = _window_stats(ten_rth)
    trend, rng, chop = stats["trend"], stats["range"], stats["chop"]
    assert len(trend) >= 20 and len(chop) >= 20 and len(rng) >= 20
    # Trend: sustained one-sided flow and drift; chop: flat flow, pinned price.
    assert trend[:, 0].mean() > 2.5 * chop[:, 0].mean()
    assert trend[:, 1].mean() > 3.0 * chop[:, 1].mean()
    assert np.median(trend[:, 0]) > 0.06 > np.median(chop[:, 0])
    # Range rotates: more movement than chop, less one-sided flow than trend.
    assert rng[:, 1].mean() > 1.5 * chop[:, 1].mean()
    assert trend[:, 0].mean() > 1.5 * rng[:, 0].mean()


def test_feed_is_a_market_feed_with_bounded_time_ordered_batches() -> None:
    cfg = SyntheticConfig(symbol="nq", days=2, seed=4, rth_trades=10_000)
    feed = SyntheticFeed(cfg, batch_rows=5_000)
    assert isinstance(feed, MarketFeed)
    assert feed.contract.symbol == "NQH4"
    batches = list(feed.batches())
    assert all(len(b.trades) <= 5_000 for b in batches)
    assert all(b.quotes is not None and len(b.quotes) == len(b.trades) for b in batches)
    ts = np.concatenate([b.trades.ts for b in batches])
    assert np.all(np.diff(ts) >= 0)
    assert feed.report.trades == len(ts) == feed.report.quotes
    sessions = list(iter_sessions(cfg))
    assert len(ts) == sum(len(s.trades) for s in sessions)
    assert np.array_equal(
        feed.labels.minute_ts, np.concatenate([s.labels.minute_ts for s in sessions])
    )
    assert np.array_equal(SyntheticFeed(cfg).labels.regime, feed.labels.regime)
    # Sessions chain: the second opens near the first's close, not at a fixed level.
    assert abs(sessions[1].open_ticks - sessions[0].close_ticks) < 200


def test_config_validation() -> None:
    assert SyntheticConfig(symbol=" mes ").symbol == "MES"
    assert SyntheticConfig(symbol="MNQ").target_rth_trades > 0
    assert SyntheticConfig(symbol="NQZ5").symbol == "NQ"
    with pytest.raises(ValidationError):
        SyntheticConfig(symbol="CL")
    with pytest.raises(ConfigError, match="symbol"):
        write_synthetic(Path("unused.parquet"), "CL", 1, 1)
    with pytest.raises(ValidationError):
        SyntheticConfig(days=0)
    with pytest.raises(ConfigError):
        generate_session(SyntheticConfig(days=1), index=1)


@pytest.mark.parametrize(
    ("root", "day", "symbol"),
    [
        ("ES", date(2024, 1, 2), "ESH4"),
        ("ES", date(2024, 3, 8), "ESH4"),
        ("ES", date(2024, 3, 11), "ESM4"),
        ("MNQ", date(2024, 12, 20), "MNQH5"),
    ],
)
def test_front_contract(root: str, day: date, symbol: str) -> None:
    assert front_contract(root, day).symbol == symbol


def test_write_parquet_round_trip_and_byte_identical(tmp_path: Path) -> None:
    out = tmp_path / "es.parquet"
    summary = write_synthetic(out, "ES", 2, 9, rth_trades=5_000)
    again = write_synthetic(tmp_path / "again.parquet", "ES", 2, 9, rth_trades=5_000)
    other = write_synthetic(tmp_path / "other.parquet", "ES", 2, 10, rth_trades=5_000)
    assert out.read_bytes() == (tmp_path / "again.parquet").read_bytes()
    assert out.read_bytes() != (tmp_path / "other.parquet").read_bytes()
    assert Path(str(summary["labels"])).read_bytes() == Path(str(again["labels"])).read_bytes()
    assert (
        other["trades"] != summary["trades"] or other["regime_minutes"] != summary["regime_minutes"]
    )

    pf = pq.ParquetFile(out)
    meta = pf.metadata.metadata
    assert meta[b"fabio.symbol"] == b"ESH4"
    assert meta[b"fabio.seed"] == b"9"
    assert meta[b"fabio.generator"].startswith(b"fabio.synthetic")
    table = pf.read()
    assert table.column_names == COLUMNS
    types = {f.name: str(f.type) for f in table.schema}
    assert types == {
        "ts": "int64",
        "price": "double",
        "size": "int64",
        "side": "string",
        "bid": "double",
        "ask": "double",
        "bid_size": "int64",
        "ask_size": "int64",
    }
    assert table.num_rows == summary["trades"]
    assert summary["sessions"] == 2

    feed_trades = np.concatenate(
        [s.trades.price for s in iter_sessions(SyntheticConfig(days=2, seed=9, rth_trades=5_000))]
    )
    price = table["price"].to_numpy()
    assert np.array_equal(np.rint(price / 0.25).astype(np.int64), feed_trades)
    side = table["side"].to_pylist()
    assert set(side) == {"B", "A"}
    ask, bid = table["ask"].to_numpy(), table["bid"].to_numpy()
    is_buy = np.array(side) == "B"
    assert np.all(price[is_buy] == ask[is_buy]) and np.all(price[~is_buy] == bid[~is_buy])

    labels = (tmp_path / "es.labels.csv").read_text().splitlines()
    assert labels[0] == "minute_start_ts,minute_start_ct,trade_date,regime"
    first_ts, first_ct, first_date, _ = labels[1].split(",")
    assert first_ct == format_ns(int(first_ts))[:16] and first_ct.startswith("2024-01-01 17:")
    assert first_date == "2024-01-02" and int(first_ts) % NS_PER_MIN == 0
    regime_minutes = summary["regime_minutes"]
    assert isinstance(regime_minutes, dict) and len(labels) - 1 == sum(regime_minutes.values())
    assert {line.split(",")[3] for line in labels[1:]} <= set(REGIME_NAMES)


@pytest.mark.parametrize("name", ["es.csv", "es.csv.gz"])
def test_write_csv_round_trip(tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    summary = write_synthetic(out, "MES", 1, 3, start=date(2024, 6, 3), rth_trades=3_000)
    assert summary["format"] == "csv" and summary["symbol"] == "MESM4"
    assert (tmp_path / "es.labels.csv").exists()
    raw = out.read_bytes()
    text = gzip.decompress(raw) if name.endswith(".gz") else raw
    # the contract first, in a comment line the readers understand (issue 22)
    assert text.startswith(b"# fabio.symbol=MESM4\nts,price,size,side,bid,ask,bid_size,ask_size\n")
    table = pacsv.read_csv(out, read_options=pacsv.ReadOptions(skip_rows=1))
    assert table.column_names == COLUMNS
    assert table.num_rows == summary["trades"]
    assert str(table.schema.field("ts").type) == "int64"
    assert set(table["side"].to_pylist()) == {"B", "A"}
    again = write_synthetic(
        tmp_path / ("b" + name), "MES", 1, 3, start=date(2024, 6, 3), rth_trades=3_000
    )
    assert Path(str(again["path"])).read_bytes() == raw


needs_real_data = pytest.mark.skipif(
    not (REAL_DATA / "es-5m-sierra").is_dir(),
    reason=f"real ES data not found at {REAL_DATA} (a fresh clone has no ../shared)",
)


@pytest.fixture(scope="module")
def real_bars() -> pd.DataFrame:
    from fabio.data.synthetic_calibration import load_sierra_bars

    return load_sierra_bars(REAL_DATA / "es-5m-sierra")


@needs_real_data
def test_synthetic_rth_range_is_calibrated_to_real_es(real_bars: pd.DataFrame) -> None:
    from fabio.data.synthetic_calibration import bar_stats, synthetic_bars

    real = bar_stats(real_bars)["rth_range_ticks"]["p50"]
    sessions = list(iter_sessions(SyntheticConfig(days=30, seed=7, rth_trades=10_000, eth=False)))
    synth = bar_stats(synthetic_bars(sessions))["rth_range_ticks"]["p50"]
    assert real / 2 < synth < real * 2, (real, synth)


@needs_real_data
def test_volume_curve_table_matches_the_real_bars(real_bars: pd.DataFrame) -> None:
    from fabio.data.synthetic import _VOLUME_CURVE_5M
    from fabio.data.synthetic_calibration import volume_curve_5m

    curve = volume_curve_5m(real_bars) * 1e5
    assert np.allclose(curve, np.asarray(_VOLUME_CURVE_5M), atol=1.0)


# ---------------------------------------------------------------- anchoring (paper restarts)
def test_open_ticks_shifts_the_whole_market_by_whole_ticks_and_none_changes_nothing() -> None:
    base = SyntheticConfig(seed=4, days=3, rth_trades=20_000)
    plain = list(iter_sessions(base))
    same = list(iter_sessions(base.model_copy(update={"open_ticks": None})))
    shift = 37
    moved = list(iter_sessions(base.model_copy(update={"open_ticks": plain[0].open_ticks + shift})))
    for a, b, c in zip(plain, same, moved, strict=True):
        assert np.array_equal(a.trades.price, b.trades.price)
        assert np.array_equal(a.trades.ts, c.trades.ts)
        assert np.array_equal(a.trades.price + shift, c.trades.price)
        assert np.array_equal(a.trades.side, c.trades.side)
        assert c.close_ticks == a.close_ticks + shift


def test_session_closes_are_the_chained_closes_and_anchored_ends_a_session_on_a_price() -> None:
    from fabio.data.synthetic import anchored, session_closes

    cfg = SyntheticConfig(seed=9, days=4, rth_trades=20_000)
    sessions = list(iter_sessions(cfg))
    assert session_closes(cfg) == [s.close_ticks for s in sessions]
    there = anchored(cfg, 2, 20_000)
    again = list(iter_sessions(there))
    assert again[2].close_ticks == 20_000
    # The next session opens on the generator's own gap from there: the same gap as before.
    gap = sessions[3].open_ticks - sessions[2].close_ticks
    assert again[3].open_ticks - again[2].close_ticks == gap
