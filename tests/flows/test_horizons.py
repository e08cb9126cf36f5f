"""Several horizons in one store (layout 3): each horizon's features, run and forecasts are
those of a store built for that horizon alone; the root keeps the first horizon's keys and
the others live under horizons/h=<h>/, all reading the same prices."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from core import layout
from core.config import StoreRef
from core.storage import Store
from flows.features import features
from flows.predict import predict
from flows.train import COMMAND as TRAIN
from flows.train import train

pytestmark = pytest.mark.usefixtures("prefect_server", "clean_env")
FAST = {"num_boost_round": 40, "min_data_in_leaf": 50, "num_threads": 1}


def forecasts(root: Path, horizon: int, first: int) -> pl.DataFrame:
    """The newest prediction file of ``horizon`` in the store at ``root``."""
    store = Store.open(StoreRef(url=str(root), horizon=horizon, first_horizon=first))
    files = [k for k in store.list(layout.PREDICTIONS.prefix) if layout.PREDICTIONS.match(k)]
    return store.read_parquet(files[-1]).drop("run_id")


def build(root: Path, horizon: int | None = None) -> dict[str, Any]:
    features(store=str(root), horizon=horizon)
    train(store=str(root), model="lightgbm", params=FAST, horizon=horizon)
    return predict(store=str(root), horizon=horizon)  # pyright: ignore[reportReturnType]


def test_a_store_of_two_horizons_forecasts_as_two_single_horizon_stores(
    collected, tmp_path, monkeypatch
):
    monkeypatch.setenv("SMA_TRACKING__WANDB_MODE", "disabled")
    stores = {name: tmp_path / name for name in ("both", "h3", "h1")}
    for target in stores.values():
        shutil.copytree(collected, target)

    monkeypatch.setenv("SMA_FEATURES__HORIZONS", "3,1")
    result = build(stores["both"])
    assert set(result["horizons"]) == {"3", "1"}
    monkeypatch.delenv("SMA_FEATURES__HORIZONS")
    build(stores["h3"])
    monkeypatch.setenv("SMA_FEATURES__HORIZON", "1")
    build(stores["h1"])

    both = stores["both"]
    assert (both / "models/latest.json").is_file()  # the first horizon keeps the root keys
    assert (both / "horizons/h=1/models/latest.json").is_file()
    assert (both / "horizons/h=1/features/manifest.json").is_file()
    assert not (both / "horizons/h=1/raw").exists()  # prices are shared
    for h, single, first in ((3, "h3", 3), (1, "h1", 1)):
        got, want = forecasts(both, h, 3), forecasts(stores[single], h, first)
        assert (got["horizon"] == h).all() and got.columns == want.columns
        assert got.select("symbol", "date", "target_date").equals(
            want.select("symbol", "date", "target_date")
        )
        numbers = [c for c in got.columns if c.startswith(("q_", "var_", "es_"))]
        assert np.allclose(
            got.select(numbers).to_numpy(), want.select(numbers).to_numpy(), 0, 1e-12
        )
    assert not forecasts(both, 1, 3)["q_0.5"].equals(forecasts(both, 3, 3)["q_0.5"])


def test_a_horizon_outside_the_configured_ones_is_refused(collected, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SMA_FEATURES__HORIZONS", "1,10")
    assert TRAIN.main(["--store", str(tmp_path / "s"), "--horizon", "3"]) == 2
    err = capsys.readouterr().err
    assert "features.horizon 3 is not one of features.horizons [1, 10]" in err
    monkeypatch.setenv("SMA_FEATURES__HORIZONS", "1,1")
    assert TRAIN.main(["--store", str(tmp_path / "s")]) == 2
    assert "repeat a horizon" in capsys.readouterr().err
