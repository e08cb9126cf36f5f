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
from core.modeling.conformal import CQR, ACIState
from core.modeling.drift_reference import drift_reference
from core.modeling.metrics import crossing_rate
from core.modeling.models import baseline_names
from core.modeling.models.base import QuantileRegressor
from core.modeling.models.scaled import VolatilityScaled
from core.modeling.scorecard import qcols, scorecard, volatility_terciles, with_sectors
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
    fit_window,
    forecast_block,
    with_baselines,
)


@dataclass
class TrainResult:
    model: QuantileRegressor  # the held-out fit (metrics, test predictions)
    cqr: CQR
    aci: ACIState  # at the end of the test period: where the deployed fit's ACI starts
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
    """Split by date -> fit -> CQR on calibration -> ACI through the test period -> metrics
    for the raw model, CQR, CQR+ACI and every baseline on the same test rows; then, with
    ``windows``, the deployed refit on the newest data."""
    labelled = table.filter(pl.col("y").is_not_null())
    splits = model_holdout(labelled["date"], horizon, cfg)
    with_segment = labelled.with_columns(segment_expr(splits))
    counts = {name: with_segment.filter(pl.col("segment") == name) for name in SEGMENTS}
    check_segments(counts, cfg.min_segment_dates, cfg.min_segment_rows, splits)  # all at once
    test = counts["test"].drop("segment").sort("date", "symbol")
    fitted = fit_window(table, prices, features, cfg, horizon, splits, baseline_names())
    seconds = {"fit": fitted.seconds}
    model, cqr = fitted.model, fitted.cqr

    raw_unsorted = model.predict_raw(test)
    block = forecast_block(test, np.sort(raw_unsorted, axis=1), splits.refit, cfg.quantiles)
    # CQR and the online calibration as a backtest refit gets them, from a fresh state
    calibrated, aci = calibrate_in_order([(block, cqr)], cfg, horizon)
    cols = qcols(cfg.quantiles)
    predictions = calibrated.select(
        "symbol",
        "date",
        "y",
        *cols,
        *[f"{c}_raw" for c in cols],
        pl.col(f"{cols[0]}_raw").alias("lo_raw"),
        pl.col(f"{cols[-1]}_raw").alias("hi_raw"),
        "lo_cqr",
        "hi_cqr",
        pl.col("lo").alias("lo_cqr_aci"),
        pl.col("hi").alias("hi_cqr_aci"),
        "aci_alpha",
        "aci_q",
    ).with_columns(pl.Series("vol_tercile", volatility_terciles(test, prices)))
    scored = with_baselines(
        with_sectors(predictions.rename({"lo_cqr_aci": "lo", "hi_cqr_aci": "hi"}), sectors),
        test,
        fitted.baselines,
        cfg.quantiles,
    )
    card = scorecard(scored, cfg.quantiles, cfg.alpha, horizon, list(fitted.baselines))
    card["baselines_skipped"] = fitted.skipped
    card["test"]["raw"]["crossing_rate_before_repair"] = crossing_rate(raw_unsorted)
    metrics = {
        "model": cfg.name,
        "horizon": horizon,
        "target_coverage": cfg.target_coverage,
        "quantiles": cfg.quantiles,
        "volatility_scaled": isinstance(model, VolatilityScaled),
        **card,
        "rows": fitted.rows | {"test": test.height},
        "splits": splits.splits_dict(),
    }
    result = TrainResult(model, cqr, aci, splits, metrics, predictions, seconds)
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
