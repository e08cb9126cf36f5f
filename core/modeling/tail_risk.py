"""Value-at-risk and expected shortfall from a calibrated quantile grid, as risk systems read
them (issue 23): simple-return losses as positive fractions of the position's value.

For a level alpha of the grid and the h-day log return y with quantile function Q:
- long: VaR = 1 - exp(Q(alpha)), ES = 1 - E[exp(y) | y <= Q(alpha)];
- short: VaR = exp(Q(1 - alpha)) - 1, ES = E[exp(y) | y >= Q(1 - alpha)] - 1.
E[exp(y) | y <= Q(alpha)] = (1 / alpha) int_0^alpha exp(Q(u)) du, computed one way for every
method: Q linear in u between the grid's levels (exp of a linear function integrated
exactly), and beyond the outermost level a generalized Pareto tail of the loss (1 - exp(y)
long, exp(y) - 1 short) through the losses at the three outermost levels (1, 2.5 and 5 % by
default: its shape xi solved from their spacing, kept in [-0.5, 0.8] so the mean is finite),
whose mean beyond the outermost level is closed-form. A grid with two levels in a tail takes
an exponential tail in the log return instead (shape 0: Q(u) = Q(u_1) + b log(u / u_1)).
Measured on exact Student-t grids, nu 4 to 30 (tests): the ES at 1 % within 2.5 % of the
true one (3.5 % for a t(4)'s upper tail at a 5 % sd), at 2.5 and 5 % within 1 %.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RISK_ALPHAS = (0.01, 0.025, 0.05)  # the tails a risk desk reads: 99, 97.5 and 95 % VaR and ES


def risk_alphas(levels: Sequence[float], alphas: Sequence[float] = RISK_ALPHAS) -> list[float]:
    """The ``alphas`` whose both tails' levels (alpha and 1 - alpha) the grid holds."""
    grid = {round(float(t), 10) for t in levels}
    return [a for a in alphas if round(a, 10) in grid and round(1.0 - a, 10) in grid]


def _segment(q0: np.ndarray, q1: np.ndarray, u0: float, u1: float) -> np.ndarray:
    """int_u0^u1 exp(Q(u)) du with Q linear from q0 at u0 to q1 at u1 (per row)."""
    width, rise = u1 - u0, q1 - q0
    flat = np.abs(rise) < 1e-12
    safe = np.where(flat, 1.0, rise)
    return np.where(flat, width * np.exp(q0), width * (np.exp(q1) - np.exp(q0)) / safe)


SHAPE_RANGE = (-0.5, 0.8)  # the loss tail's GPD shape: below 1 the mean (ES) is finite


def gpd_shape(l1: np.ndarray, l2: np.ndarray, l3: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Per row, the shape xi of a generalized Pareto loss tail through the losses l1 > l2 > l3 at
    tail probabilities u[0] < u[1] < u[2]: the root of (l1 - l3) / (l2 - l3) =
    ((u1 / u3)^-xi - 1) / ((u2 / u3)^-xi - 1) (increasing in xi), by bisection in
    ``SHAPE_RANGE`` (where the ratio leaves the range's values, its end)."""
    r1, r2 = u[0] / u[2], u[1] / u[2]

    def ratio(xi: np.ndarray) -> np.ndarray:
        near = np.abs(xi) < 1e-9
        safe = np.where(near, 1.0, xi)
        return np.where(
            near,
            np.log(r1) / np.log(r2),
            np.expm1(-safe * np.log(r1)) / np.expm1(-safe * np.log(r2)),
        )

    spread = np.maximum(l2 - l3, 1e-15)
    target = np.maximum(l1 - l3, 0.0) / spread
    lo = np.full(len(l1), SHAPE_RANGE[0])
    hi = np.full(len(l1), SHAPE_RANGE[1])
    for _ in range(40):
        mid = (lo + hi) / 2
        above = ratio(mid) > target
        hi, lo = np.where(above, mid, hi), np.where(above, lo, mid)
    return (lo + hi) / 2


def _beyond_mean_loss(loss: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Per row, the mean loss beyond the outermost level u[0]: a generalized Pareto tail
    through the losses at the three outermost levels (``gpd_shape``), whose mean beyond u1 is
    l1 + s1 / (1 - xi), s1 = s (u1 / u3)^-xi its scale there (threshold stability)."""
    l1, l2, l3 = loss[:, 0], loss[:, 1], loss[:, 2]
    xi = gpd_shape(l1, l2, l3, u)
    near = np.abs(xi) < 1e-9
    safe = np.where(near, 1.0, xi)
    growth = np.where(near, np.log(u[2] / u[1]), np.expm1(-safe * np.log(u[1] / u[2])) / safe)
    scale = np.maximum(l2 - l3, 0.0) / growth
    return l1 + scale * (u[0] / u[2]) ** (-xi) / (1.0 - xi)


def _tail_mean(q: np.ndarray, u: np.ndarray, alpha: float, sign: float) -> np.ndarray:
    """(1 / alpha) int_0^alpha exp(Q(v)) dv per row, ``q`` the quantiles at distances ``u``
    (increasing) from the tail's end, ``sign`` -1 for the lower tail (loss 1 - exp(q)) and +1
    for the upper (exp(q) - 1): linear in v between the levels; beyond the outermost, the
    generalized Pareto loss tail of ``_beyond_mean_loss`` (three levels), or with two levels
    Q(v) = q_1 + b log(v / u_1), whose integral is u_1 exp(q_1) / (1 + b)."""
    k = int(np.argmin(np.abs(u - alpha)))
    if len(u) >= 3 and u[2] <= 0.5:
        beyond = 1.0 + sign * _beyond_mean_loss(sign * np.expm1(q[:, :3]), u[:3])
        total = u[0] * np.maximum(beyond, 0.0)
    else:
        slope = (q[:, 1] - q[:, 0]) / np.log(u[1] / u[0])  # >= 0 lower tail, <= 0 upper
        if np.any(slope <= -1.0):
            raise ValueError("the upper tail is too heavy for a finite mean of exp(y)")
        total = u[0] * np.exp(q[:, 0]) / (1.0 + slope)
    for j in range(k):
        total = total + _segment(q[:, j], q[:, j + 1], u[j], u[j + 1])
    return total / alpha


def var_es(
    values: np.ndarray, levels: Sequence[float], alpha: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(long VaR, long ES, short VaR, short ES) at ``alpha`` per row, as positive fractions of
    the position, from emitted quantiles ``values`` (rows, levels; sorted) of the h-day log
    return; ``alpha`` and ``1 - alpha`` must both be levels of the grid."""
    values = np.asarray(values, dtype=float)
    levels = [float(t) for t in levels]
    for tail in (alpha, round(1.0 - alpha, 10)):
        if tail not in levels:
            raise ValueError(f"level {tail} is not a level of the grid {levels}")
    if len(levels) < 2:
        raise ValueError("the tails need at least two levels")
    u = np.asarray(levels)
    long_var = 1.0 - np.exp(values[:, levels.index(alpha)])
    long_es = 1.0 - _tail_mean(values, u, alpha, -1.0)
    short_var = np.exp(values[:, levels.index(round(1.0 - alpha, 10))]) - 1.0
    short_es = (
        _tail_mean(values[:, ::-1], 1.0 - u[::-1], alpha, 1.0) - 1.0
    )  # the upper tail, mirrored
    return long_var, long_es, short_var, short_es


def risk_columns(values: np.ndarray, levels: Sequence[float]) -> dict[str, np.ndarray]:
    """``var_long_<a>``, ``es_long_<a>``, ``var_short_<a>``, ``es_short_<a>`` for every risk level
    ``a`` whose both tails the grid holds (``risk_alphas``): the columns ``predict`` writes."""
    out: dict[str, np.ndarray] = {}
    for alpha in risk_alphas(levels):
        long_var, long_es, short_var, short_es = var_es(values, levels, alpha)
        out |= {
            f"var_long_{alpha}": long_var,
            f"es_long_{alpha}": long_es,
            f"var_short_{alpha}": short_var,
            f"es_short_{alpha}": short_es,
        }
    return out
