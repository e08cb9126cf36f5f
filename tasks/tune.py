"""Prefect tasks of the tuning flow: one task per Optuna trial, around core.tuning."""

from __future__ import annotations

import datetime as dt
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import polars as pl
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from core.config import Settings
from core.models.scaled import use_scaling
from core.storage import Store
from core.tracking import Tracker
from core.tuning import SEARCH_SPACES, Fold, fold_score, run_trial


class TuningConfigError(ValueError):
    """The study cannot be stored or found; the message says how to fix it."""


def storage_url(settings: Settings) -> str:
    """SMA_OPTUNA_STORAGE, or a SQLite file beside a local store."""
    if settings.optuna_storage:
        return settings.optuna_storage
    store = Store.from_settings(settings)
    if store.is_s3:
        raise TuningConfigError(
            "an S3 store needs SMA_OPTUNA_STORAGE (an RDB URL) to keep the Optuna study"
        )
    return f"sqlite:///{Path(store.root).parent / 'optuna.db'}"


def study_name(settings: Settings) -> str:
    return settings.tuning.study or settings.model.name


def best_params_key(study: str) -> str:
    return f"tuning/{study}/best_params.json"


def best_params(settings: Settings) -> tuple[str, dict[str, Any]]:
    """(where, params) of the model's latest best parameters; a clear error when never tuned."""
    store = Store.from_settings(settings)
    key = best_params_key(study_name(settings))
    if not store.exists(key):
        raise TuningConfigError(
            f"no tuned parameters at {store.uri(key)}: run `python -m flows.tune --model {settings.model.name}` first"
        )
    return store.uri(key), store.read_json(key)["params"]


def open_study(settings: Settings) -> optuna.Study:
    return optuna.create_study(
        study_name=study_name(settings),
        storage=storage_url(settings),
        load_if_exists=True,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=settings.tuning.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )


@task(name="trial", cache_policy=NO_CACHE, task_run_name="trial-{trial.number}")
def trial_task(
    trial: optuna.Trial,
    settings: Settings,
    table: pl.DataFrame,
    features: list[str],
    horizon: int,
    folds: list[Fold],
) -> tuple[optuna.trial.TrialState, float | None]:
    """Run one trial; returns its state and value (pruned trials carry their last report)."""
    cfg = settings.model
    scaled = use_scaling(cfg.volatility_scaling, cfg.name, features)

    def score(params: dict[str, Any], fold: Fold) -> float:
        return fold_score(
            cfg.name, cfg.params | params, table, features, cfg.quantiles, horizon, fold, scaled
        )

    try:
        return optuna.trial.TrialState.COMPLETE, run_trial(
            trial, folds, score, SEARCH_SPACES[cfg.name]
        )
    except optuna.TrialPruned:
        return optuna.trial.TrialState.PRUNED, None


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    return [
        {
            "trial": t.number,
            "state": t.state.name,
            "value": t.value,
            **{k: v for k, v in t.params.items()},
        }
        for t in study.trials
    ]


@task(name="publish-study", cache_policy=NO_CACHE)
def publish_study(
    study: optuna.Study, settings: Settings, fingerprint: dict[str, Any]
) -> dict[str, Any]:
    """best_params.json, the trial table artifact, PNG plots in the store; W&B per trial."""
    store = Store.from_settings(settings)
    name = study_name(settings)
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise RuntimeError(f"study {name!r} has no completed trial yet")
    best = study.best_trial
    doc = {
        "study": name,
        "model": settings.model.name,
        "params": best.params,
        "score": best.value,
        "trial": best.number,
        "trials": len(study.trials),
        "data_fingerprint": fingerprint,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    store.write_json(best_params_key(name), doc)
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
            store.write_bytes(f"tuning/{name}/plots/{plot_name}.png", path.read_bytes())
            paths.append(path)
        tracker = Tracker(
            settings.tracking,
            f"tune-{name}",
            {"study": name, "model": settings.model.name},
            job_type="tune",
        )
        for t in study.trials:
            tracker.log({"trial": t.number, "value": t.value if t.value is not None else float("nan"),
                         "pruned": t.state == optuna.trial.TrialState.PRUNED, **{f"param/{k}": v for k, v in t.params.items()}})  # fmt: skip
        tracker.log_images(paths)
        tracker.finish()
    return doc
