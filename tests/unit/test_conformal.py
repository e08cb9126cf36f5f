import math

import numpy as np
import pytest

from core.modeling.conformal import (
    CQR,
    ACIState,
    aci_intervals,
    apply_cqr,
    conformal_quantile,
    fit_cqr,
    start_state,
    tracker_scale,
)

Q = [0.1, 0.25, 0.5, 0.75, 0.9]
Z = {0.1: -1.2816, 0.25: -0.6745, 0.5: 0.0, 0.75: 0.6745, 0.9: 1.2816}


def test_conformal_quantile_rank():
    scores = np.arange(1.0, 10.0)  # n = 9
    assert conformal_quantile(scores, 0.2) == 8.0  # ceil(10 * 0.8) = 8th smallest
    assert conformal_quantile(scores, 0.05) == math.inf  # rank 10 > n


def synthetic(
    rng: np.random.Generator, n: int, shrink: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Heteroscedastic outcomes and a model whose quantiles are too narrow by `shrink`."""
    x = rng.uniform(0, 1, n)
    sigma = 0.01 * (1 + 3 * x)
    y = rng.normal(0, sigma)
    preds = np.column_stack([shrink * Z[q] * sigma for q in Q])
    return preds, y


@pytest.mark.parametrize(
    ("mode", "normalized"), [("symmetric", False), ("asymmetric", False), ("symmetric", True)]
)
def test_cqr_coverage_on_exchangeable_data(mode, normalized):
    """Averaged over many seeds, coverage is at least 1 - alpha and not far above."""
    covers = []
    n_cal = 500
    for seed in range(200):
        rng = np.random.default_rng(seed)
        cal_p, cal_y = synthetic(rng, n_cal)
        test_p, test_y = synthetic(rng, 2000)
        cqr = fit_cqr(cal_p, cal_y, Q, 0.2, mode, normalized)  # pyright: ignore[reportArgumentType]
        _, lo, hi = apply_cqr(cqr, test_p)
        covers.append(np.mean((test_y >= lo) & (test_y <= hi)))
    raw = np.mean(
        [
            np.mean((y >= p[:, 0]) & (y <= p[:, -1]))
            for p, y in [synthetic(np.random.default_rng(1), 5000)]
        ]
    )
    assert raw < 0.55  # the uncalibrated model is far off
    mean = float(np.mean(covers))
    assert (
        0.8 - 0.004
        <= mean
        <= 0.8 + 1 / (n_cal + 1) + 0.006 + (0.004 if mode == "asymmetric" else 0)
    )


def test_inner_quantiles_are_shifted_and_monotone():
    rng = np.random.default_rng(0)
    cal_p, cal_y = synthetic(rng, 4000)
    test_p, test_y = synthetic(rng, 20000)
    cqr = fit_cqr(cal_p + 0.004, cal_y, Q, 0.2)  # biased model
    calibrated, _, _ = apply_cqr(cqr, test_p + 0.004)
    assert (np.diff(calibrated, axis=1) >= 0).all()
    for j, q in enumerate(Q[1:-1], start=1):
        assert abs(np.mean(test_y <= calibrated[:, j]) - q) < 0.02
    assert CQR.from_dict(cqr.to_dict()) == cqr


def regime_panel(rng: np.random.Generator, dates: int, symbols: int, shift_at: int):
    """Outcomes whose volatility doubles at `shift_at`; the model keeps the calm scale."""
    day = np.repeat(np.arange(dates), symbols)
    sigma = np.where(day >= shift_at, 0.02, 0.01)
    y = rng.normal(0, sigma)
    preds = (
        np.column_stack([Z[q] * 0.01 for q in Q] * 1).repeat(len(y), axis=0).reshape(len(y), len(Q))
    )
    return day, preds, y


@pytest.mark.parametrize(("method", "step"), [("aci", 0.01), ("tracker", 0.1)])
def test_online_calibration_holds_coverage_through_a_volatility_regime_shift(method, step):
    rng = np.random.default_rng(3)
    _, cal_p, cal_y = regime_panel(rng, 100, 50, shift_at=10**9)
    cqr = fit_cqr(cal_p, cal_y, Q, 0.2)
    day, preds, y = regime_panel(rng, 700, 50, shift_at=200)
    _, lo_split, hi_split = apply_cqr(cqr, preds)
    state = start_state(cqr, method, step, 3)
    lo, hi, alpha_used, offset = aci_intervals(cqr, state, day, preds, y)
    early, late = day < 200, day >= 450
    split_cov = np.mean((y[late] >= lo_split[late]) & (y[late] <= hi_split[late]))
    online_cov = np.mean((y[late] >= lo[late]) & (y[late] <= hi[late]))
    assert abs(np.mean((y[early] >= lo[early]) & (y[early] <= hi[early])) - 0.8) < 0.05
    assert split_cov < 0.55  # plain split conformal breaks after the shift
    assert abs(online_cov - 0.8) < 0.05  # the online update adapts
    assert offset[late].mean() > 2 * offset[early].mean()  # by widening
    if method == "aci":
        assert alpha_used[late].mean() < 0.05
    else:
        assert np.isnan(alpha_used).all()  # the tracker has no alpha level
    assert ACIState.from_dict(state.to_dict()) == state


def test_tracker_starts_at_its_calibration_quantile():
    """The starting q is the conformal quantile of the calibration scores in the tracker's
    units, so on the calibration rows themselves the interval covers at least 1 - alpha."""
    rng = np.random.default_rng(5)
    preds, y = synthetic(rng, 2000)
    cqr = fit_cqr(preds, y, Q, 0.2)
    assert cqr.ref_width == pytest.approx(np.mean(preds[:, -1] - preds[:, 0]))
    unit = tracker_scale(preds, cqr.ref_width)
    lo, hi = preds[:, 0] - cqr.q_tracker * unit, preds[:, -1] + cqr.q_tracker * unit
    assert 0.8 <= np.mean((y >= lo) & (y <= hi)) <= 0.8 + 2 / len(y)
    assert start_state(cqr, "tracker", 0.1, 3).q_t == cqr.q_tracker
    # a file written before the tracker existed still reads, as an ACI calibration
    old = {k: v for k, v in cqr.to_dict().items() if k not in ("ref_width", "q_tracker")}
    assert CQR.from_dict(old).q_tracker == 0.0
    state = start_state(cqr, "aci", 0.05, 3).to_dict()
    assert (
        ACIState.from_dict({k: v for k, v in state.items() if k not in ("method", "q_t")}).method
        == "aci"
    )


def test_aci_feedback_is_delayed_by_the_horizon():
    cqr = fit_cqr(np.tile([-1.0, -0.5, 0, 0.5, 1.0], (100, 1)), np.linspace(-1.5, 1.5, 100), Q, 0.2)
    day = np.arange(10)
    preds = np.tile([-1.0, -0.5, 0, 0.5, 1.0], (10, 1))
    y = np.full(10, 100.0)  # every outcome a miss
    state = ACIState(target_alpha=0.2, gamma=0.1, horizon=3, alpha_t=0.2)
    _, _, used, _ = aci_intervals(cqr, state, day, preds, y)
    # date i may use the outcomes of dates <= i - 3 only: nothing before date 3
    assert list(used[:3]) == [0.2, 0.2, 0.2]
    assert used[3] == pytest.approx(0.2 + 0.1 * (0.2 - 1.0))
    assert used[5] == pytest.approx(0.2 + 3 * 0.1 * (0.2 - 1.0))
    # the tracker, by hand: q_t = q_0 + eta * (err - alpha) per known date, width scaled
    tracker = start_state(cqr, "tracker", 0.1, 3)
    lo, hi, _, q = aci_intervals(cqr, tracker, day, preds, y)
    q0 = cqr.q_tracker
    assert list(q[:3]) == [q0] * 3
    assert q[5] == pytest.approx(q0 + 3 * 0.1 * (1.0 - 0.2))
    unit = np.sqrt(2.0 * cqr.ref_width)  # predicted width 2
    assert hi[5] == pytest.approx(1.0 + q[5] * unit) and lo[5] == pytest.approx(-1.0 - q[5] * unit)


def test_a_new_run_continues_the_newest_aci_state(tmp_path):
    """The rule predict and the backtest share: a newly deployed model starts from the ACI
    state that has seen the latest outcome, its own held-out one or a previous run's."""
    from core import layout
    from core.modeling.prediction import starting_state
    from core.storage import Store

    store = Store(str(tmp_path / "store"))
    own = ACIState(0.2, 0.05, 3, 0.18, [["2020-03-02", 0.1], ["2020-03-03", 0.3]], 0)
    assert starting_state(store, own).alpha_t == 0.18  # nothing else yet

    live = ACIState(0.2, 0.01, 3, 0.25, [["2020-03-02", 0.1], ["2020-03-09", 0.0]], 2)
    other_target = ACIState(0.1, 0.05, 3, 0.05, [["2020-04-01", 0.0]], 1)
    store.write_json(layout.ACI_STATE(run_id="A"), live.to_dict())
    store.write_json(layout.ACI_STATE(run_id="B"), other_target.to_dict())
    store.write_bytes(layout.ACI_STATE(run_id="C"), b"{broken")
    started = starting_state(store, own)
    assert started.alpha_t == 0.25 and started.history == live.history and started.applied == 2
    assert started.gamma == own.gamma  # the new run's own step size

    newer_own = ACIState(0.2, 0.05, 3, 0.19, [["2020-03-10", 0.2]], 0)
    assert starting_state(store, newer_own).alpha_t == 0.19
    # a state of the other online method is not continued: its numbers mean something else
    tracker_own = ACIState(0.2, 0.1, 3, 0.2, [["2020-03-03", 0.3]], 0, "tracker", 0.4)
    assert starting_state(store, tracker_own) == tracker_own
