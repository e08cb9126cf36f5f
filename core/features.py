"""Feature transforms: named groups of Polars expressions over the (symbol, date) panel.

The whole computation is one lazy query over the panel sorted by (symbol, date). Rolling
windows run either per symbol (``.over("symbol")``) or over the sorted panel with each
symbol's first ``warmup`` rows dropped (``window_mode="masked"``): a window that reaches
back into the previous symbol can only end inside the dropped warm-up, so no kept row
mixes symbols. Exponential averages have unbounded memory and always run per symbol.

Every feature at date t uses rows at or before t only. The target is
``y = log(close[t+h] / close[t])``; the last h rows of each symbol keep a null target
(they are what prediction uses).
"""

from __future__ import annotations

import hashlib
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pandera.polars as pa
import polars as pl

WindowMode = Literal["over", "masked"]
WindowChoice = Literal["over", "masked", "auto"]
EPS = 1e-12
TARGET = "y"
_I, _G = "_i", "_g"  # row number within the symbol, row number in the panel


@dataclass(frozen=True)
class Windows:
    """Window lengths derived from the horizon h, as in the original design."""

    h: int

    @property
    def short(self) -> int:
        return 3 * self.h

    @property
    def long(self) -> int:
        return 5 * self.h

    @property
    def mid(self) -> int:
        return (self.short + self.long) // 2

    @property
    def p1(self) -> int:
        return 2 * self.h

    @property
    def p2(self) -> int:
        return 3 * self.h

    @property
    def p3(self) -> int:
        return 4 * self.h

    @property
    def atr(self) -> int:
        return 2 * self.h

    @property
    def slope(self) -> int:
        return 2 * self.h

    @property
    def persist(self) -> int:
        return 3 * self.h

    def as_dict(self) -> dict[str, int]:
        names = ["h", "short", "long", "mid", "p1", "p2", "p3", "atr", "slope", "persist"]
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
        return pl.when(pl.col(_I) >= n).then(expr.shift(n))

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


# -- group: seed ---------------------------------------------------------------------------
def _seed_base(c: Ctx) -> dict[str, pl.Expr]:
    """Intermediate columns the seed features share (computed once, dropped afterwards)."""
    w = c.w
    close, high, low = pl.col("close"), pl.col("high"), pl.col("low")
    prev_close = c.lag(close)
    r = (close / prev_close).log()
    true_range = pl.max_horizontal(high - low, (high - prev_close).abs(), (low - prev_close).abs())

    def mid_range(n: int) -> pl.Expr:
        return (c.by_symbol(high.rolling_max(n)) + c.by_symbol(low.rolling_min(n))) / 2

    return {
        "_r": r,
        "_dv": close * pl.col("volume"),
        "_tr": true_range,
        "_tenkan": mid_range(w.p1),
        "_kijun": mid_range(w.p2),
        "_span_b": mid_range(w.p3),
    }


def _seed_base2(c: Ctx) -> dict[str, pl.Expr]:
    w = c.w
    r = pl.col("_r")
    span_a = (pl.col("_tenkan") + pl.col("_kijun")) / 2
    return {
        "_span_a": span_a,
        "_cloud_top": pl.max_horizontal(span_a, pl.col("_span_b")),
        "_cloud_bot": pl.min_horizontal(span_a, pl.col("_span_b")),
        "_atr": c.by_symbol(pl.col("_tr").rolling_mean(w.atr)),
        "_vol_short": c.ewm_std(r, w.short),
        "_vol_long": c.ewm_std(r, w.long),
        "_mom_long": c.by_symbol(r.rolling_sum(w.long)),
        "_mom_short": c.by_symbol(r.rolling_sum(w.short)),
    }


def seed_features(c: Ctx) -> list[dict[str, pl.Expr]]:
    """The original design's 48 model inputs (symbol included), in dependency stages.

    Fixes of the original's known defects: ``vol_ratio`` puts the epsilon inside the
    division; ``log_returns_ratio`` subtracts cumulative returns, not lagged log prices;
    ``atr`` and the six slopes are divided by close so that they compare across symbols.
    """
    w = c.w
    r, close = pl.col("_r"), pl.col("close")
    up, down = r.clip(lower_bound=0), (-r).clip(lower_bound=0)

    def z(n: int) -> pl.Expr:
        return safe_div(r - c.by_symbol(r.rolling_mean(n)), c.by_symbol(r.rolling_std(n)))

    stats = {
        "month": pl.col("date").dt.month().cast(pl.Float64),
        "day_of_week": pl.col("date").dt.weekday().cast(pl.Float64),
        "day_of_year": pl.col("date").dt.ordinal_day().cast(pl.Float64),
        # financial
        "log_returns_d": r,
        "log_returns_ratio": pl.col("_mom_short") - pl.col("_mom_long"),
        "rsi_ewm": 100
        * safe_div(c.ewm_mean(up, w.mid), c.ewm_mean(up, w.mid) + c.ewm_mean(down, w.mid))
        + pl.when(c.ewm_mean(up, w.mid) + c.ewm_mean(down, w.mid) <= EPS).then(50.0).otherwise(0.0),
        "sortino_ratio": safe_div(
            c.by_symbol(r.rolling_mean(w.mid)),
            c.by_symbol(r.clip(upper_bound=0).rolling_std(w.mid)),
        ),
        "sharpe_ratio_proxy": safe_div(
            c.by_symbol(r.rolling_sum(w.mid)), c.by_symbol(r.rolling_std(w.mid))
        ),
        # liquidity
        "amihud_illiq": c.by_symbol(
            (r.abs() / pl.col("_dv").clip(lower_bound=1.0)).rolling_mean(w.short)
        )
        * 1e6,
        "turnover_proxy": pl.col("_dv") / (c.by_symbol(pl.col("_dv").rolling_mean(w.long)) + 1.0),
        # statistical
        "kurtosis_ratio": safe_div(
            c.by_symbol(r.rolling_kurtosis(w.long)), c.by_symbol(r.rolling_kurtosis(w.short))
        ),
        "skew_ratio": safe_div(
            c.by_symbol(r.rolling_skew(w.long)), c.by_symbol(r.rolling_skew(w.short))
        ),
        "zscore_ratio": safe_div(z(w.long), z(w.short)),
        "autocorr_r2": _autocorr_r2(c),
        "iqr_vol": c.by_symbol(r.rolling_quantile(0.9, "linear", 4 * w.h))
        - c.by_symbol(r.rolling_quantile(0.1, "linear", 4 * w.h)),
        # momentum
        "long_short_momentum": pl.col("_mom_long") - pl.col("_mom_short"),
        "cmo": 100
        * safe_div(
            c.by_symbol(up.rolling_sum(w.long)) - c.by_symbol(down.rolling_sum(w.long)),
            c.by_symbol(up.rolling_sum(w.long)) + c.by_symbol(down.rolling_sum(w.long)),
        ),
        "risk_adj_momentum": safe_div(
            pl.col("_mom_long") - pl.col("_mom_short"), pl.col("_vol_long")
        ),
        # volatility
        "vol_ratio": safe_div(c.lag(pl.col("_vol_long")), c.lag(pl.col("_vol_short"))),
        "vol_of_vol_ewm": c.by_symbol(pl.col("_vol_short").rolling_std(w.long)),
        "vol_expansion": safe_div(pl.col("_vol_long"), c.lag(pl.col("_vol_long"), w.long)),
    }

    lines = {
        "tenkan": pl.col("_tenkan"),
        "kijun": pl.col("_kijun"),
        "span_a": pl.col("_span_a"),
        "span_b": pl.col("_span_b"),
        "cloud_top": pl.col("_cloud_top"),
        "cloud_bot": pl.col("_cloud_bot"),
    }
    atr = pl.col("_atr")
    top, bot, tenkan, kijun = (
        lines["cloud_top"],
        lines["cloud_bot"],
        lines["tenkan"],
        lines["kijun"],
    )
    above, below = (close > top).cast(pl.Float64), (close < bot).cast(pl.Float64)
    twist = (pl.col("_span_a") - pl.col("_span_b")).sign()

    def crossed(a: pl.Expr, b: pl.Expr) -> pl.Expr:
        """a moved from at-or-below b to above b today."""
        return ((a > b) & (c.lag(a) <= c.lag(b))).cast(pl.Float64)

    def scaled(expr: pl.Expr) -> pl.Expr:
        return safe_div(expr, atr)

    ichimoku = {
        f"{name}_slope": (line - c.lag(line, w.slope)) / close for name, line in lines.items()
    }
    ichimoku |= {
        "above_cloud": above,
        "between_cloud": 1.0 - above - below,
        "below_cloud": below,
        "above_cloud_persist": c.by_symbol(above.rolling_mean(w.persist)),
        "below_cloud_persist": c.by_symbol(below.rolling_mean(w.persist)),
        "tenkan_cross_up": crossed(tenkan, kijun),
        "tenkan_cross_dn": crossed(kijun, tenkan),
        "price_break_up": crossed(close, top),
        "price_break_dn": crossed(bot, close),
        "twist_event": (twist != c.lag(twist)).cast(pl.Float64),
        "twist_recent": c.by_symbol(
            (twist != c.lag(twist)).cast(pl.Float64).rolling_max(w.persist)
        ),
        "bull_strength": pl.mean_horizontal(
            above,
            (tenkan > kijun).cast(pl.Float64),
            (pl.col("_span_a") > pl.col("_span_b")).cast(pl.Float64),
            (close > kijun).cast(pl.Float64),
        ),
        "bear_strength": pl.mean_horizontal(
            below,
            (tenkan < kijun).cast(pl.Float64),
            (pl.col("_span_a") < pl.col("_span_b")).cast(pl.Float64),
            (close < kijun).cast(pl.Float64),
        ),
        "tenkan_kijun_spread_atr": scaled(tenkan - kijun),
        "price_above_cloud_atr": scaled((close - top).clip(lower_bound=0)),
        "price_below_cloud_atr": scaled((bot - close).clip(lower_bound=0)),
        "cloud_thickness_atr": scaled(top - bot),
        "price_vs_lead_top_atr": scaled(close - c.lag(top, w.p2)),
        "price_vs_lead_bot_atr": scaled(close - c.lag(bot, w.p2)),
        "atr": atr / close,
    }
    return [_seed_base(c), _seed_base2(c), stats, ichimoku]


def _autocorr_r2(c: Ctx) -> pl.Expr:
    """Correlation of r^2 with r^2 lagged h over the last h rows, clipped to [-1, 1], 0 when
    undefined. Two-pass over explicit lags: h is small, and a sliding-sum correlation of
    tiny, nearly equal squares is numerically meaningless."""
    h, r2 = c.w.h, pl.col("_r").pow(2)
    xs = [c.lag(r2, k) for k in range(h)]
    ys = [c.lag(r2, h + k) for k in range(h)]
    mx, my = pl.sum_horizontal(xs) / h, pl.sum_horizontal(ys) / h
    cov = pl.sum_horizontal([(x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)])
    vx = pl.sum_horizontal([(x - mx) ** 2 for x in xs])
    vy = pl.sum_horizontal([(y - my) ** 2 for y in ys])
    scale_x, scale_y = pl.sum_horizontal([x**2 for x in xs]), pl.sum_horizontal([y**2 for y in ys])
    defined = (vx > 1e-12 * scale_x) & (vy > 1e-12 * scale_y) & (vx > 0) & (vy > 0)
    return pl.when(defined).then(cov / (vx * vy).sqrt()).otherwise(0.0).clip(-1.0, 1.0)


def seed_warmup(w: Windows) -> int:
    """Rows before every seed window is full: vol_expansion needs an EWM of `long` days
    compared with itself `long` days earlier, after the first return."""
    return 2 * w.long + 1


# -- group: alpha158 -------------------------------------------------------------------------
ALPHA158_WINDOWS = (5, 10, 20, 30, 60)


def alpha158_features(c: Ctx) -> list[dict[str, pl.Expr]]:
    """Qlib's Alpha158 (qlib/contrib/data/loader.py, Alpha158DL), same names and formulas.

    VWAP is not in daily Yahoo bars: the typical price (high+low+close)/3 stands in.
    Where Qlib leaves NaN (correlation or R-squared of a flat window), this gives 0.
    RANK is the percentile rank of today's close in the window (pandas ``rank(pct=True)``).
    Rolling sums shared by several operators are computed once per window, in a first stage.
    """
    o, h, lo, cl, v = (pl.col(n) for n in ("open", "high", "low", "close", "volume"))
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
        "ic": pl.col(_I).cast(pl.Float64) * cl,
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
            f"_a_imax_{d}": _arg_extreme(h, d, "max"),
            f"_a_imin_{d}": _arg_extreme(lo, d, "min"),
            f"_a_max_h_{d}": roll(h.rolling_max(d)),
            f"_a_min_l_{d}": roll(lo.rolling_min(d)),
            f"_a_w_mean_{d}": roll(weighted.rolling_mean(d)),
            f"_a_w_std_{d}": roll(weighted.rolling_std(d)),
        }

    def s(name: str, d: int) -> pl.Expr:
        return pl.col(f"_a_{name}_{d}")

    def ratio(a: str, b: str, d: int) -> pl.Expr:
        return s(f"sum_{a}", d) / (s(f"sum_{b}", d) + 1e-12)

    def sxy_sxx_syy(d: int) -> tuple[pl.Expr, float, pl.Expr]:
        """Sums of the regression of close on time (x = row number in the symbol) over the
        window. Past the warm-up a window lies in one symbol, so sum(x) is d*x_t - d(d-1)/2."""
        sum_x = d * pl.col(_I).cast(pl.Float64) - d * (d - 1) / 2
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
        "RSV": lambda d: (cl - s("min_l", d)) / (s("max_h", d) - s("min_l", d) + 1e-12),
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
        "SUMD": lambda d: (s("sum_up_c", d) - s("sum_dn_c", d)) / (s("sum_abs_c", d) + 1e-12),
        "VMA": lambda d: roll(v.rolling_mean(d)) / (v + 1e-12),
        "VSTD": lambda d: roll(v.rolling_std(d)) / (v + 1e-12),
        "WVMA": lambda d: s("w_std", d) / (s("w_mean", d) + 1e-12),
        "VSUMP": lambda d: ratio("up_v", "abs_v", d),
        "VSUMN": lambda d: ratio("dn_v", "abs_v", d),
        "VSUMD": lambda d: (s("sum_up_v", d) - s("sum_dn_v", d)) / (s("sum_abs_v", d) + 1e-12),
    }
    out: dict[str, pl.Expr] = {
        "KMID": (cl - o) / o,
        "KLEN": (h - lo) / o,
        "KMID2": (cl - o) / (h - lo + 1e-12),
        "KUP": (h - pl.max_horizontal(o, cl)) / o,
        "KUP2": (h - pl.max_horizontal(o, cl)) / (h - lo + 1e-12),
        "KLOW": (pl.min_horizontal(o, cl) - lo) / o,
        "KLOW2": (pl.min_horizontal(o, cl) - lo) / (h - lo + 1e-12),
        "KSFT": (2 * cl - h - lo) / o,
        "KSFT2": (2 * cl - h - lo) / (h - lo + 1e-12),
        "OPEN0": o / cl,
        "HIGH0": h / cl,
        "LOW0": lo / cl,
        "VWAP0": (h + lo + cl) / 3 / cl,
    }
    out |= {f"{name}{d}": op(d) for name, op in ops.items() for d in ALPHA158_WINDOWS}
    return [shared, out]


def _arg_extreme(expr: pl.Expr, d: int, kind: Literal["max", "min"]) -> pl.Expr:
    """1-based position of the window's first max (min), oldest row = 1, as Qlib's IdxMax.

    Runs on the panel row number: windows that reach into the previous symbol end in the
    warm-up rows, which are dropped."""
    agg = expr.arg_max() if kind == "max" else expr.arg_min()
    return (agg.rolling(index_column=_G, period=f"{d}i") + 1).cast(pl.Float64)


def alpha158_warmup(w: Windows) -> int:
    return max(ALPHA158_WINDOWS) + 1


# -- group: risk ---------------------------------------------------------------------------
RISK_WINDOWS = (5, 22, 63, 126)
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


def risk_features(c: Ctx) -> list[dict[str, pl.Expr]]:
    """Volatility in return units, the scale of the return distribution: close-to-close
    (RiskMetrics EWMA, rolling 5/22/63/126 days), range-based (Parkinson 1/5/22 days,
    Garman-Klass 22 days), overnight gaps, the largest recent move; and the market's:
    its volatility, dispersion and trend (``market_frame``), the symbol's beta and
    idiosyncratic volatility. ``core.models.scaled`` fits its volatility forecast on these."""
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


# -- registry and the query -----------------------------------------------------------------
@dataclass(frozen=True)
class FeatureGroup:
    """A named set of features: expression stages and the warm-up rows they need."""

    name: str
    stages: Callable[[Ctx], list[dict[str, pl.Expr]]]
    warmup: Callable[[Windows], int]
    categorical: tuple[str, ...] = ()
    fastest: WindowMode = "over"  # the mode `auto` picks, as measured by benchmarks/features.py
    market: bool = False  # needs the universe's market series (``market_frame``)


GROUPS: dict[str, FeatureGroup] = {
    "seed": FeatureGroup(
        "seed", seed_features, seed_warmup, categorical=("symbol",), fastest="over"
    ),
    "alpha158": FeatureGroup("alpha158", alpha158_features, alpha158_warmup, fastest="masked"),
    "risk": FeatureGroup("risk", risk_features, risk_warmup, fastest="over", market=True),
}


def feature_names(groups: list[str], horizon: int = 3) -> dict[str, list[str]]:
    """Model inputs per group, in output order (intermediates starting with '_' excluded)."""
    ctx = Ctx(horizon, "over")
    names: dict[str, list[str]] = {}
    for g in groups:
        group = _group(g)
        outputs = [n for stage in group.stages(ctx) for n in stage if not n.startswith("_")]
        names[g] = list(group.categorical) + outputs
    return names


def _group(name: str) -> FeatureGroup:
    if name not in GROUPS:
        raise ValueError(f"unknown feature group {name!r}; known: {', '.join(GROUPS)}")
    return GROUPS[name]


def needs_market(groups: list[str]) -> bool:
    return any(_group(g).market for g in groups)


def warmup_rows(groups: list[str], horizon: int) -> int:
    return max(_group(g).warmup(Windows(horizon)) for g in groups)


def build_features(
    prices: pl.LazyFrame,
    groups: list[str],
    horizon: int = 3,
    window_mode: WindowChoice = "auto",
    market: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """The feature table: ``symbol, date, <features of the groups>, y`` (one lazy query).

    Input: valid bars (``core.prices`` columns) in any row order. ``window_mode="auto"``
    runs each group in the mode measured fastest for it. Groups that need the market series
    take ``market`` (``market_frame`` of the whole universe) or, when it is None, compute it
    from ``prices``, which is right only when ``prices`` is the whole universe.
    """
    if horizon < 1:
        raise ValueError("horizon must be >= 1")
    names = feature_names(groups, horizon)
    warmup = warmup_rows(groups, horizon)
    frame = prices.sort("symbol", "date")
    if needs_market(groups):
        market = market_frame(prices) if market is None else market
        frame = frame.join(market, on="date", how="left", maintain_order="left")
    frame = frame.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias(_G),
        pl.int_range(pl.len(), dtype=pl.Int64).over("symbol").alias(_I),
    )
    staged: list[dict[str, pl.Expr]] = []
    for g in groups:
        group = _group(g)
        ctx = Ctx(horizon, group.fastest if window_mode == "auto" else window_mode)
        for depth, stage in enumerate(group.stages(ctx)):
            if depth == len(staged):
                staged.append({})
            staged[depth].update(stage)
    for stage in staged:
        frame = frame.with_columns(**stage)
    target = (pl.col("close").shift(-horizon) / pl.col("close")).log().over("symbol").alias(TARGET)
    columns = list(dict.fromkeys(n for g in groups for n in names[g]))
    return (
        frame.with_columns(target)
        .filter(pl.col(_I) >= warmup)
        .select("symbol", "date", *[c for c in columns if c != "symbol"], TARGET)
    )


def features_schema(
    columns: list[str], dtype: type[pl.DataType] = pl.Float64
) -> pa.DataFrameSchema:
    """Output contract: typed columns; every feature finite and non-null (one frame-level
    check over all features); the target null only where the future is unknown."""
    features = [c for c in columns if c not in ("symbol", "date", TARGET)]
    spec: dict[str, pa.Column] = {
        "symbol": pa.Column(pl.String, nullable=False),
        "date": pa.Column(pl.Date, nullable=False),
        TARGET: pa.Column(pl.Float64, nullable=True),
    } | {name: pa.Column(dtype, nullable=True) for name in features}
    all_finite = pl.all_horizontal(pl.col(features).is_finite().fill_null(False))
    check = pa.Check(lambda data: data.lazyframe.select(all_finite), name="features_finite")
    return pa.DataFrameSchema(spec, checks=[check], name="features", strict=True)


def non_finite_columns(table: pl.DataFrame, columns: list[str]) -> dict[str, int]:
    """Feature columns with null, NaN or infinite values, and how many (for error messages)."""
    counts = table.select(
        (~pl.col(c).is_finite().fill_null(False)).sum() for c in columns if c in table.columns
    )
    return {c: n for c, n in counts.row(0, named=True).items() if n}


def code_version() -> str:
    """Hash of this module's source: part of the cache key, so a changed formula recomputes."""
    import sys

    return hashlib.sha256(inspect.getsource(sys.modules[__name__]).encode()).hexdigest()[:16]
