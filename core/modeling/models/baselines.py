"""Baselines every model must beat, computed from prices known at t.

- ``historical``: per symbol, empirical quantiles of the trailing 252 h-day log returns.
- ``ewma``: RiskMetrics volatility (lambda 0.94) of daily log returns, scaled by sqrt(h),
  times normal quantiles (mean zero).
"""

from __future__ import annotations

from pathlib import Path
from statistics import NormalDist

import numpy as np
import polars as pl

from core.modeling.models.base import ModelSpec, read_params, sort_rows, write_params

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


class Baseline:
    """A baseline behind the regressor protocol: `fit` learns nothing; `predict` looks the
    rows' (symbol, date) up in quantiles computed from the attached price panel."""

    def __init__(self, name: str, quantiles: list[float], horizon: int):
        if name not in BASELINES:
            raise ValueError(f"unknown baseline {name!r}")
        self.name = name
        self.quantiles = list(quantiles)
        self.horizon = horizon
        self.features = ["symbol"]
        self._table: pl.DataFrame | None = None

    def attach_prices(self, prices: pl.DataFrame) -> None:
        self._table = BASELINES[self.name](prices, self.quantiles, self.horizon)

    def fit(self, X: pl.DataFrame, y: np.ndarray, X_val: pl.DataFrame, y_val: np.ndarray) -> None:
        """Nothing to learn."""

    def predict_raw(self, X: pl.DataFrame) -> np.ndarray:
        if self._table is None:
            raise RuntimeError(f"{self.name} baseline needs attach_prices() before predict")
        cols = [f"q_{q}" for q in self.quantiles]
        joined = X.select("symbol", "date").join(
            self._table, on=["symbol", "date"], how="left", maintain_order="left"
        )
        return joined.select(pl.col(cols).fill_null(0.0)).to_numpy().astype(float)

    def predict(self, X: pl.DataFrame) -> np.ndarray:
        return sort_rows(self.predict_raw(X))

    def feature_importance(self) -> dict[str, float]:
        return {}

    def save(self, folder: Path) -> None:
        write_params(
            folder,
            {
                "model": self.name,
                "quantiles": self.quantiles,
                "horizon": self.horizon,
                "features": self.features,
            },
        )

    @classmethod
    def load(cls, folder: Path) -> Baseline:
        meta = read_params(folder)
        return cls(meta["model"], meta["quantiles"], meta["horizon"])


HISTORICAL = ModelSpec(
    name="historical",
    summary="trailing 252-day empirical quantiles of h-day returns (a baseline)",
    build=lambda quantiles, features, horizon, params: Baseline("historical", quantiles, horizon),
    load=Baseline.load,
)
EWMA = ModelSpec(
    name="ewma",
    summary="RiskMetrics volatility (lambda 0.94) x sqrt(h) x normal quantiles (a baseline)",
    build=lambda quantiles, features, horizon, params: Baseline("ewma", quantiles, horizon),
    load=Baseline.load,
)
