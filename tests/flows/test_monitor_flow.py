"""The monitor and report flows on a store where the truth is known: a frozen model's
forecasts through a volatility regime shift it does not see (``frozen_model_store``)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from core import layout
from core.config import MonitorSettings
from core.features.table import FeatureBuild
from core.modeling.drift_reference import drift_reference
from core.monitoring.monitor import monitor as monitor_pass
from core.monitoring.monitor import save, save_alert_state
from core.storage import Store
from flows.monitor import COMMAND as MONITOR
from flows.monitor import monitor
from flows.report import COMMAND as REPORT
from tests.factories import FROZEN_RUN, frozen_model_store, write_frozen_run

pytestmark = pytest.mark.usefixtures("prefect_server", "clean_env")
SHIFT = 180


@pytest.fixture(scope="module")
def frozen(tmp_path_factory) -> tuple[Path, list[dt.date]]:
    """The frozen model's store with a feature table and the run's drift reference (features
    of the first regime, the volatility ones most important), built once (copy to change)."""
    from flows.features import features

    root, dates = frozen_model_store(tmp_path_factory.mktemp("frozen") / "store", shift_at=SHIFT)
    features(store=str(root))
    store = Store(str(root))
    table = FeatureBuild.open(store).scan().collect()
    names = [c for c in table.columns if c not in ("symbol", "date", "y")]
    train = table.filter(pl.col("date") < dates[SHIFT])
    importance = {"day_of_year": 9.0, "vol_ewm": 8.0, "vol_cc22": 7.0, "rsi_ewm": 1.0}
    window = [str(train["date"].min()), str(train["date"].max())]
    write_frozen_run(store, drift_reference=drift_reference(train, names, importance, window))
    return root, dates


def copy_of(frozen: tuple[Path, list[dt.date]], tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(frozen[0], tmp_path / "store")
    return tmp_path / "store"


def test_a_regime_shift_alerts_once_and_drift_names_the_volatility_features(frozen, tmp_path):
    root, dates = copy_of(frozen, tmp_path), frozen[1]
    store = Store(str(root))
    cfg = MonitorSettings()
    fired: dict[str, list[dt.date]] = {}
    for as_of in dates[-115::3]:  # the daily pass, every third day
        result = monitor_pass(store, cfg, as_of)
        save(store, result)
        save_alert_state(store, result)
        for key in result.fired:
            fired.setdefault(key, []).append(as_of)
    coverage = fired.pop("coverage_60")
    assert len(coverage) == 1 and coverage[0] > dates[SHIFT]  # once, after the shift
    summary = store.read_json(layout.MONITOR_SUMMARY())
    assert (
        summary["rolling"]["60"]["coverage"] < 0.6 and "coverage_60" in summary["alerts"]["active"]
    )
    # the volatility features drifted (each alerts once); the calendar one is exempt
    assert {"psi:vol_ewm", "psi:vol_cc22"} <= set(fired) and all(
        len(v) == 1 for v in fired.values()
    )
    assert "psi:day_of_year" not in fired and "fresh_bars" not in fired
    drift = {r["feature"]: r for r in summary["drift"]["features"]}
    assert drift["vol_ewm"]["psi"] > 0.25 and drift["day_of_year"]["exempt"]
    # before the shift, the frozen model was calibrated
    calm = monitor_pass(store, cfg, dates[SHIFT - 1])
    assert abs(calm.summary["rolling"]["60"]["coverage"] - 0.8) < 0.05
    assert calm.fired == {}  # replaying an earlier day neither alerts nor forgets


def test_monitor_flow_backfills_idempotently_and_writes_the_report(frozen, tmp_path):
    root, dates = copy_of(frozen, tmp_path), frozen[1]
    store = Store(str(root))
    first: dict[str, Any] = monitor(store=str(root), as_of=dates[-1], backfill=True)  # pyright: ignore[reportAssignmentType]
    scores = store.read_parquet(layout.MONITOR_SCORES())
    assert first["scored"] == scores.height == 30 * (120 - 3)  # the last 3 days: outcomes unknown
    assert first["pending"] == 30 * 3 and set(first["alerts"]["fired"]) >= {"coverage_60"}
    assert any("no backtest" in n for n in first["notes"])
    # the same day again: the same table, and no alert repeats
    again: dict[str, Any] = monitor(store=str(root), as_of=dates[-1])  # pyright: ignore[reportAssignmentType]
    assert store.read_parquet(layout.MONITOR_SCORES()).equals(scores)
    assert again["alerts"]["fired"] == {} and "coverage_60" in again["alerts"]["active"]
    # the report: dated by the latest predictions, and a copy as latest
    page = store.read_bytes(layout.REPORT(as_of=str(dates[-1])))
    assert page == store.read_bytes(layout.REPORT_LATEST()) and len(page) < 10e6
    assert store.read_json(layout.REPORT_META(as_of=str(dates[-1])))["run_id"] == FROZEN_RUN
    assert again["report"].endswith(layout.REPORT(as_of=str(dates[-1])))


def test_bad_input_exits_2_naming_the_problem_and_writes_nothing(frozen, tmp_path, capsys):
    root = copy_of(frozen, tmp_path)
    store = Store(str(root))
    # a predicted symbol without prices
    store.delete(layout.PRICES(symbol="S03"))
    assert MONITOR.main(["--store", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no prices") and "S03" in err and "\n" not in err
    assert not store.list("monitoring")
    # no predictions yet
    for key in store.list("predictions"):
        store.delete(key)
    assert MONITOR.main(["--store", str(root)]) == 2
    assert "no predictions" in capsys.readouterr().err
    assert REPORT.main(["--store", str(root)]) == 2
    assert "no predictions" in capsys.readouterr().err
    assert not store.list("monitoring") and not store.list("reports")
    # no trained model at all
    assert MONITOR.main(["--store", str(tmp_path / "empty")]) == 2
    assert "python -m flows.train" in capsys.readouterr().err


def test_a_run_without_drift_reference_gets_a_note_not_a_crash(frozen, tmp_path):
    root, dates = copy_of(frozen, tmp_path), frozen[1]
    store = Store(str(root))
    store.delete(layout.RUN_DRIFT_REFERENCE(run_id=FROZEN_RUN))  # listed by the manifest
    result = monitor_pass(store, MonitorSettings(), dates[-1])
    assert result.drift is None and "is damaged" in result.summary["drift"]["note"]
    assert "drift_reference.json is missing" in result.summary["drift"]["note"]
    write_frozen_run(store)  # a run from before monitoring: none listed
    result = monitor_pass(store, MonitorSettings(), dates[-1])
    assert result.drift is None and "has no drift reference" in result.summary["drift"]["note"]
    assert "flows.train" in result.summary["drift"]["note"]


def test_prune_says_what_it_removes_and_keeps_the_latest_run(frozen, tmp_path, capsys):
    from flows.prune import COMMAND as PRUNE

    root = copy_of(frozen, tmp_path)
    store = Store(str(root))
    for as_of in ("2023-12-27", "2023-12-28", "2023-12-29"):
        store.write_bytes(layout.REPORT(as_of=as_of), b"<html></html>")
        store.write_json(layout.REPORT_META(as_of=as_of), {"run_id": FROZEN_RUN})
    old = layout.QUARANTINE(symbol="S01", run_id="20200101T000000Z-old00000")
    store.write_bytes(old, b"x")
    writer = subprocess.Popen(["true"])  # a writer killed mid-write: its pid is not running
    writer.wait()
    killed = root / f"raw/prices/symbol=ZZZ/.tmp-{writer.pid}-abc"
    killed.parent.mkdir(parents=True)
    killed.write_bytes(b"half")
    os.utime(killed, (0, 0))
    assert PRUNE.main(["--store", str(root), "--reports", "1", "--runs", "1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would remove 2 reports" in out and "would remove 1 quarantine files" in out
    assert "would remove 1 temporary files" in out and "empty folders" in out
    assert f"kept runs: {FROZEN_RUN}" in out and store.exists(old) and killed.exists()
    assert (
        PRUNE.main(["--store", str(root), "--reports", "1", "--runs", "1", "--wandb-unsynced"]) == 0
    )
    assert "removed 2 reports" in capsys.readouterr().out
    assert not store.exists(old) and not store.exists(layout.REPORT(as_of="2023-12-28"))
    assert not killed.parent.exists()
    assert store.exists(layout.REPORT(as_of="2023-12-29")) and store.exists(
        layout.RUN_METRICS(run_id=FROZEN_RUN)
    )


def test_the_report_on_s3_is_served_as_html_through_a_presigned_link(
    frozen, tmp_path, s3_bucket, s3_endpoint, monkeypatch
):
    import urllib.request

    import boto3

    from flows.report import report

    local = copy_of(frozen, tmp_path)
    save(Store(str(local)), monitor_pass(Store(str(local)), MonitorSettings(), frozen[1][-1]))
    url = f"s3://{s3_bucket}/store"
    remote = Store(url, endpoint_url=s3_endpoint)
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        remote.write_bytes(path.relative_to(local).as_posix(), path.read_bytes())
    monkeypatch.setenv("SMA_S3__ENDPOINT_URL", s3_endpoint)
    result: dict[str, Any] = report(store=url)  # pyright: ignore[reportAssignmentType]
    key = layout.REPORT(as_of=str(frozen[1][-1]))
    assert result["uri"] == remote.uri(key)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for k in (key, layout.REPORT_LATEST()):
        head = s3.head_object(Bucket=s3_bucket, Key=f"store/{k}")
        assert head["ContentType"].startswith("text/html")
    assert "Signature=" in result["link"]  # presigned
    with urllib.request.urlopen(result["link"], timeout=30) as answer:  # the link artifact's URL
        assert answer.read() == remote.read_bytes(key)
