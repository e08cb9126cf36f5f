"""Incremental collection: where each symbol's fetch starts and when stored history is stale."""

from __future__ import annotations

import datetime as dt

import polars as pl


def fetch_start(
    stored: pl.DataFrame | None, default_start: dt.date, overlap_days: int, full_refresh: bool
) -> dt.date:
    """First date to fetch: ``default_start`` for new symbols or a full refresh, else the
    last stored date minus ``overlap_days`` stored trading days (re-read to detect re-adjustments)."""
    if full_refresh or stored is None or stored.is_empty():
        return default_start
    dates = stored.get_column("date").sort()
    return dates[max(0, dates.len() - 1 - overlap_days)]


def overlap_changed(stored: pl.DataFrame, fresh: pl.DataFrame, tolerance: float) -> bool:
    """True when fresh closes (or adjusted closes) on stored dates differ beyond ``tolerance``
    (relative): a split or dividend re-adjusted the history, so the symbol must be refetched."""
    if stored.is_empty() or fresh.is_empty():
        return False
    both = stored.select("date", "close", "adj_close").join(
        fresh.select("date", "close", "adj_close"), on="date", suffix="_new"
    )

    def moved(column: str) -> pl.Expr:
        old, new = pl.col(column), pl.col(f"{column}_new")
        return ((new - old).abs() / old.abs()) > tolerance

    return bool(both.select((moved("close") | moved("adj_close")).fill_null(False).any()).item())
