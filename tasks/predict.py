"""Prefect task of the predict flow: a thin wrapper around ``core.modeling.prediction``."""

from __future__ import annotations

from typing import Any

import polars as pl
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from core.config import StoreRef
from core.locks import store_lock
from core.modeling.prediction import predict_run
from core.modeling.scorecard import qcols
from core.storage import Store


@task(name="predict", cache_policy=NO_CACHE)
def predict_task(store: StoreRef, run: str, bound: float) -> dict[str, Any]:
    """Forecast with run ``run`` (``core.modeling.prediction``) and publish the table; under
    the store's ``predict`` lock: a second predict continues the tracker from this one's state."""
    opened = Store.open(store)
    with store_lock(opened, "predict"):  # reads, continues and writes the tracker state
        summary = predict_run(opened, run, bound)
    for warning in summary["warnings"]:
        get_run_logger().warning(warning)
    out: pl.DataFrame = summary.pop("table")
    create_table_artifact(
        key="predictions",
        table=out.select("symbol", "date", "target_date", *qcols(summary["quantiles"]))
        .with_columns(pl.col("date", "target_date").cast(pl.String))
        .to_dicts(),
        description=f"Calibrated quantiles of {summary['method']} as of {summary['as_of']} (run {summary['run_id']}, "
        f"{summary['online_state']})",
    )
    return summary
