"""What every feature group is written against: windows from the horizon, the rolling
mode, safe arithmetic, and the ``FeatureGroup`` a group module declares.

Rolling windows run either per symbol (``.over("symbol")``) or over the panel sorted by
(symbol, date) with each symbol's first ``warmup`` rows dropped (``masked``): a window that
reaches back into the previous symbol can only end inside the dropped warm-up, so no kept
row mixes symbols. Exponential averages have unbounded memory and always run per symbol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import polars as pl

WindowMode = Literal["over", "masked"]
WindowChoice = Literal["over", "masked", "auto"]
EPS = 1e-12  # below this a denominator (or a variance) counts as zero
TARGET = "y"
ROW_IN_SYMBOL, ROW_IN_PANEL = "_i", "_g"  # helper columns of the query


@dataclass(frozen=True)
class Windows:
    """Window lengths derived from the forecast horizon, as in the original design."""

    horizon: int

    @property
    def short(self) -> int:
        return 3 * self.horizon

    @property
    def long(self) -> int:
        return 5 * self.horizon

    @property
    def mid(self) -> int:
        return (self.short + self.long) // 2

    @property
    def p1(self) -> int:
        return 2 * self.horizon

    @property
    def p2(self) -> int:
        return 3 * self.horizon

    @property
    def p3(self) -> int:
        return 4 * self.horizon

    @property
    def atr(self) -> int:
        return 2 * self.horizon

    @property
    def slope(self) -> int:
        return 2 * self.horizon

    @property
    def persist(self) -> int:
        return 3 * self.horizon

    def as_dict(self) -> dict[str, int]:
        names = ["horizon", "short", "long", "mid", "p1", "p2", "p3", "atr", "slope", "persist"]
        return {name: getattr(self, name) for name in names}


class Ctx:
    """What a group's expressions need: windows and the rolling mode."""

    def __init__(self, horizon: int, mode: WindowMode):
        self.w = Windows(horizon)
        self.mode = mode

    def by_symbol(self, expr: pl.Expr) -> pl.Expr:
        """A shifting or rolling expression, per symbol or over the masked panel."""
        return expr.over("symbol") if self.mode == "over" else expr

    def lag(self, expr: pl.Expr, n: int = 1) -> pl.Expr:
        """The value n rows earlier in the same symbol (null before its first row)."""
        if self.mode == "over":
            return expr.shift(n).over("symbol")
        return pl.when(pl.col(ROW_IN_SYMBOL) >= n).then(expr.shift(n))

    def ewm_mean(self, expr: pl.Expr, span: int) -> pl.Expr:
        return expr.ewm_mean(alpha=2 / (span + 1), adjust=False, min_samples=1).over("symbol")

    def ewm_std(self, expr: pl.Expr, span: int) -> pl.Expr:
        """sqrt(EW(x^2) - EW(x)^2), recursive weights (adjust=False), per symbol."""
        return expr.ewm_std(alpha=2 / (span + 1), adjust=False, bias=True, min_samples=1).over(
            "symbol"
        )


def safe_div(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """num / den, and 0 where den is ~0 or the result is not finite (an undefined ratio)."""
    out = pl.when(den.abs() > EPS).then(num / den).otherwise(0.0)
    return pl.when(out.is_finite()).then(out).otherwise(0.0)


def finite(expr: pl.Expr) -> pl.Expr:
    """0 where an expression is NaN or infinite (correlations of flat windows)."""
    return pl.when(expr.is_finite()).then(expr).otherwise(0.0)


Stages = list[dict[str, pl.Expr]]


@dataclass(frozen=True)
class FeatureGroup:
    """A named set of features: expression stages (each stage may use the columns of the
    earlier ones; names starting with '_' are intermediates, dropped from the output) and the
    warm-up rows they need."""

    name: str
    stages: Callable[[Ctx], Stages]
    warmup: Callable[[Windows], int]
    summary: str
    categorical: tuple[str, ...] = ()
    calendar: tuple[str, ...] = ()  # date-derived outputs: they drift by design (no drift alerts)
    fastest: WindowMode = "over"  # the mode `auto` picks, as measured by benchmarks/features.py
    market: bool = False  # joins the universe's market series (core.features.market)
