"""VaR and ES from the grid (``core.modeling.tail_risk``) against closed forms."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from core.modeling.tail_risk import var_es

LEVELS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975, 0.99]
NORM = NormalDist()


def lognormal_tail(mu: float, sigma: float, alpha: float) -> tuple[float, float]:
    """E[exp(y) | y <= q_alpha] and E[exp(y) | y >= q_(1-alpha)] for y ~ N(mu, sigma^2)."""
    z = NORM.inv_cdf(alpha)
    mean = math.exp(mu + sigma**2 / 2)
    lower = mean * NORM.cdf(z - sigma) / alpha
    upper = mean * (1 - NORM.cdf(-z - sigma)) / alpha
    return lower, upper


@pytest.mark.parametrize("sigma", [0.01, 0.03, 0.08])
def test_var_and_es_of_a_normal_grid_match_the_closed_form(sigma):
    """On a normal return's exact grid: VaR exact; ES within 3 % of the closed form."""
    mu = 0.001
    values = np.array([[mu + sigma * NORM.inv_cdf(t) for t in LEVELS]])
    for alpha in (0.01, 0.025, 0.05):
        long_var, long_es, short_var, short_es = (v[0] for v in var_es(values, LEVELS, alpha))
        lower, upper = lognormal_tail(mu, sigma, alpha)
        assert long_var == pytest.approx(1 - math.exp(mu + sigma * NORM.inv_cdf(alpha)))
        assert short_var == pytest.approx(math.exp(mu + sigma * NORM.inv_cdf(1 - alpha)) - 1)
        assert long_es == pytest.approx(1 - lower, rel=0.03)
        assert short_es == pytest.approx(upper - 1, rel=0.03)
        assert long_es > long_var and short_es > short_var  # ES beyond VaR, both tails


def test_es_beyond_the_outermost_level_is_exact_for_an_exponential_tail():
    """A Laplace return's quantiles are log-linear in each tail, as the rule's tail beyond the
    outermost levels is: at alpha = 0.01 (all of it beyond the grid) the ES is exact."""
    b, alpha = 0.02, 0.01
    q = [b * math.log(2 * t) if t < 0.5 else -b * math.log(2 * (1 - t)) for t in LEVELS]
    long_var, long_es, short_var, short_es = (v[0] for v in var_es(np.array([q]), LEVELS, alpha))
    # E[exp(y) | y <= q_a] for Laplace(0, b): exp(q_a) / (1 + b); upper: exp(q) / (1 - b)
    q_lo, q_hi = b * math.log(2 * alpha), -b * math.log(2 * alpha)
    assert long_es == pytest.approx(1 - math.exp(q_lo) / (1 + b), rel=1e-9)
    assert short_es == pytest.approx(math.exp(q_hi) / (1 - b) - 1, rel=1e-9)
    assert long_var == pytest.approx(1 - math.exp(q_lo)) and short_var == pytest.approx(
        math.exp(q_hi) - 1
    )


def test_a_level_outside_the_grid_is_refused():
    values = np.zeros((1, len(LEVELS)))
    with pytest.raises(ValueError, match="not a level of the grid"):
        var_es(values, LEVELS, 0.03)


def test_an_upper_tail_too_heavy_for_a_finite_mean_is_refused_or_capped():
    """With two levels in a tail, the exponential tail's mean of exp(y) is infinite once its
    scale b reaches 1: refused. With three, the loss tail's shape is capped below 1."""
    two = [0.01, 0.5, 0.99]
    values = np.array([[-0.05, 0.0, 5.0]])  # b = 5 / log(50) > 1
    with pytest.raises(ValueError, match="too heavy"):
        var_es(values, two, 0.01)
    grid = np.array([[NORM.inv_cdf(t) * 0.02 for t in LEVELS]])
    grid[0, -1] = grid[0, -2] + 1.0
    *_, short_es = var_es(grid, LEVELS, 0.01)
    assert np.isfinite(short_es).all() and short_es[0] > math.exp(grid[0, -1]) - 1


@pytest.mark.parametrize("nu", [4.0, 6.0, 30.0])
@pytest.mark.parametrize("sd", [0.015, 0.05])
def test_es_of_a_student_t_grid_is_within_a_few_percent(nu, sd):
    """Fat tails as daily stock returns have them: ES at 1 % within 4 %, at 2.5 and 5 % within
    1.5 %, of the numerically integrated truth, both tails."""
    from scipy import integrate, stats

    c = math.sqrt((nu - 2) / nu) * sd
    grid = np.array([stats.t.ppf(LEVELS, nu) * c])
    for alpha, tol in ((0.01, 0.04), (0.025, 0.015), (0.05, 0.015)):
        _, long_es, _, short_es = (v[0] for v in var_es(grid, LEVELS, alpha))
        q = float(stats.t.ppf(alpha, nu))

        def density(x: float) -> float:
            return math.exp(c * x) * float(stats.t.pdf(x, nu))

        lower = integrate.quad(density, -np.inf, q)[0] / alpha
        upper = integrate.quad(density, -q, 80)[0] / alpha
        assert long_es == pytest.approx(1 - lower, rel=tol)
        assert short_es == pytest.approx(upper - 1, rel=tol)
