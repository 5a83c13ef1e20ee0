"""Compare the synthetic market with real ES data, statistic by statistic.

Run `python -m fabio.data.synthetic_calibration [--json]`. Real numbers come from the Sierra
5-minute bars (ranges, volume curve, 5-minute delta imbalance, mean print size) and from the
Databento / Sierra prints (size distribution); synthetic trades are rolled up into the same
5-minute bars so that one function computes both columns. It also reports how far apart the
regimes are on classifier-style features, as a check that the labels can be learned.

The Sierra parser here is deliberately self-contained (pandas), separate from the production
bar reader, so that calibration does not depend on code it is meant to check.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from fabio.data.synthetic import (
    REGIME_NAMES,
    Regime,
    SyntheticConfig,
    SyntheticSession,
    iter_sessions,
)
from fabio.timeutil import CHICAGO, NS_PER_MIN

DEFAULT_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
TICK = 0.25
BAR_NS = 5 * NS_PER_MIN
RTH_START_MIN, RTH_END_MIN = 8 * 60 + 30, 15 * 60  # CT clock
RECENT_FROM = "2021-07-01"  # the current 17:00–16:00 session schedule


def _pcts(values: NDArray[np.float64] | pd.Series, qs: tuple[int, ...]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    if len(arr) == 0:
        return {f"p{q}": float("nan") for q in qs}
    return {f"p{q}": round(float(np.percentile(arr, q)), 4) for q in qs}


# ---------------------------------------------------------------- bars


def load_sierra_bars(folder: Path) -> pd.DataFrame:
    """All Sierra 5-minute bar files in `folder` as one frame (CT wall-clock `dt`)."""
    frames = []
    for name in sorted(glob.glob(str(folder / "*.txt.gz"))):
        df = pd.read_csv(name, skipinitialspace=True)
        df.columns = [c.strip() for c in df.columns]
        frames.append(df)
    if not frames:
        raise FileNotFoundError(f"no Sierra bar files (*.txt.gz) in {folder}")
    df = pd.concat(frames, ignore_index=True)
    df["dt"] = pd.to_datetime(df["Date"] + " " + df["Time"], format="%Y/%m/%d %H:%M:%S")
    return _with_calendar_columns(df.drop(columns=["Date", "Time"]))


def _with_calendar_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Add the trade date (17:00 CT starts the next one) and the CT minute of day."""
    df = df.sort_values("dt", kind="stable").reset_index(drop=True)
    df["td"] = (df["dt"] + pd.Timedelta(hours=7)).dt.date
    df["tod"] = df["dt"].dt.hour * 60 + df["dt"].dt.minute
    return df


def synthetic_bars(sessions: list[SyntheticSession]) -> pd.DataFrame:
    """Roll synthetic trades up into Sierra-style 5-minute bars (CT wall clock, bar start)."""
    frames = []
    for s in sessions:
        t = s.trades
        if len(t) == 0:
            continue
        bar = t.ts // BAR_NS
        starts = np.flatnonzero(np.r_[True, bar[1:] != bar[:-1]])
        px = t.price.astype(np.float64) * TICK
        buy = np.where(t.side > 0, t.size, 0)
        frames.append(
            pd.DataFrame(
                {
                    "ts": t.ts[starts] - t.ts[starts] % BAR_NS,
                    "Open": px[starts],
                    "High": np.maximum.reduceat(px, starts),
                    "Low": np.minimum.reduceat(px, starts),
                    "Last": px[np.r_[starts[1:], len(px)] - 1],
                    "Volume": np.add.reduceat(t.size, starts),
                    "NumberOfTrades": np.diff(np.r_[starts, len(px)]),
                    "AskVolume": np.add.reduceat(buy, starts),
                    "BidVolume": np.add.reduceat(t.size - buy, starts),
                }
            )
        )
    df = pd.concat(frames, ignore_index=True)
    ct = pd.to_datetime(df.pop("ts"), unit="ns", utc=True).dt.tz_convert(CHICAGO)
    df["dt"] = ct.dt.tz_localize(None)
    return _with_calendar_columns(df)


def bar_stats(df: pd.DataFrame) -> dict[str, Any]:
    """Range, volume-curve, imbalance and print-size statistics of 5-minute bars."""
    is_rth = (df["tod"] >= RTH_START_MIN) & (df["tod"] < RTH_END_MIN)
    rth = df[is_rth]
    g = rth.groupby("td")
    full = g.size() >= 78 if len(rth) else pd.Series(dtype=bool)
    ranges = ((g["High"].max() - g["Low"].min()) / TICK)[full]
    imb = (df["AskVolume"] - df["BidVolume"]) / df["Volume"].clip(lower=1)
    signed_rth = imb[is_rth].to_numpy()
    ret_rth = ((rth["Last"] - rth["Open"]) / TICK).to_numpy()
    complete = df.groupby("td")["tod"].transform("size") >= 270  # whole trade dates only
    whole = df[complete & df["td"].isin(full[full].index)]
    bucket = ((whole["tod"] - 17 * 60) % 1440) // 30
    share = whole["Volume"] / whole.groupby("td")["Volume"].transform("sum")
    curve = share.groupby([whole["td"], bucket]).sum().unstack(fill_value=0).mean()
    curve = curve.reindex(range(46), fill_value=0.0)
    day_vol = df.groupby("td")["Volume"].sum()
    rth_vol = rth.groupby("td")["Volume"].sum()
    return {
        "rth_sessions": int(full.sum()),
        "rth_range_ticks": _pcts(ranges.to_numpy(), (10, 50, 90)),
        "rth_volume_share": round(float((rth_vol / day_vol.reindex(rth_vol.index)).median()), 4),
        "rth_trades_per_session": round(float(g["NumberOfTrades"].sum()[full].median()), 0),
        "volume_curve_30m": [round(float(x), 5) for x in curve.to_numpy()],
        "imbalance_5m_rth": _pcts(np.abs(signed_rth), (25, 50, 75, 90, 99)),
        "imbalance_5m_eth": _pcts(
            np.abs(imb[~is_rth & (df["Volume"] > 0)].to_numpy()), (25, 50, 75, 90, 99)
        ),
        "imbalance_5m_rth_ac1": round(float(np.corrcoef(signed_rth[:-1], signed_rth[1:])[0, 1]), 3),
        "imbalance_return_corr_rth": round(float(np.corrcoef(signed_rth, ret_rth)[0, 1]), 3),
        "mean_print_size_rth": round(float(rth["Volume"].sum() / rth["NumberOfTrades"].sum()), 3),
    }


# ---------------------------------------------------------------- prints


def size_stats(sizes: NDArray[np.int64]) -> dict[str, float]:
    """1-lot share, mean, p99 and max of print sizes."""
    return size_stats_from_counts(np.bincount(np.asarray(sizes, dtype=np.int64)))


def size_stats_from_counts(counts: NDArray[np.int64]) -> dict[str, float]:
    """The same from a histogram (`counts[k]` prints of size k), for streaming."""
    n = int(counts.sum())
    sizes = np.arange(len(counts))
    cum = np.cumsum(counts)
    return {
        "prints": n,
        "one_lot_share": round(float(counts[1] / n) if len(counts) > 1 else 0.0, 3),
        "mean": round(float((sizes * counts).sum() / n), 3),
        "p99": float(np.searchsorted(cum, 0.99 * n)),
        "max": int(np.flatnonzero(counts)[-1]),
    }


def dbn_trade_sizes(path: Path) -> NDArray[np.int64]:
    """Sizes of the trades in a DBN file (MBO: `action == 'T'` records; trades schema: all)."""
    import databento_dbn
    import zstandard

    with path.open("rb") as fh:
        raw = zstandard.ZstdDecompressor().stream_reader(fh).read()
    decoder = databento_dbn.DBNDecoder()
    decoder.write(raw)
    sizes = [
        int(r.size)
        for r in decoder.decode()
        if hasattr(r, "action") and hasattr(r, "size") and str(r.action) == "T"
    ]
    return np.asarray(sizes, dtype=np.int64)


def sierra_print_sizes(path: Path) -> NDArray[np.int64]:
    df = pd.read_csv(path, sep=";", usecols=["Volume"])
    return df["Volume"].to_numpy(dtype=np.int64)


def real_print_sizes(data: Path) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for p in sorted((data / "databento").glob("*.dbn.zst")):
        if "mbo" in p.name or p.name.startswith("futures_trades"):
            sizes = dbn_trade_sizes(p)
            if len(sizes):
                out[f"databento/{p.name}"] = size_stats(sizes)
    for p in sorted((data / "sierra-tbt").glob("*.txt.gz")):
        out[f"sierra-tbt/{p.name}"] = size_stats(sierra_print_sizes(p))
    return out


# ---------------------------------------------------------------- regimes


@dataclass(frozen=True)
class RegimeFeatures:
    """Per-minute features a regime classifier could use, with the true regime."""

    regime: NDArray[np.int8]
    imb5: NDArray[np.float64]  # net aggressor volume / volume, trailing 5 minutes
    imb15: NDArray[np.float64]
    move15: NDArray[np.float64]  # |close − close 15 minutes ago|, ticks
    range15: NDArray[np.float64]  # high − low over the trailing 15 minutes, ticks
    crosses30: NDArray[np.float64]  # crosses of the trailing 30-minute VWAP, per 30 minutes


def _trailing(x: NDArray[np.float64], w: int) -> NDArray[np.float64]:
    c = np.concatenate(([0.0], np.cumsum(x)))
    i = np.arange(1, len(x) + 1)
    return c[i] - c[np.maximum(i - w, 0)]


def regime_features(s: SyntheticSession, rth_only: bool = True) -> RegimeFeatures:
    """1-minute rollup of one session and trailing-window features for every labelled minute."""
    t = s.trades
    start = s.session.rth_open_ns if rth_only else int(t.ts[0] - t.ts[0] % NS_PER_MIN)
    end = s.session.rth_close_ns if rth_only else int(t.ts[-1]) + 1
    keep = (t.ts >= start) & (t.ts < end)
    ts, px = t.ts[keep], t.price[keep].astype(np.float64)
    size, side = t.size[keep].astype(np.float64), t.side[keep]
    n_min = int((end - start + NS_PER_MIN - 1) // NS_PER_MIN)
    m = ((ts - start) // NS_PER_MIN).astype(np.int64)
    vol = np.bincount(m, size, n_min).astype(np.float64)
    delta = np.bincount(m, size * side, n_min).astype(np.float64)
    pv = np.bincount(m, size * px, n_min).astype(np.float64)
    close = np.full(n_min, np.nan)
    close[m] = px  # the last print of each minute wins
    close = pd.Series(close).ffill().bfill().to_numpy()
    hi = pd.Series(close).rolling(15, min_periods=1).max().to_numpy()
    lo = pd.Series(close).rolling(15, min_periods=1).min().to_numpy()
    vwap30 = _trailing(pv, 30) / np.maximum(_trailing(vol, 30), 1)
    above = np.sign(close - vwap30)
    flips = np.concatenate(([0.0], (above[1:] * above[:-1] < 0).astype(np.float64)))
    label_min = (s.labels.minute_ts - start) // NS_PER_MIN
    ok = (label_min >= 0) & (label_min < n_min)
    reg = np.full(n_min, -1, dtype=np.int8)
    reg[label_min[ok]] = s.labels.regime[ok]
    lag = np.r_[np.full(15, close[0]), close[:-15]] if n_min > 15 else np.full(n_min, close[0])
    return RegimeFeatures(
        regime=reg,
        imb5=_trailing(delta, 5) / np.maximum(_trailing(vol, 5), 1),
        imb15=_trailing(delta, 15) / np.maximum(_trailing(vol, 15), 1),
        move15=np.abs(close - lag),
        range15=hi - lo,
        crosses30=_trailing(flips, 30),
    )


def _feature_matrix(feats: list[RegimeFeatures]) -> tuple[NDArray[np.float64], NDArray[np.int8]]:
    rows = []
    for f in feats:
        rows.append(
            np.column_stack(
                [
                    np.abs(f.imb5),
                    np.abs(f.imb15),
                    np.log1p(f.move15),
                    np.log1p(f.range15),
                    f.crosses30,
                    f.regime,
                ]
            )[15:]  # skip the first minutes of the session (windows not yet full)
        )
    x = np.vstack(rows)
    x = x[x[:, -1] >= 0]
    return x[:, :-1], x[:, -1].astype(np.int8)


def regime_separation(feats: list[RegimeFeatures]) -> dict[str, Any]:
    """Per-regime feature means, and the accuracy of a nearest-centroid classifier.

    The classifier is fitted on the first half of the sessions and scored on the second:
    a rough lower bound on what a real feature-based classifier can reach.
    """
    x, y = _feature_matrix(feats)
    names = ["abs_imb5", "abs_imb15", "log_move15", "log_range15", "vwap_crosses30"]
    means = {
        REGIME_NAMES[r]: {n: round(float(x[y == r, i].mean()), 3) for i, n in enumerate(names)}
        for r in range(len(Regime))
        if np.any(y == r)
    }
    half = len(feats) // 2
    x_fit, y_fit = _feature_matrix(feats[:half]) if half else (x, y)
    x_test, y_test = _feature_matrix(feats[half:]) if half else (x, y)
    mu, sd = x_fit.mean(axis=0), x_fit.std(axis=0) + 1e-9
    present = [r for r in range(len(Regime)) if np.any(y_fit == r)]
    centroids = np.array([((x_fit[y_fit == r] - mu) / sd).mean(axis=0) for r in present])
    z = (x_test - mu) / sd
    pred = np.array(present)[np.argmin(((z[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)]
    return {
        "feature_means": means,
        "minutes": {REGIME_NAMES[r]: int(np.sum(y == r)) for r in range(len(Regime))},
        "nearest_centroid_accuracy": round(float(np.mean(pred == y_test)), 3),
    }


# ---------------------------------------------------------------- report


def real_report(data: Path) -> dict[str, Any]:
    bars = load_sierra_bars(data / "es-5m-sierra")
    recent = bars[bars["dt"] >= pd.Timestamp(RECENT_FROM)]
    last_year = bars[bars["dt"] >= pd.Timestamp("2023-01-01")]
    return {
        "bars_all": bar_stats(bars),
        "bars_recent": bar_stats(recent),
        "rth_range_ticks_2023": bar_stats(last_year)["rth_range_ticks"],
        "print_sizes": real_print_sizes(data),
    }


def synthetic_report(cfg: SyntheticConfig) -> dict[str, Any]:
    """The same statistics on a generated market, one session in memory at a time."""
    bars, feats = [], []
    counts_all = np.zeros(1, dtype=np.int64)
    counts_rth = np.zeros(1, dtype=np.int64)
    for s in iter_sessions(cfg):
        if len(s.trades) == 0:  # e.g. Good Friday 2024 without ETH: Globex closed at 08:15
            continue
        bars.append(synthetic_bars([s]))
        if s.session.rth_close_ns > s.session.rth_open_ns:
            feats.append(regime_features(s))
        t = s.trades
        rth = (t.ts >= s.session.rth_open_ns) & (t.ts < s.session.rth_close_ns)
        counts_all = _add_counts(counts_all, np.bincount(t.size))
        counts_rth = _add_counts(counts_rth, np.bincount(t.size[rth]))
    return {
        "config": cfg.model_dump(mode="json"),
        "bars": bar_stats(pd.concat(bars, ignore_index=True)),
        "print_sizes": size_stats_from_counts(counts_all),
        "print_sizes_rth": size_stats_from_counts(counts_rth),
        "regimes": regime_separation(feats),
        "rth_range_ticks_250_sessions": long_run_rth_ranges(cfg),
    }


def long_run_rth_ranges(cfg: SyntheticConfig, sessions: int = 250) -> dict[str, float]:
    """RTH range percentiles over many sessions: 20–40 days of AR(1) volatility are noisy.

    A light RTH-only tape is enough, since ranges barely depend on the trade count.
    """
    light = cfg.model_copy(update={"days": sessions, "rth_trades": 5_000, "eth": False})
    ranges = [
        float(np.ptp(s.trades.price))
        for s in iter_sessions(light)
        if len(s.trades) and not s.session.early_close
    ]
    return _pcts(np.asarray(ranges), (10, 50, 90))


def _add_counts(a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.int64]:
    out = np.zeros(max(len(a), len(b)), dtype=np.int64)
    out[: len(a)] += a
    out[: len(b)] += b
    return out


def _row(name: str, real: object, synth: object) -> str:
    return f"{name:<34} {real!s:>22} {synth!s:>22}"


def format_report(report: dict[str, Any]) -> str:
    real, syn = report.get("real"), report["synthetic"]
    ra = real["bars_all"] if real else {}
    rr = real["bars_recent"] if real else {}
    sb = syn["bars"]
    cfg = syn["config"]
    lines = [
        f"synthetic: {cfg['symbol']} {cfg['days']} sessions from {cfg['start']}, "
        f"seed {cfg['seed']}",
        _row("statistic", "real ES", "synthetic"),
        "-" * 80,
    ]
    for q in ("p10", "p50", "p90"):
        lines.append(
            _row(
                f"RTH range ticks {q} (2015-23)",
                ra.get("rth_range_ticks", {}).get(q),
                sb["rth_range_ticks"][q],
            )
        )
    long_run = "/".join(str(v) for v in syn["rth_range_ticks_250_sessions"].values())
    lines.append(_row("RTH range p10/p50/p90, 250 sessions", "", long_run))
    if real:
        lines.append(
            _row(
                "RTH range ticks p10/p50/p90 (2023)",
                "/".join(str(v) for v in real["rth_range_ticks_2023"].values()),
                "",
            )
        )
    for key in (
        "rth_volume_share",
        "rth_trades_per_session",
        "mean_print_size_rth",
        "imbalance_5m_rth_ac1",
        "imbalance_return_corr_rth",
    ):
        lines.append(_row(key + " (2021-23)", rr.get(key), sb[key]))
    for key in ("imbalance_5m_rth", "imbalance_5m_eth"):
        for q, v in sb[key].items():
            lines.append(_row(f"|delta|/volume 5m {key[-3:]} {q}", rr.get(key, {}).get(q), v))
    lines.append("")
    lines.append("print sizes                          1-lot    mean     p99     max   prints")
    sources = dict(real["print_sizes"]) if real else {}
    sources["synthetic (all)"] = syn["print_sizes"]
    sources["synthetic (RTH)"] = syn["print_sizes_rth"]
    for name, st in sources.items():
        lines.append(
            f"  {name[:33]:<33} {st['one_lot_share']:>6} {st['mean']:>7} {st['p99']:>7}"
            f" {st['max']:>7} {st['prints']:>8}"
        )
    lines.append("")
    lines.append("volume share per 30-min bucket of the trade date (CT)   real 2021-23  synthetic")
    curve_r = rr.get("volume_curve_30m", [None] * 46)
    for i, (a, b) in enumerate(zip(curve_r, sb["volume_curve_30m"], strict=True)):
        minute = (17 * 60 + 30 * i) % 1440
        lines.append(f"  {minute // 60:02d}:{minute % 60:02d}  {a!s:>12} {b!s:>12}")
    reg = syn["regimes"]
    lines.append("")
    lines.append(f"regime separation (RTH minutes {reg['minutes']}):")
    for name, feats in reg["feature_means"].items():
        lines.append(f"  {name:<6} " + "  ".join(f"{k}={v}" for k, v in feats.items()))
    lines.append(
        f"  nearest-centroid accuracy (fit on half the sessions, scored on the other): "
        f"{reg['nearest_centroid_accuracy']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="real data folder")
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--symbol", default="ES")
    parser.add_argument("--rth-trades", type=int, default=None)
    args = parser.parse_args(argv)
    cfg = SyntheticConfig(
        symbol=args.symbol, days=args.sessions, seed=args.seed, rth_trades=args.rth_trades
    )
    report: dict[str, Any] = {"synthetic": synthetic_report(cfg)}
    if (args.data / "es-5m-sierra").is_dir():
        report["real"] = real_report(args.data)
    else:
        print(
            f"note: no real data at {args.data}; showing the synthetic side only", file=sys.stderr
        )
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def volume_curve_5m(bars: pd.DataFrame) -> NDArray[np.float64]:
    """Mean share of the trade date's volume per 5-minute bar, 17:00 → 16:00 CT (276 bars).

    Source of the generator's `_VOLUME_CURVE_5M` (complete trade dates from 2021-07 on).
    """
    recent = bars[bars["dt"] >= pd.Timestamp(RECENT_FROM)]
    minute = (recent["tod"] - 17 * 60) % 1440
    recent = recent[minute < 23 * 60]
    minute = minute[minute < 23 * 60]
    complete = recent.groupby("td").size()
    recent = recent[recent["td"].isin(complete[complete >= 270].index)]
    minute = minute.loc[recent.index]
    share = recent["Volume"] / recent.groupby("td")["Volume"].transform("sum")
    curve = share.groupby(minute // 5).mean().reindex(range(276), fill_value=0.0).to_numpy()
    return np.asarray(curve / curve.sum(), dtype=np.float64)


if __name__ == "__main__":
    raise SystemExit(main())
