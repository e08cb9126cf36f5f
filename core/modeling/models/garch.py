"""``garch``: GJR-GARCH(1,1) with Student-t innovations, fitted per symbol by the ``arch``
package on the daily log returns of the fit window (train + validation).

h-day quantiles (a documented approximation): the h one-day variance forecasts are summed
(analytic GJR recursion, E[I(e<0) e^2] = sigma^2 / 2 for symmetric innovations), and the
h-day return is taken as h * mu plus that volatility times a unit-variance Student-t
quantile with the fitted degrees of freedom. A sum of t variates is closer to normal than
one t: the tails are slightly conservative at h > 1. Daily returns beyond ``CLIP_SDS``
robust standard deviations of the fit window (an unadjusted split, a bad tick the quality
rules let through) are clipped there, in the fit and in the filter: one such return would
otherwise make the fit near-integrated and its forecasts wide for years.

Checks (``check_fit``, per symbol and refit): the optimizer converged, every parameter is
finite, nu > 2, persistence alpha + gamma / 2 + beta < ``MAX_PERSISTENCE``, and the filtered
variance over the fit window stays within ``MAX_VARIANCE_RATIO`` times the sample variance
of its (clipped) returns.

Fallback: a symbol that fails a check, or has fewer than ``MIN_RETURNS`` returns, is
forecast for that refit by the ``ewma`` baseline (RiskMetrics sigma, lambda 0.94, x sqrt(h)
x normal quantiles); ``Garch.fallbacks`` names each with its reason (a symbol with no return
in the fit window is not named, but forecast the same way). At predict time a row
whose h-day variance exceeds ``MAX_VARIANCE_RATIO`` times h times the symbol's fit-window
variance takes the ``ewma`` quantiles too (counted in ``Garch.predict_fallback_rows``).
Saved as ``garch.json``.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np
import polars as pl

from core.errors import InsufficientDataError
from core.lifeline import pool_worker, quiet_tracker
from core.modeling.models.base import ModelSpec
from core.modeling.models.baselines import ewma_quantiles
from core.modeling.models.prices import PriceModel, daily_log_returns

# What a passing fit keeps per symbol; ``var``: the fit window's sample variance (percent^2)
PARAMS = ("mu", "omega", "alpha", "gamma", "beta", "nu", "clip", "var")
CLIP_SDS = 12.0
MIN_RETURNS = 250
SCALE = 100.0  # arch fits percent returns (its optimizer is tuned for that scale)
MAX_PERSISTENCE = 0.999  # at or above: integrated, shocks never decay
MAX_VARIANCE_RATIO = 50.0  # filtered (or h-day, per day) variance / the fit window's variance
MIN_NU = 2.0  # at or below: the Student-t has no variance

FitResult = dict[str, float] | str  # a passing fit's parameters, or why it fell back


def clip_level(returns: np.ndarray) -> float:
    """Where percent returns are clipped: ``CLIP_SDS`` robust (MAD) standard deviations."""
    robust_sd = 1.4826 * float(np.median(np.abs(returns - np.median(returns)))) * SCALE
    return CLIP_SDS * max(robust_sd, 1e-3)


def fit_gjr(returns: np.ndarray) -> dict[str, float]:
    """GJR-GARCH(1,1)-t parameters of daily log returns (mu, omega, clip, var in percent
    units), plus ``flag``: the optimizer's status (arch's ``convergence_flag``, 0: converged)."""
    from arch import arch_model

    clip = clip_level(returns)
    clipped = np.clip(returns * SCALE, -clip, clip)
    model = arch_model(clipped, mean="Constant", vol="GARCH", p=1, o=1, q=1, dist="t")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = model.fit(disp="off", show_warning=False)
    p = fitted.params.to_dict()
    return {
        "mu": float(p["mu"]),
        "omega": float(p["omega"]),
        "alpha": float(p["alpha[1]"]),
        "gamma": float(p["gamma[1]"]),
        "beta": float(p["beta[1]"]),
        "nu": float(p["nu"]),
        "clip": clip,
        "var": float(np.var(clipped)),
        "flag": float(fitted.convergence_flag),
    }


def persistence(params: dict[str, float]) -> float:
    """alpha + gamma / 2 + beta: how much of today's variance shock survives to tomorrow."""
    return params["alpha"] + params["gamma"] / 2 + params["beta"]


def check_fit(params: dict[str, float], returns: np.ndarray) -> str | None:
    """Why a fit on ``returns`` must not forecast (None: it passes); ``params`` as ``fit_gjr``
    returns them (a missing ``flag`` counts as converged)."""
    if not all(np.isfinite(v) for v in params.values()):
        return "non-finite parameters"
    if params.get("flag", 0.0) != 0:
        return "did not converge"
    if params["nu"] <= MIN_NU:
        return f"nu {params['nu']:.3g} <= {MIN_NU:g}"
    if (p := persistence(params)) >= MAX_PERSISTENCE:
        return f"persistence {p:.4g} >= {MAX_PERSISTENCE:g}"
    if params["var"] <= 0:
        return "returns without variance"
    ratio = float(np.max(conditional_variance(returns, params))) / params["var"]
    if not ratio <= MAX_VARIANCE_RATIO:  # also catches nan
        return f"variance {ratio:.0f}x the sample's"
    return None


def fit_checked(returns: np.ndarray) -> FitResult:
    """``fit_gjr``'s parameters (``PARAMS``) when ``check_fit`` passes them, else the reason
    (a plain dict or string: it runs in the pool's workers and comes back pickled)."""
    try:
        fitted = fit_gjr(returns)
    except Exception as exc:  # any optimizer or arch failure: the symbol falls back
        return f"fit failed ({type(exc).__name__})"
    reason = check_fit(fitted, returns)
    return reason if reason is not None else {k: fitted[k] for k in PARAMS}


_POOL: ProcessPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
# Checked fits by their returns' digest: ``garch``, ``fhs`` and ``evt`` filter a window's
# symbols with the same GJR fit, made once per process (a fit is a pure function of its returns).
_FITS: dict[bytes, FitResult] = {}
MAX_CACHED_FITS = 100_000


def fit_many(series: list[np.ndarray]) -> list[FitResult]:
    """``fit_checked`` of every series, each fitted once per process (``_FITS``)."""
    keys = [hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in series]
    with _POOL_LOCK:
        known = {k: _FITS[k] for k in keys if k in _FITS}
    todo = {k: r for k, r in zip(keys, series, strict=True) if k not in known}
    fitted = dict(zip(todo, fit_all(list(todo.values())), strict=True))
    with _POOL_LOCK:
        if len(_FITS) + len(fitted) > MAX_CACHED_FITS:
            _FITS.clear()
        _FITS.update(fitted)
    return [known[k] if k in known else fitted[k] for k in keys]


def fit_all(series: list[np.ndarray]) -> list[FitResult]:
    """Fit every series, over a pool of worker processes (one per core) when there are many:
    each fit is a few tens of milliseconds of Python-bound optimizer work that threads
    cannot spread over cores. Falls back to fitting here when processes cannot start."""
    global _POOL
    workers = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )
    if len(series) < 8 * workers or workers == 1:
        return [fit_checked(r) for r in series]
    try:
        with _POOL_LOCK:  # refits run in threads: one pool for all of them
            if _POOL is None:
                quiet_tracker()
                _POOL = ProcessPoolExecutor(  # workers end with this process (a SIGKILL too)
                    workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=pool_worker,
                    initargs=(os.getpid(),),
                )
            # its workers start as work is submitted (all of it here, at once)
            done = _POOL.map(fit_checked, series, chunksize=max(len(series) // (4 * workers), 1))
        return list(done)
    except (OSError, BrokenProcessPool):
        with _POOL_LOCK:
            if _POOL is not None:
                _POOL.shutdown(wait=False, cancel_futures=True)
            _POOL = None
        return [fit_checked(r) for r in series]


def conditional_variance(returns: np.ndarray, params: dict[str, float]) -> np.ndarray:
    """sigma^2_{t+1} (percent^2) after each return t: the GJR recursion, run as a linear filter."""
    from scipy import signal

    e = np.clip(returns * SCALE, -params["clip"], params["clip"]) - params["mu"]
    shock = (params["alpha"] + params["gamma"] * (e < 0)) * e**2
    start = params["omega"] / max(1 - params["alpha"] - params["gamma"] / 2 - params["beta"], 1e-6)
    drive = params["omega"] + shock
    out, _ = signal.lfilter([1.0], [1.0, -params["beta"]], drive, zi=[params["beta"] * start])
    return np.maximum(out, 1e-12)


def horizon_variance(next_var: np.ndarray, params: dict[str, float], horizon: int) -> np.ndarray:
    """h-day variances (percent^2): the sum of the h one-day forecasts, by the GJR recursion."""
    total, var = np.zeros_like(next_var), next_var.copy()
    for _ in range(horizon):
        total += var
        var = params["omega"] + persistence(params) * var
    return total


def t_quantiles(
    total: np.ndarray, params: dict[str, float], quantiles: list[float], horizon: int
) -> np.ndarray:
    """(n, k) h-day return quantiles (fractions) from h-day variances: h mu + sd x unit-variance t."""
    from scipy import stats

    nu = max(params["nu"], 2.05)
    return scaled_quantiles(
        total, params, stats.t.ppf(quantiles, nu) * np.sqrt((nu - 2) / nu), horizon
    )


def scaled_quantiles(
    total: np.ndarray, params: dict[str, float], unit: np.ndarray, horizon: int
) -> np.ndarray:
    """(n, k) h-day return quantiles (fractions): h mu + the h-day sd x ``unit``, the quantiles
    of a standardized (unit-variance) h-day return."""
    return (horizon * params["mu"] + np.sqrt(total)[:, None] * np.asarray(unit)[None, :]) / SCALE


def exploded(total: np.ndarray, params: dict[str, float], horizon: int) -> np.ndarray:
    """Rows whose h-day variance is beyond ``MAX_VARIANCE_RATIO`` x h x the fit window's daily
    variance (or not finite); parameters saved before ``var`` was kept are never bounded."""
    bound = MAX_VARIANCE_RATIO * horizon * params.get("var", np.inf)
    return ~(total <= bound)


def symbol_quantiles(
    returns: pl.DataFrame,
    params: dict[str, float],
    quantiles: list[float],
    horizon: int,
    unit: np.ndarray | None = None,
) -> pl.DataFrame:
    """symbol, date, q_<q>..., exploded: one symbol's GARCH quantiles (returns sorted by date),
    standardized quantiles ``unit`` (default: the fitted Student-t's) times the h-day sd."""
    var = conditional_variance(returns["r"].fill_null(0.0).to_numpy(), params)
    total = horizon_variance(var, params, horizon)
    q = (
        t_quantiles(total, params, quantiles, horizon)
        if unit is None
        else scaled_quantiles(total, params, unit, horizon)
    )
    return returns.select("symbol", "date").with_columns(
        *[pl.Series(f"q_{v}", q[:, j]) for j, v in enumerate(quantiles)],
        pl.Series("exploded", exploded(total, params, horizon)),
    )


class Garch(PriceModel):
    """GJR-GARCH(1,1)-t per symbol behind the regressor protocol; the ``ewma`` baseline for
    symbols (``fallbacks``) and rows (``predict_fallback_rows``) where it is not to be trusted."""

    name = "garch"

    def __init__(self, quantiles: list[float], horizon: int):
        super().__init__(quantiles, horizon)
        self.params: dict[str, dict[str, float]] = {}
        self.fallbacks: dict[str, str] = {}
        self.predict_fallback_rows = 0

    def fit(self, X: pl.DataFrame, y: np.ndarray, X_val: pl.DataFrame, y_val: np.ndarray) -> None:
        """Per symbol, fit on its daily returns between the first and last date of X / X_val;
        symbols too short or failing ``check_fit`` go to ``fallbacks`` with the reason."""
        self.fit_symbols(self.fit_series(X, X_val))

    def fit_series(self, X: pl.DataFrame, X_val: pl.DataFrame) -> dict[str, np.ndarray]:
        """Each symbol's daily log returns between the first and last date of X / X_val."""
        first, last = X["date"].min(), max(X["date"].max(), X_val["date"].max())  # type: ignore[type-var]
        returns = daily_log_returns(self.prices).filter(pl.col("date").is_between(first, last))
        return {
            str(symbol): r
            for (symbol,), frame in returns.group_by("symbol")
            if len(r := frame.sort("date")["r"].drop_nulls().to_numpy())
        }

    def fit_symbols(self, series: dict[str, np.ndarray]) -> None:
        """``params`` of the symbols whose fit passes its checks, ``fallbacks`` of the others."""
        long = {symbol: r for symbol, r in series.items() if len(r) >= MIN_RETURNS}
        if not long:
            raise InsufficientDataError(
                f"garch: no symbol has {MIN_RETURNS} daily returns to fit on"
            )
        fitted = dict(zip(long, fit_many(list(long.values())), strict=True))
        self.params = {symbol: f for symbol, f in fitted.items() if isinstance(f, dict)}
        self.fallbacks = {
            symbol: f"only {len(r)} returns" for symbol, r in series.items() if symbol not in long
        } | {symbol: f for symbol, f in fitted.items() if isinstance(f, str)}

    def predict_raw(self, X: pl.DataFrame) -> np.ndarray:
        """GARCH quantiles where the symbol passed its checks and the row's variance is bounded,
        else the ``ewma`` baseline's."""
        prices = self.prices.filter(pl.col("symbol").is_in(X["symbol"].unique().implode()))
        ewma = ewma_quantiles(prices, self.quantiles, self.horizon)
        parts = [
            symbol_quantiles(
                frame.sort("date"),
                self.params[str(symbol)],
                self.quantiles,
                self.horizon,
                self.unit_quantiles(str(symbol)),
            )
            for (symbol,), frame in daily_log_returns(prices).group_by("symbol")
            if str(symbol) in self.params
        ]
        if not parts:
            return self.lookup(X, ewma)
        garch = pl.concat(parts)
        keys = X.select("symbol", "date")
        self.predict_fallback_rows += keys.join(
            garch.filter("exploded"), on=["symbol", "date"], how="semi"
        ).height
        trusted = garch.filter(~pl.col("exploded")).drop("exploded")
        return self.lookup(
            X, pl.concat([trusted, ewma.join(trusted, on=["symbol", "date"], how="anti")])
        )

    def unit_quantiles(self, symbol: str) -> np.ndarray | None:
        """A symbol's standardized h-day quantiles (None: the fitted Student-t's)."""
        return None

    def state(self) -> dict[str, Any]:
        return {"symbols": self.params, "fallbacks": self.fallbacks}

    def restore(self, state: dict[str, Any]) -> None:
        """Files saved before the checks have no ``fallbacks`` (their median ``fallback`` is
        not used: unfitted symbols take the ``ewma`` baseline)."""
        self.params, self.fallbacks = state["symbols"], state.get("fallbacks", {})


SPEC = ModelSpec(
    name="garch",
    baseline=True,
    summary="GJR-GARCH(1,1) with Student-t innovations per symbol (arch), h-day quantiles (a baseline)",
    build=lambda quantiles, features, horizon, params: Garch(quantiles, horizon),
    load=Garch.load,
)
