"""What a fit reads: the feature table and the price panel of one verified feature build,
cut to the rows a lookback can use (``core.modeling.timeline.lookback_start``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from core.features.manifest import FeaturesManifest
from core.features.table import FeatureBuild
from core.modeling.models.prices import PRICE_WARMUP_DAYS
from core.modeling.timeline import lookback_start


@dataclass(frozen=True)
class TrainingData:
    """The feature table, the price panel (price models, volatility terciles) and the
    manifest of the build they came from."""

    table: pl.DataFrame
    prices: pl.DataFrame
    build: FeaturesManifest

    @property
    def features(self) -> list[str]:
        return self.build.model_inputs

    @property
    def horizon(self) -> int:
        return self.build.horizon


def training_inputs(build: FeatureBuild, lookback_days: int | None = None) -> TrainingData:
    """The build's rows; with ``lookback_days``, only those a fit on that lookback can use,
    filtered inside the scans so a long history never sits in memory whole (a backtest
    needs every row), and prices ``PRICE_WARMUP_DAYS`` more for the price models."""
    since = None
    if lookback_days is not None:
        newest = dt.date.fromisoformat(build.manifest.built_to)
        since = lookback_start(newest, lookback_days, build.manifest.horizon)
    prices = build.prices(since and since - dt.timedelta(days=PRICE_WARMUP_DAYS))
    return TrainingData(build.scan(since).collect(), prices, build.manifest)
