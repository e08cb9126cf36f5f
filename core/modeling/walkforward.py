"""Walk-forward fits: production replayed over history, and the fit ``flows.train`` deploys.

Each fit learns on a ``core.modeling.timeline.Window``'s fit segments and forecasts its
dates; features and price models use data up to each forecast's date only, so a refit sees
nothing from after the forecasts it makes. Every method, the configured model and each
baseline alike, is calibrated per level on the window's calibration rows
(``core.modeling.calibration``); the online trackers then run once over every forecast in
date order, each method with its own state (``calibrate_in_order``).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from core.config import AGGREGATE, ModelSettings
from core.errors import InsufficientDataError
from core.modeling.aggregation import AggregationState, aggregate, start_aggregation
from core.modeling.calibration import (
    LevelCalibration,
    TrackerState,
    fit_calibration,
    start_tracker,
    track,
)
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
    """A window's fit: the model, the baselines fitted beside it, and every method's
    calibration (keyed by method name), rows per segment."""

    model: QuantileRegressor
    calibrations: dict[str, LevelCalibration]
    rows: dict[str, int]
    baselines: dict[str, QuantileRegressor]
    seconds: float  # the model's fit (without the baselines')
    skipped: dict[str, str]  # baselines that could not be fitted on the window, with why
    fallbacks: dict[str, dict[str, str]] = field(default_factory=dict)  # method -> symbol -> why

    @property
    def methods(self) -> dict[str, QuantileRegressor]:
        """The model and the baselines, by name."""
        return {self.model.name: self.model} | self.baselines


def prefix(method: str, cfg: ModelSettings) -> str:
    """A method's column prefix: none for the configured model, its name for the others."""
    return "" if method == cfg.name else method


def fit_model(
    seg: dict[str, pl.DataFrame],
    prices: pl.DataFrame,
    features: list[str],
    cfg: ModelSettings,
    horizon: int,
    name: str,
) -> QuantileRegressor:
    """Model ``name`` fitted on the training rows, stopping early on validation; a baseline,
    which has no early stopping, fits on training plus validation rows. The configured
    parameters apply to the configured model only (over what every method of its kind takes
    from the settings: ``ModelSpec.from_settings``)."""
    spec = MODELS[name]
    scaled = use_scaling(cfg.volatility_scaling, spec.inner_defaults, features)
    params = (spec.from_settings(cfg) if spec.from_settings else {}) | (
        cfg.params if name == cfg.name else {}
    )
    model = make_model(name, cfg.quantiles, features, horizon, params, scaled)
    if uses_prices(model):
        model.attach_prices(prices)  # type: ignore[attr-defined]
    train = pl.concat([seg["train"], seg["val"]]) if spec.baseline else seg["train"]
    model.fit(train, train["y"].to_numpy(), seg["val"], seg["val"]["y"].to_numpy())
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
    """Fit the configured model and ``baselines`` on the window, and calibrate each of them
    per level on its calibration rows."""
    seg = segments(table, window, horizon)
    seg["train"] = every_nth_date(seg["train"], train_step(cfg, horizon))
    check_segments(seg, cfg.min_segment_dates, cfg.min_segment_rows, window, FIT_SEGMENTS)
    started = time.perf_counter()
    model = fit_model(seg, prices, features, cfg, horizon, cfg.name)
    seconds = time.perf_counter() - started
    others, skipped = {}, {}
    for name in (b for b in baselines if b != cfg.name):
        try:
            others[name] = fit_model(seg, prices, features, cfg, horizon, name)
        except ValueError as exc:  # too short a history for this baseline: scored without it
            skipped[name] = str(exc)
    fitted = Fitted(model, {}, {k: v.height for k, v in seg.items()}, others, seconds, skipped)
    cal = seg["cal"]
    y, dates = cal["y"].to_numpy(), cal["date"].cast(pl.String).to_numpy()
    for name, method in fitted.methods.items():
        raw = method.predict(cal)
        fitted.calibrations[name] = fit_calibration(raw, y, dates, cfg.quantiles, cfg.interval)
        if getattr(method, "fallbacks", None):
            fitted.fallbacks[name] = dict(method.fallbacks)  # type: ignore[attr-defined]
    return fitted


def refit(
    table: pl.DataFrame,
    prices: pl.DataFrame,
    features: list[str],
    cfg: ModelSettings,
    horizon: int,
    window: Window,
    baselines: list[str],
) -> tuple[pl.DataFrame, dict[str, LevelCalibration], dict[str, dict[str, str]]]:
    """One backtest refit: every method's raw quantiles for every row forecast in the
    window (symbol, date, y, refit, ``<prefix>q_*_raw``), every method's calibration and the
    fits that fell back. Nothing dated after the window's last forecast is even passed on."""
    table = table.filter(pl.col("date") <= window.until)
    prices = prices.filter(pl.col("date") <= window.until)
    fitted = fit_window(table, prices, features, cfg, horizon, window, tuple(baselines))
    rows = table.filter(pl.col("date") >= window.refit).sort("date", "symbol")
    raws = {prefix(n, cfg): m.predict(rows) for n, m in fitted.methods.items()}
    return (
        forecast_block(rows, raws, window.refit, cfg.quantiles),
        fitted.calibrations,
        fitted.fallbacks,
    )


def forecast_block(
    rows: pl.DataFrame, raws: dict[str, np.ndarray], refit: dt.date, quantiles: list[float]
) -> pl.DataFrame:
    """A fit's forecasts of ``rows``: symbol, date, y, refit and each method's raw quantiles
    (``<prefix>q_*_raw``, keyed by prefix), what ``calibrate_in_order`` calibrates."""
    return rows.select("symbol", "date", "y").with_columns(
        pl.lit(refit).alias("refit"),
        *[
            pl.Series(f"{c}_raw", raw[:, j])
            for p, raw in raws.items()
            for j, c in enumerate(qcols(quantiles, p))
        ],
    )


def new_tracker(cfg: ModelSettings, horizon: int, method: str) -> TrackerState:
    """A method's fresh tracker with the configured steps and decays."""
    return start_tracker(
        cfg.quantiles, horizon, cfg.tracker_step, cfg.tracker_decay, method,
        cfg.symbol_tracker_step, cfg.symbol_tracker_decay,
    )  # fmt: skip


@dataclass
class Calibrated:
    """Forecasts calibrated in date order: the frame with each method's emitted quantiles
    (``<prefix>q_*``) beside its raw ones, each method's tracker state at the end, and how
    many values the sanity bound clipped per method."""

    frame: pl.DataFrame
    states: dict[str, TrackerState]
    clipped: dict[str, int]


def calibrate_in_order(
    blocks: list[tuple[pl.DataFrame, dict[str, LevelCalibration]]],
    cfg: ModelSettings,
    horizon: int,
    states: dict[str, TrackerState] | None = None,
) -> Calibrated:
    """Each refit's per-level calibration, then each method's online tracker once over every
    forecast in date order, its state carried across refits (the rule ``predict`` follows
    too: a new fit continues the state of the one it replaces). ``states`` (default: fresh
    ones) are continued in place."""
    states = states if states is not None else {}
    clipped: dict[str, int] = {}
    out = []
    for frame, calibrations in sorted(
        blocks, key=lambda b: b[0]["refit"][0] if b[0].height else dt.date.min
    ):
        if not frame.height:
            continue
        frame = frame.sort("date", "symbol")
        y = frame["y"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        dates = frame["date"].cast(pl.String).to_numpy()
        symbols = frame["symbol"].to_numpy()
        added = []
        for method, cal in calibrations.items():
            cols = qcols(cfg.quantiles, prefix(method, cfg))
            if f"{cols[0]}_raw" not in frame.columns:
                continue
            state = states.setdefault(method, new_tracker(cfg, horizon, method))
            raw = frame.select(f"{c}_raw" for c in cols).to_numpy()
            emitted, n = track(cal, state, dates, raw, y, cfg.quantile_bound, symbols)
            clipped[method] = clipped.get(method, 0) + n
            added += [pl.Series(c, emitted[:, j]) for j, c in enumerate(cols)]
        out.append(frame.with_columns(added))
    if not out:
        raise InsufficientDataError("the backtest forecast no row")
    return Calibrated(pl.concat(out, how="diagonal_relaxed"), states, clipped)


def complete_methods(frame: pl.DataFrame, cfg: ModelSettings, names: list[str]) -> dict[str, str]:
    """name -> column prefix of the methods with calibrated quantiles on every row (a baseline
    that could not be fitted on some window has none there)."""
    first = {n: qcols(cfg.quantiles, prefix(n, cfg))[0] for n in names}
    return {
        n: prefix(n, cfg)
        for n in names
        if first[n] in frame.columns and not frame[first[n]].null_count()
    }


def with_aggregation(
    frame: pl.DataFrame, cfg: ModelSettings, horizon: int, methods: dict[str, str]
) -> tuple[pl.DataFrame, AggregationState]:
    """The frame with the online aggregation of the methods' calibrated quantiles
    (``boa_q_*``; its ``_raw`` columns are the same: it combines calibrated forecasts), per
    level, weights from each date's pinball loss known h dates later (``core.modeling.
    aggregation``); and the aggregation's state at the end."""
    frame = frame.sort("date", "symbol")
    experts = np.stack(
        [frame.select(qcols(cfg.quantiles, p)).to_numpy() for p in methods.values()], axis=1
    )
    state = start_aggregation(AGGREGATE, list(methods), cfg.quantiles, horizon)
    y = frame["y"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    combined, _ = aggregate(state, frame["date"].cast(pl.String).to_numpy(), experts, y)
    cols = qcols(cfg.quantiles, AGGREGATE)
    return frame.with_columns(
        *[pl.Series(c, combined[:, j]) for j, c in enumerate(cols)],
        *[pl.Series(f"{c}_raw", combined[:, j]) for j, c in enumerate(cols)],
    ), state
