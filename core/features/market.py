"""The universe's market series: computed once per build over every symbol, joined by date,
so a symbol's market features do not depend on the batch it is built in."""

from __future__ import annotations

import polars as pl

RISKMETRICS_ALPHA = 0.06  # lambda 0.94
MARKET = ("_mkt_r", "_mkt_disp")  # the market series' columns joined in by date


def market_frame(prices: pl.LazyFrame) -> pl.LazyFrame:
    """Per date of the universe: equal-weight mean (``_mkt_r``) and cross-sectional standard
    deviation (``_mkt_disp``) of the symbols' daily log returns, plus the date-level features
    of that series. Computed once over the whole universe, whatever batch a symbol is built in."""
    r = (pl.col("close") / pl.col("close").shift(1)).log().over("symbol")
    m = pl.col("_mkt_r")
    return (
        prices.sort("symbol", "date")
        .select("date", r.alias("_r"))
        .group_by("date")
        .agg(pl.col("_r").mean().alias("_mkt_r"), pl.col("_r").std().alias("_mkt_disp"))
        .sort("date")
        .with_columns(pl.col(*MARKET).fill_null(0.0))
        .with_columns(
            m.pow(2).ewm_mean(alpha=RISKMETRICS_ALPHA, adjust=False).sqrt().alias("mkt_vol_ewm"),
            m.rolling_std(22, min_samples=2).fill_null(0.0).alias("mkt_vol22"),
            pl.col("_mkt_disp")
            .ewm_mean(alpha=RISKMETRICS_ALPHA, adjust=False)
            .alias("mkt_disp_ewm"),
            m.rolling_sum(5, min_samples=1).alias("mkt_ret5"),
            m.rolling_sum(22, min_samples=1).alias("mkt_ret22"),
        )
    )


MARKET_FEATURES = ("mkt_vol_ewm", "mkt_vol22", "mkt_disp_ewm", "mkt_ret5", "mkt_ret22")
