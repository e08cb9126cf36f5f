"""The risk section on a panel from a known GARCH-t process: the true conditional quantiles
pass as often as a perfect forecaster does, and their VaR and ES match the process's within
sampling error; a forecaster blind to volatility clustering is caught by DQ and Christoffersen
and a too-thin tail by Z2; FZ0's Diebold-Mariano prefers the true forecaster."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from scipy import stats

from core.modeling.risk_scorecard import risk_frame, risk_scorecard
from tests.factories import GJR_TRUE, weekdays

Q = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975, 0.99]
NU = GJR_TRUE["nu"]
UNIT = stats.t.ppf(Q, NU) * np.sqrt((NU - 2) / NU)
SYMBOLS, DAYS = 40, 1000


def garch_panel(seed: int = 7) -> pl.DataFrame:
    """symbol, date, y (a one-day log return) and the true conditional quantiles ``q_*``;
    ``flat_q_*``: each symbol's unconditional quantiles (right on average, blind to regimes);
    ``thin_q_*``: the true ones with normal tails."""
    rng = np.random.default_rng(seed)
    p = GJR_TRUE
    dates = weekdays(DAYS, start=dt.date(2015, 1, 5))
    frames = []
    for k in range(SYMBOLS):
        z = rng.standard_t(NU, DAYS) * np.sqrt((NU - 2) / NU)
        var = p["omega"] / (1 - p["alpha"] - p["gamma"] / 2 - p["beta"])
        sd, y = np.empty(DAYS), np.empty(DAYS)
        for t in range(DAYS):
            sd[t] = np.sqrt(var)
            e = sd[t] * z[t]
            y[t] = p["mu"] + e
            var = p["omega"] + (p["alpha"] + p["gamma"] * (e < 0)) * e**2 + p["beta"] * var
        true = (p["mu"] + sd[:, None] * UNIT[None, :]) / 100
        normal = (p["mu"] + sd[:, None] * stats.norm.ppf(Q)[None, :]) / 100
        flat = np.quantile(y / 100, Q)[None, :].repeat(DAYS, axis=0)
        frames.append(
            pl.DataFrame({"symbol": f"S{k:02d}", "date": dates, "y": y / 100}).with_columns(
                *[pl.Series(f"q_{q}", true[:, j]) for j, q in enumerate(Q)],
                *[pl.Series(f"flat_q_{q}", flat[:, j]) for j, q in enumerate(Q)],
                *[pl.Series(f"thin_q_{q}", normal[:, j]) for j, q in enumerate(Q)],
            )
        )
    return pl.concat(frames)


@pytest.fixture(scope="module")
def card() -> dict:
    return risk_scorecard(
        garch_panel(), Q, 1, {"true": "", "flat": "flat", "thin": "thin"}, lags=5,
        crash=("2015-03", "2015-05"),
    )  # fmt: skip


def test_the_true_forecaster_passes_as_often_as_a_perfect_one(card: dict):
    for key, t in card["methods"]["true"]["tails"].items():
        assert abs(t["exceedance"] - t["alpha"]) < 0.004, key
        assert abs(t["kupiec_pass_share"] - t["kupiec_reference"]) <= 0.1, key
        assert abs(t["dq_pass_share"] - t["dq_reference"]) <= 0.12, key
        assert t["z2_pooled"]["p_value"] > 0.01, key
    light = card["methods"]["true"]["tails"]["long_0.01"]["traffic_light"]
    assert light["blocks"] == SYMBOLS * (DAYS // 250)
    assert light["reference_green"] == pytest.approx(0.8922, abs=1e-4)
    assert light["red"] <= 0.05


def test_var_and_es_match_the_process_within_sampling_error():
    """VaR is the quantile in simple returns; beyond it, realized losses average the ES."""
    frame = garch_panel()
    risk = risk_frame(frame, Q)
    for alpha in (0.01, 0.025, 0.05):
        var = risk[f"var_long_{alpha}"].to_numpy()
        assert np.allclose(var, -np.expm1(frame[f"q_{alpha}"].to_numpy()))
        x = np.expm1(frame["y"].to_numpy())
        tail = x < -var
        # E[loss | beyond VaR] / ES: within the tail rule's few percent and sampling error
        ratio = np.mean(-x[tail]) / np.mean(risk[f"es_long_{alpha}"].to_numpy()[tail])
        assert ratio == pytest.approx(1.0, abs=0.08), alpha


def test_a_forecaster_blind_to_clustering_and_a_thin_tail_are_caught(card: dict):
    flat = card["methods"]["flat"]["tails"]["long_0.05"]
    true = card["methods"]["true"]["tails"]["long_0.05"]
    assert flat["dq_pass_share"] < true["dq_pass_share"] - 0.2
    assert flat["christoffersen_pass_share"] < true["christoffersen_pass_share"]
    thin = card["methods"]["thin"]["tails"]["long_0.01"]
    assert thin["exceedance"] > 0.012
    assert thin["z2_pooled"]["statistic"] < -0.1 and thin["z2_pooled"]["p_value"] < 0.05
    dm = card["fz0_diebold_mariano"]["long_0.01"]["true"]
    assert dm["thin"]["beats"] and dm["flat"]["beats"]


def test_the_crash_months_count_exceptions_per_symbol(card: dict):
    crash = card["methods"]["true"]["crash"]
    assert crash["months"] == ["2015-03", "2015-05"]
    assert crash["dates"] == 65 and crash["expected_per_symbol"] == pytest.approx(0.65)
    assert sum(crash["share_with"].values()) == pytest.approx(1.0)


def test_a_grid_without_both_tails_has_no_risk_section():
    frame = garch_panel().select("symbol", "date", "y", "q_0.1", "q_0.5", "q_0.9")
    card = risk_scorecard(frame, [0.1, 0.5, 0.9], 1, {"true": ""}, lags=5)
    assert "no risk level" in card["note"]
