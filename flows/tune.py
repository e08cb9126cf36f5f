"""Tuning flow: Optuna TPE search over a regressor's parameters on time-series folds.

    python -m flows.tune [--store URL] [--model NAME] [--trials N] [--timeout S] [--study NAME] [--concurrency K]

The study lives in Optuna storage (``SMA_OPTUNA_STORAGE``; default a SQLite file beside a
local store), so a run resumes it and several workers can add trials at once. Writes
``tuning/<study>/best_params.json`` (used by ``python -m flows.train --params best``).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from prefect import flow, get_run_logger

from core.config import ConfigError, load_settings
from core.feature_table import MissingInputError, digest
from core.splits import make_splits
from core.tuning import time_folds
from tasks.hooks import ALERT_HOOKS
from tasks.train import load_training_data
from tasks.tune import TuningConfigError, open_study, publish_study, trial_task


@flow(name="tune", log_prints=True, **ALERT_HOOKS)
def tune(
    store: str | None = None, model: str | None = None, trials: int | None = None, timeout: float | None = None,
    study: str | None = None, concurrency: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    settings = load_settings(
        store=store, model={"name": model},
        tuning={"trials": trials, "timeout_seconds": timeout, "study": study, "concurrency": concurrency},
    )  # fmt: skip
    if settings.model.name not in ("catboost", "lightgbm"):
        raise ConfigError(
            f"model {settings.model.name!r} has no parameters to tune (catboost or lightgbm)"
        )
    logger = get_run_logger()
    table, _, features_manifest = load_training_data(settings)
    horizon = features_manifest["horizon"]
    features = list(
        dict.fromkeys(
            f for g in features_manifest["groups"] for f in features_manifest["features"][g]
        )
    )
    labelled = table.filter(table["y"].is_not_null())
    splits = make_splits(
        labelled["date"], horizon, settings.model.lookback_days, settings.model.split_fractions
    )
    tuning_rows = labelled.filter(
        labelled["date"].is_between(splits.train[0], splits.val[1])
    )  # never the test period
    folds = time_folds(tuning_rows["date"], settings.tuning.folds, horizon)
    study_obj = open_study(settings)
    logger.info("study %s: %d trials so far; adding %d, %d at a time", study_obj.study_name, len(study_obj.trials),
                settings.tuning.trials, settings.tuning.concurrency)  # fmt: skip
    started, added = time.monotonic(), 0
    while added < settings.tuning.trials:
        if (
            settings.tuning.timeout_seconds
            and time.monotonic() - started > settings.tuning.timeout_seconds
        ):
            logger.info("timeout: stopping after %d trials", added)
            break
        wave = [
            study_obj.ask()
            for _ in range(min(settings.tuning.concurrency, settings.tuning.trials - added))
        ]
        futures = [
            trial_task.submit(t, settings, tuning_rows, features, horizon, folds) for t in wave
        ]
        for trial, future in zip(wave, futures, strict=True):
            state, value = future.result()
            study_obj.tell(trial, value, state=state)
        added += len(wave)
    fingerprint = {
        "features_version": features_manifest["version"],
        "inputs": digest(features_manifest["input_fingerprint"]),
    }
    doc = publish_study(study_obj, settings, fingerprint)
    logger.info("best trial %d: %.6f %s", doc["trial"], doc["score"], doc["params"])
    return doc | {"added": added, "seconds": round(time.monotonic() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.tune", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--store")
    parser.add_argument("--model", choices=["catboost", "lightgbm"])
    parser.add_argument("--trials", type=int)
    parser.add_argument("--timeout", type=float, help="seconds after which no new trial starts")
    parser.add_argument("--study")
    parser.add_argument("--concurrency", type=int)
    args = parser.parse_args(argv)
    try:
        load_settings(store=args.store, model={"name": args.model})
        doc: dict[str, Any] = tune(**vars(args))  # pyright: ignore[reportAssignmentType]
    except (ConfigError, MissingInputError, TuningConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"study {doc['study']}: {doc['trials']} trials, best #{doc['trial']} pinball {doc['score']:.6f} {doc['params']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
