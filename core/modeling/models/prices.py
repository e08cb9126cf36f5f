"""What models that forecast from the price panel share (baselines, ``garch``, ``har``):
the panel is attached (``attach_prices``), and rows are looked up by (symbol, date) in the
quantiles the model computes from prices known at each date."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Self

import numpy as np
import polars as pl

from core.modeling.models.base import read_params, sort_rows, write_params

# Calendar days of prices the models' recursions (EWMA, GARCH) read before the first row
# they forecast or fit: what a caller that cuts the panel by date must keep.
PRICE_WARMUP_DAYS = 365


def uses_prices(model: Any) -> bool:
    """Whether a model forecasts from the attached price panel (and ignores feature columns)."""
    return isinstance(model, PriceModel) or isinstance(getattr(model, "inner", None), PriceModel)


def daily_log_returns(prices: pl.DataFrame) -> pl.DataFrame:
    """symbol, date, r: log close-to-close return ending at each date (null on the first)."""
    return (
        prices.sort("symbol", "date")
        .with_columns((pl.col("close") / pl.col("close").shift(1)).log().over("symbol").alias("r"))
        .select("symbol", "date", "r")
    )


class PriceModel:
    """Base of the price-panel models: they need ``attach_prices`` before fit and predict."""

    name: str

    def __init__(self, quantiles: list[float], horizon: int):
        self.quantiles = list(quantiles)
        self.horizon = horizon
        self.features = ["symbol"]
        self._prices: pl.DataFrame | None = None

    def attach_prices(self, prices: pl.DataFrame) -> None:
        """The panel (symbol, date, close; high and low where a model needs them)."""
        self._prices = prices

    @property
    def prices(self) -> pl.DataFrame:
        if self._prices is None:
            raise RuntimeError(f"{self.name} needs attach_prices() before fit and predict")
        return self._prices

    def lookup(self, X: pl.DataFrame, table: pl.DataFrame | None) -> np.ndarray:
        """The quantile columns of ``table`` at X's (symbol, date), 0 where there is none."""
        cols = [f"q_{q}" for q in self.quantiles]
        if table is None:
            return np.zeros((X.height, len(cols)))
        joined = X.select("symbol", "date").join(
            table, on=["symbol", "date"], how="left", maintain_order="left"
        )
        return joined.select(pl.col(cols).fill_null(0.0).fill_nan(0.0)).to_numpy().astype(float)

    def predict(self, X: pl.DataFrame) -> np.ndarray:
        return sort_rows(self.predict_raw(X))

    def predict_raw(self, X: pl.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def feature_importance(self) -> dict[str, float]:
        return {}

    def state(self) -> dict[str, Any]:
        """What a fit learned, saved as ``<name>.json`` (empty: nothing to save)."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back what ``state`` returned."""

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
        if state := self.state():
            (folder / f"{self.name}.json").write_text(json.dumps(state, indent=2))

    @classmethod
    def load(cls, folder: Path) -> Self:
        meta = read_params(folder)
        model = cls.create(meta["model"], meta["quantiles"], meta["horizon"])
        path = folder / f"{model.name}.json"
        if path.exists():
            model.restore(json.loads(path.read_text()))
        return model

    @classmethod
    def create(cls, name: str, quantiles: list[float], horizon: int) -> Self:
        """An unfitted model of this class (``name``: for classes serving several models)."""
        return cls(quantiles, horizon)
