"""Online aggregation of several methods' (experts') quantile forecasts, one weight vector per
quantile level, with delayed feedback. All state is plain JSON (``AggregationState``).

Setting. Rows come sorted by date; on each date every row gets, per level tau_k, the convex
combination c = sum_e w_k[e] x_e of the E experts' quantiles x_e, with the weights w_k the state
holds when the date starts. The outcome of a forecast made on date index i is known h trading
dates later: the forecast of date index i uses the feedback of date indices <= i - h only
(indices count the dates the state has seen, from 0). Once a date's rows are forecast, the rows
with a known y give that date's feedback, cross-sectional means over those rows:

- ``loss[k, e]``: the mean pinball loss rho_tau(y - x_e) of expert e at level k;
- ``regret[k, e]``: the mean linearized instantaneous regret r_e = l'(c) (c - x_e), with
  l'(c) = 1{y < c} - tau the pinball subgradient at the combination (the "gradient trick":
  the loss of a forecast x is replaced by its linearization l'(c) x at c, so r_e > 0 when
  moving the combination toward expert e lowers the loss). c is the per-level combination
  before the rearrangement below: the point whose weights are learned.

The pair joins ``pending`` and is folded into the weights h dates later, in date order. A
date without a known y adds no feedback (its index still counts).

Methods, per level k and expert e (uniform prior w0_e = 1 / E):

- ``boa``: Bernstein Online Aggregation (Wintenberger 2017, "Optimal learning with Bernstein
  Online Aggregation", Machine Learning 106, the multiple-learning-rates version), with the
  gradient trick, as implemented in ``profoc``'s BOA (Berrisch & Ziel 2023, "CRPS learning",
  J. Econometrics; profoc's online.cpp / conline.cpp), the per-date regret being the
  cross-sectional mean. For each date's feedback r (in date order), with rho = ``forget``:

      V_e   <- (1 - rho) V_e + r_e^2                         (cumulative squared regret)
      B_e   <- max((1 - rho) B_e, |r_e|)                     (range: max absolute regret)
      eta_e <- min(1 / (2 B_e), sqrt(log(1 / w0_e) / V_e))   (log(1 / w0_e) = log E)
      R_e   <- (1 - rho) R_e + (r_e - eta_e r_e^2) / 2 + B_e 1{eta_e r_e > 1/2}
      w_e   ∝ w0_e * gamma eta_e * exp(gamma eta_e R_e)

  eta_e is the rate after this date's r (so eta_e r_e <= 1/2 always and the indicator, kept
  from the reference, never fires); gamma = ``rate`` (default 1, the reference). The second
  order term -eta r^2 is BOA's Bernstein refinement; the eta_e prefactor is Wintenberger's
  prior over the rates. V and B are floored at e^-350 and eta capped at e^350 (profoc's
  guards), so before any nonzero regret the weights are uniform. (The ``opera`` R package's
  older BOA is the same without the factor 1/2 and the eta prefactor.) BOA is scale free by
  construction: eta ~ 1 / (regret scale). ``forget`` is profoc's ``forget_regret``, 0 in
  the reference; the default here is 0.01 (a memory of ~100 dates): without it eta decays
  like 1 / sqrt(dates seen) and BOA takes about as long as the old leader led to follow a
  new one (the tests' switch of leader after 300 dates, 11 levels: the new leader's mean
  weight passes 0.8 some 150-230 dates later, instead of 60-80 with the default).
- ``ewa``: exponentially weighted averaging with the gradient trick,
  w_e ∝ w0_e exp(-eta sum_s l'_s x_{e,s} / m_s) = w0_e exp(eta sum_s r_{e,s} / m_s) (the
  two sums differ by a term common to all experts), where m_s is the running mean, over the
  feedback dates folded in so far (s included), of the experts' mean pinball loss at that
  level. Dividing by m makes eta = ``rate`` (default 1) a rate per unit of typical loss, the
  same for daily log returns (losses ~0.005) as for any rescaling of them (exactly scale
  free: scaling y and the experts by a scales r and m alike). With ``forget`` rho (default
  0) the sum is discounted: S <- (1 - rho) S + r / m.

With the gradient trick the regret of an expert shrinks as the combination nears the best
convex combination, so the weights do not grow ever more confident in a long-stable leader
(EWA needs no forgetting to follow a change of leader within weeks).

Combined quantiles never cross: each row's combined quantiles are sorted along the levels at
the end (monotone rearrangement, Chernozhukov, Fernandez-Val & Galichon 2010). It never
raises a row's pinball loss summed over the levels, whatever y: swapping an inverted pair
(tau_i < tau_j, q_i > q_j) changes that sum by (tau_i - tau_j)(q_i - q_j) < 0. Levels must be
increasing.

Use: a backtest calls ``aggregate`` once over its rows (or in pieces split at date
boundaries: identical outputs), the state continued in place. A daily predict continues the
stored state: ``aggregate`` the rows whose outcomes became known since ``last_date``, then
``apply_pending`` (their outcomes are known by now), then ``combine`` today's rows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

AggregationMethod = Literal["boa", "ewa"]
DEFAULT_RATE: dict[str, float] = {"boa": 1.0, "ewa": 1.0}
DEFAULT_FORGET: dict[str, float] = {"boa": 0.01, "ewa": 0.0}
TINY = math.exp(-350)  # floors of V and B before any regret (profoc's)
HUGE = math.exp(350)  # the cap of eta (profoc's)


@dataclass
class AggregationState:
    """The online aggregation's state; ``aggregate`` continues it in place. Arrays indexed
    [level][expert]."""

    method: AggregationMethod
    levels: list[float]
    experts: list[str]
    horizon: int
    rate: float  # boa: gamma, the factor on the adaptive rates; ewa: eta per unit of mean loss
    weights: list[list[float]]  # the weights the next date uses
    regret: list[list[float]]  # boa: regularized cumulative regret R; ewa: sum of r / m
    sq_regret: list[list[float]]  # boa: V, the cumulative squared regret
    max_regret: list[list[float]]  # boa: B, the max absolute regret
    loss_sum: list[float]  # ewa: per level, the sum of the folded dates' mean expert loss
    forget: float = 0.0  # the discount of past feedback per date (profoc's forget_regret)
    applied: int = 0  # how many dates' feedback the weights include
    pending: list[dict[str, Any]] = field(default_factory=list)
    # ^ feedback not yet folded in: {"date", "index", "loss": [[...]], "regret": [[...]]}
    n_dates: int = 0  # dates seen: the index of the next date
    last_date: str = ""  # the newest date seen ('' for none)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AggregationState:
        return cls(**data)


def start_aggregation(
    method: AggregationMethod,
    experts: list[str],
    levels: list[float],
    horizon: int,
    rate: float | None = None,
    *,
    forget: float | None = None,
) -> AggregationState:
    """A fresh state with uniform weights (``rate``, ``forget`` None: the method's default,
    ``DEFAULT_RATE`` and ``DEFAULT_FORGET``)."""
    if method not in DEFAULT_RATE:
        raise ValueError(f"unknown aggregation method {method!r}: boa or ewa")
    if not experts:
        raise ValueError("no experts")
    if len(set(experts)) != len(experts):
        raise ValueError(f"duplicate expert names: {experts}")
    levels = [float(v) for v in levels]
    if not levels or any(not 0 < v < 1 for v in levels) or np.any(np.diff(levels) <= 0):
        raise ValueError(f"levels must be increasing in (0, 1): {levels}")
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1, not {horizon}")
    rate = DEFAULT_RATE[method] if rate is None else float(rate)
    if not rate > 0:
        raise ValueError(f"rate must be positive, not {rate}")
    forget = DEFAULT_FORGET[method] if forget is None else float(forget)
    if not 0 <= forget < 1:
        raise ValueError(f"forget must be in [0, 1), not {forget}")
    n_levels, n_experts = len(levels), len(experts)

    def zeros() -> list[list[float]]:
        return [[0.0] * n_experts for _ in range(n_levels)]

    return AggregationState(
        method=method,
        levels=levels,
        experts=list(experts),
        horizon=int(horizon),
        rate=rate,
        weights=[[1.0 / n_experts] * n_experts for _ in range(n_levels)],
        regret=zeros(),
        sq_regret=zeros(),
        max_regret=zeros(),
        loss_sum=[0.0] * n_levels,
        forget=forget,
    )


class _Learner:
    """The state's accumulators as arrays while a call runs (written back by ``save``)."""

    def __init__(self, state: AggregationState) -> None:
        self.state = state
        self.w = np.asarray(state.weights, dtype=float)
        self.R = np.asarray(state.regret, dtype=float)
        self.V = np.asarray(state.sq_regret, dtype=float)
        self.B = np.asarray(state.max_regret, dtype=float)
        self.loss_sum = np.asarray(state.loss_sum, dtype=float)
        self.applied = state.applied

    def fold(self, regret: np.ndarray, loss: np.ndarray) -> None:
        """Fold one date's feedback (K, E) into the weights."""
        n_experts = self.w.shape[1]
        self.applied += 1
        if n_experts == 1:
            return
        if self.state.method == "ewa":
            self.loss_sum += loss.mean(axis=1)
            scale = self.loss_sum / self.applied
            ok = scale > 0
            self.R *= 1 - self.state.forget
            self.R[ok] += regret[ok] / scale[ok, None]
            logits = self.state.rate * self.R
        else:
            keep = 1 - self.state.forget
            self.V = keep * self.V + regret**2
            self.B = np.maximum(keep * self.B, np.abs(regret))
            eta = self._eta()
            self.R = (
                keep * self.R + 0.5 * (regret - eta * regret**2) + self.B * (eta * regret > 0.5)
            )
            gamma_eta = self.state.rate * eta
            logits = np.log(gamma_eta) + gamma_eta * self.R
        logits -= logits.max(axis=1, keepdims=True)
        w = np.exp(logits)
        self.w = w / w.sum(axis=1, keepdims=True)

    def _eta(self) -> np.ndarray:
        n_experts = self.w.shape[1]
        eta = np.minimum(
            1 / (2 * np.maximum(self.B, TINY)),
            np.sqrt(math.log(n_experts) / np.maximum(self.V, TINY)),
        )
        return np.minimum(eta, HUGE)

    def catch_up(self, known_until: int | None) -> None:
        """Fold the pending feedback of date indices < ``known_until`` (None: all)."""
        pending = self.state.pending
        done = 0
        for entry in pending:
            if known_until is not None and entry["index"] >= known_until:
                break
            self.fold(np.asarray(entry["regret"]), np.asarray(entry["loss"]))
            done += 1
        if done:
            del pending[:done]

    def save(self) -> None:
        s = self.state
        s.weights, s.regret = self.w.tolist(), self.R.tolist()
        s.sq_regret, s.max_regret = self.V.tolist(), self.B.tolist()
        s.loss_sum, s.applied = self.loss_sum.tolist(), self.applied


def _check_experts(state: AggregationState, experts: np.ndarray) -> np.ndarray:
    experts = np.asarray(experts, dtype=float)
    shape = (len(state.experts), len(state.levels))
    if experts.ndim != 3 or experts.shape[1:] != shape:
        raise ValueError(
            f"experts must have shape (rows, {shape[0]}, {shape[1]}), not {experts.shape}"
        )
    if not np.isfinite(experts).all():
        raise ValueError("the experts' quantiles must be finite")
    return experts


def _combine(experts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-level convex combinations (rows, K), before the rearrangement."""
    return np.einsum("rek,ke->rk", experts, weights)


def aggregate(
    state: AggregationState, dates: np.ndarray, experts: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Walk the dates in order: each date's rows are combined with the weights built from the
    feedback of dates at least h dates earlier; then that date's feedback joins ``pending``.
    ``dates`` (ISO strings, non-decreasing, after ``state.last_date``), ``experts`` (rows, E,
    K), ``y`` (rows; NaN where unknown). Returns (combined quantiles (rows, K), sorted along
    the levels; the weights each date of the call used (dates, K, E)). Continues ``state`` in
    place."""
    experts = _check_experts(state, experts)
    dates = np.asarray(dates).astype(str)
    y = np.asarray(y, dtype=float)
    n_rows = len(dates)
    n_levels, n_experts = len(state.levels), len(state.experts)
    if experts.shape[0] != n_rows or y.shape != (n_rows,):
        raise ValueError(
            f"{n_rows} dates but experts for {experts.shape[0]} rows and y of shape {y.shape}"
        )
    if n_rows == 0:
        return np.empty((0, n_levels)), np.empty((0, n_levels, n_experts))
    if np.any(dates[1:] < dates[:-1]):
        raise ValueError("rows must be sorted by date")
    if state.last_date and dates[0] <= state.last_date:
        raise ValueError(f"dates from {dates[0]} but the state has seen {state.last_date}")
    starts = np.flatnonzero(np.r_[True, dates[1:] != dates[:-1]])
    bounds = [*starts.tolist(), n_rows]
    levels = np.asarray(state.levels)
    combined = np.empty((n_rows, n_levels))
    used = np.empty((len(starts), n_levels, n_experts))
    learner = _Learner(state)
    for j in range(len(starts)):
        a, b = bounds[j], bounds[j + 1]
        learner.catch_up(state.n_dates - state.horizon + 1)
        used[j] = learner.w
        x = experts[a:b]
        comb = _combine(x, learner.w)
        combined[a:b] = comb
        known = ~np.isnan(y[a:b])
        if known.any():
            xk, ck, yk = x[known], comb[known], y[a:b][known]
            grad = (yk[:, None] < ck).astype(float) - levels  # d/dc rho_tau(y - c)
            regret = np.einsum("rk,rek->ke", grad, ck[:, None, :] - xk) / len(yk)
            diff = yk[:, None, None] - xk
            loss = np.maximum(levels * diff, (levels - 1) * diff).mean(axis=0).T
            state.pending.append(
                {
                    "date": str(dates[a]),
                    "index": state.n_dates,
                    "loss": loss.tolist(),
                    "regret": regret.tolist(),
                }
            )
        state.n_dates += 1
        state.last_date = str(dates[a])
    learner.save()
    return np.sort(combined, axis=1), used


def apply_pending(state: AggregationState, known_until: int | None = None) -> int:
    """Fold into the weights the pending feedback of date indices < ``known_until`` (None:
    all of it, for a live forecast once every fed date's outcome is known). Returns how many
    dates it folded."""
    before = state.applied
    learner = _Learner(state)
    learner.catch_up(known_until)
    learner.save()
    return state.applied - before


def combine(state: AggregationState, experts: np.ndarray) -> np.ndarray:
    """Today's combined quantiles (rows, K) with the state's current weights, sorted along
    the levels; the state is left unchanged."""
    experts = _check_experts(state, experts)
    return np.sort(_combine(experts, np.asarray(state.weights, dtype=float)), axis=1)


def describe_aggregation(state: AggregationState) -> str:
    """One phrase for logs: the method and each expert's weight averaged over the levels."""
    mean = np.asarray(state.weights).mean(axis=0)
    parts = ", ".join(f"{name} {w:.3f}" for name, w in zip(state.experts, mean, strict=True))
    return f"{state.method.upper()} weights {parts} ({state.applied} dates folded in)"
