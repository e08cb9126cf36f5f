import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from core.models import load_model, make_model
from core.models.baselines import Baseline
from core.runs import TamperedRunError, fetch_run, write_run
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


def test_tampered_run_file_is_refused(tmp_path):
    X, y = panel()
    model = make_model("lightgbm", Q, ["x1", "x2"], 3, FAST["lightgbm"])
    model.fit(X[:300], y[:300], X[300:], y[300:])
    folder = tmp_path / "run"
    model.save(folder / "model")
    store = Store(str(tmp_path / "store"))
    write_run(store, "r1", folder, {"model": "lightgbm"})
    assert store.read_json("models/latest.json") == {"run_id": "r1"}
    fetch_run(store, "latest", tmp_path / "ok")  # untouched: loads
    path = Path(store.path("models/r1/model/quantile_0.5.txt"))
    path.write_text(path.read_text().replace("leaf_value=", "leaf_value=1", 1))
    with pytest.raises(TamperedRunError, match=r"model/quantile_0\.5\.txt"):
        fetch_run(store, "r1", tmp_path / "bad")
