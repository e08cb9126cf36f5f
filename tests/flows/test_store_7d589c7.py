"""A store written by the last main of layout 2 (``7d589c7``, tests/data/store_7d589c7): its
run, backtest, refit records and monitoring scores read and verify; predict continues its
tracker and writes today's file (with VaR and ES) beside its old one; a backfill scores its
backtest; and a second horizon joins it under horizons/h=<h>/, its own keys untouched."""

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
from flows.features import features
from flows.monitor import monitor
from flows.predict import predict
from tests.factories import STORE_7D589C7

pytestmark = pytest.mark.usefixtures("prefect_server", "clean_env")
RUN = "20261206T220131Z-e7c4d831"
BACKTEST = "20261206T220400Z-6c9397ce"
LEVELS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975, 0.99]

OLD_STORE = STORE_7D589C7


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
