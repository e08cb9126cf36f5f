"""The ingestion table (``raw/ingestion.parquet``): one row per symbol, its last outcome
(status ok, failed, no_data or insufficient)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import polars as pl

from core import layout
from core.storage import DamagedFileError, Store

INGESTION_SCHEMA = pl.Schema(
    {
        "symbol": pl.String,
        "status": pl.String,
        "first_date": pl.Date,
        "last_date": pl.Date,
        "rows": pl.Int64,
        "attempts": pl.Int64,
        "last_attempt_at": pl.Datetime("us", "UTC"),
        "last_success_at": pl.Datetime("us", "UTC"),
        "error": pl.String,
    }
)


def empty_ingestion() -> pl.DataFrame:
    return pl.DataFrame(schema=INGESTION_SCHEMA)


def update_ingestion(
    previous: pl.DataFrame | None, outcomes: Iterable[dict[str, Any]], now: dt.datetime
) -> pl.DataFrame:
    """Upsert this run's outcomes into the table.

    ``attempts`` counts the runs that tried a symbol; ``last_success_at`` keeps its old value
    when this run failed. Symbols not in this run keep their row: none is ever dropped.
    """
    previous = (
        empty_ingestion()
        if previous is None
        else previous.select(list(INGESTION_SCHEMA)).cast(INGESTION_SCHEMA)
    )  # pyright: ignore[reportArgumentType]
    rows = [
        {
            "symbol": o["symbol"],
            "status": o["status"],
            "first_date": o.get("first_date"),
            "last_date": o.get("last_date"),
            "rows": o.get("rows", 0),
            "error": o.get("error"),
        }
        for o in outcomes
    ]
    if not rows:
        return previous
    fresh = pl.DataFrame(
        rows,
        schema={
            "symbol": pl.String,
            "status": pl.String,
            "first_date": pl.String,
            "last_date": pl.String,
            "rows": pl.Int64,
            "error": pl.String,
        },
    ).with_columns(pl.col("first_date", "last_date").str.to_date("%Y-%m-%d"))
    old = previous.select(
        "symbol",
        pl.col("attempts").alias("old_attempts"),
        pl.col("last_success_at").alias("old_success"),
    )
    now_lit = pl.lit(now).cast(pl.Datetime("us", "UTC"))
    updated = (
        fresh.join(old, on="symbol", how="left")
        .with_columns(
            (pl.col("old_attempts").fill_null(0) + 1).alias("attempts"),
            now_lit.alias("last_attempt_at"),
            pl.when(pl.col("status") != "failed")
            .then(now_lit)
            .otherwise(pl.col("old_success"))
            .alias("last_success_at"),
        )
        .select(list(INGESTION_SCHEMA))
        .cast(INGESTION_SCHEMA)
    )
    kept = previous.filter(~pl.col("symbol").is_in(updated["symbol"].implode()))
    return pl.concat([kept, updated]).sort("symbol")


REBUILT = (
    "rebuilt from the price files after the table was found damaged: attempts and errors unknown"
)


def rebuild_from_prices(store: Store, min_rows: int) -> pl.DataFrame:
    """The ingestion table as the price files tell it: per symbol its rows and dates, status
    ``ok`` or ``insufficient`` by row count; attempts and errors are unknown (marked so)."""
    rows = []
    for key in store.list(layout.PRICES.prefix):
        parts = layout.PRICES.match(key)
        if parts is None:
            continue
        try:
            dates = store.read_parquet(key)["date"]
        except DamagedFileError:  # collect sets it aside and refetches the symbol
            continue
        rows.append(
            {
                "symbol": parts["symbol"],
                "status": "ok" if dates.len() >= min_rows else "insufficient",
                "first_date": dates.min(),
                "last_date": dates.max(),
                "rows": dates.len(),
                "attempts": 0,
                "error": REBUILT,
            }
        )
    table = pl.DataFrame(rows, schema_overrides={"first_date": pl.Date, "last_date": pl.Date})
    return (
        empty_ingestion()
        if table.is_empty()
        else table.with_columns(
            pl.lit(None, pl.Datetime("us", "UTC")).alias("last_attempt_at"),
            pl.lit(None, pl.Datetime("us", "UTC")).alias("last_success_at"),
        )
        .select(list(INGESTION_SCHEMA))
        .cast(INGESTION_SCHEMA)  # pyright: ignore[reportArgumentType]
        .sort("symbol")
    )


def record_outcomes(
    store: Store, outcomes: Iterable[dict[str, Any]], run_id: str, min_rows: int, now: dt.datetime
) -> tuple[pl.DataFrame, str | None]:
    """Upsert a run's outcomes into the stored table under the store's ``ingestion`` lock
    (two collects on one store cannot lose each other's rows); a damaged table is set aside
    and rebuilt from the price files first. The table written, and what was repaired (None:
    nothing)."""
    from core.data.collection import set_aside
    from core.locks import store_lock

    key = layout.INGESTION()
    with store_lock(store, "ingestion"):
        repaired = None
        try:
            previous = store.read_parquet(key) if store.exists(key) else None
        except DamagedFileError as exc:
            aside = set_aside(store, key, run_id)
            repaired = f"{exc.problem}; moved to {aside} and rebuilt from the price files"
            previous = rebuild_from_prices(store, min_rows)
        table = update_ingestion(previous, outcomes, now)
        store.write_parquet(key, table)
    return table, repaired
