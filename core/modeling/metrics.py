"""Forecast metrics for quantiles and intervals (NumPy arrays in, floats out)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

DM_LEVEL = 0.05  # a pairwise Diebold-Mariano's significance


def crossing_rate(preds: np.ndarray) -> float:
    """Share of rows whose quantiles are not non-decreasing."""
    return float(np.mean(np.any(np.diff(preds, axis=1) < 0, axis=1)))


def rank_ic(dates: np.ndarray, y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """Daily cross-sectional Spearman correlation of a score with outcomes: mean and IR."""
    frame = pl.DataFrame({"date": dates, "y": y, "s": score})
    daily = (
        frame.group_by("date")
        .agg(pl.corr(pl.col("y").rank(), pl.col("s").rank()).alias("ic"), pl.len().alias("n"))
        .filter((pl.col("n") >= 3) & pl.col("ic").is_finite())
        .sort("date")  # group_by's order varies: summed in date order, the mean is repeatable
    )
    ic = daily["ic"].to_numpy()
    if not len(ic):
        return {"rank_ic_mean": 0.0, "rank_ic_ir": 0.0}
    std = float(np.std(ic, ddof=1)) if len(ic) > 1 else 0.0
    return {
        "rank_ic_mean": float(np.mean(ic)),
        "rank_ic_ir": float(np.mean(ic) / std) if std > 0 else 0.0,
    }


def _chi2_1_sf(x: float) -> float:
    """P(X > x) for a chi-square variable with one degree of freedom."""
    return math.erfc(math.sqrt(max(x, 0.0) / 2))


def _normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal variable."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def newey_west_variance(x: np.ndarray, lags: int) -> float:
    """Long-run variance of a series' mean (Bartlett weights, ``lags`` autocovariances):
    overlapping h-day targets make losses autocorrelated up to lag h-1."""
    d = np.asarray(x, dtype=float) - np.mean(x)
    n = len(d)
    total = float(d @ d) / n
    for k in range(1, min(lags, n - 1) + 1):
        total += 2 * (1 - k / (lags + 1)) * float(d[k:] @ d[:-k]) / n
    return total / n


def diebold_mariano(loss_a: np.ndarray, loss_b: np.ndarray, lags: int) -> dict[str, float]:
    """Diebold-Mariano test of equal mean loss, on a time series of losses (for a panel,
    the cross-sectional mean per date). ``mean_diff`` < 0: ``a`` is better;
    ``p_a_better`` is the one-sided p-value of that, ``p_value`` the two-sided one."""
    diff = np.asarray(loss_a, dtype=float) - np.asarray(loss_b, dtype=float)
    mean = float(np.mean(diff))
    variance = newey_west_variance(diff, lags)
    stat = mean / math.sqrt(variance) if variance > 0 else 0.0
    return {
        "mean_diff": mean,
        "statistic": stat,
        "p_value": 2 * _normal_sf(abs(stat)),
        "p_a_better": _normal_sf(-stat),
        "n": float(len(diff)),
    }


def _log_likelihood(successes: float, trials: float, p: float) -> float:
    """log of p^s (1-p)^(n-s), with 0 log 0 = 0."""
    out = 0.0
    if successes:
        out += successes * math.log(p)
    if trials - successes:
        out += (trials - successes) * math.log(1 - p)
    return out


def kupiec(hits: np.ndarray, p: float) -> dict[str, float]:
    """Kupiec's unconditional-coverage (proportion of failures) test: are the exceedances
    ``hits`` (booleans) as frequent as ``p``? LR ~ chi-square(1)."""
    n, x = float(len(hits)), float(np.sum(hits))
    lr = -2 * (_log_likelihood(x, n, p) - _log_likelihood(x, n, x / n)) if n else 0.0
    return {"rate": x / n if n else 0.0, "lr": lr, "p_value": _chi2_1_sf(lr), "n": n}


def christoffersen(hits: np.ndarray, groups: np.ndarray | None = None) -> dict[str, float]:
    """Christoffersen's independence test: does an exceedance make the next one more likely?
    From the transitions of the 0/1 series (within each group, e.g. symbol, when ``groups``
    is given: rows sorted by group, then date); LR ~ chi-square(1)."""
    h = np.asarray(hits, dtype=bool)
    prev, cur = h[:-1], h[1:]
    if groups is not None:
        same = np.asarray(groups)[1:] == np.asarray(groups)[:-1]
        prev, cur = prev[same], cur[same]
    n00, n01 = float(np.sum(~prev & ~cur)), float(np.sum(~prev & cur))
    n10, n11 = float(np.sum(prev & ~cur)), float(np.sum(prev & cur))
    pooled = (n01 + n11) / max(n00 + n01 + n10 + n11, 1)
    restricted = _log_likelihood(n01 + n11, n00 + n01 + n10 + n11, pooled)
    p0 = n01 / (n00 + n01) if n00 + n01 else 0.0
    p1 = n11 / (n10 + n11) if n10 + n11 else 0.0
    free = _log_likelihood(n01, n00 + n01, p0) + _log_likelihood(n11, n10 + n11, p1)
    lr = max(-2 * (restricted - free), 0.0)
    return {"lr": lr, "p_value": _chi2_1_sf(lr), "n": float(len(h))}


def daily_losses(frame: pl.DataFrame, losses: np.ndarray) -> np.ndarray:
    """The cross-sectional mean of a per-row loss per date, in date order."""
    return (
        frame.select("date").with_columns(pl.Series("loss", losses))
        .group_by("date").agg(pl.col("loss").mean()).sort("date")["loss"].to_numpy()
    )  # fmt: skip


def pairwise_dm(daily: dict[str, np.ndarray], lags: int) -> dict[str, dict[str, Any]]:
    """Diebold-Mariano of every method against every other on a daily loss (CRPS, FZ0):
    ``[a][b]``, with ``beats`` = a's loss lower with p < ``DM_LEVEL``."""
    out: dict[str, dict[str, Any]] = {}
    for a, loss_a in daily.items():
        out[a] = {}
        for b, loss_b in daily.items():
            if a != b:
                test = diebold_mariano(loss_a, loss_b, lags)
                test["beats"] = bool(test["mean_diff"] < 0 and test["p_value"] < DM_LEVEL)
                out[a][b] = test
    return out
