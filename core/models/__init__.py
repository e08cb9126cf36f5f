"""Quantile regressors by name (``--model`` / ``SMA_MODEL__NAME``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.models.base import QuantileRegressor, read_params

MODELS = ("catboost", "lightgbm", "historical", "ewma")


def make_model(
    name: str,
    quantiles: list[float],
    features: list[str],
    horizon: int,
    params: dict[str, Any] | None = None,
) -> QuantileRegressor:
    if name == "catboost":
        from core.models.catboost_model import CatBoostQuantile

        return CatBoostQuantile(quantiles, features, params)
    if name == "lightgbm":
        from core.models.lightgbm_model import LightGBMQuantile

        return LightGBMQuantile(quantiles, features, params)
    if name in ("historical", "ewma"):
        from core.models.baselines import Baseline

        return Baseline(name, quantiles, horizon)
    raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")


def load_model(folder: Path) -> QuantileRegressor:
    """A saved model, by the name in its params.json."""
    name = read_params(folder)["model"]
    if name == "catboost":
        from core.models.catboost_model import CatBoostQuantile

        return CatBoostQuantile.load(folder)
    if name == "lightgbm":
        from core.models.lightgbm_model import LightGBMQuantile

        return LightGBMQuantile.load(folder)
    from core.models.baselines import Baseline

    return Baseline.load(folder)
