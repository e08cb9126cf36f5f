"""``har``: a HAR model of daily range volatility (Corsi 2009, on Parkinson's estimator),
pooled over symbols by least squares, times the empirical quantiles of standardized returns.

log v_{t+1..t+h} = b0 + b1 log v_t + b5 log v_{t-4..t} + b22 log v_{t-21..t}, where v over a
window is the root mean Parkinson variance (ln(high/low))^2 / (4 ln 2) of its days. The
h-day scale is sqrt(h) * exp(fitted); the quantiles are that scale times the training
rows' empirical quantiles of y / scale (which also absorb the log-regression's bias).
Saved as ``har.json``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from core.errors import InsufficientDataError
from core.modeling.models.base import ModelSpec
from core.modeling.models.prices import PriceModel

WINDOWS = (1, 5, 22)
FLOOR = 1e-10  # flat bars (high == low) have zero range


def har_design(prices: pl.DataFrame, horizon: int) -> pl.DataFrame:
    """symbol, date, lv_1, lv_5, lv_22 (log range volatility up to the date) and ``target``
    (log range volatility over the next h days; null where they are not all known)."""
    pv = (pl.col("high") / pl.col("low")).log().pow(2) / (4 * math.log(2))
    lv = {w: (pl.col("_pv").rolling_mean(w).over("symbol") + FLOOR).sqrt().log() for w in WINDOWS}
    ahead = pl.col("_pv").rolling_mean(horizon).shift(-horizon).over("symbol")
    return (
        prices.sort("symbol", "date")
        .with_columns(pv.alias("_pv"))
        .select(
            "symbol",
            "date",
            *[lv[w].alias(f"lv_{w}") for w in WINDOWS],
            (ahead + FLOOR).sqrt().log().alias("target"),
        )
    )


class Har(PriceModel):
    """Pooled HAR range-volatility model behind the regressor protocol."""

    name = "har"

    def __init__(self, quantiles: list[float], horizon: int):
        super().__init__(quantiles, horizon)
        self.coef: list[float] = []
        self.shape: list[float] = []  # empirical quantiles of y / scale

    def _rows(self, X: pl.DataFrame) -> pl.DataFrame:
        design = har_design(self.prices, self.horizon)
        return X.select("symbol", "date").join(
            design, on=["symbol", "date"], how="left", maintain_order="left"
        )

    def _scale(self, rows: pl.DataFrame) -> np.ndarray:
        design = np.column_stack(
            [np.ones(rows.height), *[rows[f"lv_{w}"].to_numpy() for w in WINDOWS]]
        )
        return math.sqrt(self.horizon) * np.exp(design @ np.asarray(self.coef))

    def fit(self, X: pl.DataFrame, y: np.ndarray, X_val: pl.DataFrame, y_val: np.ndarray) -> None:
        """Least squares on the training rows (targets end before the validation window)."""
        rows = self._rows(X).with_columns(pl.Series("y", y))
        rows = rows.drop_nulls().filter(pl.all_horizontal(pl.col("^lv_.*$", "target").is_finite()))
        if rows.height < 50:
            raise InsufficientDataError(
                f"har: {rows.height} training rows with a known range history"
            )
        design = np.column_stack(
            [np.ones(rows.height), *[rows[f"lv_{w}"].to_numpy() for w in WINDOWS]]
        )
        coef, *_ = np.linalg.lstsq(design, rows["target"].to_numpy(), rcond=None)
        self.coef = [float(c) for c in coef]
        z = rows["y"].to_numpy() / self._scale(rows)
        self.shape = [float(v) for v in np.quantile(z, self.quantiles)]

    def predict_raw(self, X: pl.DataFrame) -> np.ndarray:
        if not self.coef:
            raise RuntimeError("har is not fitted")
        rows = self._rows(X)
        scale = np.nan_to_num(self._scale(rows.fill_null(float("nan"))), nan=0.0)
        return scale[:, None] * np.asarray(self.shape)[None, :]

    def state(self) -> dict[str, Any]:
        return {"coef": self.coef, "shape": self.shape}

    def restore(self, state: dict[str, Any]) -> None:
        self.coef, self.shape = state["coef"], state["shape"]


SPEC = ModelSpec(
    name="har",
    baseline=True,
    summary="pooled HAR on log Parkinson range volatility (1, 5, 22 days) x empirical quantiles of standardized returns (a baseline)",
    build=lambda quantiles, features, horizon, params: Har(quantiles, horizon),
    load=Har.load,
)
