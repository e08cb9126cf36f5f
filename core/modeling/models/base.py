"""The quantile-regressor protocol and helpers every model shares."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import polars as pl

if TYPE_CHECKING:
    import optuna

    from core.config import ModelSettings

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


@dataclass(frozen=True)
class ModelSpec:
    """A regressor as the registry knows it (``core.modeling.models.MODELS``).

    ``build(quantiles, features, horizon, params)`` makes an unfitted model; ``load`` reads
    one saved by its ``save``. ``search_space`` (tuning) and ``inner_defaults`` (parameters
    when it is the inner model of volatility-scaled targets) are None for a model that has
    no parameters to tune or is never scaled. ``baseline``: a reference method that every
    evaluation (train's test period, each backtest refit) fits and scores beside the model.
    ``thin_by_horizon``: unless ``model.train_every`` says otherwise, a window's fits learn
    from the training rows of every h-th date only, set where the whole backtest showed it
    costs no quality (the figures: docs/performance.md, issue 21). ``from_settings``: the parameters a
    method takes from the model settings whether or not it is the configured model (a
    baseline's window).
    """

    name: str
    summary: str
    build: Callable[[list[float], list[str], int, dict[str, Any]], QuantileRegressor]
    load: Callable[[Path], QuantileRegressor]
    search_space: Callable[[optuna.Trial], dict[str, Any]] | None = None
    inner_defaults: dict[str, Any] | None = None
    baseline: bool = False
    thin_by_horizon: bool = False
    from_settings: Callable[[ModelSettings], dict[str, Any]] | None = None
