"""Forecasts of a trained run: each symbol's latest feature row -> the deployed method's
quantiles at every level, calibrated per level, with the run's tracker state continued by the
outcomes that have become known since the run (or since the last prediction). Runs trained
before layout 2 (an interval calibration: CQR and ACI or the interval tracker) still
predict, through ``core.modeling.conformal``, and emit the same one set of levels."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from core import layout
from core.errors import InputError
from core.features.manifest import FeaturesManifest
from core.features.table import FeatureBuild
from core.modeling.aggregation import (
    AggregationState,
    aggregate,
    apply_pending,
    combine,
    describe_aggregation,
)
from core.modeling.calibration import LevelCalibration, TrackerState, emit, fold_known, track
from core.modeling.conformal import (
    CQR,
    ACIState,
    aci_intervals,
    aci_update,
    apply_cqr,
    describe_state,
    online_interval,
)
from core.modeling.models import load_model
from core.modeling.models.base import QuantileRegressor
from core.modeling.models.prices import uses_prices
from core.modeling.scorecard import qcols
from core.modeling.tail_risk import risk_columns
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
class EnsembleState:
    """The online state of a deployed aggregation: each member's tracker and the weights."""

    members: dict[str, TrackerState]
    aggregation: AggregationState

    def to_dict(self) -> dict[str, Any]:
        return {
            "members": {n: s.to_dict() for n, s in self.members.items()},
            "aggregation": self.aggregation.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnsembleState:
        members = {n: TrackerState.from_dict(s) for n, s in data["members"].items()}
        return cls(members, AggregationState.from_dict(data["aggregation"]))


@dataclass
class Forecast:
    """The latest forecasts, the continued online state and how many outcomes it took in."""

    table: pl.DataFrame  # symbol, date, target_date, horizon, method, q_*, run_id
    state: TrackerState | EnsembleState | ACIState
    outcomes_added: int
    clipped: int = 0  # emitted values the sanity bound clipped


def emitted_table(
    latest: pl.DataFrame,
    quantiles: list[float],
    values: np.ndarray,
    horizon: int,
    method: str,
    run_id: str,
) -> pl.DataFrame:
    """The prediction file's one forecast set: symbol, the forecast date, the target date (h
    weekdays later: exchange holidays are not counted out), horizon, method, one column per
    level, the VaR and ES of both tails at each risk level the grid holds
    (``core.modeling.tail_risk``), run id."""
    return latest.select(
        "symbol",
        "date",
        pl.col("date").dt.add_business_days(horizon).alias("target_date"),
        pl.lit(horizon, pl.Int32).alias("horizon"),
        pl.lit(method).alias("method"),
        *[pl.Series(c, values[:, j]) for j, c in enumerate(qcols(quantiles))],
        *[pl.Series(c, v) for c, v in risk_columns(values, quantiles).items()],
        pl.lit(run_id).alias("run_id"),
    )


def latest_rows(features: pl.DataFrame) -> pl.DataFrame:
    """Each symbol's newest feature row."""
    return features.filter(pl.col("date") == pl.col("date").max().over("symbol")).sort("symbol")


def unseen_outcomes(features: pl.DataFrame, seen: str) -> pl.DataFrame:
    """Rows whose outcome is known and dated after ``seen`` (the state's newest), in date order."""
    return features.filter(
        pl.col("y").is_not_null() & (pl.col("date").cast(pl.String) > seen)
    ).sort("date", "symbol")


def forecast(
    model: QuantileRegressor,
    cal: LevelCalibration,
    state: TrackerState,
    features: pl.DataFrame,
    run_id: str,
    method: str,
    bound: float,
) -> Forecast:
    """Fold the outcomes dated after the tracker's history into its state, then forecast
    every symbol's latest row at every level (pure: no I/O)."""
    known = unseen_outcomes(features, last_outcome(state))
    if known.height:
        track(cal, state, known["date"].cast(pl.String).to_numpy(), model.predict(known),
              known["y"].cast(pl.Float64).to_numpy(), bound, known["symbol"].to_numpy())  # fmt: skip
    fold_known(cal, state, len(state.history))
    latest = latest_rows(features)
    values, clipped = emit(cal, state, model.predict(latest), bound, latest["symbol"].to_list())
    table = emitted_table(latest, cal.levels, values, state.horizon, method, run_id)
    return Forecast(table, state, known.height, clipped)


def forecast_ensemble(
    models: dict[str, QuantileRegressor],
    cals: dict[str, LevelCalibration],
    state: EnsembleState,
    features: pl.DataFrame,
    run_id: str,
    method: str,
    bound: float,
) -> Forecast:
    """The deployed aggregation: each member's tracker continued as ``forecast`` does, the
    aggregation's weights continued by the same outcomes (their members' emitted quantiles),
    then today's rows combined (pure: no I/O)."""
    names = state.aggregation.experts
    lead = state.members[names[0]]
    known = unseen_outcomes(features, last_outcome(lead))
    dates = known["date"].cast(pl.String).to_numpy()
    y = known["y"].cast(pl.Float64).to_numpy()
    symbols = known["symbol"].to_numpy()
    latest = latest_rows(features)
    past, today, clipped = [], [], 0
    for name in names:
        tracker, cal = state.members[name], cals[name]
        if known.height:
            raw = models[name].predict(known)
            past.append(track(cal, tracker, dates, raw, y, bound, symbols)[0])
        fold_known(cal, tracker, len(tracker.history))
        values, n = emit(
            cal, tracker, models[name].predict(latest), bound, latest["symbol"].to_list()
        )
        today.append(values)
        clipped += n
    if known.height:
        aggregate(state.aggregation, dates, np.stack(past, axis=1), y)
    apply_pending(state.aggregation)  # every outcome of those dates is known by now
    values = combine(state.aggregation, np.stack(today, axis=1))
    table = emitted_table(latest, lead.levels, values, lead.horizon, method, run_id)
    return Forecast(table, state, known.height, clipped)


def forecast_legacy(
    model: QuantileRegressor,
    cqr: CQR,
    aci: ACIState,
    features: pl.DataFrame,
    run_id: str,
    method: str,
) -> Forecast:
    """A layout 1 run's forecast: its ACI or interval-tracker state continued as before; the
    emitted set takes the online-calibrated interval as its outer levels, so that its
    quantiles and its interval agree (pure: no I/O)."""
    known = unseen_outcomes(features, last_outcome(aci))
    if known.height:
        aci_intervals(
            cqr, aci, known["date"].to_numpy(), model.predict(known), known["y"].to_numpy()
        )
    aci_update(aci, len(aci.history))
    latest = latest_rows(features)
    raw = model.predict(latest)
    calibrated, _, _ = apply_cqr(cqr, raw)
    lo, hi, _ = online_interval(cqr, aci, raw)
    calibrated[:, 1:-1] = np.clip(calibrated[:, 1:-1], lo[:, None], hi[:, None])
    calibrated[:, 0], calibrated[:, -1] = lo, hi  # inside them: sorted, the ends are the interval
    values = np.sort(calibrated, axis=1)
    table = emitted_table(latest, cqr.quantiles, values, aci.horizon, method, run_id)
    return Forecast(table, aci, known.height)


def last_outcome(state: TrackerState | ACIState) -> str:
    """The date of the newest outcome a state has taken in ('' for none)."""
    return str(state.history[-1][0]) if state.history else ""


def starting_state(store: Store, own: TrackerState) -> TrackerState:
    """Where a newly deployed run's tracker starts, the rule the backtest follows too: it
    continues the newest state there is, the run's own (its held-out fit's, through the end
    of its test period) or a previous run's live one that has seen later outcomes, when
    that one tracks the same levels, horizon and method."""
    best = own
    for key in store.list(layout.TRACKER_STATE.prefix):
        if layout.TRACKER_STATE.match(key) is None:
            continue
        try:
            other = TrackerState.from_dict(store.read_json(key))
        except (DamagedFileError, TypeError):  # another run's damaged state: not a candidate
            continue
        same = (other.levels, other.horizon, other.method) == (own.levels, own.horizon, own.method)
        if same and last_outcome(other) > last_outcome(best):
            best = other
    steps = ("step", "decay", "symbol_step", "symbol_decay")  # the new run's own settings
    return TrackerState.from_dict(best.to_dict() | {k: getattr(own, k) for k in steps})


def predict_run(store: Store, run: str, bound: float) -> dict[str, Any]:
    """Load run ``run`` (``latest`` or an id; files checked against its manifest), forecast
    from the current feature build (opened and verified once), write
    ``predictions/<as_of>.parquet`` and the online state. ``bound``: the sanity bound on
    every emitted value (``model.quantile_bound``)."""
    with tempfile.TemporaryDirectory(prefix="sma-predict-") as tmp:
        manifest = fetch_run(store, run, Path(tmp))
        calibration = json.loads((Path(tmp) / layout.CALIBRATION_FILE).read_text())
        test_end = json.loads((Path(tmp) / layout.METRICS_FILE).read_text())["splits"]["test"][1]
        members: dict[str, dict[str, Any]] = calibration.get("members") or {
            manifest.model: {"folder": layout.MODEL_DIR}  # layout 1: one model
        }
        models = {name: load_model(Path(tmp) / m["folder"]) for name, m in members.items()}
    run_id = manifest.run_id
    build = FeatureBuild.open(store)
    uses_features = not all(uses_prices(m) for m in models.values())
    warnings = check_inputs(
        manifest, test_end, build.manifest, build.newest_prices(), uses_features
    )
    for model in models.values():
        if uses_prices(model):
            model.attach_prices(build.prices())  # type: ignore[attr-defined]
    features = build.scan().collect()
    method = calibration.get("method", manifest.model)
    if "members" not in calibration:  # a run trained before layout 2
        state_key = layout.ACI_STATE(run_id=run_id)
        aci = ACIState.from_dict(
            store.read_json(state_key) if store.exists(state_key) else calibration["aci"]
        )
        (model,) = models.values()
        cqr = CQR.from_dict(calibration["cqr"])
        result = forecast_legacy(model, cqr, aci, features, run_id, method)
        online = describe_state(aci)
    else:
        state_key = layout.TRACKER_STATE(run_id=run_id)
        saved = store.read_json(state_key) if store.exists(state_key) else None
        cals = {n: LevelCalibration.from_dict(m["levels"]) for n, m in members.items()}
        own = {n: TrackerState.from_dict(m["tracker"]) for n, m in members.items()}
        if "aggregation" in calibration:
            state = (
                EnsembleState.from_dict(saved)
                if saved
                else EnsembleState(own, AggregationState.from_dict(calibration["aggregation"]))
            )
            result = forecast_ensemble(models, cals, state, features, run_id, method, bound)
            online = describe_aggregation(state.aggregation)
        else:
            ((name, model),) = models.items()
            tracker = TrackerState.from_dict(saved) if saved else starting_state(store, own[name])
            result = forecast(model, cals[name], tracker, features, run_id, method, bound)
            online = (
                "tracker offsets "
                + ", ".join(f"{v:+.3f}" for v in tracker.offsets)
                + " (spread units)"
            )
    out = result.table
    as_of = out["date"].max()
    key = layout.PREDICTIONS(as_of=as_of)
    store.write_parquet(key, out)
    store.write_json(state_key, result.state.to_dict())
    levels = [float(c[2:]) for c in out.columns if c.startswith("q_")]
    return {
        "run_id": run_id,
        "method": method,
        "as_of": str(as_of),
        "key": store.uri(key),
        "symbols": out.height,
        "quantiles": levels,
        "online_state": online,
        "outcomes_added": result.outcomes_added,
        "clipped": result.clipped,
        "stale_symbols": out.filter(pl.col("date") < as_of)["symbol"].to_list(),
        "warnings": warnings,
        "table": out,
    }
