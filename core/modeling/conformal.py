"""Conformal calibration of quantile forecasts (names after MAPIE's conformalized quantile
regression): CQR for the outer interval, shifts for the inner quantiles, and Adaptive
Conformal Inference on top. All state is plain JSON.

- CQR (Romano et al. 2019): conformity scores ``max(lo - y, y - hi)`` on the calibration set,
  optionally divided by the predicted width (``normalized``: intervals scale with
  volatility); the interval widens by the score quantile of rank ceil((n+1)(1-alpha)).
  ``asymmetric`` conformalizes each side at alpha/2.
- ACI (Gibbs & Candes 2021): alpha_{t+1} = alpha_t + gamma (alpha - err_t), where err_t is
  the miss rate of date t, known only h trading days later (delayed feedback).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

GRID = np.linspace(0.0, 1.0, 1001)  # score quantile levels stored for ACI
EPS = 1e-12


def conformal_quantile(scores: np.ndarray, alpha: float) -> float:
    """The ceil((n+1)(1-alpha))-th smallest score; +inf when that rank exceeds n."""
    n = len(scores)
    if n == 0:
        raise ValueError("no calibration scores")
    k = math.ceil((n + 1) * (1 - alpha))
    if k > n:
        return math.inf
    return float(np.partition(scores, max(k - 1, 0))[max(k - 1, 0)])


@dataclass
class CQR:
    """A fitted CQR calibration (JSON via ``to_dict`` / ``from_dict``)."""

    quantiles: list[float]
    alpha: float
    mode: Literal["symmetric", "asymmetric"]
    normalized: bool
    q_lo: float
    q_hi: float
    inner_shifts: list[float]
    score_grid: list[float]  # quantiles (levels GRID) of the symmetric calibration scores
    n_calibration: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CQR:
        return cls(**data)


def _scale(lo: np.ndarray, hi: np.ndarray, normalized: bool) -> np.ndarray:
    return np.maximum(hi - lo, EPS) if normalized else np.ones_like(lo)


def fit_cqr(
    preds: np.ndarray,
    y: np.ndarray,
    quantiles: Sequence[float],
    alpha: float,
    mode: Literal["symmetric", "asymmetric"] = "symmetric",
    normalized: bool = False,
) -> CQR:
    """Calibrate raw quantile predictions (n, k), sorted, outer columns = the interval."""
    lo, hi = preds[:, 0], preds[:, -1]
    scale = _scale(lo, hi, normalized)
    lo_scores, hi_scores = (lo - y) / scale, (y - hi) / scale
    scores = np.maximum(lo_scores, hi_scores)
    if mode == "symmetric":
        q_lo = q_hi = conformal_quantile(scores, alpha)
    else:
        q_lo, q_hi = (
            conformal_quantile(lo_scores, alpha / 2),
            conformal_quantile(hi_scores, alpha / 2),
        )
    # Inner quantiles: shift each so that its calibration hit rate equals its level.
    shifts = [0.0] * len(quantiles)
    for j in range(1, len(quantiles) - 1):
        shifts[j] = float(np.quantile(y - preds[:, j], quantiles[j]))
    return CQR(
        quantiles=list(quantiles),
        alpha=alpha,
        mode=mode,
        normalized=normalized,
        q_lo=q_lo,
        q_hi=q_hi,
        inner_shifts=shifts,
        score_grid=[float(v) for v in np.quantile(scores, GRID)],
        n_calibration=len(y),
    )


def repair(preds: np.ndarray) -> np.ndarray:
    """Monotone repair: quantiles non-decreasing along each row."""
    return np.maximum.accumulate(preds, axis=1)


def interval(
    cqr: CQR, preds: np.ndarray, q_lo: float | np.ndarray, q_hi: float | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = preds[:, 0], preds[:, -1]
    scale = _scale(lo, hi, cqr.normalized)
    return lo - q_lo * scale, hi + q_hi * scale


def apply_cqr(cqr: CQR, preds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(calibrated quantiles (n, k), lo, hi): the interval widened by CQR, inner quantiles
    shifted, clipped into the interval and repaired to be monotone."""
    lo, hi = interval(cqr, preds, cqr.q_lo, cqr.q_hi)
    out = preds + np.asarray(cqr.inner_shifts)[None, :]
    out[:, 0], out[:, -1] = lo, hi
    out[:, 1:-1] = np.clip(out[:, 1:-1], lo[:, None], hi[:, None])
    return repair(out), lo, hi


def score_quantile(cqr: CQR, level: float) -> float:
    """Calibration score quantile at any level in [0, 1] (from the stored grid)."""
    grid = np.asarray(cqr.score_grid)
    if level >= 1:
        return float(grid[-1] + (grid[-1] - grid[0]))  # beyond every calibration score
    return float(np.interp(max(level, 0.0), GRID, grid))


@dataclass
class ACIState:
    """Adaptive Conformal Inference state; the predict flow continues it."""

    target_alpha: float
    gamma: float
    horizon: int
    alpha_t: float
    history: list[list[Any]] = field(default_factory=list)  # [date, miss rate], in date order
    applied: int = 0  # how many history entries alpha_t already includes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ACIState:
        return cls(**data)


def aci_update(state: ACIState, known_until: int) -> None:
    """Fold into alpha_t the outcomes of history entries [applied, known_until)."""
    for _, err in state.history[state.applied : known_until]:
        state.alpha_t += state.gamma * (state.target_alpha - err)
    state.applied = max(state.applied, known_until)


def aci_intervals(
    cqr: CQR, state: ACIState, dates: np.ndarray, preds: np.ndarray, y: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Walk the dates in order: each date's interval uses alpha_t built from outcomes known by
    then (dates at least h trading days earlier); then record that date's miss rate.
    Returns (lo, hi, alpha used per row). ``y`` may hold NaN where the outcome is unknown."""
    lo = np.empty(len(dates))
    hi = np.empty(len(dates))
    used = np.empty(len(dates))
    order = np.argsort(dates, kind="stable")
    unique_dates, starts = np.unique(dates[order], return_index=True)
    bounds = [*starts.tolist(), len(order)]
    for i, day in enumerate(unique_dates):
        rows = order[bounds[i] : bounds[i + 1]]
        aci_update(state, max(len(state.history) - state.horizon + 1, 0))
        q = score_quantile(cqr, 1 - state.alpha_t)
        lo[rows], hi[rows] = interval(cqr, preds[rows], q, q)
        used[rows] = state.alpha_t
        if y is not None and not np.isnan(y[rows]).all():
            known = ~np.isnan(y[rows])
            miss = ~((y[rows][known] >= lo[rows][known]) & (y[rows][known] <= hi[rows][known]))
            state.history.append([str(day), float(np.mean(miss))])
    return lo, hi, used
