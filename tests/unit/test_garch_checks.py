"""``garch``'s per-symbol fit checks and its fallback to the ``ewma`` baseline: a fit that did
not converge, is integrated or explodes forecasts nothing; the symbol's rows (and, at
predict time, any row whose variance runs away) take the RiskMetrics quantiles instead."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import polars as pl

from core.modeling.models import garch as garch_module
from core.modeling.models import load_model, make_model
from core.modeling.models.garch import (
    MAX_PERSISTENCE,
    PARAMS,
    SCALE,
    Garch,
    check_fit,
    clip_level,
    fit_all,
    fit_checked,
    fit_many,
    horizon_variance,
    t_quantiles,
)
from tests.factories import GJR_TRUE, return_bars, simulate_gjr

Q = [0.05, 0.5, 0.95]
H = 3
DAYS = 700
REASON = re.compile(
    r"did not converge|non-finite parameters|nu .+ <= 2|persistence .+ >= 0\.999"
    r"|variance \d+x the sample's|returns without variance|fit failed \(\w+\)"
)


def flat_then_bursts(n: int, seed: int = 3) -> np.ndarray:
    """Zero returns (no trades) for hundreds of days, broken by two short violent bursts."""
    rng = np.random.default_rng(seed)
    r = np.zeros(n)
    r[400:430] = rng.normal(0, 0.05, 30)
    r[560:575] = rng.normal(0, 0.08, 15)
    return r


def business_days(n: int) -> list[dt.date]:
    start = dt.date(2016, 1, 4)
    days = (start + dt.timedelta(days=i) for i in range(2 * n))
    return [d for d in days if d.weekday() < 5][:n]


def panel() -> pl.DataFrame:
    """GOOD: a GJR-GARCH path; FLAT: flat stretches and bursts; SHORT: listed late."""
    dates = business_days(DAYS)
    frames = [
        return_bars("GOOD", dates, simulate_gjr(DAYS)),
        return_bars("FLAT", dates, flat_then_bursts(DAYS)),
        return_bars("SHORT", dates[530:], simulate_gjr(DAYS - 530, seed=4)),
    ]
    return (
        pl.concat(frames)
        .sort("symbol", "date")
        .with_columns((pl.col("close").shift(-H) / pl.col("close")).log().over("symbol").alias("y"))
    )


def fitted_garch(prices: pl.DataFrame) -> tuple[Garch, pl.DataFrame]:
    """A Garch fitted on dates [0, 600) + [603, 650], and the rows after to predict."""
    dates = prices["date"].unique().sort()
    train = prices.filter(pl.col("date") < dates[600]).drop_nulls("y")
    val = prices.filter(pl.col("date").is_between(dates[603], dates[650])).drop_nulls("y")
    model = make_model("garch", Q, ["symbol"], H)
    assert isinstance(model, Garch)
    model.attach_prices(prices)
    model.fit(train, train["y"].to_numpy(), val, val["y"].to_numpy())
    return model, prices.filter(pl.col("date") > dates[650])


def ewma_predictions(prices: pl.DataFrame, rows: pl.DataFrame) -> np.ndarray:
    """What the ``ewma`` baseline predicts for ``rows``."""
    ewma = make_model("ewma", Q, ["symbol"], H)
    ewma.attach_prices(prices)  # type: ignore[attr-defined]
    return ewma.predict(rows)


def test_failed_and_short_symbols_fall_back_to_ewma_and_are_named():
    prices = panel()
    model, later = fitted_garch(prices)
    assert set(model.params) == {"GOOD"}
    assert set(model.fallbacks) == {"FLAT", "SHORT"}
    assert REASON.fullmatch(model.fallbacks["FLAT"]), model.fallbacks
    dates = prices["date"].unique().sort()
    short = prices.filter((pl.col("symbol") == "SHORT") & (pl.col("date") <= dates[650]))
    assert model.fallbacks["SHORT"] == f"only {short.height - 1} returns"

    for symbol in ("FLAT", "SHORT"):
        rows = later.filter(pl.col("symbol") == symbol)
        got = model.predict(rows)
        assert np.all(np.isfinite(got)) and np.all(np.abs(got) < 1)
        assert np.allclose(got, ewma_predictions(prices, rows), rtol=0, atol=1e-9)
    assert model.predict_fallback_rows == 0


def test_a_well_behaved_symbol_passes_and_forecasts_with_garch():
    prices = panel()
    model, later = fitted_garch(prices)
    params = model.params["GOOD"]
    assert set(params) == set(PARAMS)
    assert params["alpha"] + params["gamma"] / 2 + params["beta"] < MAX_PERSISTENCE

    good = prices.filter(pl.col("symbol") == "GOOD").sort("date")
    returns = good.select((pl.col("close") / pl.col("close").shift(1)).log().fill_null(0.0))
    var = garch_module.conditional_variance(returns.to_series().to_numpy(), params)
    expected = pl.DataFrame(
        t_quantiles(horizon_variance(var, params, H), params, Q, H), schema=[f"q_{q}" for q in Q]
    )
    expected = pl.concat([good.select("symbol", "date"), expected], how="horizontal")
    rows = later.filter(pl.col("symbol") == "GOOD")
    got = model.predict(rows)
    want = rows.join(expected, on=["symbol", "date"], how="left").select(expected.columns[2:])
    assert np.allclose(got, want.to_numpy(), rtol=0, atol=1e-12)
    assert not np.allclose(got, ewma_predictions(prices, rows), atol=1e-4)


def test_rows_whose_variance_runs_away_take_the_ewma_quantiles_and_are_counted():
    prices = panel()
    model, later = fitted_garch(prices)
    rows = later.filter(pl.col("symbol") == "GOOD")
    model.params["GOOD"]["var"] *= 1e-6  # every h-day variance is now beyond the bound
    got = model.predict(rows)
    assert np.allclose(got, ewma_predictions(prices, rows), rtol=0, atol=1e-9)
    assert model.predict_fallback_rows == rows.height
    model.predict(rows.head(5))
    assert model.predict_fallback_rows == rows.height + 5


def handwritten(persistence: float, returns: np.ndarray) -> dict[str, float]:
    """GJR_TRUE's parameters with beta set for ``persistence``, as ``fit_gjr`` returns them."""
    clip = clip_level(returns)
    beta = persistence - GJR_TRUE["alpha"] - GJR_TRUE["gamma"] / 2
    sample = float(np.var(np.clip(returns * SCALE, -clip, clip)))
    return GJR_TRUE | {"beta": beta, "clip": clip, "var": sample, "flag": 0.0}


def test_check_fit_rejects_integrated_unconverged_and_fat_fits():
    returns = simulate_gjr(600)
    assert check_fit(handwritten(0.95, returns), returns) is None
    assert check_fit(handwritten(1.01, returns), returns) == "persistence 1.01 >= 0.999"
    assert check_fit(handwritten(0.95, returns) | {"flag": 4.0}, returns) == "did not converge"
    assert check_fit(handwritten(0.95, returns) | {"nu": 1.5}, returns) == "nu 1.5 <= 2"
    assert check_fit(handwritten(0.95, returns) | {"omega": np.nan}, returns) == (
        "non-finite parameters"
    )
    exploding = handwritten(0.95, returns) | {"var": handwritten(0.95, returns)["var"] / 100}
    assert re.fullmatch(r"variance \d+x the sample's", check_fit(exploding, returns) or "")


def test_a_fit_pinned_at_unit_persistence_is_rejected():
    """Flat for 300 days, then trading: arch's fit sits on alpha + gamma / 2 + beta = 1 and,
    unchecked, its 3-day 90% intervals reach many times the price (the backtest's failure)."""
    rng = np.random.default_rng(0)
    returns = np.concatenate([np.zeros(300), rng.normal(0, 0.02, 350)])
    result = fit_checked(returns)
    assert isinstance(result, str) and REASON.fullmatch(result), result


def test_fits_in_the_process_pool_come_back_checked():
    series = [simulate_gjr(300, seed=s) for s in range(15)] + [flat_then_bursts(DAYS)]
    try:
        pooled = fit_all(series)
    finally:
        if garch_module._POOL is not None:
            garch_module._POOL.shutdown()
            garch_module._POOL = None
    assert pooled == [fit_checked(r) for r in series]
    assert isinstance(pooled[-1], str) and REASON.fullmatch(pooled[-1])


def test_state_round_trips_with_fallbacks_and_old_files_load(tmp_path: Path):
    prices = panel()
    model, later = fitted_garch(prices)
    model.save(tmp_path / "garch")
    assert not list((tmp_path / "garch").glob("*.pkl"))
    loaded = load_model(tmp_path / "garch")
    assert isinstance(loaded, Garch)
    assert loaded.fallbacks == model.fallbacks and loaded.params == model.params
    assert loaded.predict_fallback_rows == 0
    loaded.attach_prices(prices)
    assert np.allclose(loaded.predict(later), model.predict(later), rtol=0, atol=1e-12)

    old = Garch(Q, H)  # saved before the checks: a median "fallback", params without "var"
    old.restore(
        {
            "symbols": {"GOOD": {k: v for k, v in model.params["GOOD"].items() if k != "var"}},
            "fallback": model.params["GOOD"],
        }
    )
    assert old.fallbacks == {}
    old.attach_prices(prices)
    got = old.predict(later)
    assert np.all(np.isfinite(got))
    flat = later["symbol"].to_numpy() == "FLAT"
    assert np.allclose(
        got[flat], ewma_predictions(prices, later.filter(pl.col("symbol") == "FLAT"))
    )


def test_a_series_is_fitted_once_per_process_and_shared():
    """``garch``, ``fhs`` and ``evt`` filter a window with one GJR fit per symbol."""
    series = [simulate_gjr(400, seed=s) for s in (21, 22)]
    first = fit_many(series)
    again = fit_many([series[1].copy(), series[0].copy()])
    assert again[0] is first[1] and again[1] is first[0]
