"""Train, calibrate and evaluate one quantile model on the feature table (pure: no I/O).

Two fits per run: the held-out one (split by ``model.split_fractions``; its test period
gives the metrics, model card and test predictions), then the deployed one, refitted with
the same parameters the way a backtest refit at the newest date is
(``core.modeling.walkforward``): predict uses that one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from core.config import AGGREGATE, ModelSettings, RefitSettings
from core.modeling.aggregation import AggregationState
from core.modeling.calibration import LevelCalibration, TrackerState
from core.modeling.drift_reference import drift_reference
from core.modeling.metrics import crossing_rate
from core.modeling.models import baseline_names
from core.modeling.models.base import QuantileRegressor
from core.modeling.models.scaled import VolatilityScaled
from core.modeling.scorecard import scorecard, volatility_terciles, with_sectors
from core.modeling.selection import choose, reasons
from core.modeling.timeline import (
    SEGMENTS,
    Window,
    check_segments,
    deployment_window,
    model_holdout,
    segment_expr,
    trading_dates,
)
from core.modeling.walkforward import (
    Fitted,
    calibrate_in_order,
    complete_methods,
    fit_window,
    forecast_block,
    prefix,
    train_step,
    with_aggregation,
)


@dataclass
class TrainResult:
    model: QuantileRegressor  # the learner's held-out fit (metrics, test predictions)
    method: str  # the deployed method: a model's name, or the aggregation's
    calibrations: dict[str, LevelCalibration]  # held-out, of the deployed method(s)
    trackers: dict[str, TrackerState]  # at the end of the test period: where predict starts
    aggregation: AggregationState | None  # the aggregation's, when it is deployed
    splits: Window  # the held-out split: its fit segments and test period
    metrics: dict[str, Any]
    test_predictions: pl.DataFrame
    seconds: dict[str, float]
    deployed: Fitted  # the fit predict uses, refitted on the newest data
    window: Window
    drift: dict[str, Any] | None = None  # the features over the deployed fit's training rows

    @property
    def members(self) -> list[str]:
        """The methods predict runs: the deployed one, or every aggregated one."""
        return list(self.trackers)


def train_and_evaluate(
    table: pl.DataFrame,
    prices: pl.DataFrame,
    features: list[str],
    cfg: ModelSettings,
    horizon: int,
    windows: RefitSettings,
    sectors: dict[str, str] | None = None,
    deploy: str | None = None,
) -> TrainResult:
    """Split by date -> fit the model and every baseline -> each calibrated per level on the
    calibration rows -> each method's tracker through the test period, and their online
    aggregation -> the scorecard of every candidate, calibrated and raw, on the same test
    rows -> the deployed method (``deploy``, a candidate's name; None: chosen by evidence,
    ``core.modeling.selection``) -> its refit on the newest data."""
    labelled = table.filter(pl.col("y").is_not_null())
    splits = model_holdout(labelled["date"], horizon, cfg)
    with_segment = labelled.with_columns(segment_expr(splits))
    counts = {name: with_segment.filter(pl.col("segment") == name) for name in SEGMENTS}
    check_segments(counts, cfg.min_segment_dates, cfg.min_segment_rows, splits)  # all at once
    test = counts["test"].drop("segment").sort("date", "symbol")
    fitted = fit_window(table, prices, features, cfg, horizon, splits, baseline_names())
    seconds = {"fit": fitted.seconds}
    model = fitted.model

    raw_unsorted = model.predict_raw(test)
    raws = {prefix(n, cfg): m.predict(test) for n, m in fitted.baselines.items()}
    raws[""] = np.sort(raw_unsorted, axis=1)
    block = forecast_block(test, raws, splits.refit, cfg.quantiles)
    # each method's per-level calibration and tracker as a backtest refit gets them
    calibrated = calibrate_in_order([(block, fitted.calibrations)], cfg, horizon)
    methods = complete_methods(calibrated.frame, cfg, list(fitted.methods))
    frame, aggregation = with_aggregation(calibrated.frame, cfg, horizon, methods)
    methods[AGGREGATE] = AGGREGATE
    predictions = with_sectors(
        frame.drop("refit").with_columns(
            pl.Series("vol_tercile", volatility_terciles(test, prices))
        ),
        sectors,
    )
    card = scorecard(predictions, cfg.quantiles, cfg.alpha, horizon, methods)
    method = choose(card) if deploy is None else deploy
    members = list(aggregation.experts) if method == AGGREGATE else [method]
    metrics = {
        "model": cfg.name,
        "deployed": method,
        "deployed_because": reasons(card, method, deploy is None),
        "horizon": horizon,
        "target_coverage": cfg.target_coverage,
        "quantiles": cfg.quantiles,
        "interval": list(cfg.interval),
        "volatility_scaled": isinstance(model, VolatilityScaled),
        **card,
        "baselines_skipped": fitted.skipped,
        "fallbacks": fitted.fallbacks,
        "clipped": calibrated.clipped,
        "crossing_rate_before_repair": crossing_rate(raw_unsorted),
        "calibration": {
            name: {"rows": c.n_rows, "dates": c.n_dates, "effective_rows": c.n_effective}
            for name, c in fitted.calibrations.items()
        },
        "rows": fitted.rows | {"test": test.height},
        "splits": splits.splits_dict(),
    }
    window = deployment_window(trading_dates(table), horizon, cfg, windows)
    # the deployed method refitted on the newest data, as a backtest refit at the newest date
    # (a baseline deployed alone learns from the rows it was evaluated on, the learner's)
    alone = {"name": members[0], "params": {}, "train_every": train_step(cfg, horizon)}
    lead = cfg if members[0] == cfg.name else cfg.model_copy(update=alone)
    deployed = fit_window(table, prices, features, lead, horizon, window, tuple(members[1:]))
    seconds["deployed_fit"] = deployed.seconds
    metrics["deployed_fit"] = window.as_dict() | {"rows": deployed.rows, "members": members}
    result = TrainResult(
        model,
        method,
        {m: fitted.calibrations[m] for m in members},
        {m: calibrated.states[m] for m in members},
        aggregation if method == AGGREGATE else None,
        splits,
        metrics,
        predictions,
        seconds,
        deployed,
        window,
    )
    result.drift = drift_reference(
        table.filter(pl.col("date").is_between(*window.train)),
        features,
        deployed.model.feature_importance(),
        [str(d) for d in window.train],
    )
    return result
