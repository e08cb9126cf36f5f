"""Scoring forecasts whose outcome is now known, and the rolling figures over them.

A score row is one forecast (source ``live`` from ``predictions/``, or ``backtest``) joined
with its realized h-day log return from the stored prices (the feature table's target),
with its interval hit, pinball loss per quantile, and the ``ewma`` baseline's pinball on
the same row. Rows are keyed by (source, symbol, date): scoring again replaces, never
duplicates.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from core.features.build import target_expr
from core.modeling.models.baselines import ewma_quantiles
from core.modeling.scorecard import (
    pinball_expr,
    qcols,
    terciles,
    trailing_volatility,
    with_interval,
)

KEY = ["source", "symbol", "date"]


def outcomes(prices: pl.DataFrame, horizon: int, quantiles: list[float]) -> pl.DataFrame:
    """symbol, date, y (null until h later bars exist), vol20 (trailing 20-day standard
    deviation of daily log returns) and the ``ewma`` baseline's quantiles ``ewma_q_*``."""
    base = prices.sort("symbol", "date")
    ewma = ewma_quantiles(base, quantiles, horizon).rename(
        {c: f"ewma_{c}" for c in qcols(quantiles)}
    )
    return (
        base.select("symbol", "date", target_expr(horizon).alias("y"))
        .join(trailing_volatility(base), on=["symbol", "date"], how="left")
        .join(ewma, on=["symbol", "date"], how="left")
    )


def score(
    forecasts: pl.DataFrame,
    known: pl.DataFrame,
    quantiles: list[float],
    interval: tuple[float, float],
    source: str,
) -> pl.DataFrame:
    """The forecasts (symbol, date, run_id, q_*) whose outcome ``known`` holds, scored; the
    interval (``lo``, ``hi``) is the columns of its two levels (layout 1 files: their own)."""
    cols = qcols(quantiles)
    rows = (
        with_interval(forecasts, interval)
        .select("symbol", "date", "run_id", *cols, "lo", "hi")
        .join(known.filter(pl.col("y").is_not_null()), on=["symbol", "date"], how="inner")
    )
    y = pl.col("y")
    return rows.select(
        pl.lit(source).alias("source"),
        "run_id",
        "symbol",
        "date",
        "y",
        *cols,
        "lo",
        "hi",
        ((y >= pl.col("lo")) & (y <= pl.col("hi"))).alias("hit"),
        *[
            pinball_expr([c], [q]).alias(f"pinball_{q}")
            for q, c in zip(quantiles, cols, strict=True)
        ],
        pinball_expr(cols, quantiles).alias("pinball"),
        pinball_expr(qcols(quantiles, "ewma"), quantiles).alias("ewma_pinball"),
        "vol20",
    ).sort("date", "symbol")


def merge(existing: pl.DataFrame | None, new: pl.DataFrame) -> pl.DataFrame:
    """``existing`` with every row of ``new`` added or, for the same key, replaced."""
    if existing is None or not existing.height:
        return new.sort("date", "source", "symbol")
    kept = existing.join(new.select(KEY), on=KEY, how="anti")
    return pl.concat([kept, new], how="diagonal_relaxed").sort("date", "source", "symbol")


def monitored(scores: pl.DataFrame) -> pl.DataFrame:
    """The series the rolling figures and alerts watch: live scores, and backtest scores on
    the dates no live forecast covers (a new deployment's history)."""
    live = scores.filter(pl.col("source") == "live")
    backfill = scores.filter(pl.col("source") == "backtest").join(
        live.select("date").unique(), on="date", how="anti"
    )
    return pl.concat([backfill, live], how="diagonal_relaxed").sort("date", "symbol")


def window_figures(rows: pl.DataFrame, quantiles: list[float]) -> dict[str, Any]:
    """Coverage, per-quantile exceedance (share of outcomes below each quantile), pinball
    ratio to ``ewma``, and coverage per volatility tercile (cut over these rows)."""
    tercile = terciles(rows["vol20"])
    by_tercile = (
        rows.with_columns(pl.Series("tercile", tercile))
        .group_by("tercile")
        .agg(pl.col("hit").mean())
        .sort("tercile")
    )
    paired = pl.col("ewma_pinball").is_not_null()  # the baseline needs 20 returns of history
    figures = rows.select(
        pl.col("hit").mean().alias("coverage"),
        (pl.col("pinball").filter(paired).sum() / pl.col("ewma_pinball").sum()).alias(
            "pinball_ratio_ewma"
        ),
        *[
            (pl.col("y") < pl.col(c)).mean().alias(f"exceedance_{q}")
            for q, c in zip(quantiles, qcols(quantiles), strict=True)
        ],
    ).row(0, named=True)
    return {
        "rows": rows.height,
        "dates": [str(rows["date"].min()), str(rows["date"].max())],
        **figures,
        "coverage_by_vol_tercile": {
            str(t): c for t, c in zip(by_tercile["tercile"], by_tercile["hit"], strict=True)
        },
    }


def rolling(series: pl.DataFrame, windows: list[int], quantiles: list[float]) -> dict[str, Any]:
    """Per window W: the figures over the last W forecast dates of ``series`` (empty dict
    for a window with no scored row yet)."""
    dates = series["date"].unique().sort()
    out: dict[str, Any] = {}
    for w in windows:
        if not len(dates):
            out[str(w)] = {}
            continue
        recent = series.filter(pl.col("date") >= dates[max(len(dates) - w, 0)])
        out[str(w)] = window_figures(recent, quantiles) | {"days": min(w, len(dates))}
    return out


def daily(series: pl.DataFrame, windows: list[int]) -> pl.DataFrame:
    """date, source, rows, and per window W the coverage (``coverage_<W>``) and, when the
    series has the baseline's losses, the pinball ratio to ewma (``pinball_ratio_ewma_<W>``)
    over the last W forecast dates, rows weighted: the report's time series."""
    sums = [pl.len().alias("rows"), pl.col("hit").sum().alias("_hits")]
    ratios = "ewma_pinball" in series.columns
    if ratios:
        paired = pl.col("ewma_pinball").is_not_null()  # the baseline needs 20 returns
        sums += [
            pl.col("pinball").filter(paired).sum().alias("_p"),
            pl.col("ewma_pinball").sum().alias("_e"),
        ]
    by_day = series.group_by("date").agg(pl.col("source").first(), *sums).sort("date")

    def rolled(num: str, den: str, w: int) -> pl.Expr:
        return pl.col(num).rolling_sum(w, min_samples=1) / pl.col(den).rolling_sum(w, min_samples=1)

    return by_day.with_columns(
        *[rolled("_hits", "rows", w).alias(f"coverage_{w}") for w in windows],
        *[rolled("_p", "_e", w).alias(f"pinball_ratio_ewma_{w}") for w in windows if ratios],
    ).drop("_hits", "_p", "_e", strict=False)
