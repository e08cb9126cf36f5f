"""Hyperparameter search: search spaces per regressor, time-series folds, a pruned objective.

Folds are expanding windows over the train+validation period: the dates are cut into
``folds + 1`` blocks; fold k trains on blocks 0..k and validates on block k+1, whose first
h dates are embargoed (no training target reaches a validation date). The objective is
the mean pinball loss over the folds' validation parts; after each fold the trial reports
its running mean, so a pruner can stop it early.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from core import layout
from core.config import ModelSettings, Settings
from core.errors import InputError, InsufficientDataError
from core.modeling.distribution_scores import pinball_rows
from core.modeling.models import make_model
from core.modeling.timeline import every_nth_date, model_holdout
from core.storage import Store

if TYPE_CHECKING:
    import optuna


class TuningConfigError(InputError):
    """The study cannot be stored or found; the message says how to fix it."""


def storage_url(settings: Settings) -> str:
    """SMA_OPTUNA_STORAGE, or a SQLite file beside a local store."""
    if settings.optuna_storage:
        return settings.optuna_storage.get_secret_value()
    store = Store.open(settings.root_ref)
    if store.is_s3:
        raise TuningConfigError(
            "an S3 store needs SMA_OPTUNA_STORAGE (an RDB URL) to keep the Optuna study"
        )
    return f"sqlite:///{Path(store.root).parent / layout.OPTUNA_FILE}"


def study_name(settings: Settings) -> str:
    """``tuning.study`` or the model's name; a horizon other than the store's home one
    (layout 3) tunes a study of its own, ``<name>-h<h>``."""
    name = settings.tuning.study or settings.model.resolved().name
    if Store.open(settings.store_ref).shared_root is None:
        return name
    return f"{name}-h{settings.features.horizon}"


def best_params(settings: Settings) -> tuple[str, dict[str, Any]]:
    """(where, params) of the model's latest best parameters; a clear error when never tuned."""
    store = Store.open(settings.store_ref)
    key = layout.BEST_PARAMS(study=study_name(settings))
    if not store.exists(key):
        raise TuningConfigError(
            f"no tuned parameters at {store.uri(key)}: run `python -m flows.tune --model {settings.model.resolved().name}` first"
        )
    return store.uri(key), store.read_json(key)["params"]


def open_study(settings: Settings) -> optuna.Study:
    """The model's study in its storage (created on first use), TPE with a fixed seed, median pruning."""
    import optuna

    return optuna.create_study(
        study_name=study_name(settings),
        storage=storage_url(settings),
        load_if_exists=True,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=settings.tuning.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )


@dataclass(frozen=True)
class Fold:
    train: tuple[dt.date, dt.date]
    valid: tuple[dt.date, dt.date]


def time_folds(dates: pl.Series, n_folds: int, embargo: int) -> list[Fold]:
    """Expanding-window folds over the given dates (see the module docstring)."""
    days = dates.unique().sort().to_list()
    bounds = np.linspace(0, len(days), n_folds + 2).round().astype(int)
    folds = []
    for k in range(n_folds):
        train_end = bounds[k + 1] - 1
        valid_start, valid_end = bounds[k + 1] + embargo, bounds[k + 2] - 1
        if valid_end < valid_start or train_end < 0:
            raise InsufficientDataError(
                f"too few dates ({len(days)}) for {n_folds} folds with an embargo of {embargo}"
            )
        folds.append(Fold((days[0], days[train_end]), (days[valid_start], days[valid_end])))
    return folds


def tuning_rows(table: pl.DataFrame, horizon: int, cfg: ModelSettings) -> pl.DataFrame:
    """The labelled rows of train's held-out split before its calibration segment (the
    train and validation segments, ``core.modeling.timeline.model_holdout``): a study never
    sees the calibration or test rows train evaluates on."""
    labelled = table.filter(pl.col("y").is_not_null())
    split = model_holdout(labelled["date"], horizon, cfg)
    return labelled.filter(pl.col("date").is_between(split.train[0], split.val[1]))


def _rows(table: pl.DataFrame, span: tuple[dt.date, dt.date]) -> pl.DataFrame:
    return table.filter(pl.col("date").is_between(*span))


def fold_score(
    model_name: str,
    params: dict[str, Any],
    table: pl.DataFrame,
    features: list[str],
    quantiles: list[float],
    horizon: int,
    fold: Fold,
    scaled: bool = False,
    step: int = 1,
) -> float:
    """Mean pinball loss of one fit on a fold's training part (every ``step``-th date, as the
    fits being tuned learn: ``walkforward.train_step``), on its validation part."""
    train, valid = every_nth_date(_rows(table, fold.train), step), _rows(table, fold.valid)
    model = make_model(model_name, quantiles, list(features), horizon, params, scaled)
    model.fit(train, train["y"].to_numpy(), valid, valid["y"].to_numpy())
    return float(pinball_rows(valid["y"].to_numpy(), model.predict(valid), quantiles).mean())


def run_trial(
    trial: optuna.Trial,
    folds: list[Fold],
    score: Callable[[dict[str, Any], Fold], float],
    space: Callable[[optuna.Trial], dict[str, Any]],
) -> float:
    """Score a trial fold by fold, reporting the running mean; raise TrialPruned when told to."""
    params = space(trial)
    scores: list[float] = []
    for step, fold in enumerate(folds):
        scores.append(score(params, fold))
        running = float(np.mean(scores))
        trial.report(running, step)
        if trial.should_prune():
            import optuna

            raise optuna.TrialPruned(f"pruned after fold {step} with mean pinball {running:.6f}")
    return float(np.mean(scores))
