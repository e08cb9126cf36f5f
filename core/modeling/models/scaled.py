"""Volatility-scaled targets: the inner regressor fits quantiles of y / sigma, then scales back.

sigma is a HAR-style volatility forecast, a least-squares fit of log(y^2) on the logs of
the ``risk`` feature group's volatility estimates (close-to-close, range-based, market)
over the training rows. A return's quantiles are close to sigma times a nearly fixed
shape; trees split well on where a return falls relative to its scale and poorly on
multiplying by it. The inner regressor also sees log(sigma) as a feature.
Saved as the inner model's native files plus ``scale.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from core.config import ConfigError
from core.features.risk import RETURN_FEATURES, SCALE_FEATURES
from core.modeling.models.base import QuantileRegressor, sort_rows

SCALE_FILE = "scale.json"
LOG_SCALE = "log_scale"
FLOOR = 1e-6  # inside every log: guards log(0) on flat days and zero returns


def use_scaling(mode: str, inner_defaults: dict[str, Any] | None, features: list[str]) -> bool:
    """Whether to scale: never for a model without inner defaults (baselines) or with
    ``off``; ``auto`` when the features carry the ``risk`` group's scale inputs; ``on``
    insists on them. Some but not all of them present is an error, not a silent 'off'."""
    if inner_defaults is None or mode == "off":
        return False
    wanted = set(SCALE_FEATURES + RETURN_FEATURES)
    missing = sorted(wanted - set(features))
    if missing and (mode == "on" or len(missing) < len(wanted)):
        raise ConfigError(
            "model.volatility_scaling needs the 'risk' feature group "
            f"(python -m flows.features --groups seed,risk); missing features: {missing}"
        )
    return not missing


@dataclass
class VolatilityForecast:
    """sigma = exp(0.5 * [1, log(x + floor)..., z...] @ coef), in return units over h days."""

    coef: list[float]
    log_inputs: list[str]
    linear_inputs: list[str]
    floor: float = FLOOR

    def _design(self, X: pl.DataFrame) -> np.ndarray:
        missing = [c for c in self.log_inputs + self.linear_inputs if c not in X.columns]
        if missing:
            raise ValueError(
                f"volatility scaling needs the 'risk' feature group; missing columns: {missing}"
            )
        logs = [np.log(X[c].cast(pl.Float64).to_numpy() + self.floor) for c in self.log_inputs]
        linear = [X[c].cast(pl.Float64).to_numpy() for c in self.linear_inputs]
        return np.column_stack([np.ones(X.height), *logs, *linear])

    @classmethod
    def fit(cls, X: pl.DataFrame, y: np.ndarray) -> VolatilityForecast:
        model = cls([], list(SCALE_FEATURES), list(RETURN_FEATURES))
        design = model._design(X)
        coef, *_ = np.linalg.lstsq(design, np.log(y**2 + FLOOR), rcond=None)
        model.coef = [float(c) for c in coef]
        return model

    def predict(self, X: pl.DataFrame) -> np.ndarray:
        return np.exp(0.5 * (self._design(X) @ np.asarray(self.coef)))


class VolatilityScaled:
    """A quantile regressor behind the same protocol, fitted on volatility-scaled targets."""

    def __init__(self, inner: QuantileRegressor, scale: VolatilityForecast | None = None):
        self.inner = inner
        self.scale = scale
        self.name = inner.name
        self.quantiles = inner.quantiles
        self.features = [f for f in inner.features if f != LOG_SCALE]

    def _fitted_scale(self) -> VolatilityForecast:
        if self.scale is None:
            raise RuntimeError("model is not fitted")
        return self.scale

    def _with_scale(self, X: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray]:
        sigma = self._fitted_scale().predict(X)
        return X.with_columns(pl.Series(LOG_SCALE, np.log(sigma))), sigma

    def fit(self, X: pl.DataFrame, y: np.ndarray, X_val: pl.DataFrame, y_val: np.ndarray) -> None:
        self.scale = VolatilityForecast.fit(X, y)
        Xs, sigma = self._with_scale(X)
        Xs_val, sigma_val = self._with_scale(X_val)
        self.inner.fit(Xs, y / sigma, Xs_val, y_val / sigma_val)

    def predict_raw(self, X: pl.DataFrame) -> np.ndarray:
        Xs, sigma = self._with_scale(X)
        return self.inner.predict_raw(Xs) * sigma[:, None]

    def predict(self, X: pl.DataFrame) -> np.ndarray:
        return sort_rows(self.predict_raw(X))

    def feature_importance(self) -> dict[str, float]:
        return self.inner.feature_importance()

    def save(self, folder: Path) -> None:
        scale = self._fitted_scale()
        self.inner.save(folder)
        (folder / SCALE_FILE).write_text(json.dumps(asdict(scale), indent=2))

    @staticmethod
    def read_scale(folder: Path) -> VolatilityForecast | None:
        path = folder / SCALE_FILE
        return VolatilityForecast(**json.loads(path.read_text())) if path.exists() else None
