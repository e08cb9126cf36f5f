"""Per-level calibration (``core.modeling.calibration``) on synthetic panels with known
conditional distributions: every level reaches its tau, with and without a volatility regime
shift; quantiles never cross; the tracker's feedback is delayed by the horizon; a new run
continues the newest tracker state."""

from __future__ import annotations

import json
import math
from statistics import NormalDist

import numpy as np
import pytest

from core.modeling.calibration import (
    TrackerState,
    conformal_rank,
    emit,
    fit_calibration,
    fold_known,
    start_tracker,
    track,
)

LEVELS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975, 0.99]
INTERVAL = (0.1, 0.9)
Z = np.array([NormalDist().inv_cdf(q) for q in LEVELS])
SYMBOLS = 60


def test_the_conformal_rank_is_the_one_sided_split_conformal_quantile():
    scores = np.arange(1.0, 10.0)  # n = 9
    assert conformal_rank(scores, 0.8) == 8.0  # ceil(10 * 0.8) = 8th smallest
    assert conformal_rank(scores, 0.05) == 1.0  # ceil(0.5) = 1st
    assert conformal_rank(scores, 0.95) == 9.0  # rank 10 > n: the largest


def panel(
    rng: np.random.Generator, dates: int, vol: np.ndarray, shrink: float = 0.5, bias: float = 0.3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dates, raw quantiles, y): outcomes N(0, vol_t^2) with a common shock per date (the
    cross-section moves together), and a model whose quantiles are too narrow and biased."""
    day = np.repeat(np.arange(dates), SYMBOLS)
    sigma = vol[day]
    common = rng.standard_normal(dates)[day]
    y = sigma * (np.sqrt(0.3) * common + np.sqrt(0.7) * rng.standard_normal(len(day)))
    raw = sigma[:, None] * (shrink * Z[None, :] + bias)
    return np.array([f"2020-{d:05d}" for d in day]), raw, y


def below(y: np.ndarray, q: np.ndarray) -> np.ndarray:
    return (y[:, None] <= q).mean(axis=0)


def test_every_level_reaches_its_tau_on_exchangeable_data():
    rng = np.random.default_rng(0)
    vol = np.full(400, 0.02)
    dates, raw, y = panel(rng, 400, vol)
    cal = fit_calibration(
        raw[: 200 * SYMBOLS], y[: 200 * SYMBOLS], dates[: 200 * SYMBOLS], LEVELS, INTERVAL
    )
    assert cal.n_rows == 200 * SYMBOLS and cal.n_dates == 200
    # the date-common shock makes the effective sample far smaller than the rows
    assert all(200 <= n < 0.5 * cal.n_rows for n in cal.n_effective[3:8])
    raw_rates = below(y[200 * SYMBOLS :], raw[200 * SYMBOLS :])
    assert np.max(np.abs(raw_rates - LEVELS)) > 0.1  # the raw model is badly off
    out, clipped = emit(cal, start_tracker(LEVELS, 3, 0.05, 0.02, "m"), raw[200 * SYMBOLS :], 1.0)
    assert clipped == 0
    # sampling error of a level's rate over 200 correlated dates: a few points at most
    assert np.max(np.abs(below(y[200 * SYMBOLS :], out) - LEVELS)) < 0.035


def test_the_trackers_hold_every_level_through_a_volatility_regime_shift():
    """Calibrated in a calm regime, then volatility triples and later falls back: the
    conformal shifts alone miss the volatile regime; the per-level trackers hold each level
    in both (the tails too, where a step in score units would be far too slow)."""
    rng = np.random.default_rng(1)
    vol = np.r_[np.full(200, 0.01), np.full(600, 0.03), np.full(600, 0.01)]
    # the raw model does not see the regime: its quantiles stay calm-sized
    dates, raw, y = panel(rng, len(vol), vol)
    raw = raw / vol[np.repeat(np.arange(len(vol)), SYMBOLS)][:, None] * 0.01
    n = 200 * SYMBOLS
    cal = fit_calibration(raw[:n], y[:n], dates[:n], LEVELS, INTERVAL)
    static, _ = emit(cal, start_tracker(LEVELS, 3, 0.05, 0.0, "m"), raw[n:], 1.0)
    state = start_tracker(LEVELS, 3, 0.05, 0.0, "m")  # no decay: nothing refits here
    tracked, _ = track(cal, state, dates[n:], raw[n:], y[n:], 1.0)
    for part in (slice(0, 600 * SYMBOLS), slice(600 * SYMBOLS, None)):
        # judged after 100 dates of adaptation into each regime
        settled = slice(part.start + 100 * SYMBOLS, part.stop)
        if part.start == 0:
            assert np.max(np.abs(below(y[n:][settled], static[settled]) - LEVELS)) > 0.1
        rates = below(y[n:][settled], tracked[settled])
        assert np.max(np.abs(rates - LEVELS)) < 0.03, rates
    assert (np.diff(tracked, axis=1) >= 0).all()  # never crossing


def test_quantiles_never_cross_and_the_sanity_bound_clips_and_counts():
    rng = np.random.default_rng(2)
    dates, raw, y = panel(rng, 100, np.full(100, 0.02))
    cal = fit_calibration(raw, y, dates, LEVELS, INTERVAL)
    crossed = raw[:5].copy()
    crossed[:, [2, 8]] = crossed[:, [8, 2]]  # a model's crossing quantiles
    out, _ = emit(cal, start_tracker(LEVELS, 3, 0.05, 0.02, "m"), crossed, 1.0)
    assert (np.diff(out, axis=1) >= 0).all()
    wild = raw[:4] * 1e4  # an exploding method
    out, clipped = emit(cal, start_tracker(LEVELS, 3, 0.05, 0.02, "m"), wild, 0.5)
    assert np.abs(out).max() <= 0.5 and clipped > 0


def test_the_tracker_feedback_is_delayed_by_the_horizon():
    """An outcome of date t moves the offsets only from date t + h on."""
    rng = np.random.default_rng(3)
    dates, raw, y = panel(rng, 40, np.full(40, 0.02))
    cal = fit_calibration(raw, y, dates, LEVELS, INTERVAL)
    h, day = 3, 20
    base, _ = track(cal, start_tracker(LEVELS, h, 0.05, 0.02, "m"), dates, raw, y, 1.0)
    moved = y.copy()
    moved[day * SYMBOLS : (day + 1) * SYMBOLS] += 1.0  # date 20's outcomes all far above
    again, _ = track(cal, start_tracker(LEVELS, h, 0.05, 0.02, "m"), dates, raw, moved, 1.0)
    until = (day + h) * SYMBOLS
    assert np.array_equal(base[:until], again[:until])
    assert not np.array_equal(base[until : until + SYMBOLS], again[until : until + SYMBOLS])


def test_a_state_round_trips_and_a_new_run_continues_the_newest(tmp_path):
    """The rule predict and the backtest share: a newly deployed run starts from the tracker
    state that has seen the latest outcome, its own held-out one or a previous run's live
    one of the same levels, horizon and method."""
    from core import layout
    from core.modeling.prediction import starting_state
    from core.storage import Store

    store = Store(str(tmp_path / "store"))
    own = TrackerState(
        LEVELS, 3, 0.05, 0.02, [0.1] * 11, [["2020-03-02", [0.1] * 11]], 1, "lightgbm"
    )
    assert TrackerState.from_dict(own.to_dict()) == own
    assert starting_state(store, own) == own  # nothing else yet
    live = TrackerState(
        LEVELS, 3, 0.2, 0.02, [0.3] * 11, [["2020-03-09", [0.2] * 11]], 1, "lightgbm"
    )
    other = TrackerState(LEVELS, 3, 0.05, 0.02, [0.9] * 11, [["2020-04-01", [0.2] * 11]], 1, "har")
    store.write_json(layout.TRACKER_STATE(run_id="A"), live.to_dict())
    store.write_json(layout.TRACKER_STATE(run_id="B"), other.to_dict())
    store.write_bytes(layout.TRACKER_STATE(run_id="C"), b"{broken")
    started = starting_state(store, own)
    assert started.offsets == live.offsets and started.history == live.history
    assert started.step == own.step  # the new run's own step size
    assert math.isclose(starting_state(store, own).offsets[0], 0.3)


@pytest.mark.parametrize("step", [0.02, 0.1])
def test_a_wider_step_adapts_faster(step):
    """The step is in coverage units: the share of a date's coverage error it corrects."""
    rng = np.random.default_rng(4)
    vol = np.r_[np.full(100, 0.01), np.full(100, 0.03)]
    dates, raw, y = panel(rng, 200, vol)
    raw = raw / vol[np.repeat(np.arange(200), SYMBOLS)][:, None] * 0.01
    n = 100 * SYMBOLS
    cal = fit_calibration(raw[:n], y[:n], dates[:n], LEVELS, INTERVAL)
    state = start_tracker(LEVELS, 1, step, 0.0, "m")
    track(cal, state, dates[n:], raw[n:], y[n:], 1.0)
    moved = float(np.mean(np.abs(state.offsets)))
    assert moved > (1.0 if step == 0.1 else 0.3)


def test_decay_fades_a_crash_offset_that_the_tails_alone_would_keep_for_a_year():
    """A few crash dates put 40 % of outcomes below the 1 % quantile: the offset jumps. Without
    decay only that level's rare hits undo it (1 % a date); with decay it fades in weeks."""
    rng = np.random.default_rng(5)
    dates, raw, y = panel(rng, 300, np.full(300, 0.02))
    cal = fit_calibration(raw, y, dates, LEVELS, INTERVAL)
    crash = [
        [f"2021-{d:05d}", [0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97]]
        for d in range(3)
    ]
    calm = [[f"2021-{d:05d}", LEVELS] for d in range(3, 63)]  # then exactly calibrated dates
    kept = {}
    for decay in (0.0, 0.05):
        state = start_tracker(LEVELS, 1, 0.05, decay, "m")
        state.history = crash + calm
        fold_known(cal, state, 3)
        after_crash = state.offsets[0]
        fold_known(cal, state, len(state.history))
        kept[decay] = state.offsets[0] / after_crash
    assert after_crash < -0.1  # the crash moved the 1 % level's offset down
    assert kept[0.0] == pytest.approx(1.0)  # calibrated dates alone never undo it
    assert kept[0.05] < 0.05  # 60 dates at 5 %: 0.95^60 = 0.046


def drifting_panel(rng: np.random.Generator, dates: int) -> tuple[np.ndarray, ...]:
    """(dates, symbols, raw, y): the pooled ``panel``, with every second symbol's outcomes
    drifting 0.4 sigma above the rest: pooled calibration leaves both halves off."""
    day_dates, raw, y = panel(rng, dates, np.full(dates, 0.02), shrink=1.0, bias=0.0)
    symbols = np.tile(np.array([f"S{i:02d}" for i in range(SYMBOLS)]), dates)
    drifting = np.tile(np.arange(SYMBOLS) % 2 == 0, dates)
    return day_dates, symbols, raw, y + 0.4 * 0.02 * drifting, drifting


def test_the_symbol_tracker_pulls_a_symbol_off_the_pooled_calibration_back():
    """Half the symbols drift above the pooled calibration: with the per-symbol tracker their
    median exceedance moves toward 0.5 from both sides; without it it stays off."""
    rng = np.random.default_rng(6)
    dates, symbols, raw, y, drifting = drifting_panel(rng, 700)
    n = 200 * SYMBOLS
    cal = fit_calibration(raw[:n], y[:n], dates[:n], LEVELS, INTERVAL)
    late = slice(n + 300 * SYMBOLS, None)  # after the offsets have settled
    errors = {}
    for step in (0.0, 0.01):
        state = start_tracker(LEVELS, 3, 0.02, 0.02, "m", symbol_step=step, symbol_decay=0.0)
        out, _ = track(cal, state, dates[n:], raw[n:], y[n:], 1.0, symbols[n:])
        median = out[:, LEVELS.index(0.5)]
        hit = (y[n:] <= median)[late.start - n :]
        side = drifting[late]
        errors[step] = (abs(hit[side].mean() - 0.5), abs(hit[~side].mean() - 0.5))
        if step == 0.0:
            assert not state.symbol_hits and not state.symbol_offsets  # nothing kept unused
    assert min(errors[0.0]) > 0.06  # the pooled rule alone: each half about 0.08 off its median
    assert max(errors[0.01]) < 0.03
    assert set(state.symbol_offsets) == set(symbols)
    assert np.mean([v[5] for s, v in state.symbol_offsets.items() if int(s[1:]) % 2 == 0]) > 0


def test_a_symbol_tracker_state_continues_across_runs_exactly():
    """Tracking in two calls with a JSON round trip between them (what predict does day after
    day, pending symbol hits included) emits exactly what one pass does."""
    rng = np.random.default_rng(7)
    dates, symbols, raw, y, _ = drifting_panel(rng, 80)
    cal = fit_calibration(raw, y, dates, LEVELS, INTERVAL)

    def fresh() -> TrackerState:
        return start_tracker(LEVELS, 3, 0.02, 0.02, "m", symbol_step=0.01, symbol_decay=0.01)

    whole, _ = track(cal, fresh(), dates, raw, y, 1.0, symbols)
    cut = 50 * SYMBOLS
    state = fresh()
    first, _ = track(cal, state, dates[:cut], raw[:cut], y[:cut], 1.0, symbols[:cut])
    assert len(state.symbol_hits) == 3  # the last h dates' hits wait to be folded
    again = TrackerState.from_dict(json.loads(json.dumps(state.to_dict())))
    second, _ = track(cal, again, dates[cut:], raw[cut:], y[cut:], 1.0, symbols[cut:])
    np.testing.assert_array_equal(np.vstack([first, second]), whole)


def test_a_state_written_before_the_symbol_tracker_reads_as_none():
    """Tracker states of runs deployed before it (no symbol keys) continue unchanged."""
    old = TrackerState(LEVELS, 3, 0.02, 0.02, [0.1] * 11, [["2020-03-02", [0.1] * 11]], 1, "m")
    written = json.dumps({k: v for k, v in old.to_dict().items() if not k.startswith("symbol_")})
    state = TrackerState.from_dict(json.loads(written))  # as the previous main wrote it
    assert state.symbol_step == 0.0 and state.symbol_offsets == {}
    rng = np.random.default_rng(8)
    dates, symbols, raw, y, _ = drifting_panel(rng, 20)
    cal = fit_calibration(raw, y, dates, LEVELS, INTERVAL)
    with_names, _ = track(cal, state, dates, raw, y, 1.0, symbols)
    without, _ = track(cal, TrackerState.from_dict(json.loads(written)), dates, raw, y, 1.0)
    np.testing.assert_array_equal(with_names, without)
