"""The Python read API (``core.forecasts``) on the layout 2 store an earlier main wrote, a
second horizon added beside it, and the same store on S3 (moto)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from core import layout
from core.forecasts import (
    Forecasts,
    NoCalibrationError,
    NoForecastsError,
    ReadError,
    UnknownHorizonError,
    UnknownLevelError,
    UnknownSymbolError,
)
from core.storage import Store
from tests.factories import FORECAST_DATES, OLD_STORE_SYMBOLS, forecast_store

OLDER, NEWEST = FORECAST_DATES


@pytest.fixture()
def store(tmp_path):
    return forecast_store(tmp_path / "store")


def test_the_deployed_run_and_the_latest_forecasts_filtered(store):
    fc = Forecasts.open(str(store))
    run = fc.deployed_run()
    assert (run.horizon, run.model, run.method) == (3, "lightgbm", "lightgbm")
    assert run.run_id == "20261206T220131Z-e7c4d831" and run.quantiles[0] == 0.01
    assert fc.horizons() == [3, 1]
    both = fc.latest()
    assert both.height == 2 * len(OLD_STORE_SYMBOLS) and set(both["horizon"]) == {1, 3}
    assert (both["date"] == NEWEST).all()
    one = fc.latest(symbols=["AAPL", "KO"], horizons=[3], levels=[0.1, 0.9])
    assert one["symbol"].to_list() == ["AAPL", "KO"] and (one["horizon"] == 3).all()
    assert [c for c in one.columns if c.startswith("q_")] == ["q_0.1", "q_0.9"]
    # the version of what was read: the same until a file changes
    table, version = fc.latest_versioned()
    assert table.equals(both) and fc.latest_versioned()[1] == version
    h1 = Store(str(store)).for_horizon(1, 3)
    key = layout.PREDICTIONS(as_of=NEWEST.isoformat())
    h1.write_parquet(key, h1.read_parquet(key).with_columns(pl.col("q_0.5") + 1e-9))
    assert fc.latest_versioned()[1] != version


def test_a_symbols_history_is_joined_with_its_realized_outcomes(store):
    fc = Forecasts.open(str(store))
    history = fc.history("AAPL")
    assert history["date"].to_list() == [OLDER, NEWEST]
    prices = Store(str(store)).read_parquet(layout.PRICES(symbol="AAPL")).sort("date")
    closes = dict(zip(prices["date"], prices["close"], strict=True))
    dates = prices["date"].to_list()
    start = dates.index(OLDER)
    expected = float(pl.Series([closes[dates[start + 3]] / closes[dates[start]]]).log()[0])
    assert history["y"][0] == pytest.approx(expected, rel=1e-12)
    assert history["y"][1] is None  # its 3 days have not passed in the store's prices
    assert fc.history("AAPL", start=dt.date(2017, 12, 13))["date"].to_list() == [NEWEST]
    assert fc.history("AAPL", start=dt.date(2018, 1, 1)).is_empty()
    assert fc.history("AAPL", end=dt.date(2017, 12, 20))["date"].to_list() == [OLDER]


def test_the_monitors_rolling_figures_one_row_per_window(store):
    figures = Forecasts.open(str(store)).calibration()
    assert figures["window"].to_list() == [20, 60]
    assert figures["as_of"].to_list() == [dt.date(2018, 1, 31)] * 2
    assert {"coverage", "pinball_ratio_ewma", "exceedance_0.05"} <= set(figures.columns)
    assert figures.filter(pl.col("window") == 20)["coverage"].item() == pytest.approx(0.8)


def test_what_is_not_there_is_a_typed_error_naming_it(store, tmp_path):
    fc = Forecasts.open(str(store))
    with pytest.raises(UnknownSymbolError, match="no forecast for ZZZ"):
        fc.latest(symbols=["AAPL", "ZZZ"])
    with pytest.raises(UnknownSymbolError, match="no forecast for ZZZ"):
        fc.history("ZZZ")
    with pytest.raises(UnknownLevelError, match=r"no level 0\.3 in the forecasts"):
        fc.latest(levels=[0.3])
    with pytest.raises(UnknownHorizonError, match="holds no horizon 5 \\(it holds 3, 1\\)"):
        fc.deployed_run(5)
    with pytest.raises(NoCalibrationError, match=r"run `python -m flows\.monitor`"):
        fc.calibration(1)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NoForecastsError, match=r"run `python -m flows\.train` then"):
        Forecasts.open(str(empty)).latest()
    with pytest.raises(ReadError, match="no store at"):
        Forecasts.open(str(tmp_path / "missing"))
    assert all(
        isinstance(e(""), ReadError) and e("").exit_code == 2
        for e in (UnknownSymbolError, NoForecastsError)
    )


def test_the_same_calls_on_s3(store, s3_endpoint, s3_bucket):
    s3 = Store(f"s3://{s3_bucket}/prod", endpoint_url=s3_endpoint)
    for path in store.rglob("*"):
        if path.is_file():
            s3.write_bytes(path.relative_to(store).as_posix(), path.read_bytes())
    fc = Forecasts.open(s3.url, endpoint_url=s3_endpoint)
    local = Forecasts.open(str(store))
    assert fc.latest().equals(local.latest())
    assert fc.history("KO").equals(local.history("KO"))
    assert fc.deployed_run() == local.deployed_run()


def test_a_damaged_prediction_file_is_named_by_the_history_too(store):
    """A truncated prediction file: the symbol's history names it (exit 3's error)."""
    from core.storage import DamagedFileError

    key = layout.PREDICTIONS(as_of=NEWEST.isoformat())
    path = store / key
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DamagedFileError, match=key):
        Forecasts.open(str(store)).history("AAPL")
