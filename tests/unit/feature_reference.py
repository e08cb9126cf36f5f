"""Slow, plain NumPy reference of the features, one symbol at a time, written from the
definitions (not from core.features), to check the Polars expressions against."""

from __future__ import annotations

import numpy as np

NAN = np.nan


def window(x: np.ndarray, n: int, f) -> np.ndarray:
    out = np.full(len(x), NAN)
    for t in range(n - 1, len(x)):
        w = x[t - n + 1 : t + 1]
        if not np.isnan(w).any():
            out[t] = f(w)
    return out


def lag(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(x), NAN)
    out[n:] = x[:-n] if n else x
    return out


def ewm(x: np.ndarray, span: int, std: bool = False) -> np.ndarray:
    """Recursive EWM (weights alpha = 2/(span+1)), started at the first non-NaN value."""
    a = 2 / (span + 1)
    out = np.full(len(x), NAN)
    m = m2 = 0.0
    started = False
    for t, v in enumerate(x):
        if np.isnan(v):
            continue
        if not started:
            m, m2, started = v, v * v, True
        else:
            m, m2 = (1 - a) * m + a * v, (1 - a) * m2 + a * v * v
        out[t] = np.sqrt(max(m2 - m * m, 0.0)) if std else m
    return out


def safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros(len(a))
    for t in range(len(a)):
        if np.isnan(a[t]) or np.isnan(b[t]):
            out[t] = NAN
        elif abs(b[t]) > 1e-12 and np.isfinite(a[t] / b[t]):
            out[t] = a[t] / b[t]
    return out


def std1(w: np.ndarray) -> float:
    return float(np.std(w, ddof=1))


def skew(w: np.ndarray) -> float:
    d = w - w.mean()
    m2, m3 = np.mean(d**2), np.mean(d**3)
    return float(m3 / m2**1.5) if m2 > 0 else NAN


def kurt(w: np.ndarray) -> float:
    d = w - w.mean()
    m2, m4 = np.mean(d**2), np.mean(d**4)
    return float(m4 / m2**2 - 3) if m2 > 0 else NAN


def seed(o, h, lo, c, v, hz: int) -> dict[str, np.ndarray]:
    short, long, mid = 3 * hz, 5 * hz, 4 * hz
    p1, p2, p3, n_atr, n_slope, n_persist = 2 * hz, 3 * hz, 4 * hz, 2 * hz, 2 * hz, 3 * hz
    r = np.log(c / lag(c, 1))
    up, down = np.clip(r, 0, None), np.clip(-r, 0, None)
    dv = c * v
    f: dict[str, np.ndarray] = {}
    f["log_returns_d"] = r
    mom_s, mom_l = window(r, short, np.sum), window(r, long, np.sum)
    f["log_returns_ratio"] = mom_s - mom_l
    eu, ed = ewm(up, mid), ewm(down, mid)
    f["rsi_ewm"] = np.where(eu + ed <= 1e-12, 50.0, 100 * safe_div(eu, eu + ed))
    f["sortino_ratio"] = safe_div(window(r, mid, np.mean), window(np.minimum(r, 0), mid, std1))
    f["sharpe_ratio_proxy"] = safe_div(window(r, mid, np.sum), window(r, mid, std1))
    f["amihud_illiq"] = window(np.abs(r) / np.maximum(dv, 1.0), short, np.mean) * 1e6
    f["turnover_proxy"] = dv / (window(dv, long, np.mean) + 1.0)
    f["kurtosis_ratio"] = safe_div(window(r, long, kurt), window(r, short, kurt))
    f["skew_ratio"] = safe_div(window(r, long, skew), window(r, short, skew))

    def z(n: int) -> np.ndarray:
        return safe_div(r - window(r, n, np.mean), window(r, n, std1))

    f["zscore_ratio"] = safe_div(z(long), z(short))
    r2 = r**2
    ac = np.full(len(r), NAN)
    for t in range(2 * hz, len(r)):
        x, y = r2[t - hz + 1 : t + 1], r2[t - 2 * hz + 1 : t - hz + 1]
        if np.isnan(x).any() or np.isnan(y).any():
            continue
        vx, vy = np.sum((x - x.mean()) ** 2), np.sum((y - y.mean()) ** 2)
        ok = vx > 1e-12 * np.sum(x**2) and vy > 1e-12 * np.sum(y**2) and vx > 0 and vy > 0
        ac[t] = (
            np.clip(np.sum((x - x.mean()) * (y - y.mean())) / np.sqrt(vx * vy), -1, 1)
            if ok
            else 0.0
        )
    f["autocorr_r2"] = ac
    f["iqr_vol"] = window(r, 4 * hz, lambda w: np.quantile(w, 0.9) - np.quantile(w, 0.1))
    f["long_short_momentum"] = mom_l - mom_s
    su, sd = window(up, long, np.sum), window(down, long, np.sum)
    f["cmo"] = 100 * safe_div(su - sd, su + sd)
    vol_s, vol_l = ewm(r, short, std=True), ewm(r, long, std=True)
    f["risk_adj_momentum"] = safe_div(mom_l - mom_s, vol_l)
    f["vol_ratio"] = safe_div(lag(vol_l, 1), lag(vol_s, 1))
    f["vol_of_vol_ewm"] = window(vol_s, long, std1)
    f["vol_expansion"] = safe_div(vol_l, lag(vol_l, long))

    def midrange(n: int) -> np.ndarray:
        return (window(h, n, np.max) + window(lo, n, np.min)) / 2

    tenkan, kijun, span_b = midrange(p1), midrange(p2), midrange(p3)
    span_a = (tenkan + kijun) / 2
    top, bot = np.maximum(span_a, span_b), np.minimum(span_a, span_b)
    lines = {
        "tenkan": tenkan,
        "kijun": kijun,
        "span_a": span_a,
        "span_b": span_b,
        "cloud_top": top,
        "cloud_bot": bot,
    }
    for name, line in lines.items():
        f[f"{name}_slope"] = (line - lag(line, n_slope)) / c
    above, below = (c > top).astype(float), (c < bot).astype(float)
    f["above_cloud"], f["below_cloud"], f["between_cloud"] = above, below, 1 - above - below
    f["above_cloud_persist"] = window(above, n_persist, np.mean)
    f["below_cloud_persist"] = window(below, n_persist, np.mean)

    def crossed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return ((a > b) & (lag(a, 1) <= lag(b, 1))).astype(float)

    f["tenkan_cross_up"], f["tenkan_cross_dn"] = crossed(tenkan, kijun), crossed(kijun, tenkan)
    f["price_break_up"], f["price_break_dn"] = crossed(c, top), crossed(bot, c)
    twist = np.sign(span_a - span_b)
    event = (twist != lag(twist, 1)).astype(float)
    f["twist_event"] = event
    f["twist_recent"] = window(event, n_persist, np.max)
    f["bull_strength"] = (above + (tenkan > kijun) + (span_a > span_b) + (c > kijun)) / 4
    f["bear_strength"] = (below + (tenkan < kijun) + (span_a < span_b) + (c < kijun)) / 4
    prev = lag(c, 1)
    tr = np.maximum.reduce([h - lo, np.abs(h - prev), np.abs(lo - prev)])
    atr = window(tr, n_atr, np.mean)
    f["tenkan_kijun_spread_atr"] = safe_div(tenkan - kijun, atr)
    f["price_above_cloud_atr"] = safe_div(np.clip(c - top, 0, None), atr)
    f["price_below_cloud_atr"] = safe_div(np.clip(bot - c, 0, None), atr)
    f["cloud_thickness_atr"] = safe_div(top - bot, atr)
    f["price_vs_lead_top_atr"] = safe_div(c - lag(top, p2), atr)
    f["price_vs_lead_bot_atr"] = safe_div(c - lag(bot, p2), atr)
    f["atr"] = atr / c
    return f


def _linfit(w: np.ndarray) -> tuple[float, float, float]:
    """(slope, r^2, residual of the last point) of w on 1..d."""
    x = np.arange(1, len(w) + 1, dtype=float)
    slope, intercept = np.polyfit(x, w, 1)
    fitted = slope * x + intercept
    ss_tot = np.sum((w - w.mean()) ** 2)
    r2 = 1 - np.sum((w - fitted) ** 2) / ss_tot if ss_tot > 0 and np.std(w, ddof=1) >= 2e-5 else 0.0
    return float(slope), float(r2), float(w[-1] - fitted[-1])


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    """Qlib: NaN where either window's std is below 2e-5 (here 0)."""
    if np.std(a, ddof=1) < 2e-5 or np.std(b, ddof=1) < 2e-5:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def alpha158_sample(o, h, lo, c, v, d: int) -> dict[str, np.ndarray]:
    """A sample of each Alpha158 operator for window d (Qlib's formulas)."""
    n = len(c)
    prev_c, prev_v = lag(c, 1), lag(v, 1)
    f = {
        name: np.full(n, NAN)
        for name in [
            "ROC",
            "MA",
            "STD",
            "BETA",
            "RSQR",
            "RESI",
            "MAX",
            "MIN",
            "QTLU",
            "QTLD",
            "RANK",
            "RSV",
            "IMAX",
            "IMIN",
            "IMXD",
            "CORR",
            "CORD",
            "CNTP",
            "CNTN",
            "CNTD",
            "SUMP",
            "SUMN",
            "SUMD",
            "VMA",
            "VSTD",
            "WVMA",
            "VSUMP",
            "VSUMN",
            "VSUMD",
        ]
    }
    for t in range(d, n):
        s = slice(t - d + 1, t + 1)
        wc, wh, wl, wv = c[s], h[s], lo[s], v[s]
        dc, dv = c[s] - prev_c[s], v[s] - prev_v[s]
        slope, r2, resi = _linfit(wc)
        f["ROC"][t] = c[t - d] / c[t]
        f["MA"][t] = wc.mean() / c[t]
        f["STD"][t] = np.std(wc, ddof=1) / c[t]
        f["BETA"][t], f["RSQR"][t], f["RESI"][t] = slope / c[t], r2, resi / c[t]
        f["MAX"][t], f["MIN"][t] = wh.max() / c[t], wl.min() / c[t]
        f["QTLU"][t], f["QTLD"][t] = np.quantile(wc, 0.8) / c[t], np.quantile(wc, 0.2) / c[t]
        f["RANK"][t] = (np.sum(wc < c[t]) + (np.sum(wc == c[t]) + 1) / 2) / d
        f["RSV"][t] = (c[t] - wl.min()) / (wh.max() - wl.min() + 1e-12)
        f["IMAX"][t], f["IMIN"][t] = (np.argmax(wh) + 1) / d, (np.argmin(wl) + 1) / d
        f["IMXD"][t] = (np.argmax(wh) - np.argmin(wl)) / d
        f["CORR"][t] = _corr(wc, np.log(wv + 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            dlv = np.log(wv / prev_v[s] + 1)
        f["CORD"][t] = _corr(wc / prev_c[s], np.where(np.isfinite(dlv), dlv, 0.0))
        f["CNTP"][t], f["CNTN"][t] = np.mean(dc > 0), np.mean(dc < 0)
        f["CNTD"][t] = f["CNTP"][t] - f["CNTN"][t]
        f["SUMP"][t] = np.clip(dc, 0, None).sum() / (np.abs(dc).sum() + 1e-12)
        f["SUMN"][t] = np.clip(-dc, 0, None).sum() / (np.abs(dc).sum() + 1e-12)
        f["SUMD"][t] = f["SUMP"][t] - f["SUMN"][t]
        f["VMA"][t], f["VSTD"][t] = wv.mean() / (v[t] + 1e-12), np.std(wv, ddof=1) / (v[t] + 1e-12)
        wvol = np.abs(wc / prev_c[s] - 1) * wv
        f["WVMA"][t] = np.std(wvol, ddof=1) / (wvol.mean() + 1e-12)
        f["VSUMP"][t] = np.clip(dv, 0, None).sum() / (np.abs(dv).sum() + 1e-12)
        f["VSUMN"][t] = np.clip(-dv, 0, None).sum() / (np.abs(dv).sum() + 1e-12)
        f["VSUMD"][t] = f["VSUMP"][t] - f["VSUMN"][t]
    out = {f"{k}{d}": val for k, val in f.items()}
    out |= {
        "KMID": (c - o) / o,
        "KLEN": (h - lo) / o,
        "KUP2": (h - np.maximum(o, c)) / (h - lo + 1e-12),
        "KSFT2": (2 * c - h - lo) / (h - lo + 1e-12),
        "VWAP0": (h + lo + c) / 3 / c,
        "OPEN0": o / c,
    }
    return out


def riskmetrics(x: np.ndarray, alpha: float = 0.06) -> np.ndarray:
    """sqrt of the recursive mean of x^2, started at the first value (RiskMetrics)."""
    out = np.empty(len(x))
    m = x[0] ** 2
    for t, v in enumerate(x):
        m = m if t == 0 else (1 - alpha) * m + alpha * v * v
        out[t] = np.sqrt(m)
    return out


def market(panel: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, dict[int, float]]:
    """Per date (as an int): equal-weight mean and sample std of the symbols' daily log
    returns, and the market features derived from that series in date order."""
    by_date: dict[int, list[float]] = {}
    for dates, close in panel.values():
        for t in range(1, len(close)):
            by_date.setdefault(int(dates[t]), []).append(float(np.log(close[t] / close[t - 1])))
        by_date.setdefault(int(dates[0]), [])
    days = sorted(by_date)
    m = np.array([np.mean(by_date[d]) if by_date[d] else 0.0 for d in days])
    disp = np.array([np.std(by_date[d], ddof=1) if len(by_date[d]) > 1 else 0.0 for d in days])
    vol22 = np.array([std1(m[max(t - 21, 0) : t + 1]) if t >= 1 else 0.0 for t in range(len(m))])
    disp_ewm = np.empty(len(m))
    for t in range(len(m)):
        disp_ewm[t] = disp[0] if t == 0 else 0.94 * disp_ewm[t - 1] + 0.06 * disp[t]
    series = {
        "_mkt_r": m,
        "mkt_vol_ewm": riskmetrics(m),
        "mkt_vol22": vol22,
        "mkt_disp_ewm": disp_ewm,
        "mkt_ret5": np.array([m[max(t - 4, 0) : t + 1].sum() for t in range(len(m))]),
        "mkt_ret22": np.array([m[max(t - 21, 0) : t + 1].sum() for t in range(len(m))]),
    }
    return {k: dict(zip(days, v, strict=True)) for k, v in series.items()}


def risk(o, h, lo, c, dates, mkt: dict[str, dict[int, float]]) -> dict[str, np.ndarray]:
    """The risk group for one symbol, given the market series of its universe."""
    n = len(c)
    r = np.zeros(n)
    r[1:] = np.log(c[1:] / c[:-1])
    gap = np.zeros(n)
    gap[1:] = np.log(o[1:] / c[:-1])
    pk = np.log(h / lo) ** 2 / (4 * np.log(2))
    gk = np.maximum(0.5 * np.log(h / lo) ** 2 - (2 * np.log(2) - 1) * np.log(c / o) ** 2, 0)
    m = np.array([mkt["_mkt_r"][int(d)] for d in dates])
    out = {
        "vol_ewm": riskmetrics(r),
        "vol_pk1": np.sqrt(pk),
        "vol_pk5": np.sqrt(window(pk, 5, np.mean)),
        "vol_pk22": np.sqrt(window(pk, 22, np.mean)),
        "vol_gk22": np.sqrt(window(gk, 22, np.mean)),
        "vol_gap": riskmetrics(gap),
        "absmax22": window(np.abs(r), 22, np.max),
        "ret5": window(r, 5, np.sum),
        "vol_idio": riskmetrics(r - m),
        "beta126": safe_div(window(r * m, 126, np.mean), window(m * m, 126, np.mean)),
    }
    for d in (5, 22, 63, 126):
        out[f"vol_cc{d}"] = window(r, d, std1)
    for name in ("mkt_vol_ewm", "mkt_vol22", "mkt_disp_ewm", "mkt_ret5", "mkt_ret22"):
        out[name] = np.array([mkt[name][int(d)] for d in dates])
    return out
