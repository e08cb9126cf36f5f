"""A store written by the last main of layout 1 (``0acb4e8``; tests/data/store_0acb4e8): its
run (CQR with the interval tracker), backtest, refit records, prediction file and monitoring
scores are read by every flow of today's code, and its run keeps predicting, now one
forecast set per file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from core import layout
from core.backtests import RefitRecord, backtest_ids, read_backtest, read_refit
from core.runs import read_run
from core.storage import Store
from flows.collect import collect
from flows.features import features
from flows.monitor import monitor
from flows.predict import predict
from flows.prune import prune
from flows.report import report
from tests.factories import SAMPLE, STORE_0ACB4E8

pytestmark = pytest.mark.usefixtures("prefect_server", "clean_env")
RUN = "20261206T185314Z-8175e88e"
BACKTEST = "20261206T185324Z-045a60ac"
SYMBOLS = ["AAPL", "JPM", "KO", "LNT", "XOM"]
LEVELS = [0.1, 0.25, 0.5, 0.75, 0.9]
OLD_STATE = f"predictions/aci/{RUN}.json"

OLD_STORE = STORE_0ACB4E8


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def one_set(frame: pl.DataFrame) -> None:
    """A layout 2 prediction file: one forecast set, its levels never crossing."""
    assert frame.columns == ["symbol", "date", "target_date", "horizon", "method",
                             *[f"q_{q}" for q in LEVELS], "run_id"]  # fmt: skip
    values = frame.select(f"q_{q}" for q in LEVELS).to_numpy()
    assert (values[:, 1:] >= values[:, :-1]).all() and (frame["method"] == "lightgbm").all()


def test_its_records_read_and_verify(old_store):
    store = Store(str(old_store))
    assert read_run(store, "latest").verify(store).run_id == RUN
    assert backtest_ids(store) == [BACKTEST]
    backtest = read_backtest(store, BACKTEST).verify(store)
    assert {"lo", "hi", "lo_cqr"} <= set(backtest.predictions(store).columns)
    records = [
        RefitRecord.read(store, key)
        for key in store.list("backtests/refits")
        if layout.BACKTEST_REFIT_CALIBRATION.match(key)
    ]
    assert len(records) == 2
    for record in records:  # a CQR calibration, no per-level ones: read as they are
        assert record.cqr["quantiles"] == LEVELS and record.levels == {}
        forecasts, calibrations = read_refit(store, record)
        assert forecasts.height == record.rows and calibrations == {}


def test_its_run_predicts_and_monitor_and_report_read_the_old_scores(old_store):
    before = files(old_store)
    summary: dict[str, Any] = predict(store=str(old_store))  # pyright: ignore[reportAssignmentType]
    assert summary["run_id"] == RUN and summary["as_of"] == "2017-12-29"
    # its interval tracker goes on where it was
    assert summary["online_state"].startswith("tracker q")
    after = files(old_store)
    changed = {k for k in before if before[k] != after[k]}
    assert changed <= {OLD_STATE, "predictions/2017-12-29.parquet", "store.json"}
    meta = Store(str(old_store)).read_json("store.json")
    assert meta["layout_version"] == layout.LAYOUT_VERSION and "upgraded_at" in meta
    out = Store(str(old_store)).read_parquet("predictions/2017-12-29.parquet")
    one_set(out)
    assert out.height == len(SYMBOLS)

    result: dict[str, Any] = monitor(
        store=str(old_store), as_of=dt.date(2018, 1, 31), backfill=True
    )  # pyright: ignore[reportAssignmentType]
    assert any(f"backtest {BACKTEST}" in note for note in result["notes"])
    assert result["method"] == "lightgbm" and result["interval"] == [0.1, 0.9]
    scores = Store(str(old_store)).read_parquet(layout.MONITOR_SCORES())
    # the old backtest's rows are scored on its own online interval, as it emitted it
    old = read_backtest(Store(str(old_store)), BACKTEST).predictions(Store(str(old_store)))
    joined = scores.filter(pl.col("source") == "backtest").join(
        old.select("symbol", "date", pl.col("lo").alias("own_lo")), on=["symbol", "date"]
    )
    assert joined.height > 1000 and (joined["lo"] == joined["own_lo"]).all()

    page: dict[str, Any] = report(store=str(old_store))  # pyright: ignore[reportAssignmentType]
    text = Path(page["uri"]).read_text()
    assert "predates per-level calibration" in text  # the old run's card is not faked


def test_old_and_new_prediction_files_are_scored_together(old_store, tmp_path):
    """Collect and features continue the old store; the old run forecasts a later day into a
    layout 2 file beside its layout 1 file; the monitor scores both, each on the interval
    it emitted (the old file's own `lo`, `hi`; the new one's two levels)."""
    tickers = tmp_path / "tickers.csv"
    tickers.write_text("Symbol\n" + "\n".join(SYMBOLS) + "\n")

    def collect_to(end: dt.date) -> None:
        collect(
            tickers=str(tickers),
            source="local",
            source_path=str(SAMPLE / "prices"),
            store=str(old_store),
            start=dt.date(2015, 6, 1),
            end=end,
        )

    collect_to(dt.date(2018, 1, 12))
    features(store=str(old_store), groups=["seed", "risk"])
    summary: dict[str, Any] = predict(store=str(old_store))  # pyright: ignore[reportAssignmentType]
    assert summary["run_id"] == RUN and summary["as_of"] == "2018-01-12"
    store = Store(str(old_store))
    old_file, new_file = (
        store.read_parquet(f"predictions/{d}.parquet") for d in ("2017-12-29", "2018-01-12")
    )
    one_set(new_file)
    assert not old_file["lo"].equals(old_file["q_0.1"])  # the layout 1 file as it was
    collect_to(dt.date(2018, 1, 31))
    monitor(store=str(old_store), as_of=dt.date(2018, 1, 31))
    live = store.read_parquet(layout.MONITOR_SCORES()).filter(pl.col("source") == "live")
    assert set(live["date"].cast(pl.String)) == {"2017-12-29", "2018-01-12"}
    assert live["lo"].null_count() == 0 and live["hit"].null_count() == 0
    for frame, lo in ((old_file, "lo"), (new_file, "q_0.1")):
        got = live.join(
            frame.select("symbol", "date", pl.col(lo).alias("emitted")), on=["symbol", "date"]
        )
        assert got.height == len(SYMBOLS) and (got["lo"] == got["emitted"]).all()


def test_train_backtest_and_prune_beside_the_old_run(old_store, monkeypatch):
    """A new run and backtest beside the old ones: predict switches to the new run (its own
    per-level tracker), the backfill takes the newest backtest, and prune, keeping one run,
    removes the old run with its layout 1 online state."""
    from flows.backtest import backtest
    from flows.train import train

    monkeypatch.setenv("SMA_BACKTEST__MIN_HISTORY_DAYS", "400")
    fast = {"num_boost_round": 40, "min_data_in_leaf": 50}
    run: dict[str, Any] = train(store=str(old_store), model="lightgbm", params=fast)  # pyright: ignore[reportAssignmentType]
    result: dict[str, Any] = backtest(
        store=str(old_store), model="lightgbm", refit_every=126, params=fast
    )  # pyright: ignore[reportAssignmentType]
    store = Store(str(old_store))
    assert backtest_ids(store) == [BACKTEST, result["backtest_id"]]
    summary: dict[str, Any] = predict(store=str(old_store))  # pyright: ignore[reportAssignmentType]
    assert summary["run_id"] == run["run_id"]
    assert store.exists(layout.TRACKER_STATE(run_id=run["run_id"])) and store.exists(OLD_STATE)
    watched: dict[str, Any] = monitor(
        store=str(old_store), as_of=dt.date(2018, 1, 31), backfill=True
    )  # pyright: ignore[reportAssignmentType]
    assert any(f"backtest {result['backtest_id']}" in note for note in watched["notes"])
    plan: dict[str, Any] = prune(store=str(old_store), runs=1, dry_run=True)  # pyright: ignore[reportAssignmentType]
    assert plan["kept_runs"] == [run["run_id"]]
    doomed = plan["keys"]["model runs"]
    assert OLD_STATE in doomed and f"models/{RUN}/manifest.json" in doomed
