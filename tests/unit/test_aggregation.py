import json
from statistics import NormalDist

import numpy as np
import pytest

from core.modeling.aggregation import (
    AggregationState,
    aggregate,
    apply_pending,
    combine,
    start_aggregation,
)
from core.modeling.distribution_scores import pinball_rows

LEVELS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975, 0.99]
Z = np.array([NormalDist().inv_cdf(q) for q in LEVELS])
H = 5
METHODS = ["boa", "ewa"]


def panel(
    seed: int = 0, n_symbols: int = 30, n_dates: int = 600, switch: int = 300
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(dates, experts (rows, 2, K), y, date index per row): y ~ N(0, sigma_t) with a
    wandering volatility; expert A gives the true quantiles before ``switch`` and quantiles
    3 times too wide after, expert B the reverse."""
    rng = np.random.default_rng(seed)
    sigma_t = 0.01 * np.exp(np.cumsum(rng.normal(0, 0.02, n_dates)))
    index = np.repeat(np.arange(n_dates), n_symbols)
    sigma = sigma_t[index]
    y = rng.normal(0, sigma)
    true = sigma[:, None] * Z[None, :]
    early = (index < switch)[:, None]
    experts = np.stack([np.where(early, true, 3 * true), np.where(early, 3 * true, true)], axis=1)
    days = np.datetime64("2001-01-01") + np.arange(n_dates)
    return days[index].astype(str), experts, y, index


def pinball(y: np.ndarray, q: np.ndarray) -> float:
    return float(pinball_rows(y, q, LEVELS).mean())


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return panel()


@pytest.mark.parametrize("method", METHODS)
def test_weights_follow_the_better_expert(method, data):
    dates, experts, y, index = data
    state = start_aggregation(method, ["A", "B"], LEVELS, H)
    combined, used = aggregate(state, dates, experts, y)
    assert used.shape == (600, len(LEVELS), 2)
    np.testing.assert_allclose(used.sum(axis=2), 1.0)
    on_a = used[:, :, 0].mean(axis=1)  # averaged over the levels
    assert on_a[0] == 0.5  # uniform before any feedback
    assert on_a[290] > 0.8
    assert 1 - on_a[400] > 0.8
    assert (1 - on_a[400:]).mean() > 0.8
    assert np.all(np.diff(combined, axis=1) >= 0)  # no crossing
    late = index >= 400
    best = min(pinball(y[late], experts[late, e]) for e in range(2))
    assert pinball(y[late], combined[late]) <= 1.1 * best


def test_reference_boa_without_forgetting_is_slow_to_switch(data):
    """The reason for BOA's default ``forget``: with the reference's cumulative rates the
    weight on B is still below 0.8 at date 400."""
    dates, experts, y, _ = data
    state = start_aggregation("boa", ["A", "B"], LEVELS, H, forget=0.0)
    _, used = aggregate(state, dates, experts, y)
    on_a = used[:, :, 0].mean(axis=1)
    assert on_a[290] > 0.8
    assert 1 - on_a[400] < 0.8


@pytest.mark.parametrize("method", METHODS)
def test_one_expert_is_returned_exactly(method, data):
    dates, experts, y, _ = data
    state = start_aggregation(method, ["A"], LEVELS, H)
    combined, used = aggregate(state, dates, experts[:, :1], y)
    np.testing.assert_array_equal(combined, experts[:, 0])
    assert np.all(used == 1.0)


@pytest.mark.parametrize("method", METHODS)
def test_delayed_feedback(method, data):
    """The weights of date i use the outcomes of dates <= i - h only."""
    dates, experts, y, index = data
    rows, i = index < 120, 100
    dates, experts, y, index = dates[rows], experts[rows], y[rows], index[rows]
    _, used = aggregate(start_aggregation(method, ["A", "B"], LEVELS, H), dates, experts, y)
    rng = np.random.default_rng(1)
    late = index >= i - H + 1
    shaken = np.where(late, y + rng.normal(0, 0.05, len(y)), y)
    _, used_shaken = aggregate(
        start_aggregation(method, ["A", "B"], LEVELS, H), dates, experts, shaken
    )
    np.testing.assert_array_equal(used_shaken[: i + 1], used[: i + 1])
    assert not np.array_equal(used_shaken[i + 1], used[i + 1])  # date i - h + 1 counts there
    known = index < i - H + 1  # the outcomes of dates from i - h + 1 unknown: the same weights
    _, used_unknown = aggregate(
        start_aggregation(method, ["A", "B"], LEVELS, H),
        dates,
        experts,
        np.where(known, y, np.nan),
    )
    np.testing.assert_array_equal(used_unknown[: i + 1], used[: i + 1])


@pytest.mark.parametrize("method", METHODS)
def test_split_calls_give_the_same_outputs(method, data):
    dates, experts, y, index = data
    whole = start_aggregation(method, ["A", "B"], LEVELS, H)
    combined, used = aggregate(whole, dates, experts, y)
    first = start_aggregation(method, ["A", "B"], LEVELS, H)
    cut = int(np.searchsorted(index, 317))
    c1, u1 = aggregate(first, dates[:cut], experts[:cut], y[:cut])
    assert first.pending  # feedback still waiting crosses the split
    second = AggregationState.from_dict(json.loads(json.dumps(first.to_dict())))
    c2, u2 = aggregate(second, dates[cut:], experts[cut:], y[cut:])
    np.testing.assert_array_equal(np.concatenate([c1, c2]), combined)
    np.testing.assert_array_equal(np.concatenate([u1, u2]), used)
    assert second == whole


@pytest.mark.parametrize("method", METHODS)
def test_state_json_round_trip(method, data):
    dates, experts, y, index = data
    state = start_aggregation(method, ["A", "B"], LEVELS, H, rate=0.7)
    rows = index < 50
    aggregate(state, dates[rows], experts[rows], y[rows])
    text = json.dumps(state.to_dict())
    back = AggregationState.from_dict(json.loads(text))
    assert back == state
    assert back.last_date == "2001-02-19" and back.n_dates == 50
    assert len(back.pending) == H and back.applied == 50 - H
    assert back.rate == 0.7 and back.method == method


@pytest.mark.parametrize("method", METHODS)
def test_live_forecast_matches_the_backtest(method, data):
    """A daily predict (feed the dates with known outcomes, fold them, combine today's rows)
    forecasts date T as a backtest over every date does."""
    dates, experts, y, index = data
    t = 200
    backtest = start_aggregation(method, ["A", "B"], LEVELS, H)
    combined, _ = aggregate(backtest, dates, experts, y)
    live = start_aggregation(method, ["A", "B"], LEVELS, H)
    fed = index <= t - H
    aggregate(live, dates[fed], experts[fed], y[fed])
    assert apply_pending(live) == H
    today = index == t
    np.testing.assert_array_equal(combine(live, experts[today]), combined[today])


@pytest.mark.parametrize("method", METHODS)
def test_scale_free(method, data):
    """Scaling the outcomes and the quantiles (by a power of two: exact) leaves the weights."""
    dates, experts, y, index = data
    rows = index < 150
    _, used = aggregate(
        start_aggregation(method, ["A", "B"], LEVELS, H), dates[rows], experts[rows], y[rows]
    )
    _, scaled = aggregate(
        start_aggregation(method, ["A", "B"], LEVELS, H),
        dates[rows],
        64 * experts[rows],
        64 * y[rows],
    )
    np.testing.assert_allclose(scaled, used, rtol=1e-12, atol=1e-15)


def test_rejects_dates_out_of_order(data):
    dates, experts, y, _ = data
    state = start_aggregation("ewa", ["A", "B"], LEVELS, H)
    with pytest.raises(ValueError, match="sorted"):
        aggregate(state, dates[::-1], experts, y)
    aggregate(state, dates[:60], experts[:60], y[:60])
    with pytest.raises(ValueError, match="has seen"):
        aggregate(state, dates[30:90], experts[30:90], y[30:90])
    with pytest.raises(ValueError, match="shape"):
        aggregate(state, dates[60:90], experts[60:90, :, :3], y[60:90])
    with pytest.raises(ValueError, match="increasing"):
        start_aggregation("boa", ["A", "B"], [0.9, 0.1], H)
