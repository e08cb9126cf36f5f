"""Prefect tasks of the train and predict flows: thin wrappers around core."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from core.config import BacktestSettings, ModelSettings, StoreRef, TrackingSettings
from core.features.table import data_fingerprint, training_inputs
from core.modeling.prediction import predict_run
from core.modeling.scorecard import model_card
from core.modeling.training import TrainResult, train_and_evaluate
from core.runs import fits, run_folder, write_run
from core.storage import Store
from core.tracking import Tracker, flatten


@task(name="load-training-data", cache_policy=NO_CACHE)
def load_training_data(
    store: StoreRef, lookback_days: int | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """The feature table, the prices (for baselines and volatility terciles), the features
    manifest: with ``lookback_days``, only the newest window (``training_inputs``)."""
    return training_inputs(Store.open(store), lookback_days)


@task(name="fit-calibrate-evaluate", cache_policy=NO_CACHE)
def fit_task(
    table: pl.DataFrame,
    prices: pl.DataFrame,
    features: list[str],
    cfg: ModelSettings,
    horizon: int,
    windows: BacktestSettings,
    sectors: dict[str, str],
) -> TrainResult:
    result = train_and_evaluate(table, prices, features, cfg, horizon, windows, sectors)
    get_run_logger().info(
        "fitted %s in %.1fs (held out) and %.1fs (deployed, on the newest data)",
        cfg.name,
        result.seconds["fit"],
        result.seconds.get("deployed_fit", 0.0),
    )
    return result


@task(name="write-run", cache_policy=NO_CACHE)
def write_run_task(
    result: TrainResult,
    store: StoreRef,
    run_id: str,
    features_manifest: dict[str, Any],
    settings_doc: dict[str, Any],
    tracking: TrackingSettings,
    params_source: str | None = None,
) -> dict[str, Any]:
    """Write the run folder (manifest with hashes last), then the latest-run pointer; log the
    run to W&B. ``settings_doc``: the settings as recorded in the manifest (secrets masked)."""
    result.metrics = {"run_id": run_id} | result.metrics
    with tempfile.TemporaryDirectory(prefix="sma-run-") as tmp:
        folder = Path(tmp)
        plots = run_folder(result, folder)
        manifest = write_run(
            Store.open(store),
            run_id,
            folder,
            {
                "created_at": dt.datetime.now(dt.UTC).isoformat(),
                "model": result.metrics["model"],
                "settings": settings_doc,
                "features": result.model.features,
                "horizon": result.metrics["horizon"],
                "data_fingerprint": data_fingerprint(features_manifest),
                "seconds": result.seconds,
                "params_source": params_source or "settings",
                "fits": fits(result),
            },
        )
        tracker = Tracker(tracking, run_id, settings_doc, job_type="train")
        tracker.log(
            flatten({"test": result.metrics["test"], "baselines": result.metrics["baselines"]})
        )
        tracker.log_images(plots)
        tracker.log_folder(f"model-{run_id}", folder)
        wandb_dir = tracker.finish()
    if wandb_dir:
        get_run_logger().info("W&B run (%s) in %s", tracker.mode, wandb_dir)
    return manifest | {"wandb_dir": wandb_dir, "wandb_mode": tracker.mode}


def publish_model_card(metrics: dict[str, Any], run_id: str) -> str:
    card = model_card(metrics, run_id)
    create_markdown_artifact(key="model-card", markdown=card, description=f"Training run {run_id}")
    return card


@task(name="predict", cache_policy=NO_CACHE)
def predict_task(store: StoreRef, run: str) -> dict[str, Any]:
    """Forecast with run ``run`` (``core.modeling.prediction``) and publish the table."""
    summary = predict_run(Store.open(store), run)
    for warning in summary["warnings"]:
        get_run_logger().warning(warning)
    out: pl.DataFrame = summary.pop("table")
    cols = qcols_of(out)
    create_table_artifact(
        key="predictions",
        table=out.select("symbol", "date", *cols, "lo", "hi")
        .with_columns(pl.col("date").cast(pl.String))
        .to_dicts(),
        description=f"Calibrated quantiles as of {summary['as_of']} (run {summary['run_id']}, "
        f"{summary['online_state']})",
    )
    return summary


def qcols_of(table: pl.DataFrame) -> list[str]:
    """The calibrated quantile columns of a predictions table."""
    return [c for c in table.columns if c.startswith("q_") and not c.endswith("_raw")]
