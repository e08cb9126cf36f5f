"""Prefect tasks of the train flow (``load_training_data`` serves tune and backtest too):
thin wrappers around core."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from core.config import AUTO, ModelSettings, RefitSettings, StoreRef, TrackingSettings
from core.features.manifest import FeaturesManifest
from core.features.table import FeatureBuild
from core.modeling.inputs import TrainingData, training_inputs
from core.modeling.scorecard import model_card
from core.modeling.training import TrainResult, train_and_evaluate
from core.runs import RunManifest, run_folder, run_manifest, write_run
from core.storage import Store
from core.tracking import Tracker, flatten


@task(name="load-training-data", cache_policy=NO_CACHE)
def load_training_data(store: StoreRef, lookback_days: int | None = None) -> TrainingData:
    """The feature build, opened and verified once, with its table and the prices (for
    baselines and volatility terciles): with ``lookback_days``, only the newest window."""
    return training_inputs(FeatureBuild.open(Store.open(store)), lookback_days)


@task(name="fit-calibrate-evaluate", cache_policy=NO_CACHE)
def fit_task(
    table: pl.DataFrame,
    prices: pl.DataFrame,
    features: list[str],
    cfg: ModelSettings,
    horizon: int,
    windows: RefitSettings,
    sectors: dict[str, str],
) -> TrainResult:
    """``core.modeling.training`` on the settings the fits see; under ``model.name = auto`` the
    tournament chooses what is deployed."""
    fit_cfg = cfg.resolved()
    deploy = None if cfg.name == AUTO else cfg.name
    result = train_and_evaluate(table, prices, features, fit_cfg, horizon, windows, sectors, deploy)
    get_run_logger().info(
        "fitted %s in %.1fs (held out); deployed %s, refitted on the newest data in %.1fs",
        fit_cfg.name,
        result.seconds["fit"],
        result.method,
        result.seconds["deployed_fit"],
    )
    return result


@task(name="write-run", cache_policy=NO_CACHE)
def write_run_task(
    result: TrainResult,
    store: StoreRef,
    run_id: str,
    build: FeaturesManifest,
    settings_doc: dict[str, Any],
    tracking: TrackingSettings,
    params_source: str | None = None,
) -> tuple[RunManifest, str | None, str]:
    """Write the run folder (manifest with hashes last), then the latest-run pointer; log the
    run to W&B. ``settings_doc``: the settings as recorded in the manifest (secrets masked).
    Returns the manifest, the W&B run's folder and the W&B mode."""
    result.metrics = {"run_id": run_id} | result.metrics
    with tempfile.TemporaryDirectory(prefix="sma-run-") as tmp:
        folder = Path(tmp)
        plots = run_folder(result, folder)
        opened = Store.open(store)
        manifest = write_run(
            opened,
            folder,
            run_manifest(result, run_id, build, settings_doc, params_source),
        )
        tracker = Tracker(tracking, run_id, settings_doc, job_type="train")
        tracker.link(opened, run_id)  # prune removes its W&B folder with the run
        tracker.log(
            flatten({"calibrated": result.metrics["calibrated"], "raw": result.metrics["raw"]})
        )
        tracker.log_images(plots)
        tracker.log_folder(f"model-{run_id}", folder)
        wandb_dir = tracker.finish()
    if wandb_dir:
        get_run_logger().info("W&B run (%s) in %s", tracker.mode, wandb_dir)
    return manifest, wandb_dir, tracker.mode


def publish_model_card(metrics: dict[str, Any], run_id: str) -> str:
    card = model_card(metrics, run_id)
    create_markdown_artifact(key="model-card", markdown=card, description=f"Training run {run_id}")
    return card
