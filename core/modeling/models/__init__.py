"""Quantile regressors by name: ``MODELS`` is the single list (``--model`` choices, settings
validation, tuning spaces and the README read it). A new regressor is one module declaring
a ``ModelSpec`` plus one entry here; its library is imported only when it fits or loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.modeling.models import baselines, catboost_model, garch, har, lightgbm_model
from core.modeling.models.base import ModelSpec, QuantileRegressor, read_params
from core.modeling.models.scaled import LOG_SCALE, VolatilityScaled

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        catboost_model.SPEC,
        lightgbm_model.SPEC,
        baselines.HISTORICAL,
        baselines.EWMA,
        garch.SPEC,
        har.SPEC,
    )
}


def tunable() -> list[str]:
    """Models with a search space (``flows.tune``)."""
    return [name for name, spec in MODELS.items() if spec.search_space is not None]


def make_model(
    name: str,
    quantiles: list[float],
    features: list[str],
    horizon: int,
    params: dict[str, Any] | None = None,
    scaled: bool = False,
) -> QuantileRegressor:
    """A regressor by name; ``scaled`` wraps it in volatility-scaled targets
    (``core.modeling.models.scaled``, needs the ``risk`` feature group)."""
    spec = MODELS[name]
    if not scaled:
        return spec.build(list(quantiles), list(features), horizon, params or {})
    inner = spec.build(
        list(quantiles),
        [*features, LOG_SCALE],
        horizon,
        (spec.inner_defaults or {}) | (params or {}),
    )
    return VolatilityScaled(inner)


def load_model(folder: Path) -> QuantileRegressor:
    """A saved model, by the name in its params.json (volatility-scaled when it has a scale)."""
    model = MODELS[read_params(folder)["model"]].load(folder)
    scale = VolatilityScaled.read_scale(folder)
    return model if scale is None else VolatilityScaled(model, scale)
