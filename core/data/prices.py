"""The canonical daily-bar schema and the conversions every source goes through."""

from __future__ import annotations

import polars as pl

PRICE_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "date": pl.Date(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "adj_close": pl.Float64(),
    "volume": pl.Float64(),
}
PRICE_COLUMNS = list(PRICE_SCHEMA)
REQUIRED_COLUMNS = ["date", "open", "high", "low", "close", "volume"]

# Spellings used by Yahoo (CSV and yfinance), Kaggle/IEX and stooq, lower-cased.
_ALIASES = {
    "date": "date",
    "datetime": "date",
    "timestamp": "date",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "adj close": "adj_close",
    "adj_close": "adj_close",
    "adjclose": "adj_close",
    "volume": "volume",
    "symbol": "symbol",
    "ticker": "symbol",
}


class SourceFormatError(ValueError):
    """A source's frame lacks a required column; the message names it."""


def price_schema_problem(frame: pl.DataFrame) -> str | None:
    """What keeps ``frame`` from being a stored price file (a missing column, or one of
    another type), or None when it has every canonical column with its type."""
    wrong = [
        f"{name} is {frame.schema[name]}, not {dtype}" if name in frame.schema else f"no {name}"
        for name, dtype in PRICE_SCHEMA.items()
        if frame.schema.get(name) != dtype
    ]
    return "; ".join(wrong) or None


def empty_prices() -> pl.DataFrame:
    """A frame with the canonical columns and no rows."""
    return pl.DataFrame(schema=PRICE_SCHEMA)


def normalize_bars(frame: pl.DataFrame, symbol: str, origin: str) -> pl.DataFrame:
    """Rename a source's columns to the canonical ones and cast them.

    Values that cannot be parsed become null (the quality rules then quarantine the row)
    rather than failing the whole symbol. Unknown columns (stooq's OpenInt, Kaggle's Name)
    are dropped.
    """
    renames: dict[str, str] = {}
    for column in frame.columns:
        canonical = _ALIASES.get(column.strip().lower())
        if canonical and canonical not in renames.values():
            renames[column] = canonical
    frame = frame.rename(renames).select(list(renames.values()))
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise SourceFormatError(f"{origin}: missing required column(s) {', '.join(missing)}")
    date = pl.col("date")
    dtype = frame.schema["date"]
    if dtype == pl.String:
        date = date.str.strip_chars().str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    elif dtype != pl.Date:
        date = date.cast(pl.Date, strict=False)
    numeric = [
        (pl.col(c).str.strip_chars() if frame.schema[c] == pl.String else pl.col(c))
        .cast(pl.Float64, strict=False)
        .alias(c)
        for c in ("open", "high", "low", "close", "adj_close", "volume")
        if c in frame.columns
    ]
    out = frame.with_columns(date.alias("date"), *numeric)
    if "adj_close" not in out.columns:
        out = out.with_columns(pl.lit(None, dtype=pl.Float64).alias("adj_close"))
    return out.with_columns(pl.lit(symbol, dtype=pl.String).alias("symbol")).select(PRICE_COLUMNS)


def sort_bars(frame: pl.DataFrame) -> pl.DataFrame:
    """Sort by (symbol, date): the order every stored and computed panel keeps."""
    return frame.sort("symbol", "date")


def merge_bars(
    stored: pl.DataFrame, fresh: pl.DataFrame, drop_dates: pl.Series | None = None
) -> pl.DataFrame:
    """Merge fresh bars into stored ones: dedupe by (symbol, date), fresh rows win.

    ``drop_dates`` removes stored rows that a fresh validation rejected (a tick that
    only turned out bad once the next day arrived).
    """
    if drop_dates is not None and drop_dates.len():
        stored = stored.filter(~pl.col("date").is_in(drop_dates.implode()))
    merged = pl.concat([stored.select(PRICE_COLUMNS), fresh.select(PRICE_COLUMNS)], how="vertical")
    return sort_bars(merged.unique(subset=["symbol", "date"], keep="last", maintain_order=True))
