"""The quantile-regressor protocol and helpers every model shares."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl

PARAMS_FILE = "params.json"


class QuantileRegressor(Protocol):
    """Predicts len(quantiles) quantiles per row, sorted (no crossing); saves natively + JSON."""

    name: str
    quantiles: list[float]
    features: list[str]

    def fit(
        self, X: pl.DataFrame, y: np.ndarray, X_val: pl.DataFrame, y_val: np.ndarray
    ) -> None: ...

    def predict(self, X: pl.DataFrame) -> np.ndarray: ...

    def predict_raw(self, X: pl.DataFrame) -> np.ndarray: ...

    def save(self, folder: Path) -> None: ...

    def feature_importance(self) -> dict[str, float]: ...


def sort_rows(preds: np.ndarray) -> np.ndarray:
    """Quantiles sorted within each row: the no-crossing guarantee of ``predict``."""
    return np.sort(preds, axis=1)


def write_params(folder: Path, data: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PARAMS_FILE).write_text(json.dumps(data, indent=2, sort_keys=True))


def read_params(folder: Path) -> dict[str, Any]:
    return json.loads((folder / PARAMS_FILE).read_text())
