"""``fhs`` and ``evt`` recover a known tail: on a GJR-GARCH-t path, their standardized
quantiles match the true innovation's, and their forecasts are exceeded as often as the
levels say on later dates; the GPD fit recovers a known shape; saved models predict alike."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from core.modeling.models import load_model, make_model
from core.modeling.models.filtered import (
    Filtered,
    evt_quantiles,
    gpd_pwm,
    horizon_sums,
    standardized_residuals,
)
from tests.factories import GJR_TRUE, return_bars, simulate_gjr, weekdays

Q = [0.01, 0.025, 0.05, 0.1, 0.5, 0.9, 0.95, 0.975, 0.99]
DAYS, FIT = 5000, 3500
NU = GJR_TRUE["nu"]
TRUE_UNIT = stats.t.ppf(Q, NU) * np.sqrt((NU - 2) / NU)  # the innovation's quantiles


def panel(symbols: int = 1) -> pl.DataFrame:
    dates = weekdays(DAYS, start=dt.date(2000, 1, 3))
    frames = [return_bars(f"S{k}", dates, simulate_gjr(DAYS, seed=30 + k)) for k in range(symbols)]
    return pl.concat(frames).with_columns(
        (pl.col("close").shift(-1) / pl.col("close")).log().over("symbol").alias("y")
    )


def fitted(name: str, prices: pl.DataFrame, horizon: int = 1) -> tuple[Filtered, pl.DataFrame]:
    dates = prices["date"].unique().sort()
    train = prices.filter(pl.col("date") < dates[FIT - 300]).drop_nulls("y")
    val = prices.filter(pl.col("date").is_between(dates[FIT - 300], dates[FIT - 1]))
    model = make_model(name, Q, ["symbol"], horizon)
    assert isinstance(model, Filtered)
    model.attach_prices(prices)
    model.fit(train, train["y"].to_numpy(), val, val["y"].to_numpy())
    return model, prices.filter(pl.col("date") >= dates[FIT]).drop_nulls("y")


def test_gpd_pwm_recovers_a_known_shape_and_scale():
    for xi in (0.0, 0.2, 0.35):
        sample = np.asarray(stats.genpareto.rvs(xi, scale=0.7, size=40_000, random_state=1))
        scale, shape = gpd_pwm(sample)
        assert shape == pytest.approx(xi, abs=0.03)
        assert scale == pytest.approx(0.7, rel=0.04)


@pytest.mark.parametrize("name", ["fhs", "evt"])
def test_standardized_tails_match_the_true_innovation(name: str):
    model, _ = fitted(name, panel())
    unit = np.asarray(model.units["S0"])
    # sampling error of a 1 % quantile of ~3,500 t(6) draws is about 4 %; the fitted filter adds some
    assert np.allclose(unit, TRUE_UNIT, rtol=0.12, atol=0.05), np.c_[Q, unit, TRUE_UNIT]


@pytest.mark.parametrize("name", ["fhs", "evt"])
def test_later_outcomes_fall_below_each_level_as_often_as_it_says(name: str):
    model, later = fitted(name, panel(symbols=3))
    below = later["y"].to_numpy()[:, None] <= model.predict(later)
    n = len(later)
    for k, q in enumerate(Q):
        sd = np.sqrt(q * (1 - q) / n)
        assert abs(below[:, k].mean() - q) < 4 * sd + 0.004, (q, below[:, k].mean())


def test_evt_tails_are_gpd_beyond_ten_percent_and_empirical_inside():
    z = np.asarray(stats.t.rvs(4, size=20_000, random_state=2))
    got = evt_quantiles(z, Q)
    inside = [k for k, q in enumerate(Q) if 0.1 <= q <= 0.9]
    assert np.allclose(got[inside], np.quantile(z, np.asarray(Q)[inside]))
    truth = stats.t.ppf(Q, 4)
    assert np.allclose(got, truth, rtol=0.06, atol=0.03)  # t(4): a tail index of 0.25, a GPD tail


def test_h_day_residuals_are_the_overlapping_sums_over_root_h():
    z = np.arange(6.0)
    assert np.allclose(horizon_sums(z, 3), np.array([3.0, 6.0, 9.0, 12.0]) / np.sqrt(3))
    assert np.allclose(horizon_sums(z, 1), z)


def test_residuals_are_standardized_by_the_forecast_variance():
    returns = simulate_gjr(3000, seed=5)
    params = {**GJR_TRUE, "clip": 1e9, "var": 1.0}
    z = standardized_residuals(returns, params)
    # the true parameters filter the true innovations back: unit variance, no volatility clustering
    assert np.std(z) == pytest.approx(1.0, abs=0.05)
    assert abs(np.corrcoef(z[1:] ** 2, z[:-1] ** 2)[0, 1]) < 0.06


@pytest.mark.parametrize("name", ["fhs", "evt"])
def test_a_saved_model_predicts_the_same(name: str, tmp_path: Path):
    prices = panel()
    model, later = fitted(name, prices, horizon=3)
    model.save(tmp_path)
    loaded = load_model(tmp_path)
    assert isinstance(loaded, Filtered) and loaded.name == name
    loaded.attach_prices(prices)
    assert np.array_equal(loaded.predict(later), model.predict(later))
    assert (tmp_path / f"{name}.json").exists()
