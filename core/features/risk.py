"""The ``risk`` group: volatility in return units, the scale of the return distribution."""

from __future__ import annotations

import math

import polars as pl

from core.features.context import Ctx, FeatureGroup, Stages, Windows, safe_div
from core.features.market import MARKET_FEATURES, RISKMETRICS_ALPHA

RISK_WINDOWS = (5, 22, 63, 126)
# Inputs of the volatility forecast of volatility-scaled models (core.modeling.models.scaled):
# the logs of this group's scale estimates, and its returns as they are.
SCALE_FEATURES = (
    "vol_ewm",
    "vol_cc5",
    "vol_cc22",
    "vol_cc63",
    "vol_cc126",
    "vol_pk1",
    "vol_pk5",
    "vol_pk22",
    "vol_gk22",
    "vol_gap",
    "absmax22",
    "vol_idio",
    "mkt_vol_ewm",
    "mkt_vol22",
    "mkt_disp_ewm",
)
RETURN_FEATURES = ("ret5", "mkt_ret5", "mkt_ret22")


def risk_features(c: Ctx) -> Stages:
    """Volatility in return units, the scale of the return distribution: close-to-close
    (RiskMetrics EWMA, rolling 5/22/63/126 days), range-based (Parkinson 1/5/22 days,
    Garman-Klass 22 days), overnight gaps, the largest recent move; and the market's:
    its volatility, dispersion and trend (``market_frame``), the symbol's beta and
    idiosyncratic volatility. ``core.modeling.models.scaled`` fits its volatility forecast
    on ``SCALE_FEATURES`` and ``RETURN_FEATURES``."""
    cl, o, hi, lo = (pl.col(n) for n in ("close", "open", "high", "low"))
    prev_close = c.lag(cl)
    base = {
        "_rr": (cl / prev_close).log().fill_null(0.0),
        "_gap": (o / prev_close).log().fill_null(0.0),
        "_pk": (hi / lo).log().pow(2) / (4 * math.log(2)),
        "_gk": (0.5 * (hi / lo).log().pow(2) - (2 * math.log(2) - 1) * (cl / o).log().pow(2)).clip(
            lower_bound=0.0
        ),
    }
    r, m = pl.col("_rr"), pl.col("_mkt_r")

    def root(mean_square: pl.Expr) -> pl.Expr:
        """sqrt, with a sliding sum's rounding below zero (about -1e-20) taken as 0."""
        return mean_square.clip(lower_bound=0.0).sqrt()

    def ewm_vol(x: pl.Expr) -> pl.Expr:
        return x.pow(2).ewm_mean(alpha=RISKMETRICS_ALPHA, adjust=False).over("symbol").sqrt()

    out = {
        "vol_ewm": ewm_vol(r),
        **{f"vol_cc{d}": c.by_symbol(r.rolling_std(d)) for d in RISK_WINDOWS},
        **{f"vol_pk{d}": root(c.by_symbol(pl.col("_pk").rolling_mean(d))) for d in (1, 5, 22)},
        "vol_gk22": root(c.by_symbol(pl.col("_gk").rolling_mean(22))),
        "vol_gap": ewm_vol(pl.col("_gap")),
        "absmax22": c.by_symbol(r.abs().rolling_max(22)),
        "ret5": c.by_symbol(r.rolling_sum(5)),
        "vol_idio": ewm_vol(r - m),
        "beta126": safe_div(
            c.by_symbol((r * m).rolling_mean(126)), c.by_symbol(m.pow(2).rolling_mean(126))
        ),
    }
    # The market features arrive by the join in build_features; listed here as outputs.
    return [base, out | {name: pl.col(name) for name in MARKET_FEATURES}]


def risk_warmup(w: Windows) -> int:
    return max(RISK_WINDOWS) + 1


GROUP = FeatureGroup(
    "risk",
    risk_features,
    risk_warmup,
    fastest="over",
    market=True,
    summary="close-to-close, range-based and market volatility, beta, idiosyncratic volatility",
)
