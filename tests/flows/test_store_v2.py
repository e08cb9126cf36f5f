"""A store written by the last main of layout 2 (``7d589c7``, tests/data/store_v2) keeps
working with every flow of today's code: its run, backtest, refit records and monitoring
scores read and verify; collect continues its prices; features, train, tune and a backtest
read its feature build; predict continues its tracker and writes today's file (with VaR and
ES) beside its old one; a backfill scores its backtest; the report draws it; prune keeps its
deployed run; and a second horizon joins it under horizons/h=<h>/, its own keys untouched."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core import layout
from core.backtests import RefitRecord, backtest_ids, read_backtest
from core.runs import read_run
from core.storage import Store
from flows.backtest import backtest
from flows.features import features
from flows.monitor import monitor
from flows.predict import predict
from flows.prune import prune
from flows.report import report
from flows.train import train
from flows.tune import tune
from tests.factories import OLD_STORE_SYMBOLS as SYMBOLS
from tests.factories import STORE_V2, collect_into_old_store

pytestmark = pytest.mark.usefixtures("prefect_server", "clean_env")
RUN = "20261206T220131Z-e7c4d831"
BACKTEST = "20261206T220400Z-6c9397ce"
LEVELS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975, 0.99]
FAST = {"num_boost_round": 40, "min_data_in_leaf": 50}

OLD_STORE = STORE_V2


def test_its_manifests_read_and_verify(old_store):
    store = Store(str(old_store))
    assert store.read_json("store.json")["layout_version"] == 2
    run = read_run(store, "latest").verify(store)
    assert run.run_id == RUN and run.horizon == 3
    assert backtest_ids(store) == [BACKTEST]
    metrics = read_backtest(store, BACKTEST).verify(store).metrics(store)
    assert metrics["quantiles"] == LEVELS and "risk" not in metrics  # scored before issue 23
    records = [
        RefitRecord.read(store, key)
        for key in store.list("backtests/refits")
        if layout.BACKTEST_REFIT_CALIBRATION.match(key)
    ]
    assert len(records) == 2 and all(not r.problems(store) for r in records)


def test_predict_continues_its_tracker_and_a_backfill_scores_its_backtest(old_store):
    store = Store(str(old_store))
    old = store.read_parquet("predictions/2017-12-29.parquet")
    state = store.read_json(f"predictions/tracker/{RUN}.json")
    assert "symbol_offsets" in state and not any(c.startswith("var_") for c in old.columns)

    summary: dict[str, Any] = predict(store=str(old_store))  # pyright: ignore[reportAssignmentType]
    assert summary["run_id"] == RUN and summary["symbols"] == 5
    assert store.read_json("store.json")["layout_version"] == layout.LAYOUT_VERSION
    new = store.read_parquet(layout.PREDICTIONS(as_of=summary["as_of"]))
    assert {"var_long_0.01", "es_short_0.05"} <= set(new.columns)
    assert np.allclose(new["var_long_0.01"], -np.expm1(new["q_0.01"].to_numpy()))

    result: dict[str, Any] = monitor(
        store=str(old_store), as_of=dt.date(2018, 1, 31), backfill=True
    )  # pyright: ignore[reportAssignmentType]
    assert result["scores_by_source"]["backtest"] > 0
    assert not result["tail"]["checked"]  # fewer than 250 scored dates: watched, not alerted
    assert Path(result["report"]).is_file()


def test_a_second_horizon_joins_the_old_store_beside_its_own(old_store, monkeypatch):
    prices = {p: p.read_bytes() for p in (old_store / "raw").rglob("*") if p.is_file()}
    monkeypatch.setenv("SMA_FEATURES__HORIZONS", "3,1")
    result: dict[str, Any] = features(store=str(old_store))  # pyright: ignore[reportAssignmentType]
    assert set(result["horizons"]) == {"3", "1"}
    root = Store(str(old_store))
    assert root.read_json(layout.FEATURES_MANIFEST())["horizon"] == 3  # its own, at the root
    one = root.for_horizon(1, home=1)  # the root build decides: 1 is not home
    assert one.read_json(layout.FEATURES_MANIFEST())["horizon"] == 1
    assert (old_store / "horizons/h=1/features/manifest.json").is_file()
    assert read_run(root, "latest").run_id == RUN  # the old run stays the root's
    after = {p: p.read_bytes() for p in (old_store / "raw").rglob("*") if p.is_file()}
    assert after == prices  # one set of prices for both horizons


def test_collect_continues_the_old_prices_incrementally(old_store, tmp_path):
    store = Store(str(old_store))
    old_ko = store.read_parquet(layout.PRICES(symbol="KO"))
    summary = collect_into_old_store(old_store, tmp_path)
    assert summary["ok"] == len(SYMBOLS) and not summary["refetched_full"]
    ko = store.read_parquet(layout.PRICES(symbol="KO"))
    assert ko.head(old_ko.height).equals(old_ko) and ko["date"].max() == dt.date(2018, 1, 31)
    assert not (old_store / "horizons").exists()  # prices live at the root, for every horizon


def test_train_tune_and_backtest_read_the_old_feature_build(old_store, tmp_path, monkeypatch):
    monkeypatch.setenv("SMA_BACKTEST__MIN_HISTORY_DAYS", "400")
    store = Store(str(old_store))
    old_manifest = store.read_json(layout.FEATURES_MANIFEST())
    run: dict[str, Any] = train(store=str(old_store), model="lightgbm", params=FAST)  # pyright: ignore[reportAssignmentType]
    assert run["manifest"]["data_fingerprint"]["features_version"] == old_manifest["version"]
    assert store.read_json(layout.LATEST_RUN()) == {"run_id": run["run_id"]}  # at the root
    assert "risk" in run["metrics"] and "fhs" in run["metrics"]["methods"]
    result: dict[str, Any] = backtest(
        store=str(old_store), model="lightgbm", refit_every=126, params=FAST
    )  # pyright: ignore[reportAssignmentType]
    assert len(result["metrics"]["refits"]) >= 2
    assert backtest_ids(store) == [BACKTEST, result["backtest_id"]]
    read_backtest(store, BACKTEST).verify(store)  # the old one beside it, still whole
    monkeypatch.setenv("SMA_OPTUNA_STORAGE", f"sqlite:///{tmp_path / 'optuna.db'}")
    monkeypatch.setenv("SMA_TUNING__FOLDS", "2")
    tuned: dict[str, Any] = tune(store=str(old_store), model="lightgbm", trials=1)  # pyright: ignore[reportAssignmentType]
    assert tuned["trials"] == 1 and store.exists(layout.BEST_PARAMS(study="lightgbm"))
    assert store.read_json(layout.FEATURES_MANIFEST()) == old_manifest  # read, never rewritten


def test_report_and_prune_read_the_old_store(old_store):
    page: dict[str, Any] = report(store=str(old_store))  # pyright: ignore[reportAssignmentType]
    assert page["as_of"] == "2017-12-29" and Path(page["uri"]).is_file()
    before = {p for p in old_store.rglob("*") if p.is_file()}
    kept: dict[str, Any] = prune(store=str(old_store), dry_run=True)  # pyright: ignore[reportAssignmentType]
    assert kept["kept_runs"] == [RUN] and kept["files"] == 0
    assert {p for p in old_store.rglob("*") if p.is_file()} == before
