"""Train, calibrate and evaluate one quantile model on the feature table (pure: no I/O)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from core.config import ModelSettings
from core.modeling.conformal import CQR, ACIState, aci_intervals, apply_cqr, fit_cqr
from core.modeling.metrics import (
    coverage_by,
    crossing_rate,
    interval_metrics,
    pinball,
    quantile_coverage,
    rank_ic,
)
from core.modeling.models import MODELS, make_model
from core.modeling.models.base import QuantileRegressor
from core.modeling.models.baselines import Baseline
from core.modeling.models.scaled import use_scaling
from core.modeling.splits import Splits, check_segments, make_splits, segment_expr

METHODS = ("raw", "cqr", "cqr_aci")
BASELINE_NAMES = ("historical", "ewma")


@dataclass
class TrainResult:
    model: QuantileRegressor
    cqr: CQR
    aci: ACIState
    splits: Splits
    metrics: dict[str, Any]
    test_predictions: pl.DataFrame
    seconds: dict[str, float]


def qcols(quantiles: list[float]) -> list[str]:
    return [f"q_{q}" for q in quantiles]


def evaluate(
    y: np.ndarray,
    preds: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    cfg: ModelSettings,
    dates: np.ndarray,
    vol_tercile: np.ndarray,
    months: np.ndarray,
) -> dict[str, Any]:
    """The metric set of one method on the test rows."""
    out: dict[str, Any] = pinball(y, preds, cfg.quantiles) | quantile_coverage(
        y, preds, cfg.quantiles
    )
    out |= interval_metrics(y, lo, hi, cfg.alpha)
    out |= rank_ic(dates, y, preds[:, len(cfg.quantiles) // 2])
    out["coverage_by_vol_tercile"] = coverage_by(y, lo, hi, vol_tercile)
    out["coverage_by_month"] = coverage_by(y, lo, hi, months)
    return out


def volatility_terciles(test: pl.DataFrame, prices: pl.DataFrame) -> np.ndarray:
    """Tercile (1 low .. 3 high) of each test row's trailing 20-day volatility, cut over the test set."""
    vol = (
        prices.sort("symbol", "date")
        .with_columns((pl.col("close") / pl.col("close").shift(1)).log().over("symbol").alias("_r"))
        .with_columns(pl.col("_r").rolling_std(20).over("symbol").alias("_vol"))
        .select("symbol", "date", "_vol")
    )
    v = test.select("symbol", "date").join(
        vol, on=["symbol", "date"], how="left", maintain_order="left"
    )["_vol"]
    v = v.fill_null(v.median()).to_numpy()
    cuts = np.quantile(v, [1 / 3, 2 / 3])
    return 1 + (v > cuts[0]).astype(int) + (v > cuts[1]).astype(int)


def train_and_evaluate(
    table: pl.DataFrame, prices: pl.DataFrame, features: list[str], cfg: ModelSettings, horizon: int
) -> TrainResult:
    """Split by date -> fit -> CQR on calibration -> ACI through the test period -> metrics
    for the raw model, CQR, CQR+ACI and both baselines on the same test rows."""
    labelled = table.filter(pl.col("y").is_not_null())
    splits = make_splits(labelled["date"], horizon, cfg.lookback_days, cfg.split_fractions)
    labelled = labelled.with_columns(segment_expr(splits))
    seg = {
        name: labelled.filter(pl.col("segment") == name).sort("date", "symbol")
        for name in ("train", "val", "cal", "test")
    }
    check_segments(seg, cfg.min_segment_dates, cfg.min_segment_rows, splits)
    seconds: dict[str, float] = {}

    spec = MODELS[cfg.name]
    scaled = use_scaling(cfg.volatility_scaling, spec.inner_defaults, features)
    model = make_model(cfg.name, cfg.quantiles, features, horizon, cfg.params, scaled)
    if isinstance(model, Baseline):
        model.attach_prices(prices)
    started = time.perf_counter()
    model.fit(seg["train"], seg["train"]["y"].to_numpy(), seg["val"], seg["val"]["y"].to_numpy())
    seconds["fit"] = time.perf_counter() - started

    cal, test = seg["cal"], seg["test"]
    cqr = fit_cqr(
        model.predict(cal),
        cal["y"].to_numpy(),
        cfg.quantiles,
        cfg.alpha,
        cfg.cqr_mode,
        cfg.cqr_normalized,
    )
    raw_unsorted = model.predict_raw(test)
    raw = np.sort(raw_unsorted, axis=1)
    y = test["y"].to_numpy()
    dates = test["date"].to_numpy()
    calibrated, lo_cqr, hi_cqr = apply_cqr(cqr, raw)
    aci = ACIState(target_alpha=cfg.alpha, gamma=cfg.aci_gamma, horizon=horizon, alpha_t=cfg.alpha)
    lo_aci, hi_aci, alpha_used = aci_intervals(cqr, aci, dates, raw, y)

    terciles = volatility_terciles(test, prices)
    months = test["date"].dt.strftime("%Y-%m").to_numpy()
    ctx = {"dates": dates, "vol_tercile": terciles, "months": months}
    methods = {
        "raw": evaluate(y, raw, raw[:, 0], raw[:, -1], cfg, **ctx),
        "cqr": evaluate(y, calibrated, lo_cqr, hi_cqr, cfg, **ctx),
        "cqr_aci": evaluate(y, calibrated, lo_aci, hi_aci, cfg, **ctx),
    }
    methods["raw"]["crossing_rate_before_repair"] = crossing_rate(raw_unsorted)
    baselines = {}
    for name in BASELINE_NAMES:
        base = Baseline(name, cfg.quantiles, horizon)
        base.attach_prices(prices)
        bp = base.predict(test)
        baselines[name] = evaluate(y, bp, bp[:, 0], bp[:, -1], cfg, **ctx)

    cols = qcols(cfg.quantiles)
    predictions = test.select("symbol", "date", "y").with_columns(
        *[pl.Series(c, raw[:, j]) for j, c in enumerate(cols)],
        pl.Series("lo_raw", raw[:, 0]),
        pl.Series("hi_raw", raw[:, -1]),
        pl.Series("lo_cqr", lo_cqr),
        pl.Series("hi_cqr", hi_cqr),
        pl.Series("lo_cqr_aci", lo_aci),
        pl.Series("hi_cqr_aci", hi_aci),
        pl.Series("aci_alpha", alpha_used),
        pl.Series("vol_tercile", terciles),
    )
    metrics = {
        "model": cfg.name,
        "horizon": horizon,
        "target_coverage": cfg.target_coverage,
        "quantiles": cfg.quantiles,
        "volatility_scaled": scaled,
        "test": methods,
        "baselines": baselines,
        "rows": {name: frame.height for name, frame in seg.items()},
        "splits": splits.as_dict(),
    }
    return TrainResult(model, cqr, aci, splits, metrics, predictions, seconds)
