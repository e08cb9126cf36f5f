"""The backtests a risk desk reports for value-at-risk and expected shortfall (issue 23).

Conventions (as ``arch`` and the Basel texts): a VaR or ES forecast is a return quantile or
tail mean, so negative for the long tail at small alpha; ``hits`` are outcomes below the VaR.
- The Basel traffic light (BCBS 1996, 99 % one-day VaR over 250 dates): a block's zone from
  the binomial probability of at most its exceptions under a calibrated forecaster: green
  below 95 %, yellow below 99.99 %, red beyond (0-4, 5-9 and 10+ exceptions at 250 dates).
- Engle and Manganelli's (2004) dynamic-quantile test: the demeaned hits regressed on a
  constant, their lags and the VaR; DQ = b' X'X b / (tau (1 - tau)) ~ chi-square(k).
- Acerbi and Szekely's (2014) Z2: sum_t X_t I_t / (T alpha ES_t) + 1, with ES_t > 0 a loss and
  I_t = 1{X_t < -VaR_t}; E[Z2] = 0 under a correct ES, negative when ES is too small; one-sided,
  rejected below about -0.70 at 5 % (their tabulated threshold, nearly model-free).
- The FZ0 loss of Patton, Ziegel and Chen (2019), a strictly consistent scoring function of
  (VaR, ES) jointly: L = -1{y <= v}(v - y) / (alpha e) + v / e + log(-e) - 1, e <= v < 0.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom, chi2

BASEL_DATES = 250  # a traffic light block: one year of trading dates
BASEL_LEVEL = 0.01  # the 99 % VaR's tail
GREEN_BELOW, YELLOW_BELOW = 0.95, 0.9999  # cumulative binomial probability of the block's count
Z2_THRESHOLD = -0.70  # Acerbi and Szekely's 5 % critical value of Z2


@dataclass(frozen=True)
class TrafficLight:
    """Shares of blocks in each zone, beside a calibrated forecaster's (binomial)."""

    blocks: int
    green: float
    yellow: float
    red: float
    reference_green: float
    reference_yellow: float
    reference_red: float


@dataclass(frozen=True)
class QuantileTest:
    """A test statistic, its p-value and the number of observations it used."""

    statistic: float
    p_value: float
    n: int


def zone_limits(dates: int = BASEL_DATES, p: float = BASEL_LEVEL) -> tuple[int, int]:
    """(the most exceptions still green, the most still yellow) for blocks of ``dates``."""
    counts = np.arange(dates + 1)
    cdf = binom.cdf(counts, dates, p)
    return int(counts[cdf < GREEN_BELOW].max()), int(counts[cdf < YELLOW_BELOW].max())


def traffic_light(
    hits_by_symbol: list[np.ndarray], dates: int = BASEL_DATES, p: float = BASEL_LEVEL
) -> TrafficLight:
    """Each symbol's exceptions (date order) cut into consecutive non-overlapping blocks of
    ``dates`` (an incomplete last block is left out), each block's zone, and the shares."""
    green_max, yellow_max = zone_limits(dates, p)
    counts = np.asarray(
        [
            int(np.sum(hits[k * dates : (k + 1) * dates]))
            for hits in hits_by_symbol
            for k in range(len(hits) // dates)
        ],
        dtype=int,
    )
    n = len(counts)

    def share(mask: np.ndarray) -> float:
        return float(np.mean(mask)) if n else float("nan")

    ref_green = float(binom.cdf(green_max, dates, p))
    ref_yellow = float(binom.cdf(yellow_max, dates, p)) - ref_green
    return TrafficLight(
        blocks=n,
        green=share(counts <= green_max),
        yellow=share((counts > green_max) & (counts <= yellow_max)),
        red=share(counts > yellow_max),
        reference_green=ref_green,
        reference_yellow=ref_yellow,
        reference_red=1.0 - ref_green - ref_yellow,
    )


def dynamic_quantile(y: np.ndarray, var: np.ndarray, tau: float, lags: int = 4) -> QuantileTest:
    """Engle and Manganelli's DQ test of one series (date order, non-overlapping outcomes):
    regressors a constant, ``lags`` lagged demeaned hits and the VaR; chi-square(lags + 2)."""
    var = np.asarray(var, dtype=float)
    return dq_of_hits(np.asarray(y, dtype=float) < var, var, tau, lags)


def dq_statistic(hits: np.ndarray, var: np.ndarray, tau: float, lags: int = 4) -> tuple[float, int]:
    """(DQ statistic, observations) of a series' hits (booleans) against its VaR: the demeaned
    hits regressed on a constant, ``lags`` of their lags and the VaR; nan when too short."""
    var = np.asarray(var, dtype=float)
    hit = np.asarray(hits, dtype=float) - tau
    n = len(hit) - lags
    if n <= lags + 2:
        return float("nan"), max(n, 0)
    X = np.column_stack(
        [np.ones(n), *[hit[lags - k : len(hit) - k] for k in range(1, lags + 1)], var[lags:]]
    )
    beta, *_ = np.linalg.lstsq(X, hit[lags:], rcond=None)
    fitted = X @ beta
    return float(fitted @ fitted / (tau * (1 - tau))), n


def dq_of_hits(hits: np.ndarray, var: np.ndarray, tau: float, lags: int = 4) -> QuantileTest:
    """``dynamic_quantile`` of a series' hits (booleans) against its VaR; chi-square(lags + 2)."""
    statistic, n = dq_statistic(hits, var, tau, lags)
    return QuantileTest(statistic, float(chi2.sf(statistic, lags + 2)), n)


def z2(x: np.ndarray, var: np.ndarray, es: np.ndarray, alpha: float) -> float:
    """Acerbi and Szekely's Z2 of returns ``x`` against VaR and ES given as positive losses."""
    x, var, es = (np.asarray(a, dtype=float) for a in (x, var, es))
    if not len(x):
        return float("nan")
    tail = x < -var
    return float(np.sum(x[tail] / es[tail]) / (len(x) * alpha) + 1.0)


def z2_block_bootstrap(
    dates: np.ndarray,
    x: np.ndarray,
    var: np.ndarray,
    es: np.ndarray,
    alpha: float,
    block: int,
    draws: int = 999,
    seed: int = 0,
) -> QuantileTest:
    """The pooled Z2 over every row, and its one-sided p-value (ES too small) from a
    moving-block bootstrap of the dates: rows of one date move together, so dates, not
    rows, are resampled. p = share of centred draws Z2* - Z2 at or below Z2."""
    days, index = np.unique(np.asarray(dates), return_inverse=True)
    x, var, es = (np.asarray(a, dtype=float) for a in (x, var, es))
    tail = x < -var
    per_day_sum = np.bincount(index, weights=np.where(tail, x / np.where(tail, es, 1.0), 0.0))
    per_day_rows = np.bincount(index).astype(float)
    observed = float(per_day_sum.sum() / (per_day_rows.sum() * alpha) + 1.0)
    n_days = len(days)
    block = max(1, min(block, n_days))
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n_days - block + 1, size=(draws, -(-n_days // block)))
    picks = (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(draws, -1)[:, :n_days]
    boot = per_day_sum[picks].sum(axis=1) / (per_day_rows[picks].sum(axis=1) * alpha) + 1.0
    p_value = float((np.sum(boot - observed <= observed) + 1) / (draws + 1))
    return QuantileTest(observed, p_value, len(x))


def fz0_loss(y: np.ndarray, var: np.ndarray, es: np.ndarray, alpha: float) -> np.ndarray:
    """Patton, Ziegel and Chen's FZ0 loss per row, VaR and ES as returns (e <= v < 0)."""
    y, v, e = (np.asarray(a, dtype=float) for a in (y, var, es))
    if np.any(v >= 0) or np.any(e > v):
        raise ValueError("FZ0 needs ES <= VaR < 0 (returns of the lower tail)")
    below = (y <= v).astype(float)
    return -below * (v - y) / (alpha * e) + v / e + np.log(-e) - 1.0


def dq_reference_pass_share(
    var_by_symbol: list[np.ndarray],
    tau: float,
    level: float = 0.05,
    draws: int = 20,
    seed: int = 0,
    lags: int = 4,
) -> float:
    """The DQ pass share of a perfectly calibrated forecaster, simulated: per symbol, hits
    drawn independently with probability ``tau`` against that symbol's own VaR series (the
    test's size at a few hundred dates and rare hits is far from its nominal level)."""
    rng = np.random.default_rng(seed)
    critical = float(chi2.isf(level, lags + 2))
    passes = [
        dq_statistic(rng.random(len(var)) < tau, var, tau, lags)[0] <= critical
        for _ in range(draws)
        for var in var_by_symbol
        if len(var) > 2 * lags + 2
    ]
    return float(np.mean(passes)) if passes else float("nan")


Z2_REFERENCE_NU = 5.0  # the Student-t a calibrated forecaster's outcomes are drawn from


@functools.cache
def z2_reference_pass_share(
    lengths: tuple[int, ...], alpha: float, draws: int = 200, seed: int = 0
) -> float:
    """The share of symbols whose Z2 stays above ``Z2_THRESHOLD`` under a forecaster with the
    exact VaR and ES, simulated with Student-t(5) outcomes at each symbol's number of dates
    (Acerbi and Szekely: the threshold's size hardly depends on the distribution)."""
    from scipy import stats

    nu = Z2_REFERENCE_NU
    q = float(stats.t.ppf(alpha, nu))
    es = float(-stats.t.pdf(q, nu) * (nu + q**2) / ((nu - 1) * alpha))  # E[X | X <= q]
    rng = np.random.default_rng(seed)
    distinct, multiplicity = np.unique(np.asarray(lengths, dtype=int), return_counts=True)
    shares = []
    for n in distinct:
        x = rng.standard_t(nu, size=(draws, int(n)))
        tail = x < q
        z = np.sum(np.where(tail, x, 0.0), axis=1) / (n * alpha * -es) + 1.0
        shares.append(float(np.mean(z > Z2_THRESHOLD)))
    return (
        float(np.sum(np.asarray(shares) * multiplicity) / multiplicity.sum())
        if shares
        else float("nan")
    )
