"""Per-level conformal calibration and an online tracker per level: one rule for every method,
the learned model and each baseline alike, so that their scores compare like with like.

At each refit, on the calibration window, for every level tau_k of the grid:
- ``spread``: the method's own raw interval width (its quantiles at the target interval's
  two levels), floored at a share of its median so that a degenerate forecast cannot
  divide by zero;
- scores s_k = (y - q_k) / spread; the shift c_k is the ceil((n+1) tau_k)-th smallest score
  (the one-sided split-conformal quantile; the largest score when that rank exceeds n).

Online, in date order, with the h-day delayed feedback (a date's outcomes are known h
trading dates later): theta_k += step_k (tau_k - hit_k), hit_k the date's cross-sectional
share of outcomes at or below the emitted q_k. ``step_k`` = the tracker step x the inverse
density of the level's calibration scores at tau_k (their quantiles at tau_k +- d over 2d):
in probability units, one step corrects a coverage error at 0.01 as fast as at 0.1, where a
step in score units would be far too slow in the tails. theta carries across refits and
decays toward 0 by the share ``decay`` per date: a tail offset built on a crash's dates
(hit rates of 0.4 at the 1 % level) would otherwise linger for a year, undone only by that
level's rare hits. The price: the decay gives up the tracker's long-run coverage guarantee.
A lasting miscalibration e is corrected only to e x decay / (step + decay), half of it at the
defaults, the rest left to the conformal shifts, which a backtest refits every 21 dates but a
deployed run keeps until it is retrained. The update stays linear in the hit rate (a
transform of a noisy daily rate biases the level it settles at).

Per symbol, a second tracker (``symbol_step``, ``symbol_decay``, far smaller and slower) runs
the same rule on each symbol's own hits: theta_ik. The pooled rule calibrates every level
across the panel; a stock whose returns sit persistently off the pooled calibration (a
drift, a skew of its own) stays off it without one. Its offsets start at 0 for a symbol
first seen, and a symbol's hits wait in ``symbol_hits`` only until they are folded in.

Emitted: q_k + (c_k + theta_k + theta_ik) spread, clipped into the sanity bound, then sorted
along the levels: the monotone rearrangement of Chernozhukov, Fernandez-Val & Galichon
(2010), which on a grid is sorting each row, and which never increases the row's pinball
loss summed over the levels (a weighted sum such as the grid's CRPS can rise a little on a
crossed row).

n is the number of calibration rows; ``n_effective`` states how much of it is independent:
outcomes of one date move together across symbols, so the calibration hits of a level have a
design effect (their daily rate varies more than independent rows would let it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from core.modeling.distribution_scores import effective_sample_size

SPREAD_FLOOR = 0.05  # the floor of a row's spread, as a share of the calibration's median


@dataclass
class LevelCalibration:
    """A method's calibration at one refit (JSON via ``to_dict`` / ``from_dict``)."""

    levels: list[float]
    interval: tuple[float, float]  # the levels whose raw difference is the spread
    shifts: list[float]  # c_k, in spread units
    inverse_density: list[float]  # per level, of its scores: spread units per unit of coverage
    floor: float  # the spread's floor, in return units
    n_rows: int
    n_dates: int
    n_effective: list[float]  # per level: rows / the design effect of its calibration hits

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"interval": list(self.interval)}  # as JSON gives it back

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LevelCalibration:
        lo, hi = data["interval"]
        return cls(**{**data, "interval": (float(lo), float(hi))})


def conformal_rank(scores: np.ndarray, tau: float) -> float:
    """The ceil((n+1) tau)-th smallest score (the largest when that rank exceeds n)."""
    n = len(scores)
    if n == 0:
        raise ValueError("no calibration scores")
    k = min(max(math.ceil((n + 1) * tau), 1), n)
    return float(np.partition(scores, k - 1)[k - 1])


def spreads(raw: np.ndarray, levels: Sequence[float], cal: LevelCalibration) -> np.ndarray:
    """Each row's spread: its raw interval width, floored (``LevelCalibration.floor``)."""
    lo, hi = (list(levels).index(t) for t in cal.interval)
    return np.maximum(raw[:, hi] - raw[:, lo], cal.floor)


def inverse_density(scores: np.ndarray, tau: float) -> float:
    """1 / density of ``scores`` at their tau-quantile, from the quantiles at tau +- d."""
    d = min(tau, 1 - tau) / 2
    lo, hi = np.quantile(scores, [tau - d, tau + d])
    return float(max(hi - lo, 1e-9) / (2 * d))


def fit_calibration(
    raw: np.ndarray,
    y: np.ndarray,
    dates: np.ndarray,
    levels: Sequence[float],
    interval: tuple[float, float],
) -> LevelCalibration:
    """Calibrate a method's raw quantiles (rows, levels; sorted) on the calibration rows."""
    lo, hi = (list(levels).index(t) for t in interval)
    width = raw[:, hi] - raw[:, lo]
    median = float(np.median(width)) if len(width) else 0.0
    cal = LevelCalibration(
        levels=list(levels),
        interval=interval,
        shifts=[],
        inverse_density=[],
        floor=max(SPREAD_FLOOR * median, 1e-8),
        n_rows=len(y),
        n_dates=len(np.unique(dates)),
        n_effective=[],
    )
    scores = (y[:, None] - raw) / spreads(raw, levels, cal)[:, None]
    day = np.unique(dates, return_inverse=True)[1]  # dates as integers: sorted once, not per level
    for k, tau in enumerate(levels):
        cal.shifts.append(conformal_rank(scores[:, k], tau))
        cal.inverse_density.append(inverse_density(scores[:, k], tau))
        cal.n_effective.append(effective_sample_size(day, scores[:, k] <= cal.shifts[k]))
    return cal


@dataclass
class TrackerState:
    """The per-level online tracker's state (JSON); predict continues it day after day."""

    levels: list[float]
    horizon: int
    step: float  # in coverage units (``model.tracker_step``)
    decay: float  # the offsets' decay toward 0 per date (``model.tracker_decay``)
    offsets: list[float]  # theta_k, in spread units
    history: list[list[Any]] = field(default_factory=list)  # [date, [hit rate per level]]
    applied: int = 0  # how many history entries the offsets already include
    method: str = ""  # the method it calibrates
    symbol_step: float = 0.0  # the per-symbol tracker (``model.symbol_tracker_step``; 0: none)
    symbol_decay: float = 0.0  # (``model.symbol_tracker_decay``)
    symbol_offsets: dict[str, list[float]] = field(default_factory=dict)  # theta_ik
    # date -> symbol -> its hit per level, kept only until folded into symbol_offsets
    symbol_hits: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrackerState:
        return cls(**data)


def start_tracker(
    levels: Sequence[float],
    horizon: int,
    step: float,
    decay: float,
    method: str,
    symbol_step: float = 0.0,
    symbol_decay: float = 0.0,
) -> TrackerState:
    """A fresh tracker: no offset beyond the conformal shifts."""
    return TrackerState(
        list(levels), horizon, step, decay, [0.0] * len(levels), method=method,
        symbol_step=symbol_step, symbol_decay=symbol_decay,
    )  # fmt: skip


def fold_known(cal: LevelCalibration, state: TrackerState, known_until: int) -> None:
    """Fold into the offsets the hit rates of history entries [applied, known_until), and
    into each symbol's offsets its own hits of those dates."""
    taus, inverse = np.asarray(state.levels), np.asarray(cal.inverse_density)
    offsets = np.asarray(state.offsets)
    zero = [0.0] * len(taus)
    for day, hits in state.history[state.applied : known_until]:
        offsets = (1 - state.decay) * offsets + state.step * inverse * (taus - np.asarray(hits))
        for symbol, own in state.symbol_hits.pop(str(day), {}).items():
            theta = np.asarray(state.symbol_offsets.get(symbol, zero))
            moved = (1 - state.symbol_decay) * theta + state.symbol_step * inverse * (
                taus - np.asarray(own)
            )
            state.symbol_offsets[symbol] = [float(v) for v in moved]
    state.offsets = [float(v) for v in offsets]
    state.applied = max(state.applied, known_until)


def emit(
    cal: LevelCalibration,
    state: TrackerState,
    raw: np.ndarray,
    bound: float,
    symbols: Sequence[str] | None = None,
) -> tuple[np.ndarray, int]:
    """(the emitted quantiles of these rows, how many values the sanity bound clipped);
    ``symbols`` (one per row) adds each row's symbol offsets, unless the per-symbol step is 0
    (a state continued from a run that had one keeps its offsets, unused)."""
    shift = np.broadcast_to(np.asarray(cal.shifts) + np.asarray(state.offsets), raw.shape)
    if symbols is not None and state.symbol_step > 0 and state.symbol_offsets:
        zero = [0.0] * len(state.levels)
        shift = shift + np.asarray([state.symbol_offsets.get(s, zero) for s in symbols])
    out = raw + shift * spreads(raw, cal.levels, cal)[:, None]
    clipped = int(np.sum(np.abs(out) > bound))
    return np.sort(np.clip(out, -bound, bound), axis=1), clipped


def track(
    cal: LevelCalibration,
    state: TrackerState,
    dates: np.ndarray,
    raw: np.ndarray,
    y: np.ndarray | None,
    bound: float,
    symbols: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Walk the dates in order: each date's rows are emitted with the offsets built from the
    outcomes known by then (dates at least h trading dates earlier), then that date's hit
    rates join the history (and, with ``symbols`` and a per-symbol step, each symbol's hits
    wait to be folded). ``y`` may hold NaN where the outcome is unknown. Returns the
    emitted quantiles (rows in the order given) and the count of clipped values."""
    out = np.empty_like(raw, dtype=float)
    clipped = 0
    order = np.argsort(dates, kind="stable")
    unique_dates, starts = np.unique(dates[order], return_index=True)
    bounds = [*starts.tolist(), len(order)]
    for i, day in enumerate(unique_dates):
        rows = order[bounds[i] : bounds[i + 1]]
        fold_known(cal, state, max(len(state.history) - state.horizon + 1, 0))
        names = None if symbols is None else symbols[rows].tolist()
        out[rows], n = emit(cal, state, raw[rows], bound, names)
        clipped += n
        if y is not None:
            known = ~np.isnan(y[rows])
            if known.any():
                below = y[rows][known][:, None] <= out[rows][known]
                state.history.append([str(day), [float(v) for v in below.mean(axis=0)]])
                if names is not None and state.symbol_step > 0:
                    state.symbol_hits[str(day)] = {
                        name: [float(v) for v in hit]
                        for name, hit in zip(np.asarray(names)[known].tolist(), below, strict=True)
                    }
    return out, clipped
