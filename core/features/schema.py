"""The feature table's output contract, checked before anything is stored. Plain Polars
expressions: the check runs in one pass and the features flow never imports pandas."""

from __future__ import annotations

import polars as pl

from core.features.context import TARGET

KEYS = {"symbol": pl.String, "date": pl.Date}


def schema_problems(
    table: pl.DataFrame, columns: list[str], dtype: type[pl.DataType] = pl.Float64
) -> list[str]:
    """What breaks the contract, one phrase each (empty: the table holds): exactly the
    columns ``columns``, typed (keys, a Float64 target, features ``dtype``), keys never
    null, every feature finite and non-null (the target is null where the future is
    unknown)."""
    features = [c for c in columns if c not in (*KEYS, TARGET)]
    expected = {**KEYS, TARGET: pl.Float64} | dict.fromkeys(features, dtype)
    problems = []
    if missing := [c for c in expected if c not in table.columns]:
        problems.append(f"missing columns {missing}")
    if extra := [c for c in table.columns if c not in expected]:
        problems.append(f"unexpected columns {extra}")
    wrong = {
        c: str(table.schema[c])
        for c, t in expected.items()
        if c in table.schema and table.schema[c] != t
    }
    if wrong:
        problems.append(f"wrong types {wrong}")
    if problems:  # the value checks below assume the columns
        return problems
    null_keys = {
        c: n for c, n in table.select(pl.col(*KEYS).null_count()).row(0, named=True).items() if n
    }
    if null_keys:
        problems.append(f"null keys {null_keys}")
    if bad := non_finite_columns(table, features):
        problems.append(f"non-finite values in {bad}")
    return problems


def non_finite_columns(table: pl.DataFrame, columns: list[str]) -> dict[str, int]:
    """Numeric feature columns with null, NaN or infinite values, and how many (key and
    categorical columns such as ``symbol`` are not numbers to check)."""
    numeric = [c for c in columns if c in table.columns and table.schema[c].is_numeric()]
    if not numeric:
        return {}
    counts = table.select((~pl.col(c).is_finite().fill_null(False)).sum() for c in numeric)
    return {c: n for c, n in counts.row(0, named=True).items() if n}
