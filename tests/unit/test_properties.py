"""Property-based tests (Hypothesis): malformed input never crashes the collectors or the
quality rules, and every input row ends stored or quarantined with a rule."""

from __future__ import annotations

import datetime as dt

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import QualitySettings
from core.data.collectors.local import LocalCollector
from core.data.quality import RULES, apply_rules

TODAY = dt.date(2024, 6, 28)
NUMBERS = st.one_of(
    st.floats(min_value=1e-300, max_value=1e300).map(repr),  # tiny to huge
    st.floats(min_value=0.5, max_value=200).map(lambda x: f"{x:.4f}"),  # ordinary prices
    st.sampled_from(["", "nan", "NaN", "inf", "-inf", "abc", "0", "-1", "1e400", " 12.5 "]),
)
DATES = st.one_of(
    st.dates(dt.date(1990, 1, 1), dt.date(2030, 12, 31)).map(str),  # weekends, future dates
    st.sampled_from(["", "2024-02-30", "2024-13-01", "not a date", "2020-01-02T00:00:00"]),
)
ROWS = st.lists(st.tuples(DATES, NUMBERS, NUMBERS, NUMBERS, NUMBERS, NUMBERS), max_size=40)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=ROWS, columns=st.sampled_from(["yahoo", "kaggle", "stooq"]))
def test_malformed_bars_never_crash_and_every_row_is_accounted_for(tmp_path_factory, rows, columns):
    folder = tmp_path_factory.mktemp("bars")
    header = {
        "yahoo": "Date,Open,High,Low,Close,Volume",
        "kaggle": "date,open,high,low,close,volume",
        "stooq": "Date,Open,High,Low,Close,Volume",
    }[columns]
    lines = [",".join(row) for row in rows]  # duplicated and unordered dates come for free
    (folder / "XYZ.csv").write_text("\n".join([header, *lines]) + "\n")
    bars = LocalCollector(folder).fetch(["XYZ"], dt.date(1900, 1, 1), dt.date(2100, 1, 1)).bars
    result = apply_rules(bars, QualitySettings(), TODAY)
    assert result.valid.height + result.quarantine.height == bars.height == len(rows)
    assert set(result.quarantine["rule"].unique()) <= set(RULES)
    valid = result.valid
    numbers = ["open", "high", "low", "close", "volume"]
    assert valid.select(pl.all_horizontal(pl.col(numbers).is_finite())).to_series().all()
    assert (valid.select(pl.col("open", "high", "low", "close")).min_horizontal() > 0).all()
    assert valid.select(pl.struct("symbol", "date").is_unique().all()).item()
    assert (valid["date"].dt.weekday() <= 5).all() and (valid["date"] <= TODAY).all()
