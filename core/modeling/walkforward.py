"""Walk-forward refits: production replayed over history, and the fit ``flows.train`` deploys.

A refit at date T forecasts from T's close. The newest row it learns from is h trading
days before T (its h-day target ends at T: the embargo). Before that come the
calibration window (``calibration_days``), an h-day gap, the validation window
(``validation_days``, for early stopping), another h-day gap, and training back to
``model.lookback_days`` calendar days before T. A history too short for those windows
shrinks calibration and validation in the proportions of ``model.split_fractions``.
No row dated after T - h enters a fit, and features and price models use data up to
each forecast's date only: a refit sees nothing from after the forecasts it makes.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

from core.config import BacktestSettings, ModelSettings
from core.errors import InsufficientDataError
from core.modeling.conformal import CQR, ACIState, aci_intervals, apply_cqr, fit_cqr, start_state
from core.modeling.models import MODELS, make_model
from core.modeling.models.base import QuantileRegressor
from core.modeling.models.prices import uses_prices
from core.modeling.models.scaled import use_scaling
from core.modeling.scorecard import qcols
from core.modeling.splits import check_segments

FIT_SEGMENTS = ("train", "val", "cal")


@dataclass(frozen=True)
class Window:
    """One refit: the first and last forecast date, and the fit segments (inclusive)."""

    refit: dt.date
    until: dt.date
    train: tuple[dt.date, dt.date]
    val: tuple[dt.date, dt.date]
    cal: tuple[dt.date, dt.date]

    def as_dict(self) -> dict[str, Any]:
        return {
            k: [str(d) for d in v] if isinstance(v, tuple) else str(v)
            for k, v in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Window:
        day = dt.date.fromisoformat
        return cls(
            refit=day(data["refit"]),
            until=day(data["until"]),
            **{k: (day(data[k][0]), day(data[k][1])) for k in FIT_SEGMENTS},
        )


def window_at(
    dates: list[dt.date],
    refit: int,
    until: int,
    horizon: int,
    model: ModelSettings,
    cfg: BacktestSettings,
) -> Window:
    """The refit window forecasting ``dates[refit..until]`` (indexes into the sorted trading dates)."""
    last = refit - horizon  # newest row whose outcome is known at the refit's close
    earliest = dates[refit] - dt.timedelta(days=model.lookback_days)
    first = next(i for i, d in enumerate(dates) if d >= earliest)
    available = last - first + 1
    f_train, f_val, f_cal, _ = model.split_fractions
    share = f_train + f_val + f_cal
    n_cal = min(cfg.calibration_days, round(available * f_cal / share))
    n_val = min(cfg.validation_days, round(available * f_val / share))
    cal_start = last - n_cal + 1
    val_end = cal_start - horizon - 1
    val_start = val_end - n_val + 1
    train_end = val_start - horizon - 1
    if min(n_cal, n_val, train_end - first + 1) < model.min_segment_dates:
        raise InsufficientDataError(
            f"too little history before {dates[refit]} to refit: {available} trading days from "
            f"{dates[first]} give train {max(train_end - first + 1, 0)}, validation {n_val} and "
            f"calibration {n_cal} dates (each needs {model.min_segment_dates}): collect a longer history"
        )
    return Window(
        refit=dates[refit],
        until=dates[until],
        train=(dates[first], dates[train_end]),
        val=(dates[val_start], dates[val_end]),
        cal=(dates[cal_start], dates[last]),
    )


def plan_refits(
    dates: list[dt.date], horizon: int, model: ModelSettings, cfg: BacktestSettings
) -> list[Window]:
    """Refit windows every ``refit_every`` trading days over the forecast dates in
    [start, end]; the first refit waits for ``min_history_days`` of history."""
    enough = dates[0] + dt.timedelta(days=cfg.min_history_days)
    chosen = [
        i
        for i, d in enumerate(dates)
        if d >= enough
        and (cfg.start is None or d >= cfg.start)
        and (cfg.end is None or d <= cfg.end)
    ]
    if not chosen:
        raise InsufficientDataError(
            f"no forecast date to backtest: the dates run {dates[0]} .. {dates[-1]}, the first refit "
            f"needs {cfg.min_history_days} calendar days of history (backtest.min_history_days)"
            + (
                f", and the range asked is {cfg.start or '...'} .. {cfg.end or '...'}"
                if cfg.start or cfg.end
                else ""
            )
        )
    starts = chosen[:: cfg.refit_every]
    ends = [s - 1 for s in starts[1:]] + [chosen[-1]]
    return [window_at(dates, s, e, horizon, model, cfg) for s, e in zip(starts, ends, strict=True)]


def deployment_window(
    dates: list[dt.date], horizon: int, model: ModelSettings, cfg: BacktestSettings
) -> Window:
    """The window of a refit at the newest date: the fit ``flows.train`` saves for predict."""
    return window_at(dates, len(dates) - 1, len(dates) - 1, horizon, model, cfg)


def trading_dates(table: pl.DataFrame) -> list[dt.date]:
    return table["date"].unique().sort().to_list()


def segments(table: pl.DataFrame, window: Window, horizon: int) -> dict[str, pl.DataFrame]:
    """The labelled rows of each fit segment, sorted by date then symbol. A row whose target
    ends after the refit date (a symbol with missing days spans more calendar days in h
    rows) is left out: the embargo holds per symbol, not only on the panel's calendar."""
    target_end = pl.col("date").shift(-horizon).over("symbol", order_by="date")
    labelled = table.filter(pl.col("y").is_not_null() & (target_end <= window.refit))
    return {
        name: labelled.filter(pl.col("date").is_between(*getattr(window, name))).sort(
            "date", "symbol"
        )
        for name in FIT_SEGMENTS
    }


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
    raw = fitted.model.predict(rows)
    out = rows.select("symbol", "date", "y").with_columns(
        pl.lit(window.refit).alias("refit"),
        *[pl.Series(f"{c}_raw", raw[:, j]) for j, c in enumerate(qcols(cfg.quantiles))],
    )
    for name, model in fitted.baselines.items():
        preds = model.predict(rows)
        out = out.with_columns(
            *[pl.Series(c, preds[:, j]) for j, c in enumerate(qcols(cfg.quantiles, name))]
        )
    return out, fitted.cqr


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
