"""Prefect tasks of the backtest flow: thin wrappers around ``core.modeling.walkforward``
and ``core.backtests``."""

from __future__ import annotations

from typing import Any

import polars as pl
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import INPUTS, TASK_SOURCE
from prefect.logging import get_run_logger

from core.backtests import write_refit
from core.config import ModelSettings, StoreRef
from core.modeling.walkforward import Window, refit
from core.storage import Store


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
    window: dict[str, Any],
    table: pl.DataFrame,
    prices: pl.DataFrame,
    features: list[str],
    cfg: ModelSettings,
    horizon: int,
    baselines: list[str],
) -> dict[str, Any]:
    """Fit one refit window, forecast its dates, store them (cached by the window and
    ``fit_key``, a digest of the data and settings: a rerun resumes where it stopped)."""
    win = Window.from_dict(window)
    frame, cqr = refit(table, prices, features, cfg, horizon, win, baselines)
    get_run_logger().info("refit %s: %d forecasts to %s", win.refit, frame.height, win.until)
    return write_refit(Store.open(store), fit_key, win, frame, cqr)


def publish_summary(markdown: str, backtest_id: str) -> None:
    create_markdown_artifact(
        key="backtest-summary", markdown=markdown, description=f"Backtest {backtest_id}"
    )
