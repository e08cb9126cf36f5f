"""Train and predict flows under a real (temporary) Prefect server, on the sample."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from core.features.registry import feature_names
from core.storage import Store, sha256
from flows.features import features
from flows.predict import COMMAND as PREDICT
from flows.predict import predict
from flows.train import COMMAND as TRAIN
from flows.train import train

pytestmark = pytest.mark.usefixtures("prefect_server", "clean_env")
FAST = {"num_boost_round": 200, "min_data_in_leaf": 50}


def test_train_writes_a_complete_verified_run_then_predict(store_dir, tmp_path):
    result: dict[str, Any] = train(store=str(store_dir), model="lightgbm", params=FAST)  # pyright: ignore[reportAssignmentType]
    store = Store(str(store_dir))
    run_id = result["run_id"]
    assert store.read_json("models/latest.json") == {"run_id": run_id}
    prefix = f"models/{run_id}"
    metrics = store.read_json(f"{prefix}/metrics.json")
    assert (
        metrics["run_id"] == run_id and metrics["model"] == "lightgbm" and metrics["horizon"] == 3
    )
    assert metrics["target_coverage"] == 0.8
    # the model, every baseline, and the online aggregation of them all (boa)
    methods = ["lightgbm", "historical", "ewma", "garch", "har", "fhs", "evt", "boa"]
    assert metrics["methods"] == methods and metrics["deployed"] == "lightgbm"
    levels = metrics["quantiles"]
    assert len(levels) == 11 and metrics["interval"] == [0.1, 0.9]  # the default grid
    for kind in ("calibrated", "raw"):
        for method in methods:
            figures = metrics[kind][method]
            assert {"crps", "pinball_mean", "coverage", "interval_score", "rank_ic_mean"} <= set(
                figures
            )
            assert {f"exceedance_{q}" for q in levels} <= set(figures)
            assert abs(sum(figures["pit_histogram"]) - 1) < 1e-9
    for method in methods:  # every method calibrated alike: its levels close to their tau
        assert metrics["calibrated"][method]["max_exceedance_error"] < 0.08, method
        groups = metrics["groups"][method]
        assert {g["vol_tercile"] for g in groups["vol_tercile"]} == {"1", "2", "3"}
        assert {g["year"] for g in groups["year"]} == {"2017", "2018"}
        assert len(groups["symbol"]) == 39 and len(groups["month"]) > 3
    dm = metrics["tests"]["diebold_mariano"]
    assert set(dm["calibrated"]["lightgbm"]) == set(methods) - {"lightgbm"}
    assert set(dm["raw"]["har"]) == set(methods) - {"har"} and dm["lags"] >= 2 * metrics["horizon"]
    mcs = metrics["tests"]["mcs"]
    assert set(mcs["included"]) | set(mcs["excluded"]) == set(methods) and mcs["size"] == 0.1
    per_level = metrics["tests"]["levels"]["lightgbm"]
    for q in levels:
        t = per_level[f"q_{q}"]
        assert 0 <= t["kupiec_pass_share"] <= 1 and 0.8 < t["reference_pass_share"] <= 1
        assert 0 <= t["clustered_test"]["p_value"] <= 1
    assert 0.65 < metrics["calibrated"]["lightgbm"]["coverage"] < 0.95
    effective = metrics["calibration"]["lightgbm"]
    assert max(effective["effective_rows"]) < effective["rows"]  # correlated across symbols

    preds = store.read_parquet(f"{prefix}/test_predictions.parquet")
    assert {
        "symbol",
        "date",
        "y",
        "q_0.01",
        "q_0.99",
        "q_0.1_raw",
        "har_q_0.5",
        "har_q_0.5_raw",
    } <= set(preds.columns)
    assert not {"lo", "hi", "lo_cqr", "aci_q"} & set(preds.columns)
    assert preds.height == metrics["rows"]["test"]
    manifest = store.read_json(f"{prefix}/manifest.json")
    names = feature_names(["seed", "risk"], 3)  # the default groups
    assert manifest["features"] == [*names["seed"], *names["risk"]]
    assert metrics["volatility_scaled"] is True  # the risk group is there: scaled targets
    assert (
        manifest["data_fingerprint"]["features_version"]
        == store.read_json("features/manifest.json")["version"]
    )
    assert manifest["settings"]["model"]["params"] == FAST
    for rel, digest in manifest["files"].items():
        assert sha256(store.read_bytes(f"{prefix}/{rel}")) == digest
    # the deployed fit (predict loads it) is refitted on the newest data; the held-out one
    # behind the metrics is kept beside it, and the manifest says which is which
    fits = manifest["fits"]
    assert fits["model"]["windows"]["cal"][1] == str(preds["date"].max())
    assert fits["holdout/model"]["windows"]["test"] == metrics["splits"]["test"]
    assert fits["model"]["windows"]["train"][1] > metrics["splits"]["train"][1]
    assert "predict uses it" in fits["model"]["purpose"]
    assert metrics["deployed_fit"]["cal"] == fits["model"]["windows"]["cal"]
    assert {
        "model/params.json",
        "model/quantile_0.5.txt",
        "model/scale.json",
        "holdout/model/params.json",
        "holdout/model/quantile_0.5.txt",
        "calibration.json",
        "drift_reference.json",
        "plots/calibration.png",
        "plots/rolling_coverage.png",
        "plots/feature_importance.png",
    } <= set(manifest["files"])
    assert sum(f.startswith("plots/fan_") for f in manifest["files"]) == 3
    card = result["model_card"]
    assert "Deployed: **lightgbm**" in card and "| har (calibrated) |" in card
    assert "| ewma (raw) |" in card and "Model Confidence Set" in card and "CRPS ~ 2 sum_k" in card
    offline = list((tmp_path / "wandb").rglob("offline-run-*"))
    assert offline and any(p.suffix == ".wandb" for p in offline[0].rglob("*"))
    record = store.read_json(f"models/{run_id}/wandb.json")  # the store's own W&B run
    assert record["run_id"] == run_id and record["folder"] in {p.name for p in offline}

    summary: dict[str, Any] = predict(store=str(store_dir))  # pyright: ignore[reportAssignmentType]
    out = store.read_parquet(f"predictions/{summary['as_of']}.parquet")
    assert out.height == summary["symbols"] == 39  # not APTV: its collection marked it insufficient
    # one forecast set: the levels, no separate interval; never crossing; VaR and ES beside
    risk = [
        f"{m}_{t}_{a}"
        for a in (0.01, 0.025, 0.05)
        for t in ("long", "short")
        for m in ("var", "es")
    ]
    assert out.columns == ["symbol", "date", "target_date", "horizon", "method",
                           *[f"q_{q}" for q in levels], *risk, "run_id"]  # fmt: skip
    assert np.allclose(out["var_long_0.01"], -np.expm1(out["q_0.01"].to_numpy()))
    assert np.allclose(out["var_short_0.025"], np.expm1(out["q_0.975"].to_numpy()))
    for a in (0.01, 0.025, 0.05):
        for t in ("long", "short"):
            assert (out[f"es_{t}_{a}"] > out[f"var_{t}_{a}"]).all() and (
                out[f"var_{t}_{a}"] > 0
            ).all()
    assert (out["var_long_0.01"] > out["var_long_0.05"]).all()
    values = out.select(f"q_{q}" for q in levels).to_numpy()
    assert (values[:, 1:] >= values[:, :-1]).all() and (out["method"] == "lightgbm").all()
    assert (out["run_id"] == run_id).all() and (out["horizon"] == 3).all()
    assert (out["target_date"] > out["date"]).all()
    state_key = f"predictions/tracker/{run_id}.json"
    state = store.read_json(state_key)
    assert state["method"] == "lightgbm" and len(state["offsets"]) == 11

    # Ten dates later the outcomes of those dates are known: the next prediction folds them in.
    # (the state as it was 10 dates ago: only outcomes at least h dates older were folded in)
    from core.modeling.calibration import LevelCalibration

    doc = store.read_json(f"{prefix}/calibration.json")
    assert doc["method"] == "lightgbm" and list(doc["members"]) == ["lightgbm"]
    cal = LevelCalibration.from_dict(doc["members"]["lightgbm"]["levels"])
    keep = len(state["history"]) - 10
    applied = keep - state["horizon"] + 1
    history = state["history"]
    step = state["step"] * np.asarray(cal.inverse_density)

    def folded(start: np.ndarray, entries: list[Any]) -> np.ndarray:
        """The tracker's rule: each date, decay toward 0, then step toward the levels."""
        offsets = start
        for _, hits in entries:
            offsets = (1 - state["decay"]) * offsets + step * (
                np.asarray(levels) - np.asarray(hits)
            )
        return offsets

    # as it was 10 dates ago, from a known starting offset
    rewound = state | {"history": history[:keep], "applied": applied, "offsets": [0.1] * 11}
    store.write_json(state_key, rewound)
    again: dict[str, Any] = predict(store=str(store_dir))  # pyright: ignore[reportAssignmentType]
    assert again["outcomes_added"] > 0
    refolded = store.read_json(state_key)
    assert refolded["history"][:keep] == history[:keep]
    assert refolded["history"][-1][0] == state["history"][-1][0]
    # the offsets took in exactly the outcomes that became known (scored by the deployed
    # fit, which predict uses: the rewound dates were the held-out fit's)
    expected = folded(np.full(11, 0.1), refolded["history"][applied : refolded["applied"]])
    assert refolded["offsets"] == pytest.approx(list(expected))

    # the monitor compares the newest features with the deployed fit's training rows
    from core.config import MonitorSettings
    from core.monitoring.monitor import monitor as monitor_pass

    reference = store.read_json(f"models/{run_id}/drift_reference.json")
    assert reference["window"] == result["metrics"]["deployed_fit"]["train"]
    watched = monitor_pass(store, MonitorSettings(), dt.date.fromisoformat(summary["as_of"]))
    assert watched.drift is not None and watched.drift.height == len(reference["features"]) > 40
    assert (
        watched.summary["scored"] == 0 and watched.summary["pending"] > 0
    )  # outcomes not known yet


def test_tampered_model_is_refused_and_missing_inputs_exit_2(
    store_dir, tmp_path, capsys, monkeypatch
):
    assert TRAIN.main(["--store", str(store_dir), "--model", "historical"]) == 0
    store = Store(str(store_dir))
    run_id = store.read_json("models/latest.json")["run_id"]
    calibration = Path(store.path(f"models/{run_id}/calibration.json"))
    doc = json.loads(calibration.read_text())
    doc["members"]["historical"]["levels"]["shifts"][0] = 0.0  # a quietly narrowed tail
    calibration.write_text(json.dumps(doc))
    assert PREDICT.main(["--store", str(store_dir)]) == 3
    assert "calibration.json does not match" in capsys.readouterr().err
    assert not store.list("predictions")

    assert TRAIN.main(["--store", str(tmp_path / "empty")]) == 2
    assert "no feature table" in capsys.readouterr().err
    assert PREDICT.main(["--store", str(tmp_path / "empty")]) == 2
    monkeypatch.setenv("SMA_MODEL__VOLATILITY_SCALING", "on")
    features(store=str(store_dir), groups=["seed"])
    assert TRAIN.main(["--store", str(store_dir), "--model", "lightgbm"]) == 2
    assert "needs the 'risk' feature group" in capsys.readouterr().err
    monkeypatch.delenv("SMA_MODEL__VOLATILITY_SCALING")
    bad = tmp_path / "params.json"
    bad.write_text("[1, 2]")
    assert TRAIN.main(["--store", str(store_dir), "--params", str(bad)]) == 2
    assert "JSON object" in capsys.readouterr().err


def test_baseline_model_run_predicts(store_dir):
    train(store=str(store_dir), model="ewma")
    summary: dict[str, Any] = predict(store=str(store_dir))  # pyright: ignore[reportAssignmentType]
    out = Store(str(store_dir)).read_parquet(f"predictions/{summary['as_of']}.parquet")
    assert out.filter(pl.col("q_0.9") > pl.col("q_0.1")).height == out.height
    assert (out["method"] == "ewma").all()


def test_tune_writes_best_params_resumes_and_train_uses_them(
    store_dir, tmp_path, monkeypatch, capsys
):
    from flows.tune import tune

    monkeypatch.setenv("SMA_OPTUNA_STORAGE", f"sqlite:///{tmp_path / 'optuna.db'}")
    monkeypatch.setenv("SMA_MODEL__PARAMS", json.dumps({"num_boost_round": 60}))
    assert TRAIN.main(["--store", str(store_dir), "--model", "lightgbm", "--params", "best"]) == 2
    assert "no tuned parameters" in capsys.readouterr().err

    first: dict[str, Any] = tune(
        store=str(store_dir), model="lightgbm", trials=5, concurrency=2, study="s1"
    )  # pyright: ignore[reportAssignmentType]
    store = Store(str(store_dir))
    best = store.read_json("tuning/s1/best_params.json")
    assert (
        best["trials"] == 5
        and best["model"] == "lightgbm"
        and set(best["params"])
        == {"num_leaves", "learning_rate", "min_data_in_leaf", "feature_fraction", "lambda_l2"}
    )
    assert best["score"] == first["score"] and best["data_fingerprint"]["features_version"]
    assert store.exists("tuning/s1/plots/optimization_history.png")

    again: dict[str, Any] = tune(store=str(store_dir), model="lightgbm", trials=2, study="s1")  # pyright: ignore[reportAssignmentType]
    assert again["trials"] == 7  # resumed, not restarted

    monkeypatch.setenv("SMA_TUNING__STUDY", "s1")
    assert TRAIN.main(["--store", str(store_dir), "--model", "lightgbm", "--params", "best"]) == 0
    run_id = store.read_json("models/latest.json")["run_id"]
    manifest = store.read_json(f"models/{run_id}/manifest.json")
    assert manifest["params_source"].endswith("tuning/s1/best_params.json")
    tuned = store.read_json("tuning/s1/best_params.json")["params"]
    assert {k: manifest["settings"]["model"]["params"][k] for k in tuned} == tuned


def test_predict_refuses_features_the_model_was_not_trained_on(store_dir, capsys):
    """Features of another horizon are built beside the run's (layout 3), not over them;
    features rebuilt with other groups: exit 2 naming the difference; prices newer than the
    features: a warning with the dates."""
    train(store=str(store_dir), model="lightgbm", params=FAST)
    features(store=str(store_dir), horizon=5)
    assert (store_dir / "horizons/h=5/features/manifest.json").is_file()
    assert PREDICT.main(["--store", str(store_dir)]) == 0  # horizon 3's run and features
    capsys.readouterr()
    assert PREDICT.main(["--store", str(store_dir), "--horizon", "5"]) == 2  # no run at h = 5
    assert "horizons/h=5/models" in capsys.readouterr().err
    features(store=str(store_dir), groups=["seed"])
    assert PREDICT.main(["--store", str(store_dir)]) == 2
    err = capsys.readouterr().err
    assert "features differ (groups seed; missing ['absmax22', 'beta126'" in err
    assert len(err.strip().splitlines()) == 1

    features(store=str(store_dir))  # back to the run's features; then a newer bar arrives
    store = Store(str(store_dir))
    ko = store.read_parquet("raw/prices/symbol=KO/data.parquet")
    later = ko.tail(1).with_columns(pl.col("date") + pl.duration(days=3))
    store.write_parquet("raw/prices/symbol=KO/data.parquet", pl.concat([ko, later]))
    assert PREDICT.main(["--store", str(store_dir)]) == 0
    out = capsys.readouterr().out
    assert (
        f"warning: the features end on {ko['date'].max()} but the stored prices go to {later['date'].item()}"
        in out
    )


def test_train_reads_only_its_lookback_window(featured):
    """Rows older than the lookback (and a margin of 2h + 10 days: the splits cut from the
    last labelled date) are filtered inside the scans, prices a year more (the price models'
    warm-up); the splits and the deployed window come out the same as from every row."""
    from core.config import ModelSettings, RefitSettings
    from core.features.table import FeatureBuild
    from core.modeling.inputs import training_inputs
    from core.modeling.models.prices import PRICE_WARMUP_DAYS
    from core.modeling.timeline import deployment_window, model_holdout, trading_dates

    build = FeatureBuild.open(Store(str(featured)))
    every, recent_data = training_inputs(build), training_inputs(build, 400)
    table, prices, recent, recent_prices = (
        every.table, every.prices, recent_data.table, recent_data.prices
    )  # fmt: skip
    horizon = build.manifest.horizon
    since = table["date"].max() - dt.timedelta(days=400 + 2 * horizon + 10)  # type: ignore[operator]
    assert recent_data.build == every.build and 0 < recent.height < table.height
    assert recent.equals(table.filter(pl.col("date") >= since))
    warm = since - dt.timedelta(days=PRICE_WARMUP_DAYS)
    assert recent_prices.equals(prices.filter(pl.col("date") >= warm))
    assert recent_prices.height < prices.height
    cfg = ModelSettings(lookback_days=400)

    def windows(t: pl.DataFrame) -> tuple[object, object]:
        labelled = t.filter(pl.col("y").is_not_null())["date"]
        splits = model_holdout(labelled, horizon, cfg)
        return splits, deployment_window(trading_dates(t), horizon, cfg, RefitSettings())

    assert windows(recent) == windows(table)


def test_train_predict_and_backtest_open_the_feature_build_once(store_dir, monkeypatch):
    """Each flow reads the features manifest once and checks each file of the build once,
    then hands the opened build on (no step re-reads it piece by piece)."""
    from core import layout
    from flows.backtest import backtest

    reads: list[str] = []
    hashed: list[str] = []
    read_json, digest = Store.read_json, Store.sha256
    monkeypatch.setattr(
        Store, "read_json", lambda self, key: reads.append(key) or read_json(self, key)
    )
    monkeypatch.setattr(Store, "sha256", lambda self, key: hashed.append(key) or digest(self, key))
    build = Store(str(store_dir)).read_json(layout.FEATURES_MANIFEST())
    files = sorted(build["checksums"])
    runs = [
        lambda: train(store=str(store_dir), model="lightgbm", params=FAST),
        lambda: predict(store=str(store_dir)),
        lambda: backtest(
            store=str(store_dir), model="ewma", start=dt.date(2017, 10, 2), refit_every=200
        ),
    ]
    for run in runs:
        reads.clear()
        hashed.clear()
        run()
        assert reads.count(layout.FEATURES_MANIFEST()) == 1
        assert sorted(k for k in hashed if k.startswith("features/")) == files


def test_auto_deploys_the_best_candidate_and_a_deployed_aggregation_predicts(
    store_dir, monkeypatch
):
    """``auto`` deploys the candidate with the lowest calibrated CRPS on the held-out period
    and says why; ``boa`` deploys the online aggregation: predict runs every member with its
    own tracker and combines them with the aggregation's weights, continued day by day."""
    import tempfile

    from core.features.table import FeatureBuild
    from core.modeling.calibration import LevelCalibration, TrackerState, emit
    from core.modeling.models import load_model
    from core.modeling.prediction import latest_rows
    from core.runs import fetch_run

    monkeypatch.setenv("SMA_MODEL__LEARNER", "lightgbm")
    store = Store(str(store_dir))
    auto: dict[str, Any] = train(store=str(store_dir), model="auto", params=FAST)  # pyright: ignore[reportAssignmentType]
    metrics = auto["metrics"]
    crps = {m: metrics["calibrated"][m]["crps"] for m in metrics["methods"]}
    assert metrics["model"] == "lightgbm" and metrics["deployed"] == min(crps, key=crps.__getitem__)
    card = auto["model_card"]
    assert "Chosen by `auto`" in card and "Model Confidence Set holds" in card
    assert f"Deployed: **{metrics['deployed']}**" in card

    boa: dict[str, Any] = train(store=str(store_dir), model="boa", params=FAST)  # pyright: ignore[reportAssignmentType]
    run_id = boa["run_id"]
    calibration = store.read_json(f"models/{run_id}/calibration.json")
    members = ["lightgbm", "historical", "ewma", "garch", "har", "fhs", "evt"]
    assert calibration["method"] == "boa" and set(calibration["members"]) == set(members)
    assert calibration["aggregation"]["experts"] == members
    files = boa["manifest"]["files"]
    assert "model/params.json" in files and "members/har/har.json" in files
    assert "deployed" in boa["manifest"]["fits"]["members/garch"]["purpose"]

    summary: dict[str, Any] = predict(store=str(store_dir))  # pyright: ignore[reportAssignmentType]
    out = store.read_parquet(f"predictions/{summary['as_of']}.parquet")
    assert (out["method"] == "boa").all() and summary["method"] == "boa"
    state = store.read_json(f"predictions/tracker/{run_id}.json")
    assert set(state["members"]) == set(members) and state["aggregation"]["experts"] == members
    # the combination is a convex one of the members' forecasts: inside their range
    levels = calibration["members"]["har"]["levels"]["levels"]
    with tempfile.TemporaryDirectory() as tmp:
        fetch_run(store, run_id, Path(tmp))
        build = FeatureBuild.open(store)
        latest = latest_rows(build.scan().collect())
        each = []
        for name in members:
            model = load_model(Path(tmp) / calibration["members"][name]["folder"])
            if hasattr(model, "attach_prices"):
                model.attach_prices(build.prices())  # type: ignore[attr-defined]
            cal = LevelCalibration.from_dict(calibration["members"][name]["levels"])
            tracker = TrackerState.from_dict(state["members"][name])
            symbols = latest["symbol"].to_list()
            each.append(emit(cal, tracker, model.predict(latest), 1.0, symbols)[0])
    lo, hi = np.min(each, axis=0), np.max(each, axis=0)
    values = out.select(f"q_{q}" for q in levels).to_numpy()
    assert (values >= lo - 1e-12).all() and (values <= hi + 1e-12).all()
    again: dict[str, Any] = predict(store=str(store_dir))  # pyright: ignore[reportAssignmentType]
    assert again["outcomes_added"] == 0
    assert store.read_parquet(f"predictions/{summary['as_of']}.parquet").equals(out)
