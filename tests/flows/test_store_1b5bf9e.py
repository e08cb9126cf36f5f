"""A store written by the main of 2026-12-06 (``1b5bf9e``, before manifests were typed;
tests/data/store_1b5bf9e): its deployed run, backtest, refit records and monitoring scores
are read through today's typed manifests, and their recorded hashes still hold."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from core import layout
from core.backtests import RefitRecord, backtest_ids, read_backtest
from core.errors import DamagedArtifactError
from core.runs import read_run
from core.storage import Store
from flows.monitor import monitor
from flows.predict import predict
from tests.factories import STORE_1B5BF9E

pytestmark = pytest.mark.usefixtures("prefect_server", "clean_env")
RUN = "20261206T131524Z-a64c642d"
BACKTEST = "20261206T131535Z-2e50db4b"

OLD_STORE = STORE_1B5BF9E


def test_every_manifest_of_the_old_store_reads_and_verifies(old_store):
    store = Store(str(old_store))
    run = read_run(store, "latest").verify(store)
    assert run.run_id == RUN and set(run.fits) == {"model", "holdout/model"}
    assert backtest_ids(store) == [BACKTEST]
    backtest = read_backtest(store, BACKTEST).verify(store)
    assert backtest.metrics(store)["backtest_id"] == BACKTEST
    records = [
        RefitRecord.read(store, key)
        for key in store.list("backtests/refits")
        if layout.BACKTEST_REFIT_CALIBRATION.match(key)
    ]
    assert len(records) == 2 and all(not r.problems(store) for r in records)
    assert [str(r.window.refit) for r in records] == ["2017-01-03", "2017-07-05"]


def test_predict_and_a_backfill_read_the_old_run_and_backtest(old_store):
    summary: dict[str, Any] = predict(store=str(old_store))  # pyright: ignore[reportAssignmentType]
    assert summary["run_id"] == RUN and summary["symbols"] == 5
    result: dict[str, Any] = monitor(
        store=str(old_store), as_of=dt.date(2018, 1, 31), backfill=True
    )  # pyright: ignore[reportAssignmentType]
    assert any(f"backtest {BACKTEST}" in note for note in result["notes"])
    assert result["scores_by_source"]["backtest"] > 0
    assert Path(result["report"]).is_file()


def test_the_old_backtest_hashes_still_guard_its_files(old_store):
    store = Store(str(old_store))
    key = layout.BACKTEST_PREDICTIONS(backtest_id=BACKTEST)
    frame = store.read_parquet(key)
    store.write_parquet(key, frame.with_columns(pl.col("hi") + 1.0))
    with pytest.raises(DamagedArtifactError, match="does not match the sha256"):
        read_backtest(store, BACKTEST).predictions(store)
