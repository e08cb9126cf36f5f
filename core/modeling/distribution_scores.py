"""Scores and tests for whole predictive distributions given as quantile grids (NumPy only)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from arch.bootstrap import MCS
from scipy.special import erfc, xlogy
from scipy.stats import binom

from core.modeling.metrics import _normal_sf, newey_west_variance

Levels = Sequence[float] | np.ndarray  # quantile levels, strictly increasing inside (0, 1)


def qcols(quantiles: list[float], prefix: str = "") -> list[str]:
    """Quantile column names: ``q_0.1`` ..., or ``<prefix>_q_0.1`` for a baseline's."""
    return [f"{prefix}_q_{q}" if prefix else f"q_{q}" for q in quantiles]


def _levels(levels: Levels) -> np.ndarray:
    """The quantile levels as a float array, checked to be strictly increasing inside (0, 1)."""
    tau = np.asarray(levels, dtype=float)
    if tau.ndim != 1 or not len(tau):
        raise ValueError("levels must be a non-empty 1-d sequence")
    if np.any(tau <= 0) or np.any(tau >= 1) or np.any(np.diff(tau) <= 0):
        raise ValueError("levels must be strictly increasing inside (0, 1)")
    return tau


def _check_preds(preds: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """The predictions as an (n, K) float array matching the K levels."""
    q = np.asarray(preds, dtype=float)
    if q.ndim != 2 or q.shape[1] != len(tau):
        raise ValueError(f"preds must have shape (n, {len(tau)}), got {q.shape}")
    return q


def grid_weights(levels: Levels) -> np.ndarray:
    """Trapezoid-style weights w_k = (tau_{k+1} - tau_{k-1}) / 2 (tau_0 = 0, tau_{K+1} = 1)
    that turn a sum over the grid into an integral over the level."""
    tau = _levels(levels)
    padded = np.concatenate([[0.0], tau, [1.0]])
    return (padded[2:] - padded[:-2]) / 2


def pinball_rows(y: np.ndarray, preds: np.ndarray, levels: Levels) -> np.ndarray:
    """Pinball loss rho_tau(y - q) of every row at every level, shape (n, K), to score rows
    one by one (NaN outcomes give NaN rows)."""
    tau = _levels(levels)
    q = _check_preds(preds, tau)
    diff = np.asarray(y, dtype=float)[:, None] - q
    return np.maximum(tau * diff, (tau - 1) * diff)


def crps_rows(y: np.ndarray, preds: np.ndarray, levels: Levels) -> np.ndarray:
    """Per-row CRPS approximated from a quantile grid, to score the whole distribution.

    CRPS(F, y) = 2 * integral_0^1 rho_tau(y - q_tau) dtau; this is its Riemann sum over the
    grid, 2 * sum_k w_k * rho_tau_k(y - q_k) with ``grid_weights``; the levels outside
    [tau_1, tau_K] are only covered by half a gap, so a coarse grid understates the tails.
    Rows with a NaN outcome give NaN.
    """
    loss = pinball_rows(y, preds, levels)
    out = 2 * (loss @ grid_weights(levels))
    out[np.isnan(np.asarray(y, dtype=float))] = np.nan
    return out


def pit_values(y: np.ndarray, preds: np.ndarray, levels: Levels) -> np.ndarray:
    """Each outcome's probability integral transform F(y), to check calibration as a whole.

    Each row's quantiles are sorted first (rearrangement, so crossings do no harm); the CDF
    is interpolated linearly between grid points (tau_k at q_k); an outcome below q_1 gets
    tau_1 / 2 and one at or above q_K gets (1 + tau_K) / 2, the middles of the tail masses
    the grid does not resolve. Bins whose edges are grid levels keep their exact expected
    shares. NaN outcomes give NaN.
    """
    tau = _levels(levels)
    q = np.sort(_check_preds(preds, tau), axis=1)
    yv = np.asarray(y, dtype=float)
    n, k = q.shape
    # number of grid quantiles at or below y: 0 below the grid, K at or above its top
    below = np.sum(q <= yv[:, None], axis=1)
    inner = (below > 0) & (below < k)
    lo_idx = np.clip(below - 1, 0, k - 1)
    hi_idx = np.clip(below, 0, k - 1)
    rows = np.arange(n)
    q_lo, q_hi = q[rows, lo_idx], q[rows, hi_idx]
    span = np.where(inner, q_hi - q_lo, 1.0)  # inner rows have q_lo <= y < q_hi: span > 0
    frac = np.where(inner, (yv - q_lo) / span, 0.0)
    out = tau[lo_idx] + (tau[hi_idx] - tau[lo_idx]) * frac
    out = np.where(below == 0, tau[0] / 2, out)
    out = np.where(below == k, (1 + tau[-1]) / 2, out)
    out[np.isnan(yv)] = np.nan
    return out


def pit_histogram(pit: np.ndarray, bins: int = 10) -> list[float]:
    """Shares of the (finite) PIT values in ``bins`` equal bins of [0, 1]; flat when calibrated."""
    values = np.asarray(pit, dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return [math.nan] * bins
    counts, _ = np.histogram(values, bins=bins, range=(0.0, 1.0))
    return [float(c) for c in counts / len(values)]


def interval_score(y: np.ndarray, lo: np.ndarray, hi: np.ndarray, alpha: float) -> np.ndarray:
    """Per-row interval score of Gneiting & Raftery for a central (1 - alpha) interval:
    width plus 2 / alpha times the miss distance, to rank intervals row by row."""
    yv, lov, hiv = (np.asarray(a, dtype=float) for a in (y, lo, hi))
    return (hiv - lov) + (2 / alpha) * (np.maximum(lov - yv, 0) + np.maximum(yv - hiv, 0))


def _daily_means(dates: np.ndarray, hits: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Hit rate per date (dates sorted), rows per date, and the pooled hit rate over rows."""
    h = np.asarray(hits, dtype=float)
    d = np.asarray(dates)
    if d.shape != h.shape:
        raise ValueError("dates and hits must have the same shape")
    keep = ~np.isnan(h)
    h, d = h[keep], d[keep]
    if not len(h):
        return np.empty(0), np.empty(0), math.nan
    _, inverse = np.unique(d, return_inverse=True)
    counts = np.bincount(inverse).astype(float)
    sums = np.bincount(inverse, weights=h)
    return sums / counts, counts, float(np.mean(h))


def clustered_exceedance_test(
    dates: np.ndarray, hits: np.ndarray, tau: float, lags: int
) -> dict[str, float]:
    """Exceedance-rate test clustered by date: hits on one date are correlated across symbols,
    so the dates, not the rows, are the independent units.

    The daily cross-sectional mean hit rate (one value per date, dates sorted) is compared with
    ``tau`` via its mean and Newey-West variance (``lags`` for overlapping targets);
    z = (mean - tau) / sqrt(var), two-sided normal p-value. ``rate`` is that mean of daily
    rates (each date weighs the same).
    """
    daily, _, _ = _daily_means(dates, hits)
    m = len(daily)
    rows = float(np.sum(~np.isnan(np.asarray(hits, dtype=float))))
    if not m:
        return {"rate": math.nan, "z": math.nan, "p_value": math.nan, "dates": 0.0, "rows": 0.0}
    rate = float(np.mean(daily))
    variance = newey_west_variance(daily, lags) if m > 1 else 0.0
    if variance > 0:
        z = (rate - tau) / math.sqrt(variance)
        p_value = 2 * _normal_sf(abs(z))
    elif rate == tau:  # no variation at all: nothing to reject
        z, p_value = 0.0, 1.0
    else:
        z, p_value = math.copysign(math.inf, rate - tau), 0.0
    return {"rate": rate, "z": z, "p_value": p_value, "dates": float(m), "rows": rows}


def effective_sample_size(dates: np.ndarray, hits: np.ndarray) -> float:
    """Rows divided by the design effect of clustering by date, i.e. how many independent
    rows the panel's hits are worth (within [1, rows]).

    Design effect = var(daily mean hit rate) / (p (1 - p) / m_bar), p the pooled hit rate,
    m_bar the mean rows per date: 1 for independent hits, m_bar when a date's hits all agree.
    """
    daily, counts, p = _daily_means(dates, hits)
    rows = float(np.sum(counts))
    if rows == 0:
        return 0.0
    if len(daily) < 2 or p <= 0 or p >= 1:
        return rows  # no spread to measure clustering with
    m_bar = rows / len(daily)
    design = float(np.var(daily, ddof=1)) / (p * (1 - p) / m_bar)
    if design <= 0:
        return rows
    return float(min(max(rows / design, 1.0), rows))


def kupiec_pass_share_reference(n: int, p: float, level: float = 0.05) -> float:
    """Exact probability that Kupiec's LR test (as ``metrics.kupiec``) does not reject at
    ``level`` for a perfectly calibrated forecaster over n independent trials; with discrete
    counts it is not 1 - level, so this is the honest reference for a pass share."""
    if n <= 0:
        return 1.0
    x = np.arange(n + 1, dtype=float)
    rate = x / n
    lr = -2 * (xlogy(x, p) + xlogy(n - x, 1 - p) - xlogy(x, rate) - xlogy(n - x, 1 - rate))
    p_values = erfc(np.sqrt(np.maximum(lr, 0.0) / 2))  # chi-square(1) tail, as metrics does
    return float(np.sum(binom.pmf(x, n, p)[p_values >= level]))


def reference_pass_share(counts: Sequence[int], p: float, level: float = 0.05) -> float:
    """Mean of ``kupiec_pass_share_reference`` over symbols with these numbers of
    non-overlapping dates: the pass share a calibrated forecaster would be expected to get."""
    values = np.asarray(counts, dtype=int)
    if not len(values):
        return math.nan
    distinct, multiplicity = np.unique(values, return_counts=True)
    shares = np.array([kupiec_pass_share_reference(int(n), p, level) for n in distinct])
    return float(np.sum(shares * multiplicity) / len(values))


def model_confidence_set(
    losses: dict[str, np.ndarray],
    size: float = 0.10,
    block_size: int = 6,
    reps: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Hansen-Lunde-Nason model confidence set (``arch``'s MCS, R method, stationary bootstrap)
    over one loss per date per method, to name the methods not beaten at ``size``.

    Dates where any method's loss is not finite are dropped. The integer ``seed`` seeds a
    fresh generator on every call, so equal inputs give equal sets. Names keep the order of
    ``losses``; ``pvalues`` are the MCS p-values (the smallest size at which the method is
    out of the set).
    """
    names = list(losses)
    if len(names) < 2:
        raise ValueError("the model confidence set needs at least two methods")
    columns = [np.asarray(losses[name], dtype=float) for name in names]
    if len({len(c) for c in columns}) != 1:
        raise ValueError("every method needs one loss per date, on the same dates")
    matrix = np.column_stack(columns)
    matrix = matrix[np.all(np.isfinite(matrix), axis=1)]
    # Methods with identical losses (a baseline whose every fit fell back to another) cannot
    # be told apart: their loss differences have no variance. One of each stands for all.
    first = {}
    for j in range(matrix.shape[1]):
        twin = next((k for k in first.values() if np.array_equal(matrix[:, k], matrix[:, j])), j)
        first[names[j]] = twin
    unique = sorted(set(first.values()))
    if len(unique) < 2:
        pvalues = dict.fromkeys(names, 1.0)
    else:
        pvalues = _mcs_pvalues(matrix[:, unique], size, reps, block_size, seed)
        pvalues = {name: pvalues[unique.index(first[name])] for name in names}
    return {
        "included": [name for name in names if pvalues[name] > size],
        "excluded": [name for name in names if pvalues[name] <= size],
        "pvalues": pvalues,
        "identical": {
            name: names[first[name]] for name in names if first[name] != names.index(name)
        },
        "size": size,
        "block_size": block_size,
        "bootstrap": "stationary",
        "seed": seed,
        "reps": reps,
        "dates": int(matrix.shape[0]),
    }


def _mcs_pvalues(
    matrix: np.ndarray, size: float, reps: int, block_size: int, seed: int
) -> list[float]:
    """arch's MCS p-value of each column."""
    mcs = MCS(
        matrix,
        size=size,
        reps=reps,
        block_size=block_size,
        method="R",
        bootstrap="stationary",
        seed=seed,
    )
    mcs.compute()
    # An ndarray in, so arch's index is the column number.
    raw = mcs.pvalues["Pvalue"]
    found = {int(i): float(raw.loc[i]) for i in raw.index}
    return [found[j] for j in range(matrix.shape[1])]
