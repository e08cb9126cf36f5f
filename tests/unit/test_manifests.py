"""Typed manifests (``core.storage.Manifest``): files written first, then the manifest with
their sha256, verified; every reader checks; numbers survive the store and Prefect's cache."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest
from prefect.serializers import JSONSerializer

from core import layout
from core.backtests import RefitRecord, read_refit, write_refit
from core.errors import DamagedArtifactError
from core.modeling.calibration import LevelCalibration
from core.modeling.timeline import Window
from core.storage import Store, StoreError

D = dt.date
WINDOW = Window(
    refit=D(2020, 3, 2),
    until=D(2020, 3, 31),
    train=(D(2017, 1, 3), D(2019, 6, 28)),
    val=(D(2019, 7, 8), D(2019, 12, 31)),
    cal=(D(2020, 1, 7), D(2020, 2, 26)),
)
# a calibration whose score density could not be estimated: an infinite value in the record
CAL_INF = LevelCalibration(
    [0.1, 0.9], (0.1, 0.9), [-0.5, 0.5], [math.inf, 2.0], 1e-4, 50, 10, [12.0, 9.0]
)


def refit(tmp_path) -> tuple[Store, RefitRecord, pl.DataFrame]:
    store = Store(str(tmp_path / "store"))
    frame = pl.DataFrame({"symbol": ["A", "B"], "date": [D(2020, 3, 2)] * 2, "y": [0.01, None]})
    record = write_refit(
        store, "k1", WINDOW, frame, {"ewma": CAL_INF}, {"garch": {"A": "did not converge"}}
    )
    return store, record, frame


def test_a_refit_record_reads_back_as_written_infinities_included(tmp_path):
    store, record, frame = refit(tmp_path)
    key = layout.BACKTEST_REFIT_CALIBRATION(fit_key="k1", refit="2020-03-02", until="2020-03-31")
    assert b"Infinity" in store.read_bytes(key)  # as Store.write_json writes it
    again = RefitRecord.read(store, key)
    assert again == record and again.window == WINDOW
    assert again.fallbacks == {"garch": {"A": "did not converge"}}
    forecasts, calibrations = read_refit(store, again)
    assert forecasts.equals(frame) and calibrations == {"ewma": CAL_INF}
    # the refit task's result, persisted by Prefect's JSON serializer, comes back the same
    cached = JSONSerializer().loads(JSONSerializer().dumps(record))
    assert cached == record and cached.levels["ewma"].inverse_density[0] == math.inf


def test_a_reader_refuses_a_changed_or_missing_file(tmp_path):
    store, record, frame = refit(tmp_path)
    store.write_parquet(record.key, frame.with_columns(pl.col("y").fill_null(0.0)))
    assert set(record.problems(store)) == {record.key}
    with pytest.raises(DamagedArtifactError, match="does not match the sha256 in its refit record"):
        read_refit(store, record)
    store.delete(record.key)
    with pytest.raises(DamagedArtifactError, match="missing"):
        record.verify(store)


def test_publish_verifies_what_it_wrote(tmp_path):
    store, record, _ = refit(tmp_path)
    # a manifest naming a file that is not in the store is not published as good
    stray = record.model_copy(update={"key": "backtests/refits/k1/gone.parquet"})
    with pytest.raises(StoreError, match=r"gone\.parquet is missing"):
        stray.publish(store, "backtests/refits/k1/stray.json")
