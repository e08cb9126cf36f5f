"""Registries are the single source of names: settings, CLI choices, tuning and the site's reference
read them, so a new model, collector or feature group is one module plus one entry."""

from __future__ import annotations

import datetime as dt

import pytest

from core.config import AGGREGATE, AUTO, ConfigError
from core.data.collectors import COLLECTORS, CollectorSpec, FetchResult, make_collector
from core.data.prices import empty_prices
from core.modeling.models import MODELS, make_model, tunable
from core.modeling.models.base import ModelSpec
from core.modeling.models.baselines import Baseline
from core.settings import load_settings
from flows import collect, features, train, tune
from tests.factories import ROOT


def choices(command, flag: str) -> list[str]:
    action = next(a for a in command.parser()._actions if flag in a.option_strings)
    return list(action.choices or [])


def test_cli_choices_and_settings_come_from_the_registries():
    # every regressor, the aggregation and auto (config's names)
    assert choices(train.COMMAND, "--model") == [*MODELS, AGGREGATE, AUTO]
    assert choices(tune.COMMAND, "--model") == [*MODELS, AGGREGATE, AUTO]  # the learner's
    assert "catboost" in tunable() and "ewma" not in tunable()  # baselines have nothing to tune
    assert choices(collect.COMMAND, "--source") == list(COLLECTORS)
    with pytest.raises(ConfigError, match=r"unknown model 'xgb'; known: catboost, lightgbm"):
        load_settings(model={"name": "xgb"})
    with pytest.raises(ConfigError, match=r"unknown source 'bloomberg'; known: yfinance"):
        load_settings(source="bloomberg")
    with pytest.raises(ConfigError, match=r"unknown feature group 'x'; known: seed"):
        load_settings(features={"groups": ["seed", "x"]})


def test_a_new_registry_entry_is_all_a_new_model_or_collector_needs(monkeypatch):
    """One entry makes a name valid in settings, in the CLI, and buildable."""
    spec = ModelSpec(
        name="ewma2",
        summary="a second EWMA",
        build=lambda q, f, h, p: Baseline("ewma", q, h),
        load=Baseline.load,
    )
    monkeypatch.setitem(MODELS, "ewma2", spec)
    assert load_settings(model={"name": "ewma2"}).model.name == "ewma2"
    assert "ewma2" in choices(train.COMMAND, "--model") and "ewma2" not in tunable()
    assert isinstance(make_model("ewma2", [0.1, 0.9], ["symbol"], 3), Baseline)

    class Empty:
        name = "empty"

        def fetch(self, symbols, start, end) -> FetchResult:
            return FetchResult(bars=empty_prices())

    monkeypatch.setitem(COLLECTORS, "empty", CollectorSpec(lambda job: Empty(), "nothing"))
    settings = load_settings(source="empty")
    assert "empty" in choices(collect.COMMAND, "--source")
    assert (
        make_collector(settings.collect_job(dt.date(2024, 1, 2)))
        .fetch(["A"], dt.date(2024, 1, 1), dt.date(2024, 1, 2))
        .bars.is_empty()
    )


def test_the_features_flow_documents_its_flags():
    assert "--groups" in (features.__doc__ or "")


def test_listing_and_asking_for_a_model_name_imports_no_model_code():
    """``--model`` choices and ``name in MODELS`` read the registry's names only."""
    import subprocess
    import sys

    code = (
        "import sys; from core.modeling.models import MODELS; "
        "assert 'catboost' in MODELS and 'nope' not in MODELS and list(MODELS)[0] == 'catboost'; "
        "assert not [m for m in sys.modules if m.startswith('core.modeling.models.')], sys.modules; "
        "assert 'numpy' not in sys.modules and 'polars' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_baseline_names_come_from_the_specs_whatever_was_imported_first():
    """The registry's baselines are the specs marked ``baseline``; looking a baseline up
    first (which imports ``models/baselines.py`` into the package) does not shadow them."""
    import importlib

    from core.modeling import models

    assert models.MODELS["ewma"].baseline
    importlib.import_module("core.modeling.models.baselines")
    from core.modeling.models import baseline_names

    assert baseline_names() == ("historical", "ewma", "garch", "har", "fhs", "evt")
    assert not models.MODELS["catboost"].baseline and not models.MODELS["lightgbm"].baseline
