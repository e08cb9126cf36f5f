"""Settings as the entry points load them: ``core.config``'s model, with the settings that
name a registry entry checked against the registries (``SMA_SOURCE``,
``SMA_FEATURES__GROUPS``, ``SMA_MODEL__NAME``: an unknown name is a ``ConfigError`` listing
the known ones).

``core.config`` is the ground floor and never imports the registries; this module sits
above them (with ``core.modeling``) and hands their names in. Listing the model names
imports no model code (the registry is lazy).
"""

from __future__ import annotations

from typing import Any

from core.config import Registries, Settings, read_settings
from core.data.collectors import COLLECTORS
from core.features.registry import GROUPS
from core.modeling.models import MODELS


def registries() -> Registries:
    """The registries' names as they are now (a test or a plug-in may add an entry)."""
    return Registries(
        sources=tuple(COLLECTORS),
        sources_needing_path=frozenset(
            name for name, spec in COLLECTORS.items() if spec.needs_source_path
        ),
        groups=tuple(GROUPS),
        models=tuple(MODELS),
    )


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and ``.env`` with ``overrides`` (CLI flags, flow
    parameters; None: not given) on top, checked against the registries
    (``core.config.read_settings``); ``ConfigError`` names every offending setting."""
    return read_settings(registries(), **overrides)
