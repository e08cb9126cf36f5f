"""Tuning flow: Optuna TPE search over a regressor's parameters on time-series folds.

    python -m flows.tune [--store URL] [--horizon H] [--model NAME] [--trials N] [--timeout S] [--study NAME] [--concurrency K]

The study lives in Optuna storage (``SMA_OPTUNA_STORAGE``; default a SQLite file beside a
local store), so a run resumes it and several workers can add trials at once. Writes the
study's best parameters (used by ``python -m flows.train --params best``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flows.shell import HORIZON, STORE, Arg, Command, models

if TYPE_CHECKING:
    from core.config import Settings


def tunable_model(settings: Settings) -> None:
    """Only a model with parameters to tune, refused before anything starts."""
    from core.modeling.models import require_search_space

    require_search_space(settings.model.resolved().name)


COMMAND = Command(
    "tune",
    __doc__,
    (
        STORE,
        HORIZON,
        Arg(
            "--model",
            "regressor to tune (one with a search space; others exit 2)",
            setting="model.name",
            choices=models,  # every name: loading each spec to ask would slow --help
        ),
        Arg("--trials", "trials to add to the study", setting="tuning.trials", type=int),
        Arg(
            "--timeout",
            "seconds after which no new trial starts",
            setting="tuning.timeout_seconds",
            type=float,
        ),
        Arg("--study", "study name (default: the model's name)", setting="tuning.study"),
        Arg("--concurrency", "trials run at once", setting="tuning.concurrency", type=int),
    ),
    check=tunable_model,
)
if __name__ == "__main__":
    raise SystemExit(COMMAND.main())

import time
from typing import Any

from prefect import flow, get_run_logger

from core.modeling.tuning import open_study, time_folds, tuning_rows
from flows.shell import each_horizon
from tasks.hooks import ALERT_HOOKS
from tasks.runners import SettingsTaskRunner
from tasks.train import load_training_data
from tasks.tune import publish_study, run_trials


@flow(name="tune", log_prints=True, task_runner=SettingsTaskRunner(), **ALERT_HOOKS)
def tune(
    store: str | None = None,
    model: str | None = None,
    trials: int | None = None,
    timeout: float | None = None,
    study: str | None = None,
    concurrency: int | None = None,
    horizon: int | None = None,
) -> dict[str, Any]:
    settings = COMMAND.start(
        store=store,
        model=model,
        trials=trials,
        timeout=timeout,
        study=study,
        concurrency=concurrency,
        horizon=horizon,
    )
    several = each_horizon(
        settings,
        horizon,
        lambda h: tune(store, model, trials, timeout, study, concurrency, horizon=h),
    )
    if several is not None:
        return several
    cfg, tuning = settings.model.resolved(), settings.tuning
    data = load_training_data(settings.store_ref, cfg.lookback_days)
    rows = tuning_rows(data.table, data.horizon, cfg)  # train's split: never its test period
    folds = time_folds(rows["date"], tuning.folds, data.horizon)
    study_obj = open_study(settings)
    get_run_logger().info(
        "study %s: %d trials so far; adding %d, %d at a time",
        study_obj.study_name,
        len(study_obj.trials),
        tuning.trials,
        tuning.concurrency,
    )
    started = time.monotonic()
    added = run_trials(study_obj, cfg, tuning, rows, data.features, data.horizon, folds)
    doc = publish_study(
        study_obj, settings.store_ref, cfg.name, settings.tracking, data.build.data_fingerprint
    )
    get_run_logger().info("best trial %d: %.6f %s", doc["trial"], doc["score"], doc["params"])
    return doc | {"added": added, "seconds": round(time.monotonic() - started, 1)}


def report(doc: dict[str, Any]) -> str:
    return f"study {doc['study']}: {doc['trials']} trials, best #{doc['trial']} pinball {doc['score']:.6f} {doc['params']}"
