"""Layout 1's calibration, kept so that runs trained before layout 2 still predict (their
``calibration.json`` holds a ``cqr`` and an ``aci`` state): CQR for the outer interval, shifts
for the inner quantiles, and Adaptive Conformal Inference or the interval tracker on top.
New runs are calibrated per level (``core.modeling.calibration``). All state is plain JSON.

- CQR (Romano et al. 2019): conformity scores ``max(lo - y, y - hi)`` on the calibration set,
  optionally divided by the predicted width (``normalized``: intervals scale with
  volatility); the interval widens by the score quantile of rank ceil((n+1)(1-alpha)).
  ``asymmetric`` conformalizes each side at alpha/2.
- Online updates, both driven by err_t, the miss rate of date t, known only h trading days
  later (delayed feedback); the state carries from one model to the next:
  - ``aci`` (Gibbs & Candes 2021): alpha_{t+1} = alpha_t + gamma (alpha - err_t), the interval
    widened by the calibration score quantile at 1 - alpha_t;
  - ``tracker``, the quantile tracker of conformal PID control (Angelopoulos, Candes &
    Tibshirani 2023): q_{t+1} = q_t + eta (err_t - alpha), the interval widened by q_t times
    sqrt(width x the calibration's mean width) (narrowed at most to its midpoint; it uses the
    CQR's raw interval, whatever the run's CQR mode and normalization). Linear in q, it has none of ACI's blow-ups
    when alpha_t runs into the tails of the score distribution; the square root sits between
    additive offsets (too narrow in turbulent markets) and offsets proportional to the width
    (too wide there, costing pinball loss). Chosen on the 2010-2018 backtest (docs/performance.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

OnlineMethod = Literal["aci", "tracker"]
GRID = np.linspace(0.0, 1.0, 1001)  # score quantile levels stored for ACI
EPS = 1e-12


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
    ref_width: float = 0.0  # mean calibration width: the tracker's unit (0 in older files)
    q_tracker: float = 0.0  # the tracker's starting q: its calibration score quantile

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CQR:
        return cls(**data)


def _scale(lo: np.ndarray, hi: np.ndarray, normalized: bool) -> np.ndarray:
    return np.maximum(hi - lo, EPS) if normalized else np.ones_like(lo)


def tracker_scale(preds: np.ndarray, ref_width: float) -> np.ndarray:
    """The tracker's per-row unit: sqrt(predicted width x the calibration's mean width)."""
    return np.sqrt(np.maximum(preds[:, -1] - preds[:, 0], EPS) * max(ref_width, EPS))


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
    """The online calibration's state (``aci`` or ``tracker``); the predict flow continues it.
    Files written before the tracker existed read as ``aci``."""

    target_alpha: float
    gamma: float  # the method's step size (the tracker's eta)
    horizon: int
    alpha_t: float
    history: list[list[Any]] = field(default_factory=list)  # [date, miss rate], in date order
    applied: int = 0  # how many history entries the state already includes
    method: OnlineMethod = "aci"
    q_t: float = 0.0  # the tracker's offset, in units of tracker_scale

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ACIState:
        return cls(**data)


def aci_update(state: ACIState, known_until: int) -> None:
    """Fold into the state the outcomes of history entries [applied, known_until)."""
    for _, err in state.history[state.applied : known_until]:
        if state.method == "tracker":
            state.q_t += state.gamma * (err - state.target_alpha)
        else:
            state.alpha_t += state.gamma * (state.target_alpha - err)
    state.applied = max(state.applied, known_until)


def online_interval(
    cqr: CQR, state: ACIState, preds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """(lo, hi, offset q): the interval the state gives today's raw predictions; q is in the
    method's score units (ACI: the calibration score quantile at 1 - alpha_t)."""
    if state.method == "tracker":
        # a negative q narrows the interval, at most to its midpoint (it never crosses)
        half = np.maximum(preds[:, -1] - preds[:, 0], 0.0) / 2
        widen = np.maximum(state.q_t * tracker_scale(preds, cqr.ref_width), -half)
        return preds[:, 0] - widen, preds[:, -1] + widen, state.q_t
    q = score_quantile(cqr, 1 - state.alpha_t)
    lo, hi = interval(cqr, preds, q, q)
    return lo, hi, q


def state_level(state: ACIState) -> float | None:
    """ACI's alpha_t (None under the tracker, which has no level): the ``aci_alpha`` column."""
    return state.alpha_t if state.method == "aci" else None


def describe_state(state: ACIState) -> str:
    """One phrase for logs and summaries: 'ACI alpha 0.1971' or 'tracker q 0.8123'."""
    if state.method == "tracker":
        return f"tracker q {state.q_t:.4f}"
    return f"ACI alpha {state.alpha_t:.4f}"


def aci_intervals(
    cqr: CQR, state: ACIState, dates: np.ndarray, preds: np.ndarray, y: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Walk the dates in order: each date's interval uses the state built from outcomes known
    by then (dates at least h trading days earlier); then record that date's miss rate.
    Returns (lo, hi, alpha_t used, offset q used) per row; alpha_t is NaN under the tracker.
    ``y`` may hold NaN where the outcome is unknown."""
    lo = np.empty(len(dates))
    hi = np.empty(len(dates))
    used = np.empty(len(dates))
    offset = np.empty(len(dates))
    order = np.argsort(dates, kind="stable")
    unique_dates, starts = np.unique(dates[order], return_index=True)
    bounds = [*starts.tolist(), len(order)]
    for i, day in enumerate(unique_dates):
        rows = order[bounds[i] : bounds[i + 1]]
        aci_update(state, max(len(state.history) - state.horizon + 1, 0))
        lo[rows], hi[rows], offset[rows] = online_interval(cqr, state, preds[rows])
        level = state_level(state)
        used[rows] = np.nan if level is None else level
        if y is not None and not np.isnan(y[rows]).all():
            known = ~np.isnan(y[rows])
            miss = ~((y[rows][known] >= lo[rows][known]) & (y[rows][known] <= hi[rows][known]))
            state.history.append([str(day), float(np.mean(miss))])
    return lo, hi, used, offset
