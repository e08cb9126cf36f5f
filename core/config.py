"""One typed configuration for the whole platform (env prefix ``SMA_``, ``.env`` supported).

Top-level fields are the run inputs that flows also take as parameters and CLI flags
(``SMA_STORE``, ``SMA_TICKERS``, ...); nested sections hold the tuning knobs of one
concern each (``SMA_QUALITY__BAD_TICK_FACTOR``, ...). ``RENAMED`` lists the settings that
changed name: their old environment variables, flags and flow parameters still work, with
a warning naming the new one.

This module is the ground floor (it imports only ``core.errors``). The settings that name a
registry entry (``source``, ``features.groups``, ``model.name``) are checked against names
handed in by the caller (``Registries``): ``core.settings.load_settings``, above the
registries, is how the entry points load settings.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import logging
import os
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.errors import InputError


def csv_or_json(value: Any) -> Any:
    """A list setting given as text: JSON (``[0.1, 0.9]``) or comma-separated (``0.1,0.9``)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a JSON list: {exc.msg}") from None
    return [part.strip() for part in text.split(",") if part.strip()]


# List settings read from the environment as text (csv_or_json), not decoded as JSON first.
Names = Annotated[list[str], NoDecode, BeforeValidator(csv_or_json)]
Numbers = Annotated[list[float], NoDecode, BeforeValidator(csv_or_json)]


@dataclass(frozen=True)
class Registries:
    """The names of the registries' entries that settings are checked against: collectors
    (``core.data.collectors.COLLECTORS``), feature groups (``core.features.registry.GROUPS``)
    and models (``core.modeling.models.MODELS``). The registries sit above this module, which
    never imports them: ``core.settings.registries()`` reads them when settings are loaded."""

    sources: tuple[str, ...]
    sources_needing_path: frozenset[str]
    groups: tuple[str, ...]
    models: tuple[str, ...]


# the registries' names while ``read_settings`` validates (None: a section built in code,
# such as ``ModelSettings()``, is not checked against them)
_registries: ContextVar[Registries | None] = ContextVar("sma_registries", default=None)


def _known(kind: str, value: str, entries: Literal["sources", "groups", "models"]) -> str:
    registries = _registries.get()
    known = getattr(registries, entries) if registries is not None else None
    if known is not None and value not in known:
        raise ValueError(f"unknown {kind} {value!r}; known: {', '.join(known)}")
    return value


class StoreRef(BaseModel):
    """Where the store is: its root URL plus the S3 endpoint and region (what opening it needs)."""

    model_config = ConfigDict(frozen=True)

    url: str
    endpoint_url: str | None = None
    region: str | None = None
    # the horizon whose artifacts the opened store reads and writes (None: the root), and
    # the home horizon of a store that has no feature build yet (``Store.for_horizon``)
    horizon: int | None = None
    first_horizon: int | None = None


class S3Settings(BaseModel):
    """Where an ``s3://`` store lives; credentials come from the usual AWS variables."""

    endpoint_url: str | None = Field(
        default=None,
        description="S3-compatible endpoint (MinIO, LocalStack, moto); falls back to AWS_ENDPOINT_URL.",
    )
    region: str | None = Field(default=None, description="AWS region; falls back to AWS_REGION.")


class CollectSettings(BaseModel):
    """How collection behaves: incremental overlap, retries, caching, parallelism."""

    overlap_days: int = Field(
        default=5,
        ge=0,
        le=250,
        description="Stored trading days refetched to detect re-adjusted history.",
    )
    overlap_tolerance: float = Field(
        default=1e-3,
        gt=0,
        lt=1,
        description="Relative close difference on the overlap that triggers a full refetch.",
    )
    retries: int = Field(
        default=3,
        ge=0,
        le=20,
        description="Task retries for retryable (network, rate-limit) errors.",
    )
    retry_backoff_seconds: float = Field(
        default=2.0, ge=0, description="First retry delay; doubles on each retry."
    )
    retry_jitter_factor: float = Field(
        default=0.5,
        ge=0,
        le=5,
        description="Random jitter added to each retry delay, as a fraction of it.",
    )
    cache_hours: float = Field(
        default=12.0, ge=0, description="How long a completed batch is reused instead of refetched."
    )
    yfinance_timeout: float = Field(
        default=30.0, gt=0, description="Seconds before one Yahoo request gives up."
    )
    yfinance_threads: int = Field(
        default=8, ge=1, le=64, description="Threads yfinance uses inside one batch download."
    )
    symbols_per_task: int = Field(
        default=50, ge=1, le=1000, description="Symbols per collection task (one batch)."
    )


class SyntheticSettings(BaseModel):
    """The synthetic source: seeded random walks for load tests."""

    seed: int = Field(default=7, description="Random seed: the same seed gives the same prices.")
    start_price: float = Field(default=50.0, gt=0, description="Every walk's first close.")


class QualitySettings(BaseModel):
    """Thresholds of the data-quality rules (see ``core.data.quality``)."""

    ohlc_tolerance: float = Field(
        default=0.005,
        ge=0,
        lt=0.5,
        description="Relative slack allowed for open/close outside [low, high].",
    )
    bad_tick_factor: float = Field(
        default=1.9,
        gt=1,
        description="A close jumping by this factor (up or down) from the previous close is suspect.",
    )
    bad_tick_revert_factor: float = Field(
        default=1.6,
        gt=1,
        description="...and is rejected as a bad tick when the next close reverts by at least this factor.",
    )
    stale_run_bars: int = Field(
        default=5,
        ge=2,
        description="Flat zero-volume bars in a row that quarantine the run: a week without a trade is a placeholder price.",
    )
    min_rows: int = Field(
        default=60,
        ge=1,
        description="Valid rows a symbol needs to be usable; fewer marks it 'insufficient'.",
    )


class FeatureSettings(BaseModel):
    """The feature table: which groups, the forecast horizon, how windows run."""

    groups: Names = Field(
        default=["seed", "risk"],
        min_length=1,
        description="Feature groups (core.features.registry.GROUPS).",
    )
    horizons: Annotated[
        list[Annotated[int, Field(ge=1, le=60)]], NoDecode, BeforeValidator(csv_or_json)
    ] = Field(
        default=[3],
        min_length=1,
        description="Forecast horizons in trading days, each with its own features, runs, "
        "forecasts and scores in the store (the first one built keeps the root keys; the others "
        "live under `horizons/h=<h>/`).",
    )
    horizon: int = Field(
        default=3,
        ge=1,
        le=60,
        description="Trading days ahead of the target log return: the horizon a step runs for "
        "(set alone, it stands for HORIZONS of that one horizon).",
    )
    window_mode: Literal["over", "masked", "auto"] = Field(
        default="auto",
        description="Rolling windows per symbol ('over'), over the sorted panel with warm-up rows masked "
        "('masked'), or per group the mode measured fastest ('auto').",
    )
    symbols_per_task: int | None = Field(
        default=None,
        ge=1,
        description="Symbols per feature task; unset: the whole panel in one task.",
    )
    chunk_rows: int = Field(
        default=150_000,
        ge=10_000,
        description="Input rows built at once inside a task (bounds memory); one part each.",
    )

    @field_validator("groups")
    @classmethod
    def _known_groups(cls, value: list[str]) -> list[str]:
        for group in value:
            _known("feature group", group, "groups")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _one_or_several_horizons(self) -> FeatureSettings:
        """``horizon`` alone is an alias of one horizon; with ``horizons``, one of them (the
        horizon a step runs for); neither: the first of the list."""
        if len(set(self.horizons)) != len(self.horizons):
            raise ValueError(f"features.horizons {self.horizons} repeat a horizon")
        given = self.model_fields_set
        if "horizon" in given and "horizons" not in given:
            self.horizons = [self.horizon]
        elif "horizon" not in given:
            self.horizon = self.horizons[0]
        elif self.horizon not in self.horizons:
            raise ValueError(
                f"features.horizon {self.horizon} is not one of features.horizons {self.horizons}"
            )
        return self

    def at(self, horizon: int) -> FeatureSettings:
        """These settings for one of their horizons."""
        return self.model_copy(update={"horizon": horizon})


def interval_levels(alpha: float) -> tuple[float, float]:
    """The two levels of the central interval that misses a share ``alpha``."""
    return round(alpha / 2, 10), round(1 - alpha / 2, 10)


AUTO = "auto"  # model.name: the deployed method chosen by evidence (core.modeling.selection)
AGGREGATE = "boa"  # model.name: the online aggregation of every method (core.modeling.aggregation)


class ModelSettings(BaseModel):
    """Training: the regressor, its quantiles, splits and conformal calibration."""

    # applied after the fits, over their forecasts: changing them reuses a backtest's refits
    ONLINE: ClassVar[set[str]] = {
        "tracker_step", "tracker_decay", "symbol_tracker_step", "symbol_tracker_decay",
        "quantile_bound",
    }  # fmt: skip

    name: str = Field(
        default="catboost",
        description="The deployed method: a regressor of core.modeling.models.MODELS, 'boa' (the online "
        "aggregation of the learner and every baseline), or 'auto': the candidate with the lowest CRPS "
        "on train's held-out period among all of those, each calibrated alike.",
    )
    learner: str = Field(
        default="catboost",
        description="The learned regressor 'auto' and 'boa' enter (unused otherwise).",
    )
    quantiles: Numbers = Field(
        default=[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975, 0.99],
        min_length=2,
        description="The levels forecast, each calibrated; they include the target interval's two.",
    )
    target_coverage: float = Field(
        default=0.8,
        gt=0,
        lt=1,
        description="Coverage of the target interval, the levels (1 - c) / 2 and (1 + c) / 2.",
    )
    lookback_days: int = Field(
        default=1960, ge=100, description="Calendar days of history used for the splits."
    )
    min_segment_dates: int = Field(
        default=20, ge=1, description="Dates each of train, validation, calibration and test needs."
    )
    min_segment_rows: int = Field(
        default=100, ge=1, description="Rows each of train, validation, calibration and test needs."
    )
    split_fractions: Annotated[
        tuple[float, float, float, float], NoDecode, BeforeValidator(csv_or_json)
    ] = Field(
        default=(0.6, 0.1, 0.2, 0.1),
        description="Shares of the lookback's dates for train, validation, calibration and test "
        "(train's held-out fit); four positive shares that sum to 1.",
    )
    tracker_step: float = Field(
        default=0.02,
        gt=0,
        lt=1,
        description="The per-level online tracker's step, in coverage units: the share of a date's "
        "coverage error it corrects (core.modeling.calibration).",
    )
    tracker_decay: float = Field(
        default=0.02,
        ge=0,
        lt=1,
        description="The share by which the per-level tracker's offsets decay toward 0 each date "
        "(core.modeling.calibration): a crash's offset fades in weeks; the refitted conformal shifts "
        "keep what lasts.",
    )
    symbol_tracker_step: float = Field(
        default=0.00025,
        ge=0,
        lt=1,
        description="The per-symbol tracker's step, in coverage units (0: none): each symbol's own "
        "offset per level, moved by its own hits, for a stock persistently off the pooled "
        "calibration (core.modeling.calibration). Chosen on 2010-2018 (docs/performance.md, issue 22).",
    )
    symbol_tracker_decay: float = Field(
        default=0.001,
        ge=0,
        lt=1,
        description="The share by which each symbol's offsets decay toward 0 per date it has an "
        "outcome (0.001: a memory of about four years).",
    )
    quantile_bound: float = Field(
        default=1.0,
        gt=0,
        description="Sanity bound on every emitted quantile, in h-day log return (1.0: -63 % .. +172 %); "
        "values beyond it are clipped and counted.",
    )
    historical_window: int = Field(
        default=250,
        ge=20,
        le=2520,
        description="The 'historical' baseline's trailing h-day returns per symbol (historical "
        "simulation: 250, the Basel year; 500 is the other common choice).",
    )
    volatility_scaling: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Fit GBMs on returns divided by a volatility forecast (core.modeling.models.scaled); "
        "'auto': when the features include the 'risk' group.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Regressor parameters over its defaults."
    )
    train_every: int = Field(
        default=0,
        ge=0,
        description="Fit on the training rows of every n-th trading date, counted back from the newest "
        "(overlapping h-day targets make neighbouring dates near duplicates); 1: every date; 0: the "
        "model's own default (ModelSpec.thin_by_horizon: the horizon for lightgbm, every date for catboost).",
    )

    @field_validator("split_fractions")
    @classmethod
    def _fractions(
        cls, value: tuple[float, float, float, float]
    ) -> tuple[float, float, float, float]:
        """Train, validation, calibration and test each need a positive share, summing to 1."""
        if not all(f > 0 for f in value) or abs(sum(value) - 1) > 1e-6:
            raise ValueError(
                f"model.split_fractions {list(value)} must be four positive shares (train, "
                "validation, calibration, test) that sum to 1"
            )
        return value

    @field_validator("name")
    @classmethod
    def _known_model(cls, value: str) -> str:
        return value if value in (AUTO, AGGREGATE) else _known("model", value, "models")

    @field_validator("learner")
    @classmethod
    def _known_learner(cls, value: str) -> str:
        return _known("model", value, "models")

    def resolved(self) -> ModelSettings:
        """The settings the fits see: under ``auto`` or ``boa``, the learner's name (then the
        tournament, or the aggregation, is what is deployed)."""
        named = self.name in (AUTO, AGGREGATE)
        return self.model_copy(update={"name": self.learner}) if named else self

    @field_validator("quantiles")
    @classmethod
    def _sorted_unit(cls, value: list[float]) -> list[float]:
        if sorted(set(value)) != value or not all(0 < q < 1 for q in value):
            raise ValueError("quantiles must be increasing, distinct and inside (0, 1)")
        return value

    @property
    def alpha(self) -> float:
        return round(1 - self.target_coverage, 10)

    @property
    def interval(self) -> tuple[float, float]:
        """The target interval's two levels."""
        return interval_levels(self.alpha)

    @model_validator(mode="after")
    def _interval_in_grid(self) -> ModelSettings:
        missing = [t for t in self.interval if t not in self.quantiles]
        if missing:
            raise ValueError(
                f"model.quantiles {self.quantiles} lack the target interval's level(s) {missing} "
                f"(target_coverage {self.target_coverage}): add them or change the coverage"
            )
        return self


class RefitSettings(BaseModel):
    """The windows of every refit (``core.modeling``): the backtest's and the fit that
    ``flows.train`` deploys alike. Calibration, then validation, then training before it."""

    calibration_days: int = Field(
        default=250, ge=20, description="Trading days of the calibration window before a refit."
    )
    validation_days: int = Field(
        default=125, ge=10, description="Trading days of the early-stopping window before that."
    )


class BacktestSettings(BaseModel):
    """Walk-forward backtests (flows.backtest): how often they refit, over which dates, how
    many refits at once (each refit's windows: ``RefitSettings``)."""

    refit_every: int = Field(default=21, ge=1, description="Trading days between refits.")
    min_history_days: int = Field(
        default=1095,
        ge=100,
        description="Calendar days of history the first refit needs (the training lookback is "
        "model.lookback_days).",
    )
    start: dt.date | None = Field(
        default=None,
        description="First forecast date; default: the first refit with enough history.",
    )
    end: dt.date | None = Field(
        default=None, description="Last forecast date; default: the newest."
    )
    concurrency: int = Field(
        default=2, ge=1, le=32, description="Refits run at once, as Prefect tasks."
    )


class MonitorSettings(BaseModel):
    """Production monitoring (flows.monitor): rolling windows, drift, data health, alerts."""

    windows: Annotated[
        list[Annotated[int, Field(ge=2)]], NoDecode, BeforeValidator(csv_or_json)
    ] = Field(default=[20, 60], min_length=1, description="Rolling windows, in trading days.")
    coverage_band: Annotated[tuple[float, float], NoDecode, BeforeValidator(csv_or_json)] = Field(
        default=(0.75, 0.85),
        description="Alert when the longest window's coverage leaves this band.",
    )
    psi_alert: float = Field(
        default=0.25, gt=0, description="Alert when a top feature's PSI exceeds this."
    )
    top_features: int = Field(
        default=10, ge=1, description="How many of the model's most important features alert."
    )
    drift_days: int = Field(
        default=20, ge=5, description="Trading days of recent features compared with training."
    )
    fresh_share: float = Field(
        default=0.95,
        gt=0,
        le=1,
        description="Alert when fewer symbols have a bar on the latest trading day.",
    )
    quarantine_window_days: int = Field(
        default=60, ge=1, description="Days of collect runs behind the quarantine-rate average."
    )
    calendar: str = Field(
        default="XNYS", description="Exchange calendar of the trading days (exchange_calendars)."
    )
    fan_days: int = Field(
        default=120, ge=10, description="Trading days of history in the report's fan charts."
    )

    @field_validator("coverage_band")
    @classmethod
    def _band(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= value[0] < value[1] <= 1:
            raise ValueError("coverage_band must be two shares, low < high, within [0, 1]")
        return value


class RetentionSettings(BaseModel):
    """What ``flows.prune`` keeps (newest first); the latest run and runs a kept report names
    are always kept."""

    runs: int = Field(default=10, ge=1, description="Model runs kept.")
    reports: int = Field(default=30, ge=1, description="Dated reports kept.")
    quarantine_keep_days: int = Field(
        default=365, ge=1, description="Days of quarantine files and quality reports kept."
    )
    predictions_days: int = Field(
        default=0,
        ge=0,
        description="Days of prediction files kept (0: all; monitoring scores them first).",
    )


class TrackingSettings(BaseModel):
    """Weights & Biases: offline unless an API key is set, so nothing blocks on the network."""

    wandb_mode: Literal["online", "offline", "disabled"] | None = Field(
        default=None, description="Unset: online with WANDB_API_KEY, else offline."
    )
    project: str = Field(default="stock-market-analytics", description="The W&B project.")
    directory: str = Field(default="wandb", description="Where W&B writes its run files.")


class ApiSettings(BaseModel):
    """The HTTP forecast service (``python -m service``): read-only, over the store."""

    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address the service listens on (0.0.0.0: every interface).",
    )
    port: int = Field(default=8000, ge=1, le=65535, description="Port the service listens on.")
    token: SecretStr | None = Field(
        default=None,
        description="Bearer token every route but /health requires (a secret: never logged); "
        "none: open.",
    )
    cors_origins: Names = Field(
        default_factory=list, description="Origins browsers may call the service from (none)."
    )
    timeout_seconds: float = Field(
        default=3.0, gt=0, le=60, description="A store slower than this answers 503."
    )

    @field_validator("token")
    @classmethod
    def _usable_token(cls, value: SecretStr | None) -> SecretStr | None:
        """A token a client can send: visible ASCII, not empty (an empty one would lock
        every guarded route; unset the variable to leave the service open)."""
        text = value.get_secret_value() if value is not None else None
        if text is not None and not (text and text.isascii() and text.isprintable()):
            raise ValueError("must be visible ASCII characters, not empty (unset it for none)")
        return value


class TuningSettings(BaseModel):
    """Hyperparameter search (flows.tune)."""

    trials: int = Field(default=20, ge=1, description="Trials to add to the study in one run.")
    timeout_seconds: float | None = Field(
        default=None, gt=0, description="Stop starting trials after this."
    )
    study: str | None = Field(default=None, description="Study name; default: the model's name.")
    concurrency: int = Field(
        default=1, ge=1, le=32, description="Trials run at once, as Prefect tasks."
    )
    folds: int = Field(
        default=3, ge=2, le=10, description="Expanding-window folds of train+validation."
    )
    seed: int = Field(default=7, description="The TPE sampler's seed (reproducible studies).")


class DaskSettings(BaseModel):
    """Where mapped tasks run when ``task_runner`` is ``dask`` (``SMA_DASK__*``)."""

    address: str = Field(
        default="",
        description="An existing scheduler (tcp://host:8786); empty: a local cluster of "
        "worker processes started and stopped with each flow run.",
    )
    workers: int = Field(default=2, ge=1, description="Worker processes of a local cluster.")
    threads_per_worker: int = Field(
        default=1, ge=1, description="Threads per worker process of a local cluster."
    )
    resubmits: int = Field(
        default=2,
        ge=0,
        description="Times a task run whose worker died is submitted again before its "
        "batch counts as failed.",
    )


class Settings(BaseSettings):
    """All configuration; precedence: CLI flags / flow parameters > environment > .env > defaults."""

    model_config = SettingsConfigDict(
        env_prefix="SMA_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    store: str = Field(
        default="data/store", description="Store root: a local folder or s3://bucket/prefix."
    )
    tickers: str = Field(
        default="data/sample/tickers.csv",
        description="Tickers file: Nasdaq screener CSV or one symbol per line.",
    )
    source: str = Field(
        default="yfinance", description="Market data source (core.data.collectors.COLLECTORS)."
    )
    source_path: str | None = Field(
        default=None, description="Folder of per-symbol files for the 'local' source."
    )
    start: dt.date = Field(
        default=dt.date(2000, 1, 1), description="First date fetched for a new symbol."
    )
    end: dt.date | None = Field(
        default=None, description="Last date fetched (inclusive); default today."
    )
    full_refresh: bool = Field(default=False, description="Refetch every symbol from `start`.")
    task_runner: Literal["threads", "dask"] = Field(
        default="threads",
        description="Where mapped tasks (collect and feature batches, tuning trials, "
        "backtest refits) run: this process's threads, or a Dask cluster (`dask`).",
    )
    dask: DaskSettings = DaskSettings()

    s3: S3Settings = S3Settings()
    collect: CollectSettings = CollectSettings()
    quality: QualitySettings = QualitySettings()
    synthetic: SyntheticSettings = SyntheticSettings()
    features: FeatureSettings = FeatureSettings()
    model: ModelSettings = ModelSettings()
    tuning: TuningSettings = TuningSettings()
    refit: RefitSettings = RefitSettings()
    backtest: BacktestSettings = BacktestSettings()
    monitor: MonitorSettings = MonitorSettings()
    retention: RetentionSettings = RetentionSettings()
    slack_webhook_url: SecretStr | None = Field(
        default=None,
        description="Slack incoming webhook for failure alerts (a secret: never logged).",
    )
    slack_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Give up posting to Slack after this."
    )
    optuna_storage: SecretStr | None = Field(
        default=None,
        description="Optuna storage URL (may hold a password: never logged or recorded); "
        "default: a SQLite file beside a local store.",
    )
    tracking: TrackingSettings = TrackingSettings()
    api: ApiSettings = ApiSettings()

    @field_validator("store", "tickers")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        return _known("source", value, "sources")

    @field_validator("store")
    @classmethod
    def _store_scheme(cls, value: str) -> str:
        """A local folder (or file://) or s3://bucket/prefix, refused before anything starts."""
        if "://" in value and not value.startswith(("s3://", "file://")):
            raise ValueError(
                f"unsupported store URL {value!r}: use a local folder or s3://bucket/prefix"
            )
        return value

    @model_validator(mode="after")
    def _check_run(self) -> Settings:
        registries = _registries.get()
        if self.end is not None and self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        needs_path = registries is not None and self.source in registries.sources_needing_path
        if needs_path and not self.source_path:
            raise ValueError(
                f"source {self.source!r} needs source_path (--source-path or SMA_SOURCE_PATH)"
            )
        return self

    @property
    def store_ref(self) -> StoreRef:
        """The store, opened on the artifacts of ``features.horizon``."""
        return StoreRef(
            url=self.store,
            endpoint_url=self.s3.endpoint_url,
            region=self.s3.region,
            horizon=self.features.horizon,
            first_horizon=self.features.horizons[0],
        )

    @property
    def root_ref(self) -> StoreRef:
        """The store at its root, for the steps every horizon shares (collect, prune)."""
        return self.store_ref.model_copy(update={"horizon": None, "first_horizon": None})

    def at_horizon(self, horizon: int) -> Settings:
        """These settings for one of ``features.horizons``."""
        return self.model_copy(update={"features": self.features.at(horizon)})

    def collect_job(self, today: dt.date | None = None) -> CollectJob:
        """What a collection task depends on, and nothing else (its cache key): the fields
        of ``CollectJob`` taken from these settings, with ``end`` resolved to a date."""
        fields = {name: getattr(self, name) for name in CollectJob.model_fields}
        return CollectJob.model_validate(fields | {"end": self.end or (today or dt.date.today())})


class CollectJob(BaseModel):
    """The settings one collection batch uses: source, date range, rules (``end`` resolved).
    A collector with settings of its own adds its section here too (and to ``Settings``)."""

    model_config = ConfigDict(frozen=True)

    source: str
    source_path: str | None
    start: dt.date
    end: dt.date
    full_refresh: bool
    collect: CollectSettings
    quality: QualitySettings
    synthetic: SyntheticSettings


class ConfigError(InputError):
    """Invalid configuration; the message names every offending setting."""


# SMA_ variables read outside these settings (prefect.yaml's image build and ECS job variables).
OTHER_VARIABLES = ("SMA_IMAGE", "SMA_IMAGE_BASE")

# Settings that changed name: old dotted path -> new one. The single table of renames: the
# old environment variable (``variable(old)``), the old flag and flow parameter of a flow
# whose flag sets the new setting (the old path's last part: ``flows.shell``), and a setting
# passed under its old path to ``read_settings`` all still work, with a warning naming the
# new name (once per process); the new name wins when both are given. The unknown-variable
# check knows the old variables, and the site's settings page lists them from here.
RENAMED: dict[str, str] = {
    "batch_size": "collect.symbols_per_task",
    "features.batch_size": "features.symbols_per_task",
    "monitor.quarantine_days": "monitor.quarantine_window_days",
    "retention.quarantine_days": "retention.quarantine_keep_days",
    "wandb_mode": "tracking.wandb_mode",
    "backtest.calibration_days": "refit.calibration_days",
    "backtest.validation_days": "refit.validation_days",
}

logger = logging.getLogger("stock_market_analytics.config")
_warned: set[str] = set()


def variable(path: str) -> str:
    """The environment variable of a dotted setting path (``collect.symbols_per_task`` ->
    ``SMA_COLLECT__SYMBOLS_PER_TASK``)."""
    return "SMA_" + path.replace(".", "__").upper()


def sections() -> dict[str, type[BaseModel]]:
    """The nested sections of the settings by name (``collect``: ``CollectSettings``, ...)."""
    return {
        name: field.annotation
        for name, field in Settings.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    }


def setting_variables() -> list[str]:
    """Every environment variable the settings read: ``SMA_<FIELD>`` and, for a section,
    ``SMA_<SECTION>__<FIELD>`` (a section may also be given whole, as JSON); old names
    (``RENAMED``) not included."""
    names = list(OTHER_VARIABLES) + [variable(name) for name in Settings.model_fields]
    for name, section in sections().items():
        names += [variable(f"{name}.{sub}") for sub in section.model_fields]
    return names


def unknown_variables(names: Iterable[str]) -> dict[str, str | None]:
    """SMA_ variables no setting reads, each with the closest valid name (None: no close one).
    An old name of ``RENAMED`` is known (read with a warning of its own)."""
    known = setting_variables()
    old = {variable(path) for path in RENAMED}
    return {
        name: next(iter(difflib.get_close_matches(name.upper(), known, n=1)), None)
        for name in sorted(names)
        if name.upper().startswith("SMA_") and name.upper() not in {*known, *old}
    }


def warn_renamed(old: str, new: str, shadowed: bool = False) -> None:
    """Warn once per process that ``old`` (a variable, flag or flow parameter) is now
    ``new``; ``shadowed``: the new name is given too, and wins."""
    if old not in _warned:
        _warned.add(old)
        note = " (the new name is given too, and wins)" if shadowed else ""
        logger.warning("%s is renamed: use %s%s", old, new, note)


def _variables() -> dict[str, str]:
    """The SMA_ variables of the environment and the ``.env`` file (the environment wins),
    upper-cased (settings read them case-insensitively)."""
    values: dict[str, str] = {}
    env_file = Path(str(Settings.model_config.get("env_file") or ".env"))
    if env_file.is_file():
        from dotenv import dotenv_values

        values |= {k.upper(): v for k, v in dotenv_values(env_file).items() if v is not None}
    values |= {k.upper(): v for k, v in os.environ.items()}
    return {k: v for k, v in values.items() if k.startswith("SMA_")}


def _warn_unknown_variables(names: Iterable[str]) -> None:
    """Warn once per process about each SMA_ variable (environment or .env) that is ignored."""
    for name, closest in unknown_variables(names).items():
        if name not in _warned:
            _warned.add(name)
            hint = f"; did you mean {closest}?" if closest else ""
            logger.warning("unknown setting %s is ignored%s", name, hint)


def _get(tree: dict[str, Any], path: str) -> Any:
    node: Any = tree
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _set(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def _pop(tree: dict[str, Any], path: str) -> Any:
    *parents, leaf = path.split(".")
    parent = _get(tree, ".".join(parents)) if parents else tree
    return parent.pop(leaf, None) if isinstance(parent, dict) else None


def _with_new_names(given: dict[str, Any], variables: dict[str, str]) -> dict[str, Any]:
    """The overrides with every old name of ``RENAMED`` read under its new one: an old path
    in the overrides, then an old variable, unless the new name is given (an override, its
    variable, or its section as a whole)."""
    for old, new in RENAMED.items():
        value = _pop(given, old)
        if value is not None:
            warn_renamed(f"setting {old}", new, shadowed=_get(given, new) is not None)
            if _get(given, new) is None:
                _set(given, new, value)
    for old, new in RENAMED.items():
        found = _from_environment(old, variables)
        if found is None:
            continue
        name, value = found
        section = new.rpartition(".")[0]
        shadowed = (
            _get(given, new) is not None
            or variable(new) in variables
            or (bool(section) and _from_environment(new, variables) is not None)
        )
        warn_renamed(name, variable(new), shadowed)
        if not shadowed:
            _set(given, new, value)
    return given


def _from_environment(old: str, variables: dict[str, str]) -> tuple[str, Any] | None:
    """(where, value) of a setting given in the environment: its own variable, or its key
    inside its section's variable given whole as JSON (``SMA_BACKTEST='{"calibration_days":
    300}'``); None when it is not given."""
    if variable(old) in variables:
        return variable(old), variables[variable(old)]
    section, _, leaf = old.rpartition(".")
    if not section or variable(section) not in variables:
        return None
    try:
        doc = json.loads(variables[variable(section)])
    except json.JSONDecodeError:
        return None  # the settings model names the bad JSON
    if not isinstance(doc, dict) or leaf not in doc:
        return None
    return f"{variable(section)} key {leaf!r}", doc[leaf]


def read_settings(registries: Registries, **overrides: Any) -> Settings:
    """Build settings with overrides (CLI flags, flow parameters) on top; None means 'not
    given'. Names of registry entries are checked against ``registries`` (entry points call
    ``core.settings.load_settings``, which passes the registries' names). SMA_ variables that
    no setting reads are named in a warning (a typo would else go unseen); old names
    (``RENAMED``) are read under their new ones, with a warning."""
    variables = _variables()
    _warn_unknown_variables(variables)
    given: dict[str, Any] = {
        key: {k: v for k, v in value.items() if v is not None} if isinstance(value, dict) else value
        for key, value in overrides.items()
        if value is not None
    }
    token = _registries.set(registries)
    try:
        return Settings.model_validate(_with_new_names(given, variables))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None
    finally:
        _registries.reset(token)
