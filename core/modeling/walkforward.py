"""Walk-forward fits: production replayed over history, and the fit ``flows.train`` deploys.

Each fit learns on a ``core.modeling.timeline.Window``'s fit segments and forecasts its
dates; features and price models use data up to each forecast's date only, so a refit sees
nothing from after the forecasts it makes. CQR is fitted per window; the online
calibration then runs once over every forecast in date order (``calibrate_in_order``).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

import numpy as np
import polars as pl

from core.config import ModelSettings
from core.errors import InsufficientDataError
from core.modeling.conformal import CQR, ACIState, aci_intervals, apply_cqr, fit_cqr, start_state
from core.modeling.models import MODELS, make_model
from core.modeling.models.base import QuantileRegressor
from core.modeling.models.prices import uses_prices
from core.modeling.models.scaled import use_scaling
from core.modeling.scorecard import qcols
from core.modeling.timeline import (
    FIT_SEGMENTS,
    Window,
    check_segments,
    every_nth_date,
    segments,
)


@dataclass
class Fitted:
    """A window's fit: the model, its CQR calibration, rows per segment, baselines' fits."""

    model: QuantileRegressor
    cqr: CQR
    rows: dict[str, int]
    baselines: dict[str, QuantileRegressor]
    seconds: float  # the model's fit (without the baselines')
    skipped: dict[str, str]  # baselines that could not be fitted on the window, with why


def fit_model(
    seg: dict[str, pl.DataFrame],
    prices: pl.DataFrame,
    features: list[str],
    cfg: ModelSettings,
    horizon: int,
    name: str,
) -> QuantileRegressor:
    """Model ``name`` fitted on the training rows, stopping early on validation (the
    configured parameters apply to the configured model only, not to the baselines)."""
    spec = MODELS[name]
    scaled = use_scaling(cfg.volatility_scaling, spec.inner_defaults, features)
    params = cfg.params if name == cfg.name else {}
    model = make_model(name, cfg.quantiles, features, horizon, params, scaled)
    if uses_prices(model):
        model.attach_prices(prices)  # type: ignore[attr-defined]
    model.fit(seg["train"], seg["train"]["y"].to_numpy(), seg["val"], seg["val"]["y"].to_numpy())
    return model


def train_step(cfg: ModelSettings, horizon: int) -> int:
    """Every how many trading dates a window's fits (the model's and the baselines' alike)
    take their training rows: ``model.train_every``, else the model's own default."""
    if cfg.train_every:
        return cfg.train_every
    return horizon if MODELS[cfg.name].thin_by_horizon else 1


def fit_window(
    table: pl.DataFrame,
    prices: pl.DataFrame,
    features: list[str],
    cfg: ModelSettings,
    horizon: int,
    window: Window,
    baselines: tuple[str, ...] = (),
) -> Fitted:
    """Fit the configured model on the window and calibrate CQR on its calibration rows;
    also fit ``baselines`` on the same rows (``Fitted.baselines``)."""
    seg = segments(table, window, horizon)
    seg["train"] = every_nth_date(seg["train"], train_step(cfg, horizon))
    check_segments(seg, cfg.min_segment_dates, cfg.min_segment_rows, window, FIT_SEGMENTS)
    started = time.perf_counter()
    model = fit_model(seg, prices, features, cfg, horizon, cfg.name)
    seconds = time.perf_counter() - started
    cal = seg["cal"]
    cqr = fit_cqr(
        model.predict(cal),
        cal["y"].to_numpy(),
        cfg.quantiles,
        cfg.alpha,
        cfg.cqr_mode,
        cfg.cqr_normalized,
    )
    others, skipped = {}, {}
    for name in baselines:
        try:
            others[name] = fit_model(seg, prices, features, cfg, horizon, name)
        except ValueError as exc:  # too short a history for this baseline: scored without it
            skipped[name] = str(exc)
    return Fitted(model, cqr, {k: v.height for k, v in seg.items()}, others, seconds, skipped)


def refit(
    table: pl.DataFrame,
    prices: pl.DataFrame,
    features: list[str],
    cfg: ModelSettings,
    horizon: int,
    window: Window,
    baselines: list[str],
) -> tuple[pl.DataFrame, CQR]:
    """One backtest refit: the model's raw quantiles for every row forecast in the window
    (symbol, date, y, refit, q_*_raw) and each baseline's (``<name>_q_*``, fitted on the
    same window), plus the window's CQR calibration. Nothing dated after the window's last
    forecast is even passed on."""
    table = table.filter(pl.col("date") <= window.until)
    prices = prices.filter(pl.col("date") <= window.until)
    fitted = fit_window(table, prices, features, cfg, horizon, window, tuple(baselines))
    rows = table.filter(pl.col("date") >= window.refit).sort("date", "symbol")
    block = forecast_block(rows, fitted.model.predict(rows), window.refit, cfg.quantiles)
    return with_baselines(block, rows, fitted.baselines, cfg.quantiles), fitted.cqr


def forecast_block(
    rows: pl.DataFrame, raw: np.ndarray, refit: dt.date, quantiles: list[float]
) -> pl.DataFrame:
    """A fit's forecasts of ``rows``: symbol, date, y, refit and the raw quantiles
    (``q_*_raw``, from ``raw``), what ``calibrate_in_order`` calibrates."""
    return rows.select("symbol", "date", "y").with_columns(
        pl.lit(refit).alias("refit"),
        *[pl.Series(f"{c}_raw", raw[:, j]) for j, c in enumerate(qcols(quantiles))],
    )


def with_baselines(
    block: pl.DataFrame,
    rows: pl.DataFrame,
    baselines: dict[str, QuantileRegressor],
    quantiles: list[float],
) -> pl.DataFrame:
    """The block with each baseline's quantiles of the same rows (``<name>_q_*``)."""
    for name, model in baselines.items():
        preds = model.predict(rows)
        block = block.with_columns(
            *[pl.Series(c, preds[:, j]) for j, c in enumerate(qcols(quantiles, name))]
        )
    return block


def calibrate_in_order(
    blocks: list[tuple[pl.DataFrame, CQR]],
    cfg: ModelSettings,
    horizon: int,
    state: ACIState | None = None,
) -> tuple[pl.DataFrame, ACIState]:
    """CQR per refit, then the online calibration once over every forecast in date order,
    its state carried across refits (the rule ``predict`` follows too: a new model continues
    the state of the one it replaces). Adds q_* (calibrated), lo_cqr, hi_cqr, lo, hi,
    aci_alpha, aci_q. ``state`` (default: a fresh one at the first refit's calibration) is
    continued in place and returned."""
    raw_cols = [f"{c}_raw" for c in qcols(cfg.quantiles)]
    out = []
    for frame, cqr in sorted(
        blocks, key=lambda b: b[0]["refit"][0] if b[0].height else dt.date.min
    ):
        if not frame.height:
            continue
        state = state or start_state(cqr, cfg.online_method, cfg.online_step, horizon)
        frame = frame.sort("date", "symbol")
        raw = frame.select(raw_cols).to_numpy()
        calibrated, lo_cqr, hi_cqr = apply_cqr(cqr, raw)
        y = frame["y"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        lo, hi, used, offset = aci_intervals(
            cqr, state, frame["date"].cast(pl.String).to_numpy(), raw, y
        )
        out.append(
            frame.with_columns(
                *[pl.Series(c, calibrated[:, j]) for j, c in enumerate(qcols(cfg.quantiles))],
                pl.Series("lo_cqr", lo_cqr),
                pl.Series("hi_cqr", hi_cqr),
                pl.Series("lo", lo),
                pl.Series("hi", hi),
                pl.Series("aci_alpha", used, nan_to_null=True),
                pl.Series("aci_q", offset),
            )
        )
    if not out or state is None:
        raise InsufficientDataError("the backtest forecast no row")
    return pl.concat(out, how="diagonal_relaxed"), state
