"""CatBoost with a MultiQuantile loss: one model for all quantiles, `symbol` categorical."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from core.models.base import read_params, sort_rows, write_params

DEFAULTS: dict[str, Any] = {
    # the original design's parameters
    "iterations": 1000,
    "learning_rate": 0.02,
    "depth": 5,
    "l2_leaf_reg": 20,
    "border_count": 256,
    "bootstrap_type": "Bayesian",
    "bagging_temperature": 0.5,
    "od_type": "Iter",
    "od_wait": 80,
    "random_seed": 7,
    "thread_count": 2,
    "allow_writing_files": False,
    "verbose": False,
}
MODEL_FILE = "model.cbm"


class CatBoostQuantile:
    name = "catboost"

    def __init__(
        self, quantiles: list[float], features: list[str], params: dict[str, Any] | None = None
    ):
        self.quantiles = list(quantiles)
        self.features = list(features)
        self.params = DEFAULTS | (params or {})
        self.cat_features = [f for f in self.features if f == "symbol"]
        self._model: Any = None

    def _pool(self, X: pl.DataFrame, y: np.ndarray | None = None) -> Any:
        from catboost import Pool

        frame = X.select(self.features).to_pandas()
        return Pool(frame, label=y, cat_features=self.cat_features)

    def fit(self, X: pl.DataFrame, y: np.ndarray, X_val: pl.DataFrame, y_val: np.ndarray) -> None:
        from catboost import CatBoostRegressor

        loss = "MultiQuantile:alpha=" + ",".join(str(q) for q in self.quantiles)
        self._model = CatBoostRegressor(loss_function=loss, **self.params)
        self._model.fit(self._pool(X, y), eval_set=self._pool(X_val, y_val), use_best_model=True)

    def predict_raw(self, X: pl.DataFrame) -> np.ndarray:
        preds = np.asarray(self._model.predict(self._pool(X)), dtype=float)
        return preds.reshape(len(X), len(self.quantiles))

    def predict(self, X: pl.DataFrame) -> np.ndarray:
        return sort_rows(self.predict_raw(X))

    def feature_importance(self) -> dict[str, float]:
        values = self._model.get_feature_importance()
        return {f: float(v) for f, v in zip(self.features, values, strict=True)}

    def save(self, folder: Path) -> None:
        write_params(folder, {"model": self.name, "quantiles": self.quantiles, "features": self.features,
                              "params": self.params, "best_iteration": int(self._model.get_best_iteration() or 0)})  # fmt: skip
        self._model.save_model(str(folder / MODEL_FILE), format="cbm")

    @classmethod
    def load(cls, folder: Path) -> CatBoostQuantile:
        from catboost import CatBoostRegressor

        meta = read_params(folder)
        model = cls(meta["quantiles"], meta["features"], meta["params"])
        model._model = CatBoostRegressor()
        model._model.load_model(str(folder / MODEL_FILE), format="cbm")
        return model
