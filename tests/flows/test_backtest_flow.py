"""The backtest flow end to end on the bundled sample (a few refits), under a real
(temporary) Prefect server: its folder, hashes, scores, and a resumed run."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest

from core import layout
from core.storage import Store, sha256
from flows.backtest import COMMAND as BACKTEST
from flows.backtest import backtest

pytestmark = pytest.mark.usefixtures("prefect_server", "clean_env")
FAST = {"num_boost_round": 60, "min_data_in_leaf": 50}
RUN = {"model": "lightgbm", "start": dt.date(2017, 8, 1), "refit_every": 60, "params": FAST}


def test_backtest_writes_a_verified_folder_and_a_rerun_resumes(store_dir, tmp_path, monkeypatch):
    first: dict[str, Any] = backtest(store=str(store_dir), **RUN)  # pyright: ignore[reportAssignmentType]
    store = Store(str(store_dir))
    bid = first["backtest_id"]
    manifest = store.read_json(layout.BACKTEST_MANIFEST(backtest_id=bid))
    for key, digest in manifest["files"].items():
        assert sha256(store.read_bytes(key)) == digest
    assert {
        layout.BACKTEST_PLOT(backtest_id=bid, name=n)
        for n in ("coverage_by_month", "pinball_ratio_by_month", "width_by_month")
    } <= set(manifest["files"])

    preds = store.read_parquet(layout.BACKTEST_PREDICTIONS(backtest_id=bid))
    metrics = store.read_json(layout.BACKTEST_METRICS(backtest_id=bid))
    refits = metrics["refits"]
    assert len(refits) == 3 and preds["refit"].n_unique() == 3
    assert (
        preds["date"].min() == dt.date(2017, 8, 1)
        and str(preds["date"].max()) == refits[-1]["until"]
    )
    # every symbol with features on a date is forecast, by the refit that was current then
    features = pl.read_parquet(store.path("features") + "/*/part-*.parquet")
    expected = features.filter(pl.col("date") >= dt.date(2017, 8, 1)).height
    assert preds.height == expected and preds.select("symbol", "date").is_unique().all()
    for w in refits:
        block = preds.filter(pl.col("refit") == dt.date.fromisoformat(w["refit"]))
        assert str(block["date"].min()) == w["refit"] and str(block["date"].max()) == w["until"]
        assert w["cal"][1] < w["refit"]
    assert {
        "aci_alpha",
        "lo",
        "hi",
        "lo_cqr",
        "q_0.5",
        "q_0.5_raw",
        "ewma_q_0.1",
        "garch_q_0.9",
        "har_q_0.5",
        "historical_q_0.9",
        "vol_tercile",
    } <= set(preds.columns)
    assert (preds["lo"] <= preds["hi"]).all()

    assert set(metrics["baselines"]) == {"historical", "ewma", "garch", "har"}
    for name, test in metrics["tests"]["diebold_mariano"]["cqr_aci"].items():
        assert 0 <= test["p_value"] <= 1 and test["beats"] == (
            test["mean_diff"] < 0 and test["p_value"] < 0.05
        ), name
    assert set(metrics["test"]["cqr_aci"]["coverage_by_year"]) == {"2017", "2018"}
    assert len(metrics["monthly"]) == metrics["track_record"]["months"] == 7
    assert 0.6 < metrics["test"]["cqr_aci"]["coverage"] < 0.95
    assert "| cqr_aci |" in first["summary"] and "Diebold-Mariano" in first["summary"]
    assert list((tmp_path / "wandb").rglob("offline-run-*"))

    # interrupted: one refit's forecasts are gone; a rerun refits only that one
    gone = layout.BACKTEST_REFIT(
        fit_key=manifest["fit_key"], refit=refits[1]["refit"], until=refits[1]["until"]
    )
    store.delete(gone)
    second: dict[str, Any] = backtest(store=str(store_dir), **RUN)  # pyright: ignore[reportAssignmentType]
    assert second["manifest"]["refits_reused"] == 2 and store.exists(gone)
    again = store.read_parquet(layout.BACKTEST_PREDICTIONS(backtest_id=second["backtest_id"]))
    assert again.equals(preds)
    assert preds["aci_alpha"].is_null().all() and preds["aci_q"].n_unique() > 10  # tracker

    # another online calibration re-runs only the calibration: every refit is reused
    monkeypatch.setenv("SMA_MODEL__ONLINE_METHOD", "aci")
    third: dict[str, Any] = backtest(store=str(store_dir), **RUN)  # pyright: ignore[reportAssignmentType]
    assert third["manifest"]["refits_reused"] == 3
    aci = store.read_parquet(layout.BACKTEST_PREDICTIONS(backtest_id=third["backtest_id"]))
    assert aci.select("symbol", "date", "q_0.5_raw").equals(
        preds.select("symbol", "date", "q_0.5_raw")
    )
    assert aci["aci_alpha"].n_unique() > 10 and not aci["lo"].equals(preds["lo"])


def test_backtest_input_errors_exit_2_naming_the_problem(store_dir, tmp_path, capsys):
    assert BACKTEST.main(["--store", str(store_dir), "--start", "2030-01-01"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no forecast date to backtest") and "2030-01-01" in err
    assert BACKTEST.main(["--store", str(tmp_path / "empty")]) == 2
    assert "no feature table" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        BACKTEST.main(["--store", str(store_dir), "--start", "yesterday"])
    assert not Store(str(store_dir)).list("backtests")


def test_readers_refuse_a_backtest_file_that_differs_from_its_manifest(store_dir):
    """The monitor (and the report through it) read a backtest's predictions through its
    manifest: bytes flipped after the backtest are refused, naming the file."""
    from core.errors import DamagedArtifactError
    from core.monitoring.monitor import newest_backtest

    run: dict[str, Any] = RUN | {"refit_every": 200}
    result: dict[str, Any] = backtest(store=str(store_dir), **run)  # pyright: ignore[reportAssignmentType]
    store = Store(str(store_dir))
    found = newest_backtest(store)
    key = layout.BACKTEST_PREDICTIONS(backtest_id=result["backtest_id"])
    frame = store.read_parquet(key)
    assert found is not None and found[0] == result["backtest_id"]
    assert found[1].drop("run_id").equals(frame)
    store.write_parquet(key, frame.with_columns(pl.col("lo") - 1.0))  # still valid Parquet
    with pytest.raises(
        DamagedArtifactError, match=r"predictions\.parquet: does not match the sha256"
    ):
        newest_backtest(store)
