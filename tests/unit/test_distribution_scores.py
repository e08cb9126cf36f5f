import math

import numpy as np
import pytest
from scipy.stats import norm

from core.modeling.distribution_scores import (
    clustered_exceedance_test,
    crps_rows,
    effective_sample_size,
    grid_weights,
    interval_score,
    kupiec_pass_share_reference,
    model_confidence_set,
    pinball_rows,
    pit_histogram,
    pit_values,
    reference_pass_share,
)
from core.modeling.metrics import kupiec

LEVELS3 = (0.1, 0.5, 0.9)
PREDS3 = np.array([[-1.0, 0.0, 1.0]])


def test_grid_weights_by_hand():
    # (0.5 - 0) / 2, (0.9 - 0.1) / 2, (1 - 0.5) / 2
    assert grid_weights(LEVELS3) == pytest.approx([0.25, 0.4, 0.25])
    # sum is (1 + tau_K - tau_1) / 2
    assert grid_weights((0.2, 0.3)).sum() == pytest.approx((1 + 0.3 - 0.2) / 2)
    with pytest.raises(ValueError):
        grid_weights((0.5, 0.1))


def test_pinball_and_crps_rows_by_hand():
    y = np.array([0.5, -2.0, np.nan])
    preds = np.repeat(PREDS3, 3, axis=0)
    loss = pinball_rows(y, preds, LEVELS3)
    # y=0.5: diffs 1.5, 0.5, -0.5 -> 0.15, 0.25, 0.05; y=-2: diffs -1, -2, -3 -> 0.9, 1.0, 0.3
    assert loss[0] == pytest.approx([0.15, 0.25, 0.05])
    assert loss[1] == pytest.approx([0.9, 1.0, 0.3])
    crps = crps_rows(y, preds, LEVELS3)
    # 2 * (0.25*0.15 + 0.4*0.25 + 0.25*0.05) = 0.3; 2 * (0.225 + 0.4 + 0.075) = 1.4
    assert crps[:2] == pytest.approx([0.3, 1.4])
    assert np.isnan(crps[2])


def test_crps_on_a_fine_grid_approaches_the_normal_closed_form():
    levels = np.round(np.arange(1, 1000) / 1000, 3)
    mu, sigma = np.array([0.0, 0.3]), np.array([1.0, 2.0])
    preds = mu[:, None] + sigma[:, None] * norm.ppf(levels)[None, :]
    y = np.array([0.0, -1.1])
    z = (y - mu) / sigma
    exact = sigma * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / math.sqrt(math.pi))
    assert exact[0] == pytest.approx(2 * norm.pdf(0) - 1 / math.sqrt(math.pi))
    assert np.abs(crps_rows(y, preds, levels) - exact).max() < 1e-2


def test_pit_values_by_hand():
    y = np.array([0.5, -2.0, 1.0, -1.0, -0.5, 3.0, np.nan])
    preds = np.repeat(PREDS3, len(y), axis=0)
    pit = pit_values(y, preds, LEVELS3)
    # inside: linear between grid points; below q_1: tau_1/2; at or above q_K: (1+tau_K)/2
    assert pit[:6] == pytest.approx([0.7, 0.05, 0.95, 0.1, 0.3, 0.95])
    assert np.isnan(pit[6])
    # crossing quantiles are sorted before interpolating
    crossed = pit_values(np.array([0.5]), np.array([[-1.0, 1.0, 0.0]]), LEVELS3)
    assert crossed == pytest.approx([0.7])


def test_pit_of_draws_from_the_forecast_is_near_uniform():
    rng = np.random.default_rng(7)
    n = 20_000
    levels = np.round(np.arange(1, 20) / 20, 2)
    mu, sigma = rng.normal(0, 0.02, n), rng.uniform(0.01, 0.05, n)
    preds = mu[:, None] + sigma[:, None] * norm.ppf(levels)[None, :]
    y = rng.normal(mu, sigma)
    shares = pit_histogram(pit_values(y, preds, levels), bins=10)
    assert sum(shares) == pytest.approx(1.0)
    assert max(abs(s - 0.1) for s in shares) < 0.02
    # a forecast twice too narrow is visibly not uniform
    narrow = mu[:, None] + 0.5 * sigma[:, None] * norm.ppf(levels)[None, :]
    bad = pit_histogram(pit_values(y, narrow, levels), bins=10)
    assert bad[0] > 0.15 and bad[-1] > 0.15


def test_interval_score_per_row():
    y = np.array([0.0, -2.0, 3.0])
    lo, hi = np.full(3, -1.0), np.full(3, 1.0)
    # width 2; misses of 1 and 2 cost 2/0.2 = 10 per unit
    assert interval_score(y, lo, hi, 0.2) == pytest.approx([2.0, 12.0, 22.0])


def _panel(rng: np.random.Generator, n_dates: int, n_symbols: int, loading: float):
    dates = np.repeat(np.arange(n_dates), n_symbols)
    shock = np.repeat(rng.normal(size=n_dates), n_symbols)
    noise = rng.normal(size=n_dates * n_symbols)
    latent = loading * shock + math.sqrt(1 - loading**2) * noise  # N(0, 1) marginally
    hits = latent <= norm.ppf(0.1)
    order = rng.permutation(len(dates))  # row order must not matter
    return dates[order], hits[order]


def test_clustered_test_accounts_for_common_shocks():
    rng = np.random.default_rng(2)
    dates, hits = _panel(rng, 300, 100, loading=math.sqrt(0.6))
    clustered = clustered_exceedance_test(dates, hits, 0.1, lags=0)
    naive = kupiec(hits, 0.1)
    assert clustered["dates"] == 300 and clustered["rows"] == 30_000
    assert clustered["rate"] == pytest.approx(hits.mean())  # balanced panel
    # the rows' rate is right on average, but 30,000 rows are worth far fewer
    assert naive["p_value"] < 1e-6
    assert clustered["p_value"] > 0.05
    # the clustered z is several times smaller than the naive one (sqrt of the LR)
    assert 4 * abs(clustered["z"]) < math.sqrt(naive["lr"])
    ess = effective_sample_size(dates, hits)
    assert 300 / 2 < ess < 30_000 / 10


def test_clustered_test_with_independent_hits_at_the_right_rate():
    rng = np.random.default_rng(4)
    dates, hits = _panel(rng, 300, 40, loading=0.0)
    result = clustered_exceedance_test(dates, hits, 0.1, lags=4)
    assert result["p_value"] > 0.05
    assert abs(result["z"]) < 1.96
    assert effective_sample_size(dates, hits) > 0.8 * len(hits)
    # a rate far from tau is rejected
    assert clustered_exceedance_test(dates, hits, 0.2, lags=4)["p_value"] < 1e-6


def test_effective_sample_size_when_a_date_moves_as_one():
    rng = np.random.default_rng(5)
    daily = rng.random(200) < 0.3
    dates = np.repeat(np.arange(200), 25)
    ess = effective_sample_size(dates, np.repeat(daily, 25))
    assert ess == pytest.approx(200, rel=0.05)


def _brute_force_pass_share(n: int, p: float, level: float) -> float:
    total = 0.0
    for x in range(n + 1):
        hits = np.zeros(n, dtype=bool)
        hits[:x] = True
        if kupiec(hits, p)["p_value"] >= level:
            total += math.comb(n, x) * p**x * (1 - p) ** (n - x)
    return total


def test_kupiec_pass_share_reference_matches_brute_force():
    value = kupiec_pass_share_reference(250, 0.1)
    assert value == pytest.approx(_brute_force_pass_share(250, 0.1, 0.05), abs=1e-12)
    assert 0.9 < value < 0.99
    rare_short = kupiec_pass_share_reference(80, 0.01)
    assert rare_short == pytest.approx(_brute_force_pass_share(80, 0.01, 0.05), abs=1e-12)
    # discreteness moves the share off 0.95 both ways: with 0.8 expected hits the test is
    # conservative (0.991), with 2.5 expected hits over 250 dates it is liberal (0.905)
    assert rare_short > value
    assert kupiec_pass_share_reference(250, 0.01) < value


def test_reference_pass_share_averages_over_symbols():
    expected = (
        2 * kupiec_pass_share_reference(250, 0.1) + kupiec_pass_share_reference(80, 0.1)
    ) / 3
    assert reference_pass_share([250, 80, 250], 0.1) == pytest.approx(expected)
    assert math.isnan(reference_pass_share([], 0.1))


def test_model_confidence_set_drops_the_clearly_worse_method():
    rng = np.random.default_rng(11)
    common = rng.normal(1.0, 0.1, 500)
    losses = {
        "best": common + rng.normal(0, 0.1, 500),
        "close": common + 0.005 + rng.normal(0, 0.1, 500),
        "worse": common + 0.5 + rng.normal(0, 0.1, 500),
    }
    first = model_confidence_set(losses, reps=300, seed=1)
    assert "worse" in first["excluded"] and "worse" not in first["included"]
    assert "best" in first["included"]
    assert first["pvalues"]["worse"] <= 0.10 < first["pvalues"]["best"]
    assert set(first["included"]) | set(first["excluded"]) == set(losses)
    assert first["bootstrap"] == "stationary" and first["reps"] == 300
    second = model_confidence_set(losses, reps=300, seed=1)
    assert second == first


def test_mcs_of_identical_methods_shares_their_membership():
    """A baseline whose every fit fell back to another has the same losses: the pair cannot be
    told apart (no variance in their difference), so one stands for both."""
    rng = np.random.default_rng(5)
    good = 1.0 + 0.1 * rng.standard_normal(400)
    losses = {"a": good, "b": good.copy(), "c": good + 0.5}
    out = model_confidence_set(losses, seed=1)
    assert out["pvalues"]["a"] == out["pvalues"]["b"] and out["identical"] == {"b": "a"}
    assert out["included"] == ["a", "b"] and out["excluded"] == ["c"]
    same = model_confidence_set({"a": good, "b": good.copy()})
    assert same["included"] == ["a", "b"]
