"""Prefect tasks of the backtest flow: thin wrappers around ``core.modeling.backtest``,
``core.modeling.walkforward`` and ``core.backtests``."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE
from prefect.logging import get_run_logger

from core.backtests import (
    BacktestManifest,
    RefitRecord,
    read_refit,
    refit_stored,
    summary_markdown,
    write_backtest,
    write_refit,
)
from core.config import ModelSettings, StoreRef, TrackingSettings
from core.modeling.backtest import BacktestPlan, BacktestScores
from core.modeling.calibration import LevelCalibration
from core.modeling.inputs import TrainingData
from core.modeling.timeline import Window
from core.modeling.walkforward import refit
from core.plots import backtest_plots
from core.storage import Store
from core.tracking import Tracker, flatten
from tasks.caching import cached_or_rerun, with_result_storage
from tasks.runners import finished


@task(
    name="refit",
    cache_policy=(INPUTS - "table" - "prices") + TASK_SOURCE,
    persist_result=True,
    result_serializer="json",
    retries=1,
)
def refit_task(
    store: StoreRef,
    fit_key: str,
    window: Window,
    table: pl.DataFrame,
    prices: pl.DataFrame,
    features: list[str],
    cfg: ModelSettings,
    horizon: int,
    baselines: list[str],
) -> RefitRecord:
    """Fit one refit window, forecast its dates, store them (cached by the window and
    ``fit_key``, a digest of the data and settings: a rerun resumes where it stopped)."""
    frame, calibrations, fallbacks = refit(table, prices, features, cfg, horizon, window, baselines)
    get_run_logger().info("refit %s: %d forecasts to %s", window.refit, frame.height, window.until)
    return write_refit(Store.open(store), fit_key, window, frame, calibrations, fallbacks)


def run_refits(
    store: StoreRef, plan: BacktestPlan, data: TrainingData, concurrency: int
) -> tuple[list[tuple[pl.DataFrame, dict[str, LevelCalibration]]], int, dict[str, dict[str, int]]]:
    """Every refit of the plan, ``concurrency`` at a time (a cached one is reused while its
    forecasts are in the store as written): their forecasts and calibrations, in window
    order, how many were reused, and per method the symbols whose fit fell back (with in
    how many refits)."""
    opened = Store.open(store)
    task = with_result_storage(refit_task, store.url)
    records: list[RefitRecord] = []
    reused = 0
    shared = (plan.features, plan.fit_cfg, plan.horizon, plan.baselines)
    for wave in range(0, len(plan.windows), concurrency):
        calls = [
            (store, plan.fit_key, window, data.table, data.prices, *shared)
            for window in plan.windows[wave : wave + concurrency]
        ]
        done: dict[int, RefitRecord] = {}
        for i, future, _ in finished(task, calls):
            done[i], cached = cached_or_rerun(
                task, future, *calls[i], usable=lambda r: refit_stored(opened, r)
            )
            reused += cached
        records.extend(done[i] for i in range(len(calls)))
    get_run_logger().info("%d of %d refits reused from an earlier run", reused, len(records))
    fallbacks: dict[str, dict[str, int]] = {}
    for record in records:
        for method, symbols in record.fallbacks.items():
            for symbol in symbols:
                counts = fallbacks.setdefault(method, {})
                counts[symbol] = counts.get(symbol, 0) + 1
    return [read_refit(opened, record) for record in records], reused, fallbacks


@task(name="write-backtest", cache_policy=NO_CACHE)
def write_backtest_task(
    store: StoreRef,
    record: BacktestManifest,
    forecasts: pl.DataFrame,
    scores: BacktestScores,
    target_coverage: float,
    tracking: TrackingSettings,
) -> tuple[BacktestManifest, str | None]:
    """Draw the plots, write the backtest folder (manifest with hashes last), log it to
    W&B, publish the summary artifact; the manifest and the W&B run's folder."""
    card = scores.metrics
    with tempfile.TemporaryDirectory(prefix="sma-backtest-") as tmp:
        plots = backtest_plots(scores.months, target_coverage, scores.scored, Path(tmp))
        written = write_backtest(Store.open(store), record, forecasts, card, plots)
        tracker = Tracker(tracking, record.backtest_id, record.settings, job_type="backtest")
        tracker.log(flatten({"calibrated": card["calibrated"], "raw": card["raw"]}))
        tracker.log_images(plots)
        wandb_dir = tracker.finish()
    create_markdown_artifact(
        key="backtest-summary",
        markdown=summary_markdown(card),
        description=f"Backtest {record.backtest_id}",
    )
    return written, wandb_dir
