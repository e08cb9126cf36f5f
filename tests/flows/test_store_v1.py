"""A store written by the main of 2026-11-29 (layout version 1, before ``store.json``
existed; tests/data/store_v1) keeps working with every flow of today's code."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from core import layout
from core.storage import Store
from flows.features import features
from flows.predict import predict
from flows.train import COMMAND as TRAIN
from flows.tune import tune
from tests.factories import OLD_STORE_SYMBOLS as SYMBOLS
from tests.factories import STORE_V1, collect_into_old_store

pytestmark = pytest.mark.usefixtures("prefect_server", "clean_env")

OLD_STORE = STORE_V1


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_predict_reads_the_old_run_and_features(old_store):
    before = files(old_store)
    run_id = Store(str(old_store)).read_json("models/latest.json")["run_id"]
    summary: dict[str, Any] = predict(store=str(old_store))  # pyright: ignore[reportAssignmentType]
    assert summary["run_id"] == run_id and summary["symbols"] == len(SYMBOLS)
    assert summary["as_of"] == "2017-12-29"
    after = files(old_store)
    # Every old file is byte for byte as it was, except the ACI state the run continues and
    # the day's prediction file; the store is marked with this layout version on this first
    # write (older code then refuses what this one writes)
    changed = {k for k in before if before[k] != after[k]}
    assert changed <= {f"predictions/aci/{run_id}.json", "predictions/2017-12-29.parquet"}
    assert Store(str(old_store)).read_json("store.json")["layout_version"] == layout.LAYOUT_VERSION
    # its ACI state (written before the tracker existed) is continued as ACI
    state = Store(str(old_store)).read_json(f"predictions/aci/{run_id}.json")
    assert state["method"] == "aci" and summary["online_state"].startswith("ACI alpha")
    # and its forecast is one coherent set: its online interval is its outer levels
    out = Store(str(old_store)).read_parquet("predictions/2017-12-29.parquet")
    levels = [0.1, 0.25, 0.5, 0.75, 0.9]
    assert out.columns == ["symbol", "date", "target_date", "horizon", "method",
                           *[f"q_{q}" for q in levels], "run_id"]  # fmt: skip
    values = out.select(f"q_{q}" for q in levels).to_numpy()
    assert (values[:, 1:] >= values[:, :-1]).all()


def test_monitor_and_report_read_the_old_store(old_store):
    """A run from before monitoring: no drift reference (a note, not a crash); its
    predictions are scored and its held-out test period drawn."""
    from flows.monitor import monitor

    summary: dict[str, Any] = monitor(
        store=str(old_store), as_of=dt.date(2018, 1, 31), backfill=True
    )  # pyright: ignore[reportAssignmentType]
    assert "has no drift reference" in summary["drift"]["note"]
    assert summary["scored"] + summary["pending"] == len(SYMBOLS)
    assert Path(summary["report"]).is_file()


def test_collect_continues_the_old_prices_incrementally(old_store, tmp_path):
    old_ko = Store(str(old_store)).read_parquet(layout.PRICES(symbol="KO"))
    summary = collect_into_old_store(old_store, tmp_path)
    assert summary["ok"] == len(SYMBOLS) and not summary["refetched_full"]
    ko = Store(str(old_store)).read_parquet(layout.PRICES(symbol="KO"))
    assert ko.head(old_ko.height).equals(old_ko)  # old rows kept as they were
    assert ko["date"].max() == dt.date(2018, 1, 31) and summary["new_rows"] == 5 * 21
    ingestion = Store(str(old_store)).read_parquet(layout.INGESTION())
    assert (
        ingestion.filter(pl.col("symbol") == "KO")["attempts"].item() == 2
    )  # the old count goes on


def test_features_train_and_tune_read_the_old_store(old_store, tmp_path, monkeypatch):
    store = Store(str(old_store))
    old_manifest = store.read_json(layout.FEATURES_MANIFEST())
    doc: dict[str, Any] = features(store=str(old_store), groups=["seed", "risk"])  # pyright: ignore[reportAssignmentType]
    assert not doc["skipped"] and doc["version"] != old_manifest["version"]  # new feature code
    assert (
        doc["rows"] == old_manifest["rows"]
        and doc["input_fingerprint"] == old_manifest["input_fingerprint"]
    )
    # The old tuning result still feeds `train --params best`.
    assert TRAIN.main(["--store", str(old_store), "--model", "lightgbm", "--params", "best"]) == 0
    run = store.read_json("models/latest.json")["run_id"]
    manifest = store.read_json(f"models/{run}/manifest.json")
    assert manifest["params_source"].endswith("tuning/lightgbm/best_params.json")
    monkeypatch.setenv("SMA_OPTUNA_STORAGE", f"sqlite:///{tmp_path / 'optuna.db'}")
    monkeypatch.setenv("SMA_TUNING__FOLDS", "2")
    result: dict[str, Any] = tune(store=str(old_store), model="lightgbm", trials=1, study="again")  # pyright: ignore[reportAssignmentType]
    assert result["trials"] == 1


def test_train_and_backtest_read_the_old_feature_build(old_store, monkeypatch):
    """Its own feature build (no checksums: written before they existed) feeds a new run
    and a backtest of a few refits; the backtest's files are then read back verified."""
    from flows.backtest import backtest
    from flows.train import train

    monkeypatch.setenv("SMA_BACKTEST__MIN_HISTORY_DAYS", "400")
    store = Store(str(old_store))
    old_manifest = store.read_json(layout.FEATURES_MANIFEST())
    assert "checksums" not in old_manifest
    fast = {"num_boost_round": 40, "min_data_in_leaf": 50}
    run: dict[str, Any] = train(store=str(old_store), model="lightgbm", params=fast)  # pyright: ignore[reportAssignmentType]
    assert run["manifest"]["data_fingerprint"]["features_version"] == old_manifest["version"]
    assert run["manifest"]["features"] and run["metrics"]["horizon"] == old_manifest["horizon"]
    result: dict[str, Any] = backtest(
        store=str(old_store), model="lightgbm", refit_every=126, params=fast
    )  # pyright: ignore[reportAssignmentType]
    assert len(result["metrics"]["refits"]) >= 2
    from core.monitoring.monitor import newest_backtest

    found = newest_backtest(store)
    assert found is not None and found[0] == result["backtest_id"]
    assert store.read_json(layout.FEATURES_MANIFEST()) == old_manifest  # read, never rewritten
