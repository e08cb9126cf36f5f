"""What issue 22's conditional-coverage targets would measure for forecasters better than ours.

    python -m benchmarks.calibration_bounds [--store DIR] [--model lightgbm]

Reads the newest backtest of ``--model`` in a store that ``benchmarks.backtest`` filled
(the 249 Yahoo tickers) and prints three measured bounds and the per-symbol tracker's choice:

1. **An ideal forecaster's coverage.** A return's conditional distribution is a market
   factor plus an idiosyncratic part: y_it / s_it = b_i Z_t + sqrt(1 - b_i^2) e_it. The
   ideal forecaster knows every stock's distribution exactly; Z_t is the panel's
   equal-weighted h-day return over the market's h-day volatility as the forecaster knows
   it, scaled to unit variance over the whole period: either the VIX at t (the options
   market's forecast, ``../shared/data/indexes/VIX.csv``) or perfect foresight of the
   market's realized volatility over the 21 trading dates around t (the regime, a crash's
   included, but not the h-day move). b_i is the stock's correlation with the market
   return within each year. On each date its coverage of the central interval is then
   mean_i P(|b_i Z_t + sqrt(1 - b_i^2) e| <= z), the idiosyncratic sampling noise averaged
   out: the months, years and crash months it would show on 2010-2021's actual market
   moves. A market that moves together moves every stock's hits together; no forecaster
   without foresight of the market's direction removes that.
2. **Per-symbol corrections.** Kupiec pass shares per level (and CRPS) of the calibration
   replayed over the same refits without the per-symbol tracker, then with each symbol's
   forecast shifted by its whole-period median residual (hindsight) or by the running mean
   of its residuals known h dates earlier (ex ante), and replayed with per-symbol trackers
   (the default and faster ones), beside a perfect forecaster's share; 2010-2018 (where the
   default was chosen) and the years after apart.
3. **The per-symbol tracker's settings**: the rule its default came from, replayed.
4. **The tracker's frontier.** The per-level tracker replayed over the same refits at steps
   up to 0.5: months within 0.05 of the target against CRPS.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import polars as pl

from benchmarks.backtest import (
    ROOT,
    TUNED_UNTIL,
    newest_backtest,
    online_sweep,
    predictions,
    replay,
)

VIX = ROOT.parent / "shared" / "data" / "indexes" / "VIX.csv"


def crash_months() -> list[str]:
    """The months the backtest reports apart (``core.modeling.backtest.CRASH``, a range)."""
    from core.modeling.backtest import CRASH

    first, last = (int(m[:4]) * 12 + int(m[5:]) - 1 for m in CRASH)
    return [f"{n // 12}-{n % 12 + 1:02d}" for n in range(first, last + 1)]


FRONTIER = ((0.02, 0.02), (0.1, 0.02), (0.2, 0.02), (0.3, 0.02), (0.5, 0.02))
# (model.symbol_tracker_step, symbol_tracker_decay) the default was chosen among on <= 2018
SYMBOL_GRID = tuple((s, d) for s in (0.00025, 0.0005, 0.001, 0.002) for d in (0.001, 0.002, 0.005))
SYMBOL_SHOWN = ((0.00025, 0.001), (0.0005, 0.002), (0.002, 0.002))  # the default, faster ones
WITHIN = 0.03  # the target: each level's pass share within 3 points of a perfect forecaster's


def vix_scale(horizon: int) -> pl.DataFrame:
    """date, vol: the VIX's h-day volatility at each date (the options market's forecast)."""
    vix = pl.read_csv(VIX, columns=["Date", "Close"], try_parse_dates=True)
    return vix.select(
        pl.col("Date").alias("date"), (pl.col("Close") / 100 * np.sqrt(horizon / 252)).alias("vol")
    )


def regime_foresight_scale(store: Path, horizon: int, days: int = 21) -> pl.DataFrame:
    """date, vol: the equal-weighted market's realized daily volatility over the ``days``
    trading dates centred on each date, times sqrt(h): perfect foresight of the month's
    volatility regime (a crash's included), none of the h-day move itself."""
    from core.features.table import price_keys
    from core.modeling.models.prices import daily_log_returns
    from core.storage import Store

    opened = Store(str(store))
    prices = opened.scan_parquet(list(price_keys(opened).values())).select(
        "symbol", "date", "close"
    )
    daily = (
        daily_log_returns(prices.collect()).group_by("date").agg(pl.col("r").mean()).sort("date")
    )
    spread = pl.col("r").rolling_std(days, center=True, min_samples=days // 2)
    return daily.select("date", (spread * np.sqrt(horizon)).alias("vol"))


def market_shocks(preds: pl.DataFrame, scale: pl.DataFrame) -> pl.DataFrame:
    """date, market (the equal-weighted h-day return), z: the market return over ``scale``'s
    vol at the date, scaled to unit variance over the period."""
    market = preds.group_by("date").agg(pl.col("y").mean().alias("market"))
    joined = market.join(scale, on="date", how="inner").drop_nulls().sort("date")
    raw = joined["market"] / joined["vol"]
    return joined.with_columns((raw / raw.std()).alias("z")).select("date", "market", "z")


def ideal_coverage(
    preds: pl.DataFrame, scale: pl.DataFrame, interval: tuple[float, float]
) -> pl.DataFrame:
    """date, rows, coverage: the ideal forecaster's expected coverage of the central
    ``interval`` on each date, the market's scale taken from ``scale`` (module docstring)."""
    norm = NormalDist()
    half = norm.inv_cdf(interval[1])  # a symmetric interval, as the target's is
    shocks = market_shocks(preds, scale)
    rows = preds.select("symbol", "date", "y").join(shocks, on="date", how="inner")
    loading = (
        pl.corr("y", "market")
        .over("symbol", pl.col("date").dt.year())
        .clip(-0.99, 0.99)
        .fill_nan(0.0)
    )
    rows = rows.with_columns(loading.alias("b"))
    b, z = rows["b"].to_numpy(), rows["z"].to_numpy()
    rest = np.sqrt(1 - b**2)
    cdf = np.vectorize(norm.cdf)
    cover = cdf((half - b * z) / rest) - cdf((-half - b * z) / rest)
    return (
        rows.with_columns(pl.Series("p", cover))
        .group_by("date")
        .agg(pl.len().alias("rows"), pl.col("p").mean().alias("coverage"))
        .sort("date")
    )


def coverage_figures(daily: pl.DataFrame, target: float) -> dict[str, Any]:
    """From date, rows, coverage: months within 0.05 of ``target``, the years' range, the
    crash months and the overall coverage (each row weighted alike)."""
    weighted = (pl.col("coverage") * pl.col("rows")).sum() / pl.col("rows").sum()
    months = daily.group_by(pl.col("date").dt.strftime("%Y-%m").alias("m")).agg(weighted)
    years = (
        daily.filter(pl.col("date").dt.year() <= 2020)
        .group_by(pl.col("date").dt.year())
        .agg(weighted)
    )
    crash = {m: float(months.filter(pl.col("m") == m)["coverage"][0]) for m in crash_months()}
    return {
        "overall": float(daily.select(weighted).item()),
        "months_within": float(np.mean(np.abs(months["coverage"].to_numpy() - target) <= 0.05)),
        "years": (
            float(np.min(years["coverage"].to_numpy())),
            float(np.max(years["coverage"].to_numpy())),
        ),
        "years_within": int(np.sum(np.abs(years["coverage"].to_numpy() - target) <= 0.02)),
        "n_years": years.height,
        "crash": crash,
    }


def emitted_daily(preds: pl.DataFrame, lo: str, hi: str) -> pl.DataFrame:
    """date, rows, coverage of the emitted interval."""
    hit = (pl.col("y") >= pl.col(lo)) & (pl.col("y") <= pl.col(hi))
    return preds.group_by("date").agg(pl.len().alias("rows"), hit.mean().alias("coverage"))


def level_cells(
    frame: pl.DataFrame, quantiles: list[float], alpha: float, horizon: int
) -> tuple[str, str, str]:
    """A table row's cells, as the scorecard computes them: each level's per-symbol Kupiec
    pass share, a perfect forecaster's at the same symbols' dates, and the CRPS."""
    from core.modeling.scorecard import level_tests, row_scores

    ordered = frame.sort("date", "symbol")
    scores = row_scores(ordered, [f"q_{q}" for q in quantiles], quantiles, alpha)
    tests = level_tests(ordered, scores, quantiles, horizon, horizon)
    passed = " | ".join(f"{tests[f'q_{q}']['kupiec_pass_share']:.1%}" for q in quantiles)
    reference = " | ".join(f"{tests[f'q_{q}']['reference_pass_share']:.1%}" for q in quantiles)
    return passed, reference, f"{float(np.mean(scores.crps)):.6f}"


def per_symbol(store: Path, metrics: dict[str, Any]) -> list[str]:
    """Bound 2's table: the backtest's calibration replayed without the per-symbol tracker,
    then corrected per symbol after the fact, and replayed with per-symbol trackers; the
    years the settings were chosen on and those after, apart."""
    quantiles, horizon = metrics["quantiles"], metrics["horizon"]
    cols = [f"q_{q}" for q in quantiles]
    calibrated = replay(store, metrics)

    def known(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.filter(pl.col("y").is_not_null()).select("symbol", "date", "y", *cols)

    pooled = known(calibrated(symbol_tracker_step=0.0)).sort("symbol", "date")
    spread = pl.col("q_0.9") - pl.col("q_0.1")
    residual = (pl.col("y") - pl.col("q_0.5")) / spread
    late = residual.shift(horizon).over("symbol")
    running = (late.cum_sum().over("symbol") / late.cum_count().over("symbol").clip(1)).fill_null(0)
    shifts = {
        "hindsight: whole-period median residual": residual.median().over("symbol"),
        "ex ante: running mean residual, h dates late": running,
        "ex ante: half that": 0.5 * running,
    }
    frames = {"pooled tracker only": pooled} | {
        name: pooled.with_columns(shift.alias("_c")).with_columns(
            (pl.col(c) + pl.col("_c") * spread).alias(c) for c in cols
        )
        for name, shift in shifts.items()
    }
    for step, decay in SYMBOL_SHOWN:
        frames[f"per-symbol tracker, step {step}, decay {decay}"] = known(
            calibrated(symbol_tracker_step=step, symbol_tracker_decay=decay)
        )
    lines = [
        "| correction | years | " + " | ".join(str(q) for q in quantiles) + " | CRPS |",
        "|---|---|" + "---|" * (len(quantiles) + 1),
    ]
    periods = {
        f"<= {TUNED_UNTIL}": pl.col("date").dt.year() <= TUNED_UNTIL,
        f"> {TUNED_UNTIL}": pl.col("date").dt.year() > TUNED_UNTIL,
    }
    alpha = round(1 - metrics["target_coverage"], 10)
    for label, keep in periods.items():
        reference = level_cells(pooled.filter(keep), quantiles, alpha, horizon)[1]
        lines.append(f"| a perfect forecaster | {label} | {reference} | |")
    for name, frame in frames.items():
        for label, keep in periods.items():
            passed, _, crps = level_cells(frame.filter(keep), quantiles, alpha, horizon)
            lines.append(f"| {name} | {label} | {passed} | {crps} |")
    return lines


def symbol_selection(store: Path, metrics: dict[str, Any]) -> list[str]:
    """The rule the per-symbol tracker's default came from, on forecasts up to TUNED_UNTIL:
    the lowest CRPS among the settings whose every level's pass share is within ``WITHIN`` of
    a perfect forecaster's (the fewest levels outside it when none is)."""
    from core.modeling.scorecard import level_tests, row_scores

    quantiles, horizon = metrics["quantiles"], metrics["horizon"]
    alpha = round(1 - metrics["target_coverage"], 10)
    cols = [f"q_{q}" for q in quantiles]
    calibrated = replay(store, metrics)
    lines = ["| step | decay | levels outside 3 points | CRPS |", "|---|---|---|---|"]
    ranked = []
    for step, decay in SYMBOL_GRID:
        frame = calibrated(symbol_tracker_step=step, symbol_tracker_decay=decay)
        part = frame.filter(pl.col("y").is_not_null(), pl.col("date").dt.year() <= TUNED_UNTIL)
        ordered = part.sort("date", "symbol")
        scores = row_scores(ordered, cols, quantiles, alpha)
        tests = level_tests(ordered, scores, quantiles, horizon, horizon)
        outside = sum(
            abs(tests[c]["kupiec_pass_share"] - tests[c]["reference_pass_share"]) > WITHIN
            for c in cols
        )
        crps = float(np.mean(scores.crps))
        ranked.append((outside, crps, step, decay))
        lines.append(f"| {step} | {decay} | {outside} | {crps:.6f} |")
    _, _, step, decay = min(ranked)
    return [*lines, f"\nthe rule picks step {step}, decay {decay}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--store", required=True, help="a store benchmarks.backtest filled")
    parser.add_argument("--model", default="lightgbm")
    ns = parser.parse_args()
    from core.modeling.scorecard import interval_columns

    store = Path(ns.store).resolve()
    metrics = newest_backtest(store, ns.model)
    q, horizon, target = metrics["quantiles"], metrics["horizon"], metrics["target_coverage"]
    preds = predictions(store, metrics)
    lo, hi = interval_columns(q, 1 - target)
    interval = ((1 - target) / 2, (1 + target) / 2)
    rows = {
        "ideal, the VIX's market scale": ideal_coverage(preds, vix_scale(horizon), interval),
        "ideal, the month's market volatility foreseen": ideal_coverage(
            preds, regime_foresight_scale(store, horizon), interval
        ),
        ns.model: emitted_daily(preds, lo, hi),
    }
    print(f"backtest {metrics['backtest_id']} ({ns.model}), {preds.height} rows\n")
    print("1. The target interval's coverage: an ideal forecaster (module docstring) and ours\n")
    print(
        "| | overall | months within 0.05 | years (2010-2020) | years within 0.02 | "
        + " | ".join(crash_months())
        + " |"
    )
    print("|---|---|---|---|---|" + "---|" * len(crash_months()))
    for name, daily in rows.items():
        f = coverage_figures(daily, target)
        print(
            f"| {name} | {f['overall']:.4f} | {f['months_within']:.0%} | "
            f"{f['years'][0]:.3f}-{f['years'][1]:.3f} | {f['years_within']} of {f['n_years']} | "
            + " | ".join(f"{f['crash'][m]:.3f}" for m in crash_months())
            + " |"
        )
    print("\n2. Per-symbol Kupiec pass share per level, every h-th date\n")
    print("\n".join(per_symbol(store, metrics)))
    print(f"\n3. The per-symbol tracker's settings, on <= {TUNED_UNTIL}\n")
    print("\n".join(symbol_selection(store, metrics)))
    print("\n4. The tracker's frontier\n")
    print(online_sweep(store, metrics, FRONTIER))


if __name__ == "__main__":
    main()
