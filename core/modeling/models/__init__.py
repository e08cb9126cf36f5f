"""Quantile regressors by name: ``MODELS`` is the single list (``--model`` choices, settings
validation, tuning spaces and the docs read it). A new regressor is one module declaring
a ``ModelSpec`` plus one entry here; its library is imported only when it fits or loads."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.modeling.models.base import ModelSpec, QuantileRegressor


class _Registry(MutableMapping[str, "ModelSpec"]):
    """name -> ``ModelSpec``. An entry is "module:attribute" under this package until it is
    looked up, so listing the names (``--model`` choices, ``--help``) imports no model code."""

    def __init__(self, entries: dict[str, str]):
        self._entries: dict[str, ModelSpec | str] = dict(entries)

    def __getitem__(self, name: str) -> ModelSpec:
        entry = self._entries[name]
        if isinstance(entry, str):
            module, attribute = entry.split(":")
            entry = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
            assert entry.name == name, f"registry entry {name!r} holds the spec of {entry.name!r}"
            self._entries[name] = entry
        return entry

    def __setitem__(self, name: str, spec: ModelSpec) -> None:
        self._entries[name] = spec

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __contains__(self, name: object) -> bool:  # without importing the model
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


MODELS: MutableMapping[str, ModelSpec] = _Registry(
    {
        "catboost": "catboost_model:SPEC",
        "lightgbm": "lightgbm_model:SPEC",
        "historical": "baselines:HISTORICAL",
        "ewma": "baselines:EWMA",
        "garch": "garch:SPEC",
        "har": "har:SPEC",
        "fhs": "filtered:FHS",
        "evt": "filtered:EVT",
    }
)


def baseline_names() -> tuple[str, ...]:
    """The baselines every evaluation scores beside the model (``ModelSpec.baseline``). Not
    called ``baselines``: importing the module ``baselines.py`` of this package would
    replace that name on the package."""
    return tuple(name for name, spec in MODELS.items() if spec.baseline)


def tunable() -> list[str]:
    """Models with a search space (``flows.tune``)."""
    return [name for name, spec in MODELS.items() if spec.search_space is not None]


def require_search_space(name: str) -> None:
    """Refuse to tune a model that has no parameters to tune (``ConfigError``, naming the
    tunable ones)."""
    from core.config import ConfigError

    if MODELS[name].search_space is None:
        raise ConfigError(
            f"model {name!r} has no parameters to tune (tunable: {', '.join(tunable())})"
        )


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
    from core.modeling.models.scaled import LOG_SCALE, VolatilityScaled

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
    from core.modeling.models.base import read_params
    from core.modeling.models.scaled import VolatilityScaled

    model = MODELS[read_params(folder)["model"]].load(folder)
    scale = VolatilityScaled.read_scale(folder)
    return model if scale is None else VolatilityScaled(model, scale)
