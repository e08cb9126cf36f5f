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

from core.config import ModelSettings, RefitSettings
from core.modeling.calibration import LevelCalibration, TrackerState
from core.modeling.drift_reference import drift_reference
from core.modeling.metrics import crossing_rate
from core.modeling.models import baseline_names
from core.modeling.models.base import QuantileRegressor
from core.modeling.models.scaled import VolatilityScaled
from core.modeling.scorecard import scorecard, volatility_terciles, with_sectors
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
    AGGREGATE,
    Fitted,
    calibrate_in_order,
    complete_methods,
    fit_window,
    forecast_block,
    prefix,
    with_aggregation,
)


@dataclass
class TrainResult:
    model: QuantileRegressor  # the held-out fit (metrics, test predictions)
    calibration: LevelCalibration  # the held-out fit's, of the deployed method
    tracker: TrackerState  # at the end of the test period: where the deployed fit's starts
    splits: Window  # the held-out split: its fit segments and test period
    metrics: dict[str, Any]
    test_predictions: pl.DataFrame
    seconds: dict[str, float]
    deployed: Fitted | None = None  # the fit predict uses (None: the held-out one)
    window: Window | None = None
    drift: dict[str, Any] | None = None  # the features over the used fit's training rows


def train_and_evaluate(
    table: pl.DataFrame,
    prices: pl.DataFrame,
    features: list[str],
    cfg: ModelSettings,
    horizon: int,
    windows: RefitSettings | None = None,
    sectors: dict[str, str] | None = None,
) -> TrainResult:
    """Split by date -> fit the model and every baseline -> each calibrated per level on the
    calibration rows -> each method's tracker through the test period -> the scorecard of
    every method, calibrated and raw, on the same test rows; then, with ``windows``, the
    deployed refit on the newest data."""
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
    frame, _ = with_aggregation(calibrated.frame, cfg, horizon, methods)
    methods[AGGREGATE] = AGGREGATE
    predictions = with_sectors(
        frame.drop("refit").with_columns(
            pl.Series("vol_tercile", volatility_terciles(test, prices))
        ),
        sectors,
    )
    card = scorecard(predictions, cfg.quantiles, cfg.alpha, horizon, methods)
    deployed_name = cfg.name
    metrics = {
        "model": cfg.name,
        "deployed": deployed_name,
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
    result = TrainResult(
        model,
        fitted.calibrations[deployed_name],
        calibrated.states[deployed_name],
        splits,
        metrics,
        predictions,
        seconds,
    )
    if windows is not None:
        result.window = deployment_window(trading_dates(table), horizon, cfg, windows)
        result.deployed = fit_window(table, prices, features, cfg, horizon, result.window)
        seconds["deployed_fit"] = result.deployed.seconds
        metrics["deployed_fit"] = result.window.as_dict() | {"rows": result.deployed.rows}
    used, train = (
        (result.deployed.model, result.window.train)
        if result.deployed and result.window
        else (model, splits.train)
    )
    result.drift = drift_reference(
        table.filter(pl.col("date").is_between(*train)),
        features,
        used.feature_importance(),
        [str(d) for d in train],
    )
    return result
