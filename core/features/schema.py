"""The feature table's output contract, checked before anything is stored."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from core.features.context import TARGET


def features_schema(
    columns: list[str], dtype: type[pl.DataType] = pl.Float64
) -> pa.DataFrameSchema:
    """Typed columns; every feature finite and non-null (one frame-level check over all
    features); the target null only where the future is unknown."""
    features = [c for c in columns if c not in ("symbol", "date", TARGET)]
    spec: dict[str, pa.Column] = {
        "symbol": pa.Column(pl.String, nullable=False),
        "date": pa.Column(pl.Date, nullable=False),
        TARGET: pa.Column(pl.Float64, nullable=True),
    } | {name: pa.Column(dtype, nullable=True) for name in features}
    all_finite = pl.all_horizontal(pl.col(features).is_finite().fill_null(False))
    check = pa.Check(lambda data: data.lazyframe.select(all_finite), name="features_finite")
    return pa.DataFrameSchema(spec, checks=[check], name="features", strict=True)


def non_finite_columns(table: pl.DataFrame, columns: list[str]) -> dict[str, int]:
    """Numeric feature columns with null, NaN or infinite values, and how many (for error
    messages; key and categorical columns such as ``symbol`` are not numbers to check)."""
    numeric = [c for c in columns if c in table.columns and table.schema[c].is_numeric()]
    if not numeric:
        return {}
    counts = table.select((~pl.col(c).is_finite().fill_null(False)).sum() for c in numeric)
    return {c: n for c, n in counts.row(0, named=True).items() if n}
