"""Quantile regressors by name (``--model`` / ``SMA_MODEL__NAME``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.models.base import QuantileRegressor, read_params
from core.models.scaled import INNER_DEFAULTS, LOG_SCALE, VolatilityScaled

MODELS = ("catboost", "lightgbm", "historical", "ewma")


def make_model(
    name: str,
    quantiles: list[float],
    features: list[str],
    horizon: int,
    params: dict[str, Any] | None = None,
    scaled: bool = False,
) -> QuantileRegressor:
    """A regressor by name; ``scaled`` wraps a GBM in volatility-scaled targets
    (``core.models.scaled``, needs the ``risk`` feature group)."""
    if name in ("catboost", "lightgbm"):
        inputs = [*features, LOG_SCALE] if scaled else list(features)
        if scaled:
            params = INNER_DEFAULTS[name] | (params or {})
        if name == "catboost":
            from core.models.catboost_model import CatBoostQuantile

            model: QuantileRegressor = CatBoostQuantile(quantiles, inputs, params)
        else:
            from core.models.lightgbm_model import LightGBMQuantile

            model = LightGBMQuantile(quantiles, inputs, params)
        return VolatilityScaled(model) if scaled else model
    if name in ("historical", "ewma"):
        from core.models.baselines import Baseline

        return Baseline(name, quantiles, horizon)
    raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")


def load_model(folder: Path) -> QuantileRegressor:
    """A saved model, by the name in its params.json."""
    name = read_params(folder)["model"]
    if name == "catboost":
        from core.models.catboost_model import CatBoostQuantile

        model: QuantileRegressor = CatBoostQuantile.load(folder)
    elif name == "lightgbm":
        from core.models.lightgbm_model import LightGBMQuantile

        model = LightGBMQuantile.load(folder)
    else:
        from core.models.baselines import Baseline

        return Baseline.load(folder)
    scale = VolatilityScaled.read_scale(folder)
    return model if scale is None else VolatilityScaled(model, scale)
