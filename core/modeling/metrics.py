"""Forecast metrics for quantiles and intervals (NumPy arrays in, floats out)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl


def pinball(y: np.ndarray, preds: np.ndarray, quantiles: Sequence[float]) -> dict[str, float]:
    """Mean pinball loss per quantile (keys ``pinball_<q>``) and their mean (``pinball_mean``)."""
    out = {}
    for j, q in enumerate(quantiles):
        diff = y - preds[:, j]
        out[f"pinball_{q}"] = float(np.mean(np.maximum(q * diff, (q - 1) * diff)))
    out["pinball_mean"] = float(np.mean([out[f"pinball_{q}"] for q in quantiles]))
    return out


def coverage(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    return float(np.mean((y >= lo) & (y <= hi)))


def mean_width(lo: np.ndarray, hi: np.ndarray) -> float:
    return float(np.mean(hi - lo))


def winkler(y: np.ndarray, lo: np.ndarray, hi: np.ndarray, alpha: float) -> float:
    """Winkler interval score: width plus 2/alpha times the miss distance."""
    score = (hi - lo) + (2 / alpha) * (np.maximum(lo - y, 0) + np.maximum(y - hi, 0))
    return float(np.mean(score))


def quantile_coverage(
    y: np.ndarray, preds: np.ndarray, quantiles: Sequence[float]
) -> dict[str, float]:
    """Share of outcomes at or below each predicted quantile (calibrated: equal to q)."""
    return {f"coverage_{q}": float(np.mean(y <= preds[:, j])) for j, q in enumerate(quantiles)}


def crossing_rate(preds: np.ndarray) -> float:
    """Share of rows whose quantiles are not non-decreasing."""
    return float(np.mean(np.any(np.diff(preds, axis=1) < 0, axis=1)))


def coverage_by(
    y: np.ndarray, lo: np.ndarray, hi: np.ndarray, groups: np.ndarray
) -> dict[str, float]:
    """Interval coverage within each group (volatility tercile, month, ...)."""
    hit = (y >= lo) & (y <= hi)
    return {str(g): float(np.mean(hit[groups == g])) for g in np.unique(groups)}


def rank_ic(dates: np.ndarray, y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """Daily cross-sectional Spearman correlation of a score with outcomes: mean and IR."""
    frame = pl.DataFrame({"date": dates, "y": y, "s": score})
    daily = (
        frame.group_by("date")
        .agg(pl.corr(pl.col("y").rank(), pl.col("s").rank()).alias("ic"), pl.len().alias("n"))
        .filter((pl.col("n") >= 3) & pl.col("ic").is_finite())
    )
    ic = daily["ic"].to_numpy()
    if not len(ic):
        return {"rank_ic_mean": 0.0, "rank_ic_ir": 0.0}
    std = float(np.std(ic, ddof=1)) if len(ic) > 1 else 0.0
    return {
        "rank_ic_mean": float(np.mean(ic)),
        "rank_ic_ir": float(np.mean(ic) / std) if std > 0 else 0.0,
    }


def interval_metrics(
    y: np.ndarray, lo: np.ndarray, hi: np.ndarray, alpha: float
) -> dict[str, float]:
    return {
        "coverage": coverage(y, lo, hi),
        "mean_width": mean_width(lo, hi),
        "winkler": winkler(y, lo, hi, alpha),
    }
