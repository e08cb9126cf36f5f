"""The risk desk's backtests (``core.modeling.risk_backtests``) against reference values,
hand-computed ones and simulations with a known answer."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from core.modeling.risk_backtests import (
    dynamic_quantile,
    fz0_loss,
    traffic_light,
    z2,
    z2_block_bootstrap,
    zone_limits,
)

NORM = NormalDist()


def normal_es(alpha: float) -> float:
    """E[X | X <= q_alpha] of a standard normal."""
    return -NORM.pdf(NORM.inv_cdf(alpha)) / alpha


def test_the_basel_zones_and_a_calibrated_forecasters_shares():
    """250 dates at 1 %: green 0-4, yellow 5-9, red 10+; shares 89.22 / 10.76 / 0.025 %."""
    assert zone_limits() == (4, 9)
    hits = [np.r_[np.ones(k), np.zeros(250 - k)] for k in (0, 4, 5, 9, 10, 30)]
    light = traffic_light([*hits, np.zeros(100)])  # a short history has no full block
    assert light.blocks == 6
    assert (light.green, light.yellow, light.red) == pytest.approx((2 / 6, 2 / 6, 2 / 6))
    assert light.reference_green == pytest.approx(0.8922, abs=5e-5)
    assert light.reference_yellow == pytest.approx(0.1076, abs=5e-5)
    assert light.reference_red == pytest.approx(0.00025, abs=5e-6)
    rng = np.random.default_rng(0)
    simulated = traffic_light([rng.random(2500) < 0.01 for _ in range(400)])
    assert simulated.green == pytest.approx(0.892, abs=0.015)  # 4,000 blocks


def test_the_dynamic_quantile_test_holds_its_size_and_sees_clustering():
    """A correct constant VaR on iid returns is rejected about 5 % of the time; a constant VaR
    on returns whose volatility clusters is rejected nearly always."""
    rng = np.random.default_rng(1)
    tau, n = 0.05, 1000
    q = NORM.inv_cdf(tau)
    p_values = [
        dynamic_quantile(rng.standard_normal(n), np.full(n, q), tau).p_value for _ in range(300)
    ]
    assert 0.02 <= np.mean(np.asarray(p_values) < 0.05) <= 0.09
    n = 3000
    vol = np.repeat(rng.choice([0.5, 2.0], size=n // 50), 50)  # calm and turbulent spells
    y = vol * rng.standard_normal(n)
    constant = np.full(n, float(np.quantile(y, tau)))  # right on average, blind to the regime
    assert dynamic_quantile(y, constant, tau).p_value < 1e-3
    assert dynamic_quantile(y, vol * q, tau).p_value > 0.01  # the regime-aware VaR passes


def test_z2_by_hand_and_under_the_null_and_a_too_small_es():
    # two rows, one below -VaR: Z2 = (-3 / 2.5) / (2 * 0.1) + 1 = -5
    assert z2(
        np.array([-3.0, 1.0]), np.array([2.0, 2.0]), np.array([2.5, 2.5]), 0.1
    ) == pytest.approx(-5.0)
    rng = np.random.default_rng(2)
    alpha, n = 0.025, 400_000
    var, es = -NORM.inv_cdf(alpha), -normal_es(alpha)
    x = rng.standard_normal(n)
    assert abs(z2(x, np.full(n, var), np.full(n, es), alpha)) < 0.05  # E[Z2] = 0
    wider = 1.3 * x  # the forecast's ES (and VaR) too small: Z2 about -1.8
    assert z2(wider, np.full(n, var), np.full(n, es), alpha) < -1.5


def test_the_pooled_z2_bootstraps_dates_not_rows():
    """A common shock per date: the date-block bootstrap's p-value is not fooled by the rows'
    number; a correct ES is not rejected, a too small one is."""
    rng = np.random.default_rng(3)
    alpha, days, symbols = 0.025, 1500, 40
    dates = np.repeat(np.arange(days), symbols)
    common = np.repeat(rng.standard_normal(days), symbols)
    x = np.sqrt(0.4) * common + np.sqrt(0.6) * rng.standard_normal(days * symbols)
    var, es = np.full(len(x), -NORM.inv_cdf(alpha)), np.full(len(x), -normal_es(alpha))
    fine = z2_block_bootstrap(dates, x, var, es, alpha, block=5, draws=499)
    assert abs(fine.statistic) < 0.3 and fine.p_value > 0.05
    small = z2_block_bootstrap(dates, x, var, 0.6 * es, alpha, block=5, draws=499)
    assert small.statistic < fine.statistic and small.p_value < 0.05


def test_fz0_by_hand_and_lowest_at_the_true_var_and_es():
    # y = -3, v = -2, e = -2.5, alpha 0.1: -(1)(1)/(0.1 * -2.5) + 0.8 + log 2.5 - 1 = 4 - 0.2 + 0.9163
    got = fz0_loss(np.array([-3.0]), np.array([-2.0]), np.array([-2.5]), 0.1)[0]
    assert got == pytest.approx(4.0 + 0.8 + np.log(2.5) - 1.0)
    rng = np.random.default_rng(4)
    alpha, n = 0.025, 400_000
    y = rng.standard_normal(n)
    v, e = NORM.inv_cdf(alpha), normal_es(alpha)

    def mean_loss(var: float, es: float) -> float:
        return float(np.mean(fz0_loss(y, np.full(n, var), np.full(n, es), alpha)))

    best = mean_loss(v, e)
    for dv, de in ((0.2, 0.0), (-0.2, 0.0), (0.0, 0.3), (0.0, -0.3), (0.15, 0.15)):
        assert mean_loss(v + dv, min(e + de, v + dv)) > best
    with pytest.raises(ValueError, match="ES <= VaR < 0"):
        fz0_loss(y[:2], np.array([0.1, 0.1]), np.array([-1.0, -1.0]), alpha)
