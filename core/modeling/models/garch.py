"""``garch``: GJR-GARCH(1,1) with Student-t innovations, fitted per symbol by the ``arch``
package on the daily log returns of the fit window (train + validation).

h-day quantiles (a documented approximation): the h one-day variance forecasts are summed
(analytic GJR recursion, E[I(e<0) e^2] = sigma^2 / 2 for symmetric innovations), and the
h-day return is taken as h * mu plus that volatility times a unit-variance Student-t
quantile with the fitted degrees of freedom. A sum of t variates is closer to normal than
one t: the tails are slightly conservative at h > 1. Symbols with too short a history, or
whose fit fails, take the median parameters of the others. Daily returns beyond
``CLIP_SDS`` robust standard deviations of the fit window (an unadjusted split, a bad tick
the quality rules let through) are clipped there, in the fit and in the filter: one such
return would otherwise make the fit near-integrated and its forecasts wide for years.
Saved as ``garch.json``.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np
import polars as pl

from core.modeling.models.base import ModelSpec
from core.modeling.models.prices import PriceModel, daily_log_returns

PARAMS = ("mu", "omega", "alpha", "gamma", "beta", "nu", "clip")
CLIP_SDS = 12.0
MIN_RETURNS = 250
SCALE = 100.0  # arch fits percent returns (its optimizer is tuned for that scale)


def fit_gjr(returns: np.ndarray) -> dict[str, float]:
    """GJR-GARCH(1,1)-t parameters of daily log returns (mu, omega, clip in percent units)."""
    from arch import arch_model

    robust_sd = 1.4826 * float(np.median(np.abs(returns - np.median(returns)))) * SCALE
    clip = CLIP_SDS * max(robust_sd, 1e-3)
    model = arch_model(
        np.clip(returns * SCALE, -clip, clip), mean="Constant", vol="GARCH", p=1, o=1, q=1, dist="t"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = model.fit(disp="off", show_warning=False)
    p = fitted.params
    return dict(
        zip(
            PARAMS,
            (p["mu"], p["omega"], p["alpha[1]"], p["gamma[1]"], p["beta[1]"], p["nu"], clip),
            strict=True,
        )
    )


def fit_or_none(returns: np.ndarray) -> dict[str, float] | None:
    """``fit_gjr``, or None when the optimizer fails or returns non-finite parameters."""
    try:
        fitted = fit_gjr(returns)
    except Exception:  # any optimizer or arch failure: the symbol takes the median parameters
        return None
    return fitted if all(np.isfinite(v) for v in fitted.values()) else None


_POOL: ProcessPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def fit_many(series: list[np.ndarray]) -> list[dict[str, float] | None]:
    """Fit every series, over a pool of worker processes (one per core) when there are many:
    each fit is a few tens of milliseconds of Python-bound optimizer work that threads
    cannot spread over cores. Falls back to fitting here when processes cannot start."""
    global _POOL
    workers = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )
    if len(series) < 8 * workers or workers == 1:
        return [fit_or_none(r) for r in series]
    try:
        with _POOL_LOCK:  # refits run in threads: one pool for all of them
            if _POOL is None:
                _POOL = ProcessPoolExecutor(
                    workers, mp_context=multiprocessing.get_context("spawn")
                )
            pool = _POOL
        return list(pool.map(fit_or_none, series, chunksize=max(len(series) // (4 * workers), 1)))
    except (OSError, BrokenProcessPool):
        with _POOL_LOCK:
            if _POOL is not None:
                _POOL.shutdown(wait=False, cancel_futures=True)
            _POOL = None
        return [fit_or_none(r) for r in series]


def conditional_variance(returns: np.ndarray, params: dict[str, float]) -> np.ndarray:
    """sigma^2_{t+1} (percent^2) after each return t: the GJR recursion, run as a linear filter."""
    from scipy import signal

    e = np.clip(returns * SCALE, -params["clip"], params["clip"]) - params["mu"]
    shock = (params["alpha"] + params["gamma"] * (e < 0)) * e**2
    start = params["omega"] / max(1 - params["alpha"] - params["gamma"] / 2 - params["beta"], 1e-6)
    drive = params["omega"] + shock
    out, _ = signal.lfilter([1.0], [1.0, -params["beta"]], drive, zi=[params["beta"] * start])
    return np.maximum(out, 1e-12)


def horizon_quantiles(
    next_var: np.ndarray, params: dict[str, float], quantiles: list[float], horizon: int
) -> np.ndarray:
    """(n, k) h-day return quantiles from next-day variances (see the module docstring)."""
    from scipy import stats

    persistence = params["alpha"] + params["gamma"] / 2 + params["beta"]
    total, var = np.zeros_like(next_var), next_var.copy()
    for _ in range(horizon):
        total += var
        var = params["omega"] + persistence * var
    nu = max(params["nu"], 2.05)
    z = stats.t.ppf(quantiles, nu) * np.sqrt((nu - 2) / nu)
    return (horizon * params["mu"] + np.sqrt(total)[:, None] * z[None, :]) / SCALE


class Garch(PriceModel):
    """GJR-GARCH(1,1)-t per symbol behind the regressor protocol."""

    name = "garch"

    def __init__(self, quantiles: list[float], horizon: int):
        super().__init__(quantiles, horizon)
        self.params: dict[str, dict[str, float]] = {}
        self.fallback: dict[str, float] = {}

    def fit(self, X: pl.DataFrame, y: np.ndarray, X_val: pl.DataFrame, y_val: np.ndarray) -> None:
        """Per symbol, fit on its daily returns between the first and last date of X / X_val."""
        first, last = X["date"].min(), max(X["date"].max(), X_val["date"].max())  # type: ignore[type-var]
        returns = daily_log_returns(self.prices).filter(pl.col("date").is_between(first, last))
        series = {
            str(symbol): r
            for (symbol,), frame in returns.group_by("symbol")
            if len(r := frame.sort("date")["r"].drop_nulls().to_numpy()) >= MIN_RETURNS
        }
        self.params = {
            symbol: fitted
            for symbol, fitted in zip(series, fit_many(list(series.values())), strict=True)
            if fitted is not None
        }
        if not self.params:
            raise ValueError(f"garch: no symbol has {MIN_RETURNS} daily returns to fit on")
        self.fallback = {k: float(np.median([p[k] for p in self.params.values()])) for k in PARAMS}

    def predict_raw(self, X: pl.DataFrame) -> np.ndarray:
        returns = daily_log_returns(self.prices).filter(
            pl.col("symbol").is_in(X["symbol"].unique().implode())
        )
        parts = []
        for (symbol,), frame in returns.group_by("symbol"):
            frame = frame.sort("date").with_columns(pl.col("r").fill_null(0.0))
            params = self.params.get(str(symbol), self.fallback)
            var = conditional_variance(frame["r"].to_numpy(), params)
            q = horizon_quantiles(var, params, self.quantiles, self.horizon)
            parts.append(frame.select("symbol", "date").with_columns(
                *[pl.Series(f"q_{v}", q[:, j]) for j, v in enumerate(self.quantiles)]
            ))  # fmt: skip
        return self.lookup(X, pl.concat(parts) if parts else None)

    def state(self) -> dict[str, Any]:
        return {"symbols": self.params, "fallback": self.fallback}

    def restore(self, state: dict[str, Any]) -> None:
        self.params, self.fallback = state["symbols"], state["fallback"]


SPEC = ModelSpec(
    name="garch",
    baseline=True,
    summary="GJR-GARCH(1,1) with Student-t innovations per symbol (arch), h-day quantiles (a baseline)",
    build=lambda quantiles, features, horizon, params: Garch(quantiles, horizon),
    load=Garch.load,
)
