"""``fhs`` and ``evt``: the industry's filtered risk baselines, on ``garch``'s GJR-GARCH(1,1)
filter (the same checked fit per symbol and window, its fallbacks to ``ewma`` alike).

- ``fhs``, filtered historical simulation (Barone-Adesi et al. 1999): the empirical quantiles
  of the fit window's standardized residuals z_t = (r_t - mu) / sigma_t in place of the
  Student-t.
- ``evt``, conditional EVT (McNeil and Frey 2000): the same residuals, empirical between the
  10 % and 90 % levels, and beyond each a generalized Pareto tail fitted to the residuals
  past that threshold by probability-weighted moments (Hosking and Wallis 1987; shape kept
  in [-0.5, 0.45], where those moments exist).

h-day forecasts by aggregation, not simulated paths: the residuals' overlapping h-day sums
z_t + ... + z_(t+h-1), divided by sqrt(h), give the standardized h-day return's quantiles
(their serial dependence and the thinning of fat tails under summation come from the data),
times the square root of the GJR's h-day variance (the sum of its h one-day forecasts), plus
h mu. At h = 1 both are the textbook methods. Saved as ``<name>.json``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from core.modeling.models.base import ModelSpec
from core.modeling.models.garch import SCALE, Garch, conditional_variance, persistence

TAIL_SHARE = 0.10  # evt: the share of residuals past each tail's threshold
SHAPE_RANGE = (-0.5, 0.45)  # evt: where the GPD's probability-weighted moments exist


def standardized_residuals(returns: np.ndarray, params: dict[str, float]) -> np.ndarray:
    """z_t = (clipped percent return - mu) / sigma_t, sigma_t^2 the GJR variance forecast for
    day t made the day before (the first from the unconditional variance)."""
    e = np.clip(returns * SCALE, -params["clip"], params["clip"]) - params["mu"]
    after = conditional_variance(returns, params)
    start = params["omega"] / max(1 - persistence(params), 1e-6)
    return e / np.sqrt(np.r_[start, after[:-1]])


def horizon_sums(z: np.ndarray, horizon: int) -> np.ndarray:
    """Overlapping h-day sums of the residuals divided by sqrt(h): a standardized h-day return."""
    return np.convolve(z, np.ones(horizon), mode="valid") / np.sqrt(horizon)


def gpd_pwm(excess: np.ndarray) -> tuple[float, float]:
    """(scale, shape xi) of a generalized Pareto fitted to positive ``excess`` over a threshold
    by probability-weighted moments (Hosking and Wallis 1987), the shape kept in
    ``SHAPE_RANGE``."""
    x = np.sort(np.asarray(excess, dtype=float))
    n = len(x)
    a0 = float(x.mean())
    a1 = float(np.mean((1.0 - (np.arange(1, n + 1) - 0.35) / n) * x))
    k = a0 / (a0 - 2 * a1) - 2.0  # Hosking's k = -xi
    xi = float(np.clip(-k, *SHAPE_RANGE))
    # the scale that keeps the fitted mean excess at the sample's: E[excess] = scale / (1 - xi)
    return a0 * (1.0 - xi), xi


def gpd_tail(sample: np.ndarray, levels: np.ndarray, share: float = TAIL_SHARE) -> np.ndarray:
    """Quantiles at tail probabilities ``levels`` (< share) of the upper tail of ``sample``:
    the threshold u (the empirical 1 - share quantile) plus the fitted GPD's quantile of the
    excess, u + scale / xi ((p / share_u)^(-xi) - 1) (xi = 0: scale log(share_u / p))."""
    u = float(np.quantile(sample, 1.0 - share))
    excess = sample[sample > u] - u
    if len(excess) < 2 or float(np.ptp(excess)) == 0.0:
        return np.quantile(sample, 1.0 - levels)
    scale, xi = gpd_pwm(excess)
    ratio = len(excess) / len(sample) / np.asarray(levels)
    growth = np.log(ratio) if abs(xi) < 1e-9 else (ratio**xi - 1.0) / xi
    return u + scale * growth


def evt_quantiles(z: np.ndarray, quantiles: list[float], share: float = TAIL_SHARE) -> np.ndarray:
    """The residuals' quantiles: empirical within [share, 1 - share], GPD tails beyond."""
    q = np.asarray(quantiles, dtype=float)
    out = np.quantile(z, q)
    low, high = q < share, q > 1.0 - share
    if low.any():
        out[low] = -gpd_tail(-z, q[low], share)
    if high.any():
        out[high] = gpd_tail(z, 1.0 - q[high], share)
    return np.sort(out)


class Filtered(Garch):
    """``garch``'s filter with the standardized residuals' own distribution (``fhs``) or with
    generalized Pareto tails (``evt``) in place of the Student-t."""

    def __init__(self, name: str, quantiles: list[float], horizon: int):
        if name not in FILTERS:
            raise ValueError(f"unknown filtered model {name!r}")
        super().__init__(quantiles, horizon)
        self.name = name
        self.units: dict[str, list[float]] = {}

    def fit(self, X: pl.DataFrame, y: np.ndarray, X_val: pl.DataFrame, y_val: np.ndarray) -> None:
        """``garch``'s fit, then each passing symbol's standardized h-day quantiles."""
        series = self.fit_series(X, X_val)
        self.fit_symbols(series)
        self.units = {
            symbol: FILTERS[self.name](
                horizon_sums(standardized_residuals(series[symbol], params), self.horizon),
                self.quantiles,
            ).tolist()
            for symbol, params in self.params.items()
        }

    def unit_quantiles(self, symbol: str) -> np.ndarray | None:
        return np.asarray(self.units[symbol]) if symbol in self.units else None

    def state(self) -> dict[str, Any]:
        return super().state() | {"unit_quantiles": self.units}

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        self.units = state["unit_quantiles"]

    @classmethod
    def create(cls, name: str, quantiles: list[float], horizon: int) -> Filtered:
        return cls(name, quantiles, horizon)


def empirical_quantiles(z: np.ndarray, quantiles: list[float]) -> np.ndarray:
    """The residuals' empirical quantiles (linear interpolation)."""
    return np.quantile(z, np.asarray(quantiles, dtype=float))


FILTERS = {"fhs": empirical_quantiles, "evt": evt_quantiles}

FHS = ModelSpec(
    name="fhs",
    baseline=True,
    summary="filtered historical simulation: GJR-GARCH filter + empirical standardized residuals "
    "(a baseline)",
    build=lambda quantiles, features, horizon, params: Filtered("fhs", quantiles, horizon),
    load=Filtered.load,
)
EVT = ModelSpec(
    name="evt",
    baseline=True,
    summary="conditional EVT: GJR-GARCH filter + generalized Pareto tails beyond 10 % (a baseline)",
    build=lambda quantiles, features, horizon, params: Filtered("evt", quantiles, horizon),
    load=Filtered.load,
)
