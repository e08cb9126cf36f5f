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
        for n in ("coverage_by_month", "crps_ratio_by_month", "width_by_month")
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
    methods = ["lightgbm", "historical", "ewma", "garch", "har", "fhs", "evt", "boa"]
    for p in ("", "ewma_", "garch_", "har_", "historical_", "boa_"):
        for suffix in ("", "_raw"):
            assert {f"{p}q_{q}{suffix}" for q in metrics["quantiles"]} <= set(preds.columns)
    assert not {"lo", "hi", "aci_q", "aci_alpha"} & set(preds.columns)
    values = preds.select(f"q_{q}" for q in metrics["quantiles"]).to_numpy()
    assert (values[:, 1:] >= values[:, :-1]).all()

    assert metrics["methods"] == methods and set(metrics["online_state_end"]) == set(methods[:-1])
    assert metrics["aggregated"] == methods[:-1]
    for name, test in metrics["tests"]["diebold_mariano"]["calibrated"]["lightgbm"].items():
        assert 0 <= test["p_value"] <= 1 and test["beats"] == (
            test["mean_diff"] < 0 and test["p_value"] < 0.05
        ), name
    assert {g["year"] for g in metrics["groups"]["lightgbm"]["year"]} == {"2017", "2018"}
    assert len(metrics["monthly"]) == metrics["track_record"]["months"] == 7
    assert {f"crps_{m}" for m in methods[1:]} <= set(metrics["monthly"][0])
    assert 0.6 < metrics["calibrated"]["lightgbm"]["coverage"] < 0.95
    assert "| lightgbm (calibrated) |" in first["summary"] and "Diebold-Mariano" in first["summary"]
    # the risk section: every method's VaR and ES backtests in both tails at 1, 2.5 and 5 %
    risk = metrics["risk"]
    assert risk["alphas"] == [0.01, 0.025, 0.05] and set(risk["methods"]) == set(methods)
    tails = risk["methods"]["lightgbm"]["tails"]
    assert set(tails) == {f"{t}_{a}" for a in (0.01, 0.025, 0.05) for t in ("long", "short")}
    for key, t in tails.items():
        assert 0 <= t["kupiec_pass_share"] <= 1 and 0 <= t["dq_reference"] <= 1, key
        assert t["mean_es"] > t["mean_var"] > 0 and "traffic_light" not in t  # h = 3
    assert set(risk["fz0_diebold_mariano"]["long_0.025"]["lightgbm"]) == set(methods) - {"lightgbm"}
    assert "Value-at-risk and expected shortfall of lightgbm" in first["summary"]
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

    # another tracker step re-runs only the calibration: every refit is reused
    monkeypatch.setenv("SMA_MODEL__TRACKER_STEP", "0.2")
    third: dict[str, Any] = backtest(store=str(store_dir), **RUN)  # pyright: ignore[reportAssignmentType]
    assert third["manifest"]["refits_reused"] == 3
    faster = store.read_parquet(layout.BACKTEST_PREDICTIONS(backtest_id=third["backtest_id"]))
    assert faster.select("symbol", "date", "q_0.5_raw").equals(
        preds.select("symbol", "date", "q_0.5_raw")
    )
    assert not faster["q_0.1"].equals(preds["q_0.1"])


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
    store.write_parquet(key, frame.with_columns(pl.col("q_0.1") - 1.0))  # still valid Parquet
    with pytest.raises(
        DamagedArtifactError, match=r"predictions\.parquet: does not match the sha256"
    ):
        newest_backtest(store)
