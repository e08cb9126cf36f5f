"""Prefect tasks of the tuning flow: one task per Optuna trial, around core.modeling.tuning."""

from __future__ import annotations

import datetime as dt
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import polars as pl
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from core import layout
from core.config import ModelSettings, StoreRef, TrackingSettings, TuningSettings
from core.errors import NothingUsableError
from core.features.manifest import DataFingerprint
from core.modeling.models import MODELS
from core.modeling.models.scaled import use_scaling
from core.modeling.tuning import Fold, fold_score, run_trial
from core.modeling.walkforward import train_step
from core.storage import Store
from core.tracking import Tracker
from tasks.runners import finished


@task(name="trial", cache_policy=NO_CACHE, task_run_name="trial-{trial.number}")
def trial_task(
    trial: optuna.Trial,
    cfg: ModelSettings,
    table: pl.DataFrame,
    features: list[str],
    horizon: int,
    folds: list[Fold],
) -> tuple[optuna.trial.TrialState, float | None]:
    """Run one trial; returns its state and value (pruned trials carry their last report)."""
    spec = MODELS[cfg.name]
    assert spec.search_space is not None  # the flow only tunes models that have one
    scaled = use_scaling(cfg.volatility_scaling, spec.inner_defaults, features)

    def score(params: dict[str, Any], fold: Fold) -> float:
        return fold_score(
            cfg.name,
            cfg.params | params,
            table,
            features,
            cfg.quantiles,
            horizon,
            fold,
            scaled,
            train_step(cfg, horizon),
        )

    try:
        return optuna.trial.TrialState.COMPLETE, run_trial(trial, folds, score, spec.search_space)
    except optuna.TrialPruned:
        return optuna.trial.TrialState.PRUNED, None


def run_trials(
    study: optuna.Study,
    cfg: ModelSettings,
    tuning: TuningSettings,
    table: pl.DataFrame,
    features: list[str],
    horizon: int,
    folds: list[Fold],
) -> int:
    """Add ``tuning.trials`` trials to the study, ``tuning.concurrency`` at a time, until the
    timeout; how many were added. Each trial's parameters are drawn here: a trial pickled to
    a Dask worker would draw from a copy of the sampler, and every trial would get the same
    values. A trial whose worker died on every attempt is told as FAIL."""
    started, added = time.monotonic(), 0
    space = MODELS[cfg.name].search_space
    assert space is not None  # the flow only tunes models that have one
    while added < tuning.trials:
        if tuning.timeout_seconds and time.monotonic() - started > tuning.timeout_seconds:
            get_run_logger().info("timeout: stopping after %d trials", added)
            break
        wave = [study.ask() for _ in range(min(tuning.concurrency, tuning.trials - added))]
        for trial in wave:
            space(trial)
        calls = [(t, cfg, table, features, horizon, folds) for t in wave]
        for i, future, final in finished(trial_task, calls):
            if final.is_crashed():
                study.tell(wave[i], state=optuna.trial.TrialState.FAIL)
                continue
            state, value = future.result()
            study.tell(wave[i], value, state=state)
        added += len(wave)
    return added


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    return [
        {"trial": t.number, "state": t.state.name, "value": t.value, **t.params}
        for t in study.trials
    ]


@task(name="publish-study", cache_policy=NO_CACHE)
def publish_study(
    study: optuna.Study,
    store: StoreRef,
    model: str,
    tracking: TrackingSettings,
    fingerprint: DataFingerprint,
) -> dict[str, Any]:
    """best_params.json, the trial table artifact, PNG plots in the store; W&B per trial."""
    opened = Store.open(store)
    name = study.study_name
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise NothingUsableError(f"study {name!r} has no completed trial yet")
    best = study.best_trial
    doc = {
        "study": name,
        "model": model,
        "params": best.params,
        "score": best.value,
        "trial": best.number,
        "trials": len(study.trials),
        "data_fingerprint": fingerprint.model_dump(mode="json"),
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    opened.write_json(layout.BEST_PARAMS(study=name), doc)
    create_table_artifact(
        key="tuning-trials",
        table=trial_rows(study),
        description=f"Study {name}: best trial {best.number}",
    )
    with tempfile.TemporaryDirectory(prefix="sma-tune-") as tmp:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from optuna.visualization.matplotlib import (
            plot_optimization_history,
            plot_param_importances,
        )

        plots: dict[str, Callable[[optuna.Study], Any]] = {
            "optimization_history": plot_optimization_history
        }
        if len(completed) >= 2:
            plots["param_importances"] = plot_param_importances
        paths = []
        for plot_name, plot in plots.items():
            with warnings.catch_warnings():  # Optuna marks its matplotlib plots experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                figure: Any = plot(study).figure
            path = Path(tmp) / f"{plot_name}.png"
            figure.savefig(path, dpi=90, bbox_inches="tight")
            plt.close(figure)
            opened.write_bytes(layout.TUNING_PLOT(study=name, name=plot_name), path.read_bytes())
            paths.append(path)
        tracker = Tracker(
            tracking, f"tune-{name}", {"study": name, "model": model}, job_type="tune"
        )
        for t in study.trials:
            tracker.log(
                {
                    "trial": t.number,
                    "value": t.value if t.value is not None else float("nan"),
                    "pruned": t.state == optuna.trial.TrialState.PRUNED,
                    **{f"param/{k}": v for k, v in t.params.items()},
                }
            )
        tracker.log_images(paths)
        tracker.finish()
    return doc
