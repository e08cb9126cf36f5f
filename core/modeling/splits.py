"""Time splits: train / validation / calibration / test by date, with an embargo.

A target at date t spans (t, t+h], so the first h trading dates of every segment after the
first are dropped: no target of one segment overlaps the next segment's dates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from itertools import pairwise

import polars as pl

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
    days = dates.unique().sort()
    days = days.filter(days >= days.max() - dt.timedelta(days=lookback_days)).to_list()  # pyright: ignore[reportOperatorIssue]
    n = len(days)
    cuts = [0]
    for f in fractions:
        cuts.append(cuts[-1] + round(f * n))
    cuts[-1] = n
    segments = []
    for i, (a, b) in enumerate(pairwise(cuts)):
        start = a + (embargo if i else 0)
        if b - start < 1:
            raise ValueError(
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
