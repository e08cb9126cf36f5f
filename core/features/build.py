"""The feature query: every group's stages over the (symbol, date) panel as one lazy query.

Every feature at date t uses rows at or before t only. The target is
``y = log(close[t+h] / close[t])``; the last h rows of each symbol keep a null target
(they are what prediction uses). Each symbol's first warm-up rows (until its longest
window is full) are dropped.
"""

from __future__ import annotations

import polars as pl

from core.features.context import ROW_IN_PANEL, ROW_IN_SYMBOL, TARGET, Ctx, Stages, WindowChoice
from core.features.market import market_frame
from core.features.registry import group, needs_market, output_columns, warmup_rows


def target_expr(horizon: int) -> pl.Expr:
    """The forecast target: the log return from a bar's close to the close h bars later (per
    symbol, over its trading rows); null until that bar exists."""
    return (pl.col("close").shift(-horizon) / pl.col("close")).log().over("symbol")


def build_features(
    prices: pl.LazyFrame,
    groups: list[str],
    horizon: int = 3,
    window_mode: WindowChoice = "auto",
    market: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """The feature table: ``symbol, date, <features of the groups>, y`` (one lazy query).

    Input: valid bars (``core.data.prices`` columns) in any row order. ``window_mode="auto"``
    runs each group in the mode measured fastest for it. Groups that need the market series
    take ``market`` (``market_frame`` of the whole universe) or, when it is None, compute it
    from ``prices``, which is right only when ``prices`` is the whole universe.
    """
    if horizon < 1:
        raise ValueError("horizon must be >= 1")
    frame = prices.sort("symbol", "date")
    if needs_market(groups):
        market = market_frame(prices) if market is None else market
        frame = frame.join(market, on="date", how="left", maintain_order="left")
    frame = frame.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias(ROW_IN_PANEL),
        pl.int_range(pl.len(), dtype=pl.Int64).over("symbol").alias(ROW_IN_SYMBOL),
    )
    staged: Stages = []
    for name in groups:
        spec = group(name)
        ctx = Ctx(horizon, spec.fastest if window_mode == "auto" else window_mode)
        for depth, stage in enumerate(spec.stages(ctx)):
            if depth == len(staged):
                staged.append({})
            staged[depth].update(stage)
    for stage in staged:
        frame = frame.with_columns(**stage)
    target = target_expr(horizon).alias(TARGET)
    columns = output_columns(groups, horizon)
    return (
        frame.with_columns(target)
        .filter(pl.col(ROW_IN_SYMBOL) >= warmup_rows(groups, horizon))
        .select("symbol", "date", *[c for c in columns if c != "symbol"], TARGET)
    )
