"""Baselines every model must beat, computed from prices known at t.

- ``historical``: historical simulation: per symbol, empirical quantiles of the trailing
  ``model.historical_window`` (250) h-day log returns, overlapping (an h-day return ending
  on each of those dates).
- ``ewma``: RiskMetrics volatility (lambda 0.94) of daily log returns, scaled by sqrt(h),
  times normal quantiles (mean zero).
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np
import polars as pl

from core.modeling.models.base import ModelSpec
from core.modeling.models.prices import PriceModel

HISTORY_DAYS = 250  # the Basel year of historical simulation
SAVED_WINDOW = 252  # the window of ``historical`` models saved before it was a setting
RISKMETRICS_LAMBDA = 0.94


def historical_quantiles(
    prices: pl.DataFrame, quantiles: list[float], horizon: int, window: int = HISTORY_DAYS
) -> pl.DataFrame:
    """symbol, date, q_<q>...: quantiles of h-day returns that ended at or before each date."""
    ret_h = (pl.col("close") / pl.col("close").shift(horizon)).log().over("symbol")
    return (
        prices.sort("symbol", "date")
        .with_columns(ret_h.alias("_ret"))
        .select(
            "symbol",
            "date",
            *[
                pl.col("_ret")
                .rolling_quantile(q, "linear", window, min_samples=window // 4)
                .over("symbol")
                .alias(f"q_{q}")
                for q in quantiles
            ],
        )
    )


def ewma_quantiles(
    prices: pl.DataFrame, quantiles: list[float], horizon: int, lam: float = RISKMETRICS_LAMBDA
) -> pl.DataFrame:
    """symbol, date, q_<q>...: sqrt(h) * RiskMetrics sigma * z_q."""
    r = (pl.col("close") / pl.col("close").shift(1)).log().over("symbol")
    var = r.pow(2).ewm_mean(alpha=1 - lam, adjust=False, min_samples=20).over("symbol")
    sigma = (var * horizon).sqrt()
    z = {q: NormalDist().inv_cdf(q) for q in quantiles}
    return prices.sort("symbol", "date").select(
        "symbol", "date", *[(sigma * z[q]).alias(f"q_{q}") for q in quantiles]
    )


BASELINES = {"historical": historical_quantiles, "ewma": ewma_quantiles}


class Baseline(PriceModel):
    """A baseline behind the regressor protocol: `fit` learns nothing; `predict` looks the
    rows' (symbol, date) up in quantiles computed from the attached price panel. ``window``:
    ``historical``'s trailing returns (None for ``ewma``)."""

    def __init__(self, name: str, quantiles: list[float], horizon: int, window: int | None = None):
        if name not in BASELINES:
            raise ValueError(f"unknown baseline {name!r}")
        super().__init__(quantiles, horizon)
        self.name = name
        self.window = (window or HISTORY_DAYS) if name == "historical" else None
        self._table: pl.DataFrame | None = None

    @property
    def reads_rows(self) -> int | None:
        """How many of a symbol's price rows before the first row forecast it reads, beyond the
        horizon (None: a recursion from the panel's first price, computed once)."""
        return self.window

    def quantile_table(self, prices: pl.DataFrame) -> pl.DataFrame:
        """symbol, date, q_<q>...: the baseline's quantiles over ``prices``."""
        if self.window is None:
            return BASELINES[self.name](prices, self.quantiles, self.horizon)
        return historical_quantiles(prices, self.quantiles, self.horizon, self.window)

    def attach_prices(self, prices: pl.DataFrame) -> None:
        super().attach_prices(prices)
        self._table = None
        if self.reads_rows is None:
            self._table = self.quantile_table(prices)

    def fit(self, X: pl.DataFrame, y: np.ndarray, X_val: pl.DataFrame, y_val: np.ndarray) -> None:
        """Nothing to learn."""

    def predict_raw(self, X: pl.DataFrame) -> np.ndarray:
        """A trailing-window baseline computes its quantiles over the rows' dates only, plus
        the rows its window reads before them (counted in rows per symbol, so a gap in a
        symbol's history changes nothing): a backtest's refit forecasts months, not the panel."""
        reads = self.reads_rows
        if reads is None:
            if self._table is None:
                raise RuntimeError(f"{self.name} baseline needs attach_prices() before predict")
            return self.lookup(X, self._table)
        if not X.height:
            return np.zeros((0, len(self.quantiles)))
        first, last = X["date"].min(), X["date"].max()
        position = pl.int_range(pl.len()).over("symbol")
        panel = (
            self.prices.filter(
                pl.col("symbol").is_in(X["symbol"].unique().implode()), pl.col("date") <= last
            )
            .sort("symbol", "date")
            .with_columns(position.alias("_row"))
        )
        start = pl.col("_row").filter(pl.col("date") >= first).min().over("symbol")
        prices = panel.filter(pl.col("_row") >= start - (reads + self.horizon)).drop("_row")
        return self.lookup(X, self.quantile_table(prices))

    def state(self) -> dict[str, Any]:
        return {"window": self.window} if self.window is not None else {}

    def restore(self, state: dict[str, Any]) -> None:
        self.window = state.get("window", self.window)

    @classmethod
    def create(cls, name: str, quantiles: list[float], horizon: int) -> Baseline:
        """Loading: a ``historical`` saved without its window had the old fixed one."""
        return cls(name, quantiles, horizon, SAVED_WINDOW if name == "historical" else None)


HISTORICAL = ModelSpec(
    name="historical",
    baseline=True,
    summary="historical simulation: empirical quantiles of the trailing model.historical_window "
    "h-day returns (a baseline)",
    build=lambda quantiles, features, horizon, params: Baseline(
        "historical", quantiles, horizon, params.get("window")
    ),
    load=Baseline.load,
    from_settings=lambda cfg: {"window": cfg.historical_window},
)
EWMA = ModelSpec(
    name="ewma",
    baseline=True,
    summary="RiskMetrics volatility (lambda 0.94) x sqrt(h) x normal quantiles (a baseline)",
    build=lambda quantiles, features, horizon, params: Baseline("ewma", quantiles, horizon),
    load=Baseline.load,
)
