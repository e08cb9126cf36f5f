"""The report's data, gathered from the store into one JSON-able dict (``core.report.page``
draws it): today's forecasts, per-symbol fan charts with realized returns, coverage and
pinball over time, calibration per quantile, drift, data health, quality rejections and the
model card. Everything comes from files other steps wrote; nothing is recomputed that a
step already decided.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl

from core import layout
from core.config import MonitorSettings
from core.data.tickers import sectors_of
from core.errors import InputError
from core.features.table import price_panel
from core.modeling.risk_backtests import BASEL_LEVEL
from core.modeling.scorecard import (
    as_method,
    metrics_interval,
    model_card,
    qcols,
    volatility_terciles,
    with_interval,
)
from core.modeling.tail_risk import risk_alphas, var_es
from core.monitoring import scores as monitoring
from core.monitoring import tail
from core.monitoring.health import quality_reports
from core.monitoring.monitor import newest_backtest, prediction_dates
from core.runs import MissingRunError, RunManifest, read_run, resolve
from core.storage import Store

DIGITS = 6  # returns rounded in the page: keeps the file small, far below any visible change


class NoReportInputError(InputError):
    """Nothing to report on yet."""


def _round(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(pl.Float32, pl.Float64).round(DIGITS))


def _columns(frame: pl.DataFrame) -> dict[str, list[Any]]:
    """Column-oriented, dates as ISO strings: what Plotly traces take."""
    frame = _round(frame).with_columns(pl.col(pl.Date).cast(pl.String))
    return {c: frame[c].to_list() for c in frame.columns}


def latest_forecasts(
    store: Store, newest: pl.DataFrame, tickers: str, interval: tuple[float, float]
) -> pl.DataFrame:
    """The newest prediction file's forecasts with their target interval ``lo``, ``hi``, its
    width, sector and volatility tercile."""
    table = with_interval(newest, interval)
    sectors = sectors_of(tickers)
    cols = [c for c in table.columns if c.startswith("q_") and not c.endswith("_raw")]
    prices = price_panel(store)
    table = table.with_columns(
        pl.col("symbol")
        .replace_strict(sectors, default="", return_dtype=pl.String)
        .alias("sector"),
        (pl.col("hi") - pl.col("lo")).alias("width"),
        pl.Series("vol_tercile", volatility_terciles(table, prices)),
    )
    keep = [
        "symbol",
        "sector",
        "date",
        "target_date",
        *cols,
        "lo",
        "hi",
        "width",
        "vol_tercile",
        "run_id",
    ]
    return table.select([c for c in keep if c in table.columns])


def history(store: Store, run: RunManifest) -> tuple[pl.DataFrame, str]:
    """Scored forecasts to draw (monitoring's series: live, with backtest before it) or, before
    the monitor has run, the run's held-out test predictions; and which it is."""
    if store.exists(layout.MONITOR_SCORES()):
        series = monitoring.monitored(store.read_parquet(layout.MONITOR_SCORES()))
        if series.height:
            return series, "monitoring scores (" + ", ".join(
                sorted(series["source"].unique())
            ) + ")"
    run_id = run.run_id
    key = layout.RUN_TEST_PREDICTIONS(run_id=run_id)
    if layout.TEST_PREDICTIONS_FILE not in run.files:
        raise NoReportInputError(
            f"nothing to draw: no scored forecasts (run `python -m flows.monitor --backfill`) and "
            f"run {run_id} has no {key}"
        )
    test = run.read_parquet(store, key).filter(pl.col("y").is_not_null())
    test = test.rename({"lo_cqr_aci": "lo", "hi_cqr_aci": "hi"}, strict=False)  # layout 1
    metrics = run.metrics(store)
    deployed = metrics.get("deployed", metrics["model"])
    shown = as_method(test, deployed, metrics["model"], metrics["quantiles"])
    test = test if shown is None else shown
    test = with_interval(test, metrics_interval(metrics)).with_columns(
        pl.lit("held-out test").alias("source"),
        ((pl.col("y") >= pl.col("lo")) & (pl.col("y") <= pl.col("hi"))).alias("hit"),
    )
    return (
        test,
        f"the held-out test period of run {run_id} (the monitor has not scored any forecast yet)",
    )


def fans(
    series: pl.DataFrame, today: pl.DataFrame, quantiles: list[float], days: int
) -> dict[str, Any]:
    """Per symbol: the last ``days`` forecast dates (quantiles, interval, realized return) and
    today's forecast (no outcome yet)."""
    cols = qcols(quantiles)
    dates = series["date"].unique().sort().tail(days)
    past = series.filter(pl.col("date").is_in(dates.implode())).select(
        "symbol", "date", *cols, "lo", "hi", "y"
    )
    now = today.select("symbol", "date", *cols, "lo", "hi").with_columns(
        pl.lit(None, pl.Float64).alias("y")
    )
    both = pl.concat(
        [past, now.join(past.select("symbol", "date"), on=["symbol", "date"], how="anti")],
        how="diagonal_relaxed",
    )
    out = {}
    for (symbol,), part in both.sort("date").group_by(["symbol"], maintain_order=True):
        out[str(symbol)] = _columns(part.drop("symbol"))
    return dict(sorted(out.items()))


def calibration(series: pl.DataFrame, quantiles: list[float]) -> dict[str, Any]:
    """Nominal level vs observed share of outcomes below each quantile."""
    observed = [
        float(np.mean(series["y"].to_numpy() < series[c].to_numpy())) if series.height else 0.0
        for c in qcols(quantiles)
    ]
    return {
        "nominal": quantiles,
        "observed": [round(v, 4) for v in observed],
        "rows": series.height,
    }


def backtest_ratios(store: Store) -> dict[str, Any] | None:
    """The newest backtest's monthly loss ratio of the model to each other method (CRPS; a
    layout 1 backtest's: pinball)."""
    found = newest_backtest(store)
    if found is None:
        return None
    bid, _, metrics = found
    months = pl.DataFrame(metrics["monthly"])
    loss = "crps" if "crps" in months.columns else "pinball"  # layout 1 backtests: pinball
    bases = [c.removeprefix(f"{loss}_") for c in months.columns if c.startswith(f"{loss}_")]
    return {
        "backtest_id": bid,
        "loss": loss,
        "month": months["month"].to_list(),
        **{b: (months[loss] / months[f"{loss}_{b}"]).round(4).to_list() for b in bases},
    }


ES_POINTS = 2000  # the newest tail losses drawn against their ES
ES_LEVEL = 0.025  # the FRTB expected shortfall's tail, drawn against realized losses


def tail_risk(series: pl.DataFrame, quantiles: list[float], horizon: int) -> dict[str, Any]:
    """The risk section: the 99 % VaR's zones per symbol over the last 250 forecast dates
    (``core.monitoring.tail``), the share of symbols beyond it per date, and the newest
    losses beyond the 97.5 % VaR against the ES forecast for them."""
    watch = tail.tail_watch(series, horizon, quantiles, partial=True)
    if "zones" not in watch:
        return {"note": watch["note"]}
    hits = (
        tail.tail_hits(series)
        .group_by("date")
        .agg(pl.col("long").mean().alias("long_share"), pl.col("short").mean().alias("short_share"))
    )
    out: dict[str, Any] = {
        "watch": {k: v for k, v in watch.items() if k != "zones"},
        "zones": _columns(pl.DataFrame(watch["zones"])) if watch["zones"] else None,
        "exceptions": _columns(hits.sort("date")),
        "alpha": BASEL_LEVEL,
    }
    if ES_LEVEL in risk_alphas(quantiles):
        var, es, _, _ = var_es(series.select(qcols(quantiles)).to_numpy(), quantiles, ES_LEVEL)
        beyond = (
            series.select("symbol", "date", (1 - pl.col("y").exp()).alias("loss"))
            .with_columns(pl.Series("var", var), pl.Series("es", es))
            .filter(pl.col("loss") > pl.col("var"))
            .sort("date")
            .tail(ES_POINTS)
        )
        out["es"] = _columns(beyond.select("symbol", "date", "loss", "es"))
    return out


def quality(store: Store) -> dict[str, Any] | None:
    """The newest collect run's rejections per rule (and the rules' wording)."""
    reports = quality_reports(store)
    if not reports:
        return None
    doc = store.read_json(reports[-1][1])
    return {"run_id": doc["run_id"], "rules": doc.get("rules", {}), "totals": doc.get("totals", {})}


def report_data(store: Store, cfg: MonitorSettings, tickers: str) -> dict[str, Any]:
    """Everything the page shows, as plain JSON values."""
    dates = prediction_dates(store)
    if not dates:
        raise NoReportInputError(
            f"no predictions in {store.uri(layout.PREDICTIONS.prefix)}: run `python -m flows.predict` first"
        )
    day, key = next(reversed(dates.items()))
    as_of, newest = str(day), store.read_parquet(key)
    run_id = newest["run_id"][0] if "run_id" in newest.columns else resolve(store, "latest")
    try:
        run = read_run(store, run_id)
    except MissingRunError:
        raise NoReportInputError(
            f"the predictions of {as_of} name run {run_id}, which is not in {store.uri('models')}"
        ) from None
    metrics = run.metrics(store)
    quantiles = metrics["quantiles"]
    today = latest_forecasts(store, newest, tickers, metrics_interval(metrics))
    series, source = history(store, run)
    summary = (
        store.read_json(layout.MONITOR_SUMMARY())
        if store.exists(layout.MONITOR_SUMMARY())
        else None
    )
    target = metrics["target_coverage"]
    return {
        "as_of": as_of,
        "run_id": run_id,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model": metrics.get("deployed", metrics["model"]),
        "horizon": metrics["horizon"],
        "target": target,
        "band": list(cfg.coverage_band),
        "fresh_share": cfg.fresh_share,
        "quantiles": quantiles,
        "forecasts": _columns(today.with_columns(pl.col("date").cast(pl.String))),
        "history_source": source,
        "fans": fans(series, today, quantiles, cfg.fan_days),
        "over_time": _columns(monitoring.daily(series, cfg.windows)),
        "calibration": calibration(series, quantiles),
        "backtest": backtest_ratios(store),
        "monitor": summary,
        "quality": quality(store),
        "risk": tail_risk(series, quantiles, metrics["horizon"]),
        "model_card": model_card(metrics, run_id)
        if "calibrated" in metrics
        else f"run {run_id} predates per-level calibration (layout 1): retrain "
        "(python -m flows.train) for a model card of every method calibrated alike",
        "coverage_all": float(np.mean(series["hit"].to_numpy())) if series.height else None,
    }
