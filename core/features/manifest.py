"""The feature build's manifest (``features/manifest.json``) as a typed artifact: what the
table holds, what it was built from, and the sha256 of every file it names."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from core.storage import Manifest


def digest(obj: Any) -> str:
    """A short, stable digest of a JSON-able value (build versions, fit keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class DataFingerprint(BaseModel):
    """What a model, study or backtest was fitted on: a feature build and its inputs."""

    model_config = ConfigDict(frozen=True)

    features_version: str
    inputs: str


class HashedFile(BaseModel):
    """A file and the sha256 it was written with."""

    key: str
    sha256: str


class FeaturePart(HashedFile):
    """One written part of a build: its key and sha256, rows and symbols."""

    rows: int
    symbols: int


# symbol -> (last date, rows) of its stored prices
Fingerprint = dict[str, tuple[str, int]]


class FeaturesManifest(Manifest):
    """``features/manifest.json``, written last: readers go through it, so they never mix
    parts of two builds. Builds written before checksums existed have none to check."""

    LABEL: ClassVar[str] = "the feature manifest"

    version: str
    created_at: str
    groups: list[str]
    features: dict[str, list[str]]
    target: str = "y"
    horizon: int
    windows: dict[str, int] = Field(default_factory=dict)
    warmup_rows: int
    window_mode: str
    code_version: str
    rows: int
    symbols: int
    parts: list[str]
    checksums: dict[str, str] = Field(default_factory=dict)
    input_fingerprint: Fingerprint
    seconds: float

    def hashed(self) -> dict[str, str]:
        return self.checksums

    def with_hashes(self, written: Mapping[str, str]) -> FeaturesManifest:
        return self.model_copy(update={"checksums": self.checksums | dict(written)})

    @property
    def model_inputs(self) -> list[str]:
        """The features the table holds, each once, in table order (what models use)."""
        return list(dict.fromkeys(f for g in self.groups for f in self.features[g]))

    @property
    def data_fingerprint(self) -> DataFingerprint:
        """The build's version and a digest of its inputs."""
        return DataFingerprint(features_version=self.version, inputs=digest(self.input_fingerprint))

    @property
    def built_to(self) -> str:
        """The newest date of any symbol's prices the build read (ISO)."""
        return max(last for last, _ in self.input_fingerprint.values())
