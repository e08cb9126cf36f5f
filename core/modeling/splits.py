"""Time splits: train / validation / calibration / test by date, with an embargo.

A target at date t spans (t, t+h], so the first h trading dates of every segment after the
first are dropped: no target of one segment overlaps the next segment's dates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

import polars as pl

from core.errors import InsufficientDataError

SEGMENTS = ("train", "val", "cal", "test")


@dataclass(frozen=True)
class Splits:
    """First and last date (inclusive) of each segment."""

    train: tuple[dt.date, dt.date]
    val: tuple[dt.date, dt.date]
    cal: tuple[dt.date, dt.date]
    test: tuple[dt.date, dt.date]

    def as_dict(self) -> dict[str, list[str]]:
        return {k: [str(a), str(b)] for k, (a, b) in asdict(self).items()}


def make_splits(
    dates: pl.Series,
    embargo: int,
    lookback_days: int = 1960,
    fractions: tuple[float, float, float, float] = (0.6, 0.1, 0.2, 0.1),
) -> Splits:
    """Split the labelled trading dates of the last ``lookback_days`` calendar days."""
    if abs(sum(fractions) - 1) > 1e-9 or min(fractions) <= 0:
        raise ValueError(f"split fractions must be positive and sum to 1, got {fractions}")
    days = dates.drop_nulls().unique().sort()
    if days.is_empty():
        raise InsufficientDataError(
            "no labelled rows to split (every target is still unknown): collect a longer history"
        )
    last: dt.date = days[-1]
    days = days.filter(days >= last - dt.timedelta(days=lookback_days)).to_list()
    n = len(days)
    cuts = [0]
    for f in fractions:
        cuts.append(cuts[-1] + round(f * n))
    cuts[-1] = n
    segments = []
    for i, (a, b) in enumerate(pairwise(cuts)):
        start = a + (embargo if i else 0)
        if b - start < 1:
            raise InsufficientDataError(
                f"too few dates ({n}) for the {SEGMENTS[i]} segment after an embargo of {embargo}"
            )
        segments.append((days[start], days[b - 1]))
    return Splits(*segments)


def segment_expr(splits: Splits) -> pl.Expr:
    """The segment name of each row by its date (null: outside, or embargoed)."""
    expr = pl.lit(None, dtype=pl.String)
    for name in reversed(SEGMENTS):
        a, b = getattr(splits, name)
        expr = pl.when(pl.col("date").is_between(a, b)).then(pl.lit(name)).otherwise(expr)
    return expr.alias("segment")


def check_segments(
    segments: dict[str, pl.DataFrame],
    min_dates: int,
    min_rows: int,
    splits: Any,
    names: tuple[str, ...] = SEGMENTS,
) -> None:
    """Every segment holds at least ``min_dates`` dates and ``min_rows`` rows, or an error
    names each short segment, what it holds, and its date span."""
    short = []
    for name in names:
        frame = segments[name]
        dates = frame["date"].n_unique()
        if dates < min_dates or frame.height < min_rows:
            a, b = getattr(splits, name)
            short.append(f"{name} {a}..{b}: {frame.height} rows on {dates} dates")
    if short:
        raise InsufficientDataError(
            f"too little data to train (each segment needs {min_dates} dates and {min_rows} rows): "
            + "; ".join(short)
            + ": collect a longer history or more symbols, or raise model.lookback_days"
        )
