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
from core.errors import InputError
from core.features.manifest import FeaturesManifest
from core.features.table import FeatureBuild
from core.modeling.conformal import (
    CQR,
    ACIState,
    aci_intervals,
    aci_update,
    apply_cqr,
    describe_state,
    online_interval,
    state_level,
)
from core.modeling.models import load_model
from core.modeling.models.base import QuantileRegressor
from core.modeling.models.prices import uses_prices
from core.modeling.scorecard import qcols
from core.runs import RunManifest, fetch_run
from core.storage import DamagedFileError, Store


class FeatureMismatchError(InputError):
    """The feature table does not match what the model was trained on."""


REBUILD = "rebuild the features for this run (python -m flows.features) or train on these (python -m flows.train)"


def check_inputs(
    run: RunManifest,
    test_end: str | None,
    features: FeaturesManifest,
    newest_prices: str | None,
    uses_features: bool,
) -> list[str]:
    """Refuse a feature table the run cannot use (another horizon, or other features for a
    model that reads them: an error naming the difference); return warnings for one that is
    stale (older than the run's test period, or built before the newest stored prices)."""
    problems = []
    if run.horizon != features.horizon:
        problems.append(f"horizon {features.horizon} in the features, {run.horizon} in the model")
    have, want = set(features.model_inputs), set(run.features)
    if uses_features and have != want:
        missing, extra = sorted(want - have), sorted(have - want)
        problems.append(
            f"features differ (groups {', '.join(features.groups)}; "
            f"missing {missing[:8]}{' ...' if len(missing) > 8 else ''}, "
            f"not in the model {extra[:8]}{' ...' if len(extra) > 8 else ''})"
        )
    if problems:
        raise FeatureMismatchError(f"run {run.run_id} cannot use the feature table {features.version}: "
                                   + "; ".join(problems) + f": {REBUILD}")  # fmt: skip
    warnings = []
    newest = features.built_to
    if test_end and newest < test_end:
        warnings.append(
            f"the features end on {newest}, before the end of run {run.run_id}'s test period "
            f"({test_end}): these forecasts are for dates the model has seen"
        )
    if newest_prices and newest < newest_prices:
        warnings.append(
            f"the features end on {newest} but the stored prices go to {newest_prices}: "
            "run python -m flows.features for today's forecasts"
        )
    return warnings


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
    lo, hi, q = online_interval(cqr, aci, raw)
    cols = qcols(cqr.quantiles)
    table = latest.select("symbol", "date").with_columns(
        *[pl.Series(c, calibrated[:, j]) for j, c in enumerate(cols)],
        *[pl.Series(f"{c}_raw", raw[:, j]) for j, c in enumerate(cols)],
        pl.Series("lo", lo),
        pl.Series("hi", hi),
        pl.Series("lo_cqr", lo_cqr),
        pl.Series("hi_cqr", hi_cqr),
        pl.lit(state_level(aci), pl.Float64).alias("aci_alpha"),
        pl.lit(q).alias("aci_q"),
        pl.lit(run_id).alias("run_id"),
    )
    return Forecast(table, aci, known.height)


def last_outcome(state: ACIState) -> str:
    """The date of the newest outcome a state has taken in ('' for none)."""
    return str(state.history[-1][0]) if state.history else ""


def starting_state(store: Store, own: ACIState) -> ACIState:
    """Where a newly deployed run's ACI starts, the rule the backtest follows too: it
    continues the newest state there is, the run's own (its held-out fit's, through the end
    of its test period) or a previous run's live one that has seen later outcomes, when
    that one targets the same coverage and horizon."""
    best = own
    for key in store.list(layout.ACI_STATE.prefix):
        if layout.ACI_STATE.match(key) is None:
            continue
        try:
            other = ACIState.from_dict(store.read_json(key))
        except (DamagedFileError, TypeError):  # another run's damaged state: not a candidate
            continue
        same = (other.target_alpha, other.horizon, other.method) == (
            own.target_alpha,
            own.horizon,
            own.method,
        )
        if same and last_outcome(other) > last_outcome(best):
            best = other
    return ACIState.from_dict(best.to_dict() | {"gamma": own.gamma})


def predict_run(store: Store, run: str) -> dict[str, Any]:
    """Load run ``run`` (``latest`` or an id; files checked against its manifest), forecast
    from the current feature build (opened and verified once), write
    ``predictions/<as_of>.parquet`` and the ACI state."""
    with tempfile.TemporaryDirectory(prefix="sma-predict-") as tmp:
        manifest = fetch_run(store, run, Path(tmp))
        model = load_model(Path(tmp) / layout.MODEL_DIR)
        calibration = json.loads((Path(tmp) / layout.CALIBRATION_FILE).read_text())
        test_end = json.loads((Path(tmp) / layout.METRICS_FILE).read_text())["splits"]["test"][1]
    run_id = manifest.run_id
    build = FeatureBuild.open(store)
    uses_features = not uses_prices(model)
    warnings = check_inputs(
        manifest, test_end, build.manifest, build.newest_prices(), uses_features
    )
    state_key = layout.ACI_STATE(run_id=run_id)
    aci = (
        ACIState.from_dict(store.read_json(state_key))
        if store.exists(state_key)
        else starting_state(store, ACIState.from_dict(calibration["aci"]))
    )
    if uses_prices(model):
        model.attach_prices(build.prices())  # type: ignore[attr-defined]
    cqr = CQR.from_dict(calibration["cqr"])
    result = forecast(model, cqr, aci, build.scan().collect(), run_id)
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
        "quantiles": cqr.quantiles,
        "aci_alpha": state_level(result.aci),
        "online_state": describe_state(result.aci),
        "outcomes_added": result.outcomes_added,
        "stale_symbols": out.filter(pl.col("date") < as_of)["symbol"].to_list(),
        "mean_width": float((out["hi"] - out["lo"]).to_numpy().mean()),
        "warnings": warnings,
        "table": out,
    }
