"""The price-panel baselines added for backtests: ``garch`` (GJR-GARCH-t through the arch
package) and ``har`` (pooled HAR on range volatility); and the scorecard's coverage tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from core.modeling.distribution_scores import kupiec_pass_share_reference
from core.modeling.metrics import christoffersen
from core.modeling.models import load_model, make_model
from core.modeling.models.garch import (
    conditional_variance,
    fit_gjr,
    horizon_variance,
    t_quantiles,
)
from core.modeling.scorecard import every_hth_date, level_tests, row_scores
from tests.factories import GJR_TRUE, simulate_gjr

Q = [0.1, 0.5, 0.9]


def test_garch_recovers_known_gjr_parameters():
    fitted = fit_gjr(simulate_gjr(6000))
    assert abs(fitted["alpha"] - GJR_TRUE["alpha"]) < 0.03
    assert abs(fitted["gamma"] - GJR_TRUE["gamma"]) < 0.05
    assert abs(fitted["beta"] - GJR_TRUE["beta"]) < 0.05
    assert abs(fitted["nu"] - GJR_TRUE["nu"]) < 2.0
    persistence = fitted["alpha"] + fitted["gamma"] / 2 + fitted["beta"]
    assert abs(persistence - 0.94) < 0.03


def test_the_variance_filter_is_the_gjr_recursion():
    r = simulate_gjr(300)
    params = GJR_TRUE | {"clip": 1e9}
    var = conditional_variance(r, params)
    e = r * 100 - params["mu"]
    s2 = params["omega"] / (1 - params["alpha"] - params["gamma"] / 2 - params["beta"])
    expected = []
    for t in range(len(r)):
        s2 = (
            params["omega"]
            + (params["alpha"] + params["gamma"] * (e[t] < 0)) * e[t] ** 2
            + params["beta"] * s2
        )
        expected.append(s2)
    assert np.allclose(var, expected)
    # one day ahead the quantiles are sigma times unit-variance t quantiles, plus mu
    q = t_quantiles(horizon_variance(var[-1:], params, 1), params, Q, 1)[0]
    assert abs(q[1] - params["mu"] / 100) < 1e-12 and q[0] < q[1] < q[2]
    # h days: wider, by close to sqrt(h) when the variance sits at its long-run level
    q3 = t_quantiles(horizon_variance(np.array([s2]), params, 3), params, Q, 3)[0]
    q1 = t_quantiles(horizon_variance(np.array([s2]), params, 1), params, Q, 1)[0]
    assert 1.6 < (q3[2] - q3[0]) / (q1[2] - q1[0]) < 1.8


def panel(days: int = 900, symbols: int = 3) -> pl.DataFrame:
    """Bars with a calm first half and a volatile second half."""
    rng = np.random.default_rng(5)
    start = dt.date(2015, 1, 5)
    dates = [
        start + dt.timedelta(days=i)
        for i in range(days * 2)
        if (start + dt.timedelta(days=i)).weekday() < 5
    ][:days]
    frames = []
    for s in range(symbols):
        vol = np.where(np.arange(days) < days // 2, 0.01, 0.03)
        close = 40 * np.exp(np.cumsum(rng.normal(0, vol)))
        rng_ = np.abs(rng.normal(0, vol)) + vol / 2
        frames.append(
            pl.DataFrame(
                {
                    "symbol": f"S{s}",
                    "date": dates,
                    "close": close,
                    "high": close * np.exp(rng_),
                    "low": close * np.exp(-rng_),
                }
            )
        )
    bars = pl.concat(frames).sort("symbol", "date")
    return bars.with_columns(
        (pl.col("close").shift(-3) / pl.col("close")).log().over("symbol").alias("y")
    )


def test_price_models_follow_the_regime_round_trip_and_ignore_the_future(tmp_path: Path):
    bars = panel()
    dates = bars["date"].unique().sort()
    train = bars.filter(pl.col("date") < dates[600]).drop_nulls("y")
    val = bars.filter(pl.col("date").is_between(dates[603], dates[650])).drop_nulls("y")
    calm = bars.filter(pl.col("date").is_between(dates[300], dates[420]))
    wild = bars.filter(pl.col("date").is_between(dates[700], dates[800]))
    for name in ("garch", "har"):
        model = make_model(name, Q, ["symbol"], 3)
        model.attach_prices(bars)  # type: ignore[attr-defined]
        model.fit(train, train["y"].to_numpy(), val, val["y"].to_numpy())
        width = {
            k: np.mean(np.diff(model.predict(f)[:, [0, -1]], axis=1))
            for k, f in (("calm", calm), ("wild", wild))
        }
        assert width["wild"] > 2 * width["calm"], (name, width)

        model.save(tmp_path / name)
        assert not list((tmp_path / name).glob("*.pkl"))
        loaded = load_model(tmp_path / name)
        loaded.attach_prices(bars)  # type: ignore[attr-defined]
        assert np.allclose(loaded.predict(wild), model.predict(wild))

        # a forecast at date t reads prices up to t only
        later = bars.with_columns(
            pl.when(pl.col("date") > dates[750]).then(pl.col(c) * 2).otherwise(pl.col(c)).alias(c)
            for c in ("close", "high", "low")
        )
        loaded.attach_prices(later)  # type: ignore[attr-defined]
        upto = wild.filter(pl.col("date") <= dates[750])
        assert np.allclose(loaded.predict(upto), model.predict(upto))


def test_christoffersen_counts_transitions_within_each_symbol_only():
    hits = np.array([0, 1, 1, 0, 1, 1, 0, 0], dtype=bool)
    groups = np.array(["A"] * 4 + ["B"] * 4)
    pooled = christoffersen(hits, groups)
    within = christoffersen(np.array([0, 1, 1, 0, 1, 1, 0, 0], dtype=bool))
    # A: 0-1, 1-1, 1-0 and B: 1-1, 1-0, 0-0 (6 transitions); unsplit adds A's last -> B's first (0-1)
    assert pooled["lr"] != within["lr"]
    n01, n00, n11, n10 = 1, 1, 2, 2
    p0, p1, p = n01 / (n00 + n01), n11 / (n10 + n11), (n01 + n11) / 6
    ll = lambda k, n, q: k * np.log(q) + (n - k) * np.log(1 - q)  # noqa: E731
    expected = -2 * (ll(n01 + n11, 6, p) - ll(n01, n00 + n01, p0) - ll(n11, n10 + n11, p1))
    assert abs(pooled["lr"] - expected) < 1e-9


def test_per_symbol_tests_use_non_overlapping_dates():
    days = [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(30)]
    frame = pl.DataFrame(
        {
            "symbol": ["A"] * 30 + ["B"] * 30,
            "date": days * 2,
            "y": np.tile(np.linspace(-1, 1, 30), 2),
            "q_0.1": -0.8,
            "q_0.5": 0.0,
            "q_0.9": 0.8,
        }
    )
    assert every_hth_date(frame, 3)["date"].n_unique() == 10
    levels = [0.1, 0.5, 0.9]
    out = level_tests(
        frame, row_scores(frame, ["q_0.1", "q_0.5", "q_0.9"], levels, 0.2), levels, 3, 6
    )
    assert out["q_0.9"]["symbols"] == 2 and "non-overlapping" in out["per_symbol"]
    # each symbol is tested on its 10 non-overlapping dates: the reference is at n = 10
    assert out["q_0.1"]["reference_pass_share"] == kupiec_pass_share_reference(10, 0.1)
    assert out["q_0.1"]["exceedance"] == float((frame["y"] <= -0.8).mean())  # pyright: ignore[reportArgumentType]
