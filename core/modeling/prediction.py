"""Forecasts of a trained run: each symbol's latest feature row -> calibrated quantiles and
interval, with the run's Adaptive Conformal Inference state continued by the outcomes that
have become known since the run (or since the last prediction)."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from core import layout
from core.features.table import close_prices, load_features
from core.modeling.conformal import (
    CQR,
    ACIState,
    aci_intervals,
    aci_update,
    apply_cqr,
    interval,
    score_quantile,
)
from core.modeling.models import load_model
from core.modeling.models.base import QuantileRegressor
from core.modeling.models.baselines import Baseline
from core.modeling.training import qcols
from core.runs import fetch_run
from core.storage import Store


@dataclass
class Forecast:
    """The latest forecasts, the continued ACI state and how many outcomes it took in."""

    table: pl.DataFrame  # symbol, date, q_*, q_*_raw, lo, hi, lo_cqr, hi_cqr, aci_alpha, run_id
    aci: ACIState
    outcomes_added: int


def forecast(
    model: QuantileRegressor, cqr: CQR, aci: ACIState, features: pl.DataFrame, run_id: str
) -> Forecast:
    """Fold the outcomes dated after the ACI history into its state, then forecast every
    symbol's latest row with the CQR quantiles and the CQR+ACI interval (pure: no I/O)."""
    seen = aci.history[-1][0] if aci.history else "0000-00-00"
    known = features.filter(
        pl.col("y").is_not_null() & (pl.col("date").cast(pl.String) > seen)
    ).sort("date", "symbol")
    if known.height:
        aci_intervals(
            cqr, aci, known["date"].to_numpy(), model.predict(known), known["y"].to_numpy()
        )
    aci_update(aci, len(aci.history))

    latest = features.filter(pl.col("date") == pl.col("date").max().over("symbol")).sort("symbol")
    raw = model.predict(latest)
    calibrated, lo_cqr, hi_cqr = apply_cqr(cqr, raw)
    q = score_quantile(cqr, 1 - aci.alpha_t)
    lo, hi = interval(cqr, raw, q, q)
    cols = qcols(cqr.quantiles)
    table = latest.select("symbol", "date").with_columns(
        *[pl.Series(c, calibrated[:, j]) for j, c in enumerate(cols)],
        *[pl.Series(f"{c}_raw", raw[:, j]) for j, c in enumerate(cols)],
        pl.Series("lo", lo),
        pl.Series("hi", hi),
        pl.Series("lo_cqr", lo_cqr),
        pl.Series("hi_cqr", hi_cqr),
        pl.lit(aci.alpha_t).alias("aci_alpha"),
        pl.lit(run_id).alias("run_id"),
    )
    return Forecast(table, aci, known.height)


def predict_run(store: Store, run: str) -> dict[str, Any]:
    """Load run ``run`` (``latest`` or an id; files checked against its manifest), forecast
    from the current feature table, write ``predictions/<as_of>.parquet`` and the ACI state."""
    with tempfile.TemporaryDirectory(prefix="sma-predict-") as tmp:
        manifest = fetch_run(store, run, Path(tmp))
        model = load_model(Path(tmp) / layout.MODEL_DIR)
        calibration = json.loads((Path(tmp) / layout.CALIBRATION_FILE).read_text())
    run_id = manifest["run_id"]
    state_key = layout.ACI_STATE(run_id=run_id)
    aci = ACIState.from_dict(
        store.read_json(state_key) if store.exists(state_key) else calibration["aci"]
    )
    if isinstance(model, Baseline):
        model.attach_prices(close_prices(store))
    result = forecast(
        model, CQR.from_dict(calibration["cqr"]), aci, load_features(store).collect(), run_id
    )
    out = result.table
    as_of = out["date"].max()
    key = layout.PREDICTIONS(as_of=as_of)
    store.write_parquet(key, out)
    store.write_json(state_key, result.aci.to_dict())
    return {
        "run_id": run_id,
        "as_of": str(as_of),
        "key": store.uri(key),
        "symbols": out.height,
        "aci_alpha": result.aci.alpha_t,
        "outcomes_added": result.outcomes_added,
        "stale_symbols": out.filter(pl.col("date") < as_of)["symbol"].to_list(),
        "mean_width": float((out["hi"] - out["lo"]).to_numpy().mean()),
        "table": out,
    }
