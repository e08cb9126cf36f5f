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
from typing import Any

import numpy as np
import optuna
import polars as pl

from core.metrics import pinball
from core.models import make_model

# One place for the search spaces (documented in the README).
SEARCH_SPACES: dict[str, Callable[[optuna.Trial], dict[str, Any]]] = {
    "catboost": lambda t: {
        "depth": t.suggest_int("depth", 1, 8),
        "learning_rate": t.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "l2_leaf_reg": t.suggest_float("l2_leaf_reg", 1.0, 50.0, log=True),
        "bagging_temperature": t.suggest_float("bagging_temperature", 0.0, 2.0),
        "border_count": t.suggest_categorical("border_count", [64, 128, 254]),
    },
    "lightgbm": lambda t: {
        "num_leaves": t.suggest_int("num_leaves", 2, 128, log=True),
        "learning_rate": t.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "min_data_in_leaf": t.suggest_int("min_data_in_leaf", 20, 20000, log=True),
        "feature_fraction": t.suggest_float("feature_fraction", 0.4, 1.0),
        "lambda_l2": t.suggest_float("lambda_l2", 0.1, 100.0, log=True),
    },
}


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
            raise ValueError(
                f"too few dates ({len(days)}) for {n_folds} folds with an embargo of {embargo}"
            )
        folds.append(Fold((days[0], days[train_end]), (days[valid_start], days[valid_end])))
    return folds


def _rows(table: pl.DataFrame, span: tuple[dt.date, dt.date]) -> pl.DataFrame:
    return table.filter(pl.col("date").is_between(*span))


def fold_score(
    model_name: str, params: dict[str, Any], table: pl.DataFrame, features: list[str], quantiles: list[float],
    horizon: int, fold: Fold, scaled: bool = False,
) -> float:  # fmt: skip
    """Mean pinball loss of one fit on a fold's training part, on its validation part."""
    train, valid = _rows(table, fold.train), _rows(table, fold.valid)
    model = make_model(model_name, quantiles, list(features), horizon, params, scaled)
    model.fit(train, train["y"].to_numpy(), valid, valid["y"].to_numpy())
    return pinball(valid["y"].to_numpy(), model.predict(valid), quantiles)["pinball_mean"]


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
            raise optuna.TrialPruned(f"pruned after fold {step} with mean pinball {running:.6f}")
    return float(np.mean(scores))
