"""Baselines every model must beat, computed from prices known at t.

- ``historical``: per symbol, empirical quantiles of the trailing 252 h-day log returns.
- ``ewma``: RiskMetrics volatility (lambda 0.94) of daily log returns, scaled by sqrt(h),
  times normal quantiles (mean zero).
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import polars as pl

from core.modeling.models.base import ModelSpec
from core.modeling.models.prices import PriceModel

HISTORY_DAYS = 252
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
# How many of a symbol's price rows before the first row forecast a baseline reads, beyond the
# horizon (None: a recursion from the panel's first price, computed once).
READS_ROWS: dict[str, int | None] = {"historical": HISTORY_DAYS, "ewma": None}


class Baseline(PriceModel):
    """A baseline behind the regressor protocol: `fit` learns nothing; `predict` looks the
    rows' (symbol, date) up in quantiles computed from the attached price panel."""

    def __init__(self, name: str, quantiles: list[float], horizon: int):
        if name not in BASELINES:
            raise ValueError(f"unknown baseline {name!r}")
        super().__init__(quantiles, horizon)
        self.name = name
        self._table: pl.DataFrame | None = None

    def attach_prices(self, prices: pl.DataFrame) -> None:
        super().attach_prices(prices)
        self._table = None
        if READS_ROWS[self.name] is None:
            self._table = BASELINES[self.name](prices, self.quantiles, self.horizon)

    def fit(self, X: pl.DataFrame, y: np.ndarray, X_val: pl.DataFrame, y_val: np.ndarray) -> None:
        """Nothing to learn."""

    def predict_raw(self, X: pl.DataFrame) -> np.ndarray:
        """A trailing-window baseline computes its quantiles over the rows' dates only, plus
        the rows its window reads before them (counted in rows per symbol, so a gap in a
        symbol's history changes nothing): a backtest's refit forecasts months, not the panel."""
        reads = READS_ROWS[self.name]
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
        return self.lookup(X, BASELINES[self.name](prices, self.quantiles, self.horizon))

    @classmethod
    def create(cls, name: str, quantiles: list[float], horizon: int) -> Baseline:
        return cls(name, quantiles, horizon)


HISTORICAL = ModelSpec(
    name="historical",
    baseline=True,
    summary="trailing 252-day empirical quantiles of h-day returns (a baseline)",
    build=lambda quantiles, features, horizon, params: Baseline("historical", quantiles, horizon),
    load=Baseline.load,
)
EWMA = ModelSpec(
    name="ewma",
    baseline=True,
    summary="RiskMetrics volatility (lambda 0.94) x sqrt(h) x normal quantiles (a baseline)",
    build=lambda quantiles, features, horizon, params: Baseline("ewma", quantiles, horizon),
    load=Baseline.load,
)
