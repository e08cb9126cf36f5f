import datetime as dt

import optuna
import polars as pl
import pytest

from core.modeling.models.lightgbm_model import search_space as space
from core.modeling.tuning import Fold, run_trial, time_folds


def test_folds_expand_and_never_let_training_targets_reach_validation():
    days = pl.date_range(dt.date(2018, 1, 1), dt.date(2020, 12, 31), eager=True)
    days = days.filter(days.dt.weekday() <= 5)
    trading = days.to_list()
    h = 3
    folds = time_folds(days, 3, embargo=h)
    assert len(folds) == 3
    for k, fold in enumerate(folds):
        assert fold.train[0] == trading[0]
        # the last training target spans h dates after train end; validation starts later
        assert trading.index(fold.valid[0]) - trading.index(fold.train[1]) == h + 1
        assert fold.valid[0] <= fold.valid[1]
        if k:
            assert fold.train[1] > folds[k - 1].train[1]  # expanding
            assert fold.valid[0] > folds[k - 1].valid[1]
    assert folds[-1].valid[1] == trading[-1]
    with pytest.raises(ValueError, match="too few dates"):
        time_folds(days.head(8), 3, embargo=h)


def test_a_trial_bad_on_its_first_fold_is_pruned():
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=1),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )
    folds = [
        Fold((dt.date(2020, 1, 1), dt.date(2020, 1, 2)), (dt.date(2020, 1, 3), dt.date(2020, 1, 4)))
    ] * 3
    seen: list[int] = []

    def score(params, fold):
        seen.append(trial_number[0])
        return 100.0 if trial_number[0] == 3 else 1.0

    trial_number = [0]
    for n in range(4):
        trial_number[0] = n
        trial = study.ask()
        try:
            study.tell(trial, run_trial(trial, folds, score, space))
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    states = [t.state for t in study.trials]
    assert states[:3] == [optuna.trial.TrialState.COMPLETE] * 3
    assert states[3] == optuna.trial.TrialState.PRUNED
    assert seen.count(3) == 1  # stopped after its first fold
