"""Data-quality rules for daily bars, enforced with ``pandera.polars`` schemas.

Rejection is per row: a row that breaks a rule goes to quarantine with the first rule it
broke (in the order of ``RULES``) and a detail naming every rule it broke and its values;
the rest of the symbol's history is kept. Rules that need a row's neighbours (bad ticks,
stale runs) run on the rows that passed the row-level rules, so one broken row cannot hide
or fake a spike. Warnings (zero volume, large moves that persist) are counted, never rejected.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandera.polars as pa
import polars as pl
from pandera.errors import SchemaErrors

from core.config import QualitySettings
from core.data.prices import PRICE_COLUMNS, PRICE_SCHEMA

RULES: dict[str, str] = {
    "schema": "required columns present and typed; no null date, open, high, low, close or volume; "
    "no inf or NaN in any price or volume",
    "duplicate": "unique (symbol, date): later copies of a date are rejected",
    "positive_price": "open, high, low and close > 0",
    "non_negative_volume": "volume >= 0",
    "high_ge_low": "high >= low",
    "ohlc_in_range": "open and close within [low, high], with a relative tolerance",
    "trading_day": "date is a weekday and not in the future",
    "bad_tick": "a close that jumps by the bad-tick factor and reverts the next day",
    "stale_run": "every bar of a run of at least the stale-run count of consecutive flat "
    "zero-volume bars (open = high = low = close, volume 0): placeholder prices, not trades",
}
SYMBOL_STATUS_RULE = "insufficient"
WARNINGS: dict[str, str] = {
    "zero_volume": "volume is zero (kept: halted or illiquid days are real)",
    "large_move": "close moved by at least the bad-tick factor and did not revert (kept: crashes and spin-offs are real)",
}
QUARANTINE_SCHEMA = {**PRICE_SCHEMA, "rule": pl.String(), "detail": pl.String()}

_RANK = {name: rank for rank, name in enumerate(RULES)}
NUMBERS = ["open", "high", "low", "close", "adj_close", "volume"]


def _df_check(expr: pl.Expr, rule: str) -> pa.Check:
    """A frame-level check that passes where ``expr`` is true (nulls pass: `schema` owns them)."""
    return pa.Check(lambda data: data.lazyframe.select(expr.fill_null(True)), name=rule)


def _price_column() -> pa.Column:
    return pa.Column(pl.Float64, checks=[pa.Check.gt(0)], nullable=False)


def row_schema(rules: QualitySettings, today: dt.date) -> pa.DataFrameSchema:
    """The row rules: each decidable from a row alone (and, for duplicates, its earlier copies).

    A new rule is a frame-level ``_df_check(expr, name)`` in ``checks`` (passing where
    ``expr`` is true): failures of the column checks are named by their column
    (``positive_price``, ``non_negative_volume``), not by the check."""
    tol = rules.ohlc_tolerance
    low, high = pl.col("low") * (1 - tol), pl.col("high") * (1 + tol)
    in_range = pl.col("open").is_between(low, high) & pl.col("close").is_between(low, high)
    return pa.DataFrameSchema(
        {
            "symbol": pa.Column(pl.String, nullable=False),
            "date": pa.Column(pl.Date, nullable=False),
            "open": _price_column(),
            "high": _price_column(),
            "low": _price_column(),
            "close": _price_column(),
            "adj_close": pa.Column(pl.Float64, nullable=True),
            "volume": pa.Column(pl.Float64, checks=[pa.Check.ge(0)]),
        },
        checks=[
            # inf, -inf or NaN in any price or volume: not a number a bar can have
            _df_check(pl.all_horizontal(pl.col(NUMBERS).is_finite()), "schema"),
            _df_check(pl.struct("symbol", "date").is_first_distinct(), "duplicate"),
            _df_check(pl.col("high") >= pl.col("low"), "high_ge_low"),
            _df_check(in_range, "ohlc_in_range"),
            _df_check(
                (pl.col("date").dt.weekday() <= 5) & (pl.col("date") <= today), "trading_day"
            ),
        ],
        name="daily_bars",
    )


def _jumps(factor: float, revert: float) -> tuple[pl.Expr, pl.Expr]:
    """(is a jump from the previous close, is a bad tick) over a panel sorted by (symbol, date)."""
    close = pl.col("close")
    prev = close.shift(1).over("symbol")
    nxt = close.shift(-1).over("symbol")
    jump_up, jump_down = close / prev >= factor, prev / close >= factor
    bad = (jump_up & (close / nxt >= revert)) | (jump_down & (nxt / close >= revert))
    return (jump_up | jump_down).fill_null(False), bad.fill_null(False)


def _stale_run(bars: int) -> pl.Expr:
    """Is a bar in a run of ``bars`` or more consecutive flat zero-volume bars of its symbol,
    over a panel sorted by (symbol, date)."""
    price = pl.col("open")
    flat = (
        (pl.col("high") == price)
        & (pl.col("low") == price)
        & (pl.col("close") == price)
        & (pl.col("volume") == 0)
    )
    # Runs of the whole panel, split by symbol: a run ending one symbol and one starting the
    # next are two runs.
    return flat & (pl.len().over("symbol", flat.rle_id()) >= bars)


def tick_schema(rules: QualitySettings) -> pa.DataFrameSchema:
    """The neighbour rules (bad ticks, stale runs): they run on the rows that passed the row
    rules, sorted by (symbol, date)."""
    _, bad = _jumps(rules.bad_tick_factor, rules.bad_tick_revert_factor)
    return pa.DataFrameSchema(
        checks=[
            _df_check(~bad, "bad_tick"),
            _df_check(~_stale_run(rules.stale_run_bars), "stale_run"),
        ],
        name="daily_bars_ticks",
    )


def _failed_rows(schema: pa.DataFrameSchema, frame: pl.DataFrame) -> pl.DataFrame:
    """Row index and rule of every failure of a schema on a frame (empty when it passes)."""
    empty = pl.DataFrame(schema={"index": pl.Int64, "rule": pl.String})
    try:
        schema.validate(frame, lazy=True)
        return empty
    except SchemaErrors as exc:
        cases = exc.failure_cases
    whole_frame = cases.filter(pl.col("index").is_null())
    if whole_frame.height:
        raise ValueError(
            f"bars do not fit the price schema: {whole_frame.select('column', 'check', 'failure_case').rows()}"
        )
    # Built-in column checks report their own text ("greater_than(0)"), so name them by column.
    rule = (
        pl.when(pl.col("check") == "not_nullable")
        .then(pl.lit("schema"))
        .when(pl.col("column").is_in(["open", "high", "low", "close"]))
        .then(pl.lit("positive_price"))
        .when(pl.col("column") == "volume")
        .then(pl.lit("non_negative_volume"))
        .otherwise(pl.col("check"))
    )
    return cases.select(pl.col("index").cast(pl.Int64), rule.alias("rule"))


@dataclass(frozen=True)
class QualityResult:
    """Outcome of the rules on a batch of bars."""

    valid: pl.DataFrame  # canonical columns, sorted by (symbol, date)
    quarantine: pl.DataFrame  # canonical columns + rule + detail
    warnings: pl.DataFrame  # symbol, date, warning
    checked: pl.DataFrame  # symbol, rows: rows checked per symbol


def _quarantine(frame: pl.DataFrame, failures: pl.DataFrame) -> pl.DataFrame:
    """The failing rows, each once, with its first rule and a detail of all it broke."""
    if failures.is_empty():
        return pl.DataFrame(schema=QUARANTINE_SCHEMA)
    per_row = (
        failures.unique()
        .with_columns(pl.col("rule").replace_strict(_RANK, return_dtype=pl.Int64).alias("rank"))
        .sort("index", "rank")
        .group_by("index", maintain_order=True)
        .agg(pl.col("rule").first(), pl.col("rule").str.join(", ").alias("broken"))
    )
    values = pl.format(
        "broke {}; open={} high={} low={} close={} volume={}",
        "broken",
        *[
            pl.col(c).cast(pl.String).fill_null("null")
            for c in ("open", "high", "low", "close", "volume")
        ],
    )
    return (
        frame.with_row_index("index")
        .with_columns(pl.col("index").cast(pl.Int64))
        .join(per_row, on="index", how="inner")
        .with_columns(values.alias("detail"))
        .select(*PRICE_COLUMNS, "rule", "detail")
    )


def apply_rules(
    bars: pl.DataFrame, rules: QualitySettings, today: dt.date | None = None
) -> QualityResult:
    """Split bars (canonical columns, any order) into valid rows, quarantined rows and warnings."""
    today = today or dt.date.today()
    frame = bars.select(PRICE_COLUMNS).sort("symbol", "date", maintain_order=True)
    checked = frame.group_by("symbol").agg(pl.len().cast(pl.Int64).alias("rows"))

    row_failures = _failed_rows(row_schema(rules, today), frame)
    bad = row_failures["index"].unique()
    passed = (
        frame.with_row_index("index")
        .filter(~pl.col("index").cast(pl.Int64).is_in(bad.implode()))
        .drop("index")
    )

    tick_failures = _failed_rows(tick_schema(rules), passed)
    bad_ticks = tick_failures["index"].unique()
    valid = (
        passed.with_row_index("index")
        .filter(~pl.col("index").cast(pl.Int64).is_in(bad_ticks.implode()))
        .drop("index")
    )

    quarantine = pl.concat(
        [_quarantine(frame, row_failures), _quarantine(passed, tick_failures)], how="vertical"
    ).sort("symbol", "date")

    jump, _ = _jumps(rules.bad_tick_factor, rules.bad_tick_revert_factor)
    warnings = (
        valid.with_columns(
            pl.when(pl.col("volume") == 0).then(pl.lit("zero_volume")).alias("zero_volume"),
            pl.when(jump).then(pl.lit("large_move")).alias("large_move"),
        )
        .unpivot(index=["symbol", "date"], on=["zero_volume", "large_move"], value_name="warning")
        .drop_nulls("warning")
        .select("symbol", "date", "warning")
        .sort("symbol", "date")
    )
    return QualityResult(valid=valid, quarantine=quarantine, warnings=warnings, checked=checked)


def symbol_counts(result: QualityResult) -> dict[str, dict[str, Any]]:
    """Per-symbol counts: rows checked, valid, quarantined by rule, warnings by kind."""
    counts: dict[str, dict[str, Any]] = {
        sym: {"rows_checked": n, "rows_valid": 0, "quarantined": {}, "warnings": {}}
        for sym, n in result.checked.iter_rows()
    }
    for sym, n in result.valid.group_by("symbol").len().iter_rows():
        counts[sym]["rows_valid"] = n
    for sym, rule, n in result.quarantine.group_by("symbol", "rule").len().iter_rows():
        counts[sym]["quarantined"][rule] = n
    for sym, kind, n in result.warnings.group_by("symbol", "warning").len().iter_rows():
        counts[sym]["warnings"][kind] = n
    return counts


def quality_report(
    run_id: str, per_symbol: dict[str, dict[str, Any]], statuses: dict[str, str]
) -> dict[str, Any]:
    """The run's report: counts per rule, per symbol and in total (``raw/reports/<run>/quality.json``)."""
    totals: dict[str, Any] = {
        "rows_checked": 0,
        "rows_valid": 0,
        "rows_quarantined": 0,
        "by_rule": {},
        "warnings": {},
    }
    for entry in per_symbol.values():
        totals["rows_checked"] += entry["rows_checked"]
        totals["rows_valid"] += entry["rows_valid"]
        for rule, n in entry["quarantined"].items():
            totals["by_rule"][rule] = totals["by_rule"].get(rule, 0) + n
            totals["rows_quarantined"] += n
        for kind, n in entry["warnings"].items():
            totals["warnings"][kind] = totals["warnings"].get(kind, 0) + n
    insufficient = sorted(s for s, status in statuses.items() if status == SYMBOL_STATUS_RULE)
    totals["symbols_insufficient"] = len(insufficient)
    return {
        "run_id": run_id,
        "rules": RULES,
        "warnings": WARNINGS,
        "totals": totals,
        "symbols": {
            sym: {**per_symbol[sym], "status": statuses.get(sym)} for sym in sorted(per_symbol)
        },
    }
