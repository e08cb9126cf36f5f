"""Train flow: feature table -> split -> fit -> conformal calibration -> evaluation -> run folder.

    python -m flows.train [--store URL] [--model catboost|lightgbm|historical|ewma] [--params FILE|best]

Writes ``models/<run_id>/`` (model in its native format, calibration.json, metrics.json,
test_predictions.parquet, plots, manifest.json with the sha256 of every file), then
``models/latest.json``. Exit code 0 on success, 2 for invalid input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from core.config import ConfigError, load_settings
from core.feature_table import MissingInputError
from flows.collect import new_run_id
from tasks.hooks import ALERT_HOOKS
from tasks.train import fit_task, load_training_data, publish_model_card, write_run_task
from tasks.tune import TuningConfigError, best_params


class ParamsFileError(ValueError):
    """The --params file is missing or not a JSON object."""


def read_params(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    file = Path(path)
    if not file.is_file():
        raise ParamsFileError(f"params file not found: {file}")
    try:
        params = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ParamsFileError(f"params file {file} is not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise ParamsFileError(f"params file {file} must hold a JSON object of regressor parameters")
    return params


@flow(name="train", log_prints=True, **ALERT_HOOKS)
def train(
    store: str | None = None, model: str | None = None, params: dict[str, Any] | str | None = None
) -> dict[str, Any]:
    """Train, calibrate and evaluate a model; parameters left as None come from settings.

    ``params="best"`` takes the best parameters of the model's tuning study from the store."""
    logger = get_run_logger()
    source = None
    if params == "best":
        source, params = best_params(load_settings(store=store, model={"name": model}))
        print(f"using the tuned parameters in {source}: {params}")
    settings = load_settings(store=store, model={"name": model, "params": params})
    table, prices, features_manifest = load_training_data(settings)
    groups = features_manifest["groups"]
    features = list(dict.fromkeys(f for g in groups for f in features_manifest["features"][g]))
    run_id = new_run_id()
    logger.info(
        "run %s: %s on %d rows, %d features",
        run_id,
        settings.model.name,
        table.height,
        len(features),
    )
    result = fit_task(table, prices, features, settings, features_manifest["horizon"])
    manifest = write_run_task(result, settings, run_id, features_manifest, params_source=source)
    card = publish_model_card(result.metrics, run_id)
    logger.info("run %s written to %s", run_id, settings.store)
    return {"run_id": run_id, "metrics": result.metrics, "model_card": card, "manifest": manifest}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m flows.train", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--store", help="store root: a folder or s3://bucket/prefix")
    parser.add_argument("--model", choices=["catboost", "lightgbm", "historical", "ewma"])
    parser.add_argument(
        "--params", help="JSON file of regressor parameters, or 'best' (the tuning study's)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        params = args.params if args.params == "best" else read_params(args.params)
        load_settings(store=args.store, model={"name": args.model})
        result: dict[str, Any] = train(store=args.store, model=args.model, params=params)  # pyright: ignore[reportAssignmentType]
    except (ConfigError, MissingInputError, ParamsFileError, TuningConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result["model_card"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
