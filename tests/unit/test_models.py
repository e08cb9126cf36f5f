import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from core.features.risk import RETURN_FEATURES as LINEAR_INPUTS
from core.features.risk import SCALE_FEATURES as LOG_INPUTS
from core.modeling.distribution_scores import pinball_rows
from core.modeling.models import MODELS, load_model, make_model
from core.modeling.models.baselines import Baseline
from core.modeling.models.scaled import VolatilityScaled, use_scaling
from core.runs import RunManifest, TamperedRunError, fetch_run, write_run
from core.storage import Store

Q = [0.1, 0.5, 0.9]


def panel(n: int = 400, seed: int = 0) -> tuple[pl.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.uniform(size=n)
    y = 0.01 * x1 + rng.normal(0, 0.01 * (1 + x2))
    days = pl.date_range(
        dt.date(2020, 1, 1), dt.date(2020, 1, 1) + dt.timedelta(days=n // 2 - 1), eager=True
    )
    frame = pl.DataFrame(
        {"symbol": ["A", "B"] * (n // 2), "date": days.to_list() * 2, "x1": x1, "x2": x2}
    )
    return frame, y


FAST = {"catboost": {"iterations": 60}, "lightgbm": {"num_boost_round": 60, "min_data_in_leaf": 20}}


@pytest.mark.parametrize("name", ["catboost", "lightgbm"])
def test_fit_predict_sorted_and_native_round_trip(name, tmp_path):
    X, y = panel()
    model = make_model(name, Q, ["symbol", "x1", "x2"], 3, FAST[name])
    model.fit(X[:300], y[:300], X[300:], y[300:])
    preds = model.predict(X)
    assert preds.shape == (len(X), 3) and (np.diff(preds, axis=1) >= 0).all()
    assert np.corrcoef(preds[:, 1], X["x1"].to_numpy())[0, 1] > 0.5  # it learned the signal
    model.save(tmp_path / "m")
    files = {p.name for p in (tmp_path / "m").iterdir()}
    assert "params.json" in files
    assert files - {"params.json"} == (
        {"model.cbm"} if name == "catboost" else {f"quantile_{q}.txt" for q in Q}
    )
    again = load_model(tmp_path / "m")
    np.testing.assert_array_equal(again.predict(X), preds)
    assert set(model.feature_importance()) == {"symbol", "x1", "x2"}


def test_baselines_use_only_the_past():
    days = pl.date_range(dt.date(2020, 1, 1), dt.date(2021, 12, 31), eager=True)
    rng = np.random.default_rng(1)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(days))))
    prices = pl.DataFrame({"symbol": "A", "date": days, "close": close})
    rows = prices.select("symbol", "date").tail(50)
    for name in ("historical", "ewma"):
        base = Baseline(name, Q, 3)
        base.attach_prices(prices)
        before = base.predict(rows)
        shocked = prices.with_columns(
            pl.when(pl.col("date") > days[-25]).then(pl.col("close") * 3).otherwise(pl.col("close"))
        )
        base.attach_prices(shocked)
        after = base.predict(rows)
        np.testing.assert_array_equal(
            before[:25], after[:25]
        )  # rows up to the shock date are unchanged
        assert (np.diff(before, axis=1) > 0).all()


def test_historical_reads_only_its_window_yet_equals_the_whole_panel():
    """``historical`` computes over the rows' dates plus what its 252-row window reads: the
    quantiles equal those of the whole panel, also for a symbol whose history starts late and
    one halted for 200 trading days (a year and more of calendar)."""
    days = pl.date_range(dt.date(2012, 1, 2), dt.date(2016, 12, 30), eager=True).to_list()
    days = [d for d in days if d.weekday() < 5 and (d.month, d.day) not in {(1, 1), (12, 25)}]
    rng = np.random.default_rng(2)
    frames = []
    late = len(days) - 300
    for symbol, kept in (
        ("A", days),
        ("B", days[late:]),
        ("C", days[: late - 150] + days[late + 50 :]),  # halted for 200 trading days
    ):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, len(kept))))
        frames.append(pl.DataFrame({"symbol": symbol, "date": kept, "close": close}))
    prices = pl.concat(frames)
    rows = prices.filter(pl.col("date") >= dt.date(2016, 6, 1)).select("symbol", "date")
    base = Baseline("historical", Q, 3)
    base.attach_prices(prices)
    got = base.predict_raw(rows)
    from core.modeling.models.baselines import historical_quantiles

    whole = rows.join(
        historical_quantiles(prices, Q, 3), on=["symbol", "date"], how="left", maintain_order="left"
    )
    np.testing.assert_array_equal(got, whole.select(pl.col("^q_.*$").fill_null(0.0)).to_numpy())
    assert np.isfinite(got).all() and (got[:, 0] < got[:, 2]).all()


def run_record(run_id: str) -> RunManifest:
    return RunManifest(
        run_id=run_id,
        created_at="2026-12-06T00:00:00+00:00",
        model="lightgbm",
        settings={},
        features=["x1", "x2"],
        horizon=3,
        data_fingerprint={"features_version": "v", "inputs": "i"},  # pyright: ignore[reportArgumentType]
        seconds={"fit": 1.0},
    )


def test_tampered_run_file_is_refused(tmp_path):
    X, y = panel()
    model = make_model("lightgbm", Q, ["x1", "x2"], 3, FAST["lightgbm"])
    model.fit(X[:300], y[:300], X[300:], y[300:])
    folder = tmp_path / "run"
    model.save(folder / "model")
    store = Store(str(tmp_path / "store"))
    write_run(store, folder, run_record("r1"))
    assert store.read_json("models/latest.json") == {"run_id": "r1"}
    fetch_run(store, "latest", tmp_path / "ok")  # untouched: loads
    path = Path(store.path("models/r1/model/quantile_0.5.txt"))
    path.write_text(path.read_text().replace("leaf_value=", "leaf_value=1", 1))
    with pytest.raises(TamperedRunError, match=r"model/quantile_0\.5\.txt"):
        fetch_run(store, "r1", tmp_path / "bad")


def risk_panel(n: int = 6000, seed: int = 3) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Rows whose return scale is a latent volatility that the risk columns measure noisily."""
    rng = np.random.default_rng(seed)
    vol = np.exp(rng.normal(np.log(0.015), 0.5, n))
    cols = {c: vol * np.exp(rng.normal(0, 0.3, n)) for c in LOG_INPUTS}
    cols |= {c: rng.normal(0, 0.02, n) for c in LINEAR_INPUTS}
    y = vol * np.sqrt(3) * rng.standard_t(5, n) / np.sqrt(5 / 3)
    days = [dt.date(2020, 1, 1) + dt.timedelta(days=i // 2) for i in range(n)]
    frame = pl.DataFrame({"symbol": ["A", "B"] * (n // 2), "date": days, **cols})
    return frame, y, vol


@pytest.mark.parametrize("name", ["catboost", "lightgbm"])
def test_volatility_scaled_model_tracks_the_scale_and_round_trips(name, tmp_path):
    X, y, vol = risk_panel()
    features = ["symbol", *LOG_INPUTS, *LINEAR_INPUTS]
    model = make_model(name, Q, features, 3, FAST[name], scaled=True)
    assert isinstance(model, VolatilityScaled) and model.features == features
    model.fit(X[:4000], y[:4000], X[4000:5000], y[4000:5000])
    test = slice(5000, None)
    preds = model.predict(X[test])
    assert (np.diff(preds, axis=1) >= 0).all()
    width = preds[:, -1] - preds[:, 0]
    assert np.corrcoef(np.log(width), np.log(vol[test]))[0, 1] > 0.9  # intervals scale with vol
    inside = (y[test] >= preds[:, 0]) & (y[test] <= preds[:, -1])
    assert abs(inside.mean() - 0.8) < 0.06
    plain = make_model(name, Q, features, 3, FAST[name])
    plain.fit(X[:4000], y[:4000], X[4000:5000], y[4000:5000])
    loss = pinball_rows(y[test], preds, Q).mean()
    assert loss < 0.99 * pinball_rows(y[test], plain.predict(X[test]), Q).mean()

    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "scale.json").exists()
    again = load_model(tmp_path / "m")
    assert isinstance(again, VolatilityScaled)
    np.testing.assert_array_equal(again.predict(X[test]), preds)
    assert "log_scale" in model.feature_importance()


def test_volatility_scaling_needs_the_risk_group():
    X, y, _ = risk_panel(200)
    gbm, baseline = MODELS["lightgbm"].inner_defaults, MODELS["ewma"].inner_defaults
    scale_inputs = [*LOG_INPUTS, *LINEAR_INPUTS]
    assert use_scaling("auto", gbm, ["symbol", *scale_inputs])
    assert not use_scaling("auto", gbm, ["symbol", "x1"])
    assert not use_scaling("on", baseline, ["symbol"]) and not use_scaling("off", gbm, scale_inputs)
    with pytest.raises(ValueError, match=r"'risk' feature group.*vol_ewm"):
        use_scaling("on", gbm, ["symbol", "x1"])
    # A renamed risk feature is an error, never a silent switch to unscaled targets.
    with pytest.raises(ValueError, match=r"missing features: \['vol_pk5'\]"):
        use_scaling("auto", gbm, [c for c in scale_inputs if c != "vol_pk5"])
    model = make_model("lightgbm", Q, ["symbol"], 3, FAST["lightgbm"], scaled=True)
    with pytest.raises(ValueError, match="missing columns"):
        model.fit(X.drop("vol_pk5"), y, X, y)
