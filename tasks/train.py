"""Prefect tasks of the train and predict flows: thin wrappers around core."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from core.config import Settings
from core.conformal import (
    CQR,
    ACIState,
    aci_intervals,
    aci_update,
    apply_cqr,
    interval,
    score_quantile,
)
from core.feature_table import MissingInputError, close_prices, digest, load_features, read_manifest
from core.models import load_model
from core.models.baselines import Baseline
from core.plots import run_plots
from core.runs import fetch_run, write_run
from core.storage import Store
from core.tracking import Tracker, flatten
from core.training import METHODS, TrainResult, qcols, train_and_evaluate


@task(name="load-training-data", cache_policy=NO_CACHE)
def load_training_data(settings: Settings) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """The feature table, the close prices (for baselines and volatility terciles), the features manifest."""
    store = Store.from_settings(settings)
    manifest = read_manifest(store)
    if manifest is None:
        raise MissingInputError(
            f"no feature table in {store.uri('features')}: run `python -m flows.features` first"
        )
    table = load_features(store).collect()
    return table, close_prices(store), manifest


@task(name="fit-calibrate-evaluate", cache_policy=NO_CACHE)
def fit_task(
    table: pl.DataFrame, prices: pl.DataFrame, features: list[str], settings: Settings, horizon: int
) -> TrainResult:
    result = train_and_evaluate(table, prices, features, settings.model, horizon)
    get_run_logger().info("fitted %s in %.1fs", settings.model.name, result.seconds["fit"])
    return result


def run_files(result: TrainResult, folder: Path) -> list[Path]:
    """The run folder's content (model, calibration, metrics, predictions, plots); returns plot paths."""
    result.model.save(folder / "model")
    (folder / "calibration.json").write_text(
        json.dumps({"cqr": result.cqr.to_dict(), "aci": result.aci.to_dict()}, indent=2)
    )
    (folder / "metrics.json").write_text(json.dumps(result.metrics, indent=2, default=str))
    result.test_predictions.write_parquet(folder / "test_predictions.parquet")
    return run_plots(
        result.metrics, result.test_predictions, result.model.feature_importance(), folder / "plots"
    )


@task(name="write-run", cache_policy=NO_CACHE)
def write_run_task(
    result: TrainResult,
    settings: Settings,
    run_id: str,
    features_manifest: dict[str, Any],
    params_source: str | None = None,
) -> dict[str, Any]:
    """Write ``models/<run_id>/`` (manifest with hashes last), then ``models/latest.json``;
    log the run to W&B."""
    store = Store.from_settings(settings)
    result.metrics = {"run_id": run_id} | result.metrics
    with tempfile.TemporaryDirectory(prefix="sma-run-") as tmp:
        folder = Path(tmp)
        plots = run_files(result, folder)
        manifest = write_run(store, run_id, folder, {
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "model": settings.model.name,
            "settings": settings.model_dump(mode="json"),
            "features": result.model.features,
            "horizon": result.metrics["horizon"],
            "data_fingerprint": {"features_version": features_manifest["version"],
                                 "inputs": digest(features_manifest["input_fingerprint"])},
            "seconds": result.seconds,
            "params_source": params_source or "settings",
        })  # fmt: skip
        tracker = Tracker(
            settings.tracking, run_id, settings.model_dump(mode="json"), job_type="train"
        )
        tracker.log(
            flatten({"test": result.metrics["test"], "baselines": result.metrics["baselines"]})
        )
        tracker.log_images(plots)
        tracker.log_folder(f"model-{run_id}", folder)
        wandb_dir = tracker.finish()
    if wandb_dir:
        print(
            f"W&B run ({tracker.mode}) in {wandb_dir}"
            + ("; upload with `wandb sync` on it" if tracker.mode == "offline" else "")
        )
    return manifest | {"wandb_dir": wandb_dir}


def model_card(metrics: dict[str, Any], run_id: str) -> str:
    """Markdown: the test metrics of each method against the baselines."""
    names = ["pinball_mean", "coverage", "mean_width", "winkler", "rank_ic_mean"]
    rows = [(m, metrics["test"][m]) for m in METHODS] + [
        (f"baseline {b}", v) for b, v in metrics["baselines"].items()
    ]
    lines = [
        f"# Model card: `{run_id}`",
        "",
        f"{metrics['model']}{' (volatility-scaled targets)' if metrics.get('volatility_scaled') else ''}, "
        f"horizon {metrics['horizon']} trading days, target coverage {metrics['target_coverage']:.0%}, "
        f"test {metrics['splits']['test'][0]} .. {metrics['splits']['test'][1]} ({metrics['rows']['test']} rows)",
        "",
        "| method | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    lines += [
        f"| {name} | " + " | ".join(f"{values[k]:.5f}" for k in names) + " |"
        for name, values in rows
    ]
    terciles = metrics["test"]["cqr_aci"]["coverage_by_vol_tercile"]
    lines += [
        "",
        "CQR+ACI coverage by volatility tercile: "
        + ", ".join(f"{k}: {v:.3f}" for k, v in sorted(terciles.items())),
    ]
    return "\n".join(lines)


def publish_model_card(metrics: dict[str, Any], run_id: str) -> str:
    card = model_card(metrics, run_id)
    create_markdown_artifact(key="model-card", markdown=card, description=f"Training run {run_id}")
    return card


# -- predict -------------------------------------------------------------------------
ACI_PREFIX = "predictions/aci"


@task(name="predict", cache_policy=NO_CACHE)
def predict_task(settings: Settings, run: str) -> dict[str, Any]:
    """Latest feature row per symbol -> calibrated quantiles and interval; ACI continued with
    the outcomes that have become known since the run (or since the last prediction)."""
    store = Store.from_settings(settings)
    with tempfile.TemporaryDirectory(prefix="sma-predict-") as tmp:
        manifest = fetch_run(store, run, Path(tmp))
        run_id = manifest["run_id"]
        model = load_model(Path(tmp) / "model")
        calibration = json.loads((Path(tmp) / "calibration.json").read_text())
    cqr = CQR.from_dict(calibration["cqr"])
    state_key = f"{ACI_PREFIX}/{run_id}.json"
    aci = ACIState.from_dict(
        store.read_json(state_key) if store.exists(state_key) else calibration["aci"]
    )
    if isinstance(model, Baseline):
        model.attach_prices(close_prices(store))

    table = load_features(store).collect()
    seen = aci.history[-1][0] if aci.history else "0000-00-00"
    known = table.filter(pl.col("y").is_not_null() & (pl.col("date").cast(pl.String) > seen)).sort(
        "date", "symbol"
    )
    if known.height:  # outcomes since the last update: extend the ACI history
        aci_intervals(
            cqr, aci, known["date"].to_numpy(), model.predict(known), known["y"].to_numpy()
        )
    aci_update(aci, len(aci.history))

    latest = table.filter(pl.col("date") == pl.col("date").max().over("symbol")).sort("symbol")
    raw = model.predict(latest)
    calibrated, lo_cqr, hi_cqr = apply_cqr(cqr, raw)
    q = score_quantile(cqr, 1 - aci.alpha_t)
    lo, hi = interval(cqr, raw, q, q)
    as_of = latest["date"].max()
    cols = qcols(cqr.quantiles)
    out = latest.select("symbol", "date").with_columns(
        *[pl.Series(c, calibrated[:, j]) for j, c in enumerate(cols)],
        *[pl.Series(f"{c}_raw", raw[:, j]) for j, c in enumerate(cols)],
        pl.Series("lo", lo), pl.Series("hi", hi), pl.Series("lo_cqr", lo_cqr), pl.Series("hi_cqr", hi_cqr),
        pl.lit(aci.alpha_t).alias("aci_alpha"), pl.lit(run_id).alias("run_id"),
    )  # fmt: skip
    key = f"predictions/{as_of}.parquet"
    store.write_parquet(key, out)
    store.write_json(state_key, aci.to_dict())
    stale = out.filter(pl.col("date") < as_of)["symbol"].to_list()
    create_table_artifact(
        key="predictions",
        table=out.select("symbol", "date", *cols, "lo", "hi")
        .with_columns(pl.col("date").cast(pl.String))
        .to_dicts(),
        description=f"Calibrated quantiles as of {as_of} (run {run_id}, ACI alpha {aci.alpha_t:.4f})",
    )
    return {"run_id": run_id, "as_of": str(as_of), "key": store.uri(key), "symbols": out.height,
            "aci_alpha": aci.alpha_t, "outcomes_added": known.height, "stale_symbols": stale,
            "mean_width": float(np.mean(hi - lo))}  # fmt: skip
