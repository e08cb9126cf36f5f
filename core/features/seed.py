"""The ``seed`` group: the original design's 48 model inputs, windows derived from the horizon."""

from __future__ import annotations

import polars as pl

from core.features.context import EPS, Ctx, FeatureGroup, Stages, Windows, safe_div


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


def seed_features(c: Ctx) -> Stages:
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
        "iqr_vol": c.by_symbol(r.rolling_quantile(0.9, "linear", 4 * w.horizon))
        - c.by_symbol(r.rolling_quantile(0.1, "linear", 4 * w.horizon)),
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
    h, r2 = c.w.horizon, pl.col("_r").pow(2)
    xs = [c.lag(r2, k) for k in range(h)]
    ys = [c.lag(r2, h + k) for k in range(h)]
    mx, my = pl.sum_horizontal(xs) / h, pl.sum_horizontal(ys) / h
    cov = pl.sum_horizontal([(x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)])
    vx = pl.sum_horizontal([(x - mx) ** 2 for x in xs])
    vy = pl.sum_horizontal([(y - my) ** 2 for y in ys])
    scale_x, scale_y = pl.sum_horizontal([x**2 for x in xs]), pl.sum_horizontal([y**2 for y in ys])
    defined = (vx > EPS * scale_x) & (vy > EPS * scale_y) & (vx > 0) & (vy > 0)
    return pl.when(defined).then(cov / (vx * vy).sqrt()).otherwise(0.0).clip(-1.0, 1.0)


def seed_warmup(w: Windows) -> int:
    """Rows before every seed window is full: vol_expansion needs an EWM of `long` days
    compared with itself `long` days earlier, after the first return."""
    return 2 * w.long + 1


GROUP = FeatureGroup(
    "seed",
    seed_features,
    seed_warmup,
    categorical=("symbol",),
    calendar=("month", "day_of_week", "day_of_year"),
    fastest="over",
    summary="the original design's 48 inputs: calendar, returns, RSI, Sortino/Sharpe proxies, "
    "liquidity, higher moments, momentum, volatility ratios and Ichimoku lines",
)
