"""The ``alpha158`` group: Qlib's Alpha158 with Qlib's formulas and names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import polars as pl

from core.features.context import (
    EPS,
    ROW_IN_PANEL,
    ROW_IN_SYMBOL,
    Ctx,
    FeatureGroup,
    Stages,
    Windows,
    finite,
    safe_div,
)

ALPHA158_WINDOWS = (5, 10, 20, 30, 60)


def alpha158_features(c: Ctx) -> Stages:
    """Qlib's Alpha158 (qlib/contrib/data/loader.py, Alpha158DL), same names and formulas.

    VWAP is not in daily Yahoo bars: the typical price (high+low+close)/3 stands in.
    Where Qlib leaves NaN (correlation or R-squared of a flat window), this gives 0.
    RANK is the percentile rank of today's close in the window (pandas ``rank(pct=True)``).
    Rolling sums shared by several operators are computed once per window, in a first stage.
    """
    o, hi, lo, cl, v = (pl.col(n) for n in ("open", "high", "low", "close", "volume"))
    roll = c.by_symbol
    prev_c, prev_v = c.lag(cl), c.lag(v)
    log_v = (v + 1).log()
    d_log_v = finite((v / prev_v + 1).log())
    weighted = (cl / prev_c - 1).abs() * v
    inputs = {
        "up_c": (cl - prev_c).clip(lower_bound=0),
        "dn_c": (prev_c - cl).clip(lower_bound=0),
        "abs_c": (cl - prev_c).abs(),
        "up_v": (v - prev_v).clip(lower_bound=0),
        "dn_v": (prev_v - v).clip(lower_bound=0),
        "abs_v": (v - prev_v).abs(),
        "gain": (cl > prev_c).cast(pl.Float64),
        "loss": (cl < prev_c).cast(pl.Float64),
        "c": cl,
        "ic": pl.col(ROW_IN_SYMBOL).cast(pl.Float64) * cl,
        # CORR: close with log volume; CORD: close ratio with log volume ratio
        "lv": log_v,
        "lv2": log_v * log_v,
        "clv": cl * log_v,
        "cr": cl / prev_c,
        "cr2": (cl / prev_c) ** 2,
        "dlv": d_log_v,
        "dlv2": d_log_v * d_log_v,
        "crdlv": cl / prev_c * d_log_v,
    }
    shared: dict[str, pl.Expr] = {}
    for d in ALPHA158_WINDOWS:
        shared |= {f"_a_sum_{k}_{d}": roll(e.rolling_sum(d)) for k, e in inputs.items()}
        shared |= {
            f"_a_var_c_{d}": roll(cl.rolling_var(d)),
            f"_a_imax_{d}": _arg_extreme(hi, d, "max"),
            f"_a_imin_{d}": _arg_extreme(lo, d, "min"),
            f"_a_max_h_{d}": roll(hi.rolling_max(d)),
            f"_a_min_l_{d}": roll(lo.rolling_min(d)),
            f"_a_w_mean_{d}": roll(weighted.rolling_mean(d)),
            f"_a_w_std_{d}": roll(weighted.rolling_std(d)),
        }

    def s(name: str, d: int) -> pl.Expr:
        return pl.col(f"_a_{name}_{d}")

    def ratio(a: str, b: str, d: int) -> pl.Expr:
        return s(f"sum_{a}", d) / (s(f"sum_{b}", d) + EPS)

    def sxy_sxx_syy(d: int) -> tuple[pl.Expr, float, pl.Expr]:
        """Sums of the regression of close on time (x = row number in the symbol) over the
        window. Past the warm-up a window lies in one symbol, so sum(x) is d*x_t - d(d-1)/2."""
        sum_x = d * pl.col(ROW_IN_SYMBOL).cast(pl.Float64) - d * (d - 1) / 2
        sxy = s("sum_ic", d) - sum_x * s("sum_c", d) / d
        return sxy, d * (d * d - 1) / 12.0, s("var_c", d) * (d - 1)

    def beta(d: int) -> pl.Expr:
        sxy, sxx, _ = sxy_sxx_syy(d)
        return sxy / sxx

    def rsqr(d: int) -> pl.Expr:
        sxy, sxx, syy = sxy_sxx_syy(d)
        # Qlib leaves NaN where the window's std is below 2e-5; here 0.
        flat = syy / (d - 1) < (2e-5) ** 2
        return pl.when(flat).then(0.0).otherwise(safe_div(sxy * sxy, sxx * syy))

    def resi(d: int) -> pl.Expr:
        """Residual of today's close from the window's fitted line."""
        return cl - s("sum_c", d) / d - beta(d) * (d - 1) / 2

    def corr(x: str, y: str, d: int) -> pl.Expr:
        """Pearson correlation from window sums; 0 for a flat window (Qlib: NaN when a std < 2e-5)."""
        sx, sy = s(f"sum_{x}", d), s(f"sum_{y}", d)
        cov = s(f"sum_{x}{y}", d) - sx * sy / d
        vx = s(f"sum_{x}2", d) - sx * sx / d if x != "c" else s("var_c", d) * (d - 1)
        vy = s(f"sum_{y}2", d) - sy * sy / d
        flat = (vx / (d - 1) < (2e-5) ** 2) | (vy / (d - 1) < (2e-5) ** 2)
        return pl.when(flat).then(0.0).otherwise(safe_div(cov, (vx * vy).sqrt()).clip(-1.0, 1.0))

    ops: dict[str, Callable[[int], pl.Expr]] = {
        "ROC": lambda d: c.lag(cl, d) / cl,
        "MA": lambda d: s("sum_c", d) / d / cl,
        "STD": lambda d: s("var_c", d).sqrt() / cl,
        "BETA": lambda d: beta(d) / cl,
        "RSQR": rsqr,
        "RESI": lambda d: resi(d) / cl,
        "MAX": lambda d: s("max_h", d) / cl,
        "MIN": lambda d: s("min_l", d) / cl,
        "QTLU": lambda d: roll(cl.rolling_quantile(0.8, "linear", d)) / cl,
        "QTLD": lambda d: roll(cl.rolling_quantile(0.2, "linear", d)) / cl,
        "RANK": lambda d: roll(cl.rolling_rank(d)) / d,
        "RSV": lambda d: (cl - s("min_l", d)) / (s("max_h", d) - s("min_l", d) + EPS),
        "IMAX": lambda d: s("imax", d) / d,
        "IMIN": lambda d: s("imin", d) / d,
        "IMXD": lambda d: (s("imax", d) - s("imin", d)) / d,
        "CORR": lambda d: corr("c", "lv", d),
        "CORD": lambda d: corr("cr", "dlv", d),
        "CNTP": lambda d: s("sum_gain", d) / d,
        "CNTN": lambda d: s("sum_loss", d) / d,
        "CNTD": lambda d: (s("sum_gain", d) - s("sum_loss", d)) / d,
        "SUMP": lambda d: ratio("up_c", "abs_c", d),
        "SUMN": lambda d: ratio("dn_c", "abs_c", d),
        "SUMD": lambda d: (s("sum_up_c", d) - s("sum_dn_c", d)) / (s("sum_abs_c", d) + EPS),
        "VMA": lambda d: roll(v.rolling_mean(d)) / (v + EPS),
        "VSTD": lambda d: roll(v.rolling_std(d)) / (v + EPS),
        "WVMA": lambda d: s("w_std", d) / (s("w_mean", d) + EPS),
        "VSUMP": lambda d: ratio("up_v", "abs_v", d),
        "VSUMN": lambda d: ratio("dn_v", "abs_v", d),
        "VSUMD": lambda d: (s("sum_up_v", d) - s("sum_dn_v", d)) / (s("sum_abs_v", d) + EPS),
    }
    out: dict[str, pl.Expr] = {
        "KMID": (cl - o) / o,
        "KLEN": (hi - lo) / o,
        "KMID2": (cl - o) / (hi - lo + EPS),
        "KUP": (hi - pl.max_horizontal(o, cl)) / o,
        "KUP2": (hi - pl.max_horizontal(o, cl)) / (hi - lo + EPS),
        "KLOW": (pl.min_horizontal(o, cl) - lo) / o,
        "KLOW2": (pl.min_horizontal(o, cl) - lo) / (hi - lo + EPS),
        "KSFT": (2 * cl - hi - lo) / o,
        "KSFT2": (2 * cl - hi - lo) / (hi - lo + EPS),
        "OPEN0": o / cl,
        "HIGH0": hi / cl,
        "LOW0": lo / cl,
        "VWAP0": (hi + lo + cl) / 3 / cl,
    }
    out |= {f"{name}{d}": op(d) for name, op in ops.items() for d in ALPHA158_WINDOWS}
    return [shared, out]


def _arg_extreme(expr: pl.Expr, d: int, kind: Literal["max", "min"]) -> pl.Expr:
    """1-based position of the window's first max (min), oldest row = 1, as Qlib's IdxMax.

    Runs on the panel row number: windows that reach into the previous symbol end in the
    warm-up rows, which are dropped."""
    agg = expr.arg_max() if kind == "max" else expr.arg_min()
    return (agg.rolling(index_column=ROW_IN_PANEL, period=f"{d}i") + 1).cast(pl.Float64)


def alpha158_warmup(w: Windows) -> int:
    return max(ALPHA158_WINDOWS) + 1


GROUP = FeatureGroup(
    "alpha158",
    alpha158_features,
    alpha158_warmup,
    fastest="masked",
    summary="Qlib's Alpha158: KBAR, price ratios and 29 rolling operators over 5-60 days",
)
