"""The feature groups by name: the single list that settings, ``--groups`` and the docs read.

A new group is one module declaring a ``FeatureGroup`` plus one entry here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from core.features import alpha158, risk, seed
from core.features.context import Ctx, FeatureGroup, Windows

GROUPS: dict[str, FeatureGroup] = {g.name: g for g in (seed.GROUP, alpha158.GROUP, risk.GROUP)}


def group(name: str) -> FeatureGroup:
    if name not in GROUPS:
        raise ValueError(f"unknown feature group {name!r}; known: {', '.join(GROUPS)}")
    return GROUPS[name]


def feature_names(groups: list[str], horizon: int = 3) -> dict[str, list[str]]:
    """Model inputs per group, in output order (intermediates starting with '_' excluded)."""
    ctx = Ctx(horizon, "over")
    names: dict[str, list[str]] = {}
    for g in groups:
        spec = group(g)
        outputs = [n for stage in spec.stages(ctx) for n in stage if not n.startswith("_")]
        names[g] = list(spec.categorical) + outputs
    return names


def output_columns(groups: list[str], horizon: int) -> list[str]:
    """The feature columns of a table built from ``groups``, each once, in output order."""
    names = feature_names(groups, horizon)
    return list(dict.fromkeys(n for g in groups for n in names[g]))


def drift_exempt(groups: list[str]) -> set[str]:
    """Features left out of drift alerts: categorical ones and those derived from the date."""
    return {n for g in groups for n in (*group(g).categorical, *group(g).calendar)}


def needs_market(groups: list[str]) -> bool:
    return any(group(g).market for g in groups)


def warmup_rows(groups: list[str], horizon: int) -> int:
    return max(group(g).warmup(Windows(horizon)) for g in groups)


def code_version(
    package: Path = Path(__file__).parent, exclude: frozenset[str] = frozenset()
) -> str:
    """Hash of a package's source (this one by default; subpackages included, the files
    named in ``exclude`` left out): part of a build's version, or a backtest refit's key, so
    a changed formula recomputes."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        if path.relative_to(package).as_posix() in exclude:
            continue
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]
