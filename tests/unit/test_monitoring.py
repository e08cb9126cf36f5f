"""Monitoring's pure parts: drift statistics, alert memory, scoring, data health, retention."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from core.config import MonitorSettings, RetentionSettings
from core.modeling import drift_reference
from core.monitoring import alerts, drift, health, scores
from tests.factories import FROZEN_QUANTILES, FROZEN_RUN, frozen_model_store, weekdays


def test_psi_and_ks_see_a_shifted_feature_and_not_an_unchanged_one():
    rng = np.random.default_rng(1)
    train = pl.DataFrame({"same": rng.normal(0, 1, 20_000), "shifted": rng.normal(0, 1, 20_000)})
    recent = pl.DataFrame({"same": rng.normal(0, 1, 2_000), "shifted": rng.normal(0.8, 1.3, 2_000)})
    ref = drift_reference.drift_reference(
        train, ["same", "shifted"], {"shifted": 2.0, "same": 1.0}, ["a", "b"]
    )
    table = drift.drift_table(ref, recent, exempt=set(), top=10, threshold=0.25)
    got = {r["feature"]: r for r in table.iter_rows(named=True)}
    assert got["same"]["psi"] < 0.02 and not got["same"]["alerting"]
    assert got["shifted"]["psi"] > 0.25 and got["shifted"]["alerting"]
    assert table["feature"].to_list() == ["shifted", "same"]  # by importance
    # KS at the 101 stored quantiles is within a percentile of the exact two-sample statistic
    from scipy.stats import ks_2samp

    for name in ("same", "shifted"):
        exact = float(ks_2samp(train[name].to_numpy(), recent[name].to_numpy())[0])  # pyright: ignore[reportArgumentType]
        assert got[name]["ks"] == pytest.approx(exact, abs=0.011)
    # the same shift on an exempt (calendar) or a less important feature does not alert
    quiet = drift.drift_table(ref, recent, exempt={"shifted"}, top=10, threshold=0.25)
    assert not quiet["alerting"].any() and quiet.filter(pl.col("feature") == "shifted")["exempt"][0]
    assert not drift.drift_table(ref, recent, set(), top=0, threshold=0.25)["alerting"].any()


def test_psi_handles_ties_and_hand_computed_bins():
    """A discrete feature (ties at the decile edges): shares come from the exact bins."""
    train = np.repeat([0.0, 1.0], [700, 300])
    ref = drift_reference.feature_reference(train)
    assert ref["edges"] == [0.0, 1.0] and ref["shares"] == pytest.approx([0.7, 0.3, 0.0])
    recent = np.repeat([0.0, 1.0], [500, 500])
    expected = (0.5 - 0.7) * np.log(0.5 / 0.7) + (0.5 - 0.3) * np.log(0.5 / 0.3)
    assert drift.psi(ref, recent) == pytest.approx(expected)
    assert drift.psi(ref, train) == pytest.approx(0.0)


def test_an_alert_fires_once_then_again_only_after_it_cleared():
    bad = {"coverage_60": {"reason": "low", "coverage": 0.6}}
    state, fired = alerts.advance(None, bad, "2024-01-02")
    assert (
        list(fired) == ["coverage_60"] and state["active"]["coverage_60"]["since"] == "2024-01-02"
    )
    state, fired = alerts.advance(state, bad | {"fresh_bars": {"reason": "stale"}}, "2024-01-03")
    assert list(fired) == ["fresh_bars"]  # the lasting one stays silent
    assert state["active"]["coverage_60"]["since"] == "2024-01-02"
    state, fired = alerts.advance(state, {}, "2024-01-04")
    assert fired == {} and state["active"] == {}
    state, fired = alerts.advance(state, bad, "2024-01-05")
    assert list(fired) == ["coverage_60"]  # back after clearing: alerts again
    assert [h.get("started") or h.get("cleared") for h in state["history"]] == [
        "coverage_60", "fresh_bars", "coverage_60", "fresh_bars", "coverage_60",
    ]  # fmt: skip


def test_conditions_need_a_full_window_and_name_their_figures():
    cfg = MonitorSettings()
    low = {"60": {"days": 60, "coverage": 0.7, "dates": ["2024-01-01", "2024-03-28"]}}
    now, checked = alerts.conditions(
        low, None, {"fresh_share": 0.5, "fresh": 5, "symbols": 10, "session": "2024-03-28"}, cfg
    )
    assert set(now) == {"coverage_60", "fresh_bars"} and checked == {"coverage", "fresh"}
    assert "0.700" in now["coverage_60"]["reason"] and "5 of 10" in now["fresh_bars"]["reason"]
    short = {"60": low["60"] | {"days": 30}}
    assert alerts.conditions(short, None, None, cfg) == ({}, set())
    # what could not be checked today neither starts nor clears: the alert stays remembered
    state, _ = alerts.advance(None, now, "2024-03-28", checked)
    state, fired = alerts.advance(state, {}, "2024-03-29", set())
    assert fired == {} and set(state["active"]) == {"coverage_60", "fresh_bars"}
    # a pass as of an earlier day replays the past: it neither alerts nor forgets
    again, fired = alerts.advance(state, {}, "2024-01-02", {"coverage", "fresh"})
    assert fired == {} and again == state


def test_freshness_follows_the_exchange_calendar():
    # 2024-07-04 is a holiday: the latest session on the 4th is the 3rd (a half day)
    assert health.latest_session(dt.date(2024, 7, 4), "XNYS") == dt.date(2024, 7, 3)
    assert health.latest_session(dt.date(2024, 7, 6), "XNYS") == dt.date(2024, 7, 5)  # Saturday
    # before the close, today's session is not due yet
    early = dt.datetime(2024, 7, 5, 14, 0, tzinfo=dt.UTC)  # 10:00 in New York
    assert health.latest_session(dt.date(2024, 7, 5), "XNYS", early) == dt.date(2024, 7, 3)
    last = pl.DataFrame(
        {"symbol": ["A", "B", "C"], "last_date": [dt.date(2024, 7, 3), dt.date(2024, 7, 2), None]}
    )
    fresh = health.freshness(last, dt.date(2024, 7, 3))
    assert fresh["fresh"] == 1 and fresh["stale_symbols"] == ["B", "C"]
    with pytest.raises(Exception, match="XXXX"):
        health.latest_session(dt.date(2024, 7, 4), "XXXX")


def test_quarantine_rate_against_its_trailing_mean():
    def report(day: str, bad: int) -> dict:
        return {
            "run_id": f"{day}T183000Z-abc",
            "totals": {"rows_checked": 1000, "rows_quarantined": bad},
        }

    got = health.quarantine_rates(
        [
            report("20240101", 1),
            report("20240110", 3),
            report("20240301", 50),
            report("20240401", 9),
        ],
        dt.date(2024, 3, 5),
        days=60,
    )
    assert got["latest_run"].startswith("20240301") and got["latest_rate"] == 0.05
    assert got["trailing_mean"] == pytest.approx(0.002) and got["trailing_runs"] == 2


def test_scoring_again_gives_the_same_table(tmp_path):
    from core.features.table import price_panel
    from core.monitoring.monitor import live_forecasts
    from core.storage import Store

    root, dates = frozen_model_store(
        tmp_path / "store", symbols=5, days=80, shift_at=1000, forecast_days=20
    )
    store = Store(str(root))
    forecasts, files = live_forecasts(store, dates[-1], None)
    assert forecasts is not None and files == 20
    known = scores.outcomes(price_panel(store), 3, FROZEN_QUANTILES)
    first = scores.score(forecasts, known, FROZEN_QUANTILES, (0.1, 0.9), "live")
    assert first.height == 5 * 17  # the last 3 days' outcomes are not known yet
    assert (first["run_id"] == FROZEN_RUN).all()
    row = first.row(0, named=True)
    q = row["q_0.1"]
    assert row["pinball_0.1"] == pytest.approx(max(0.1 * (row["y"] - q), -0.9 * (row["y"] - q)))
    merged = scores.merge(scores.merge(None, first), first)
    assert merged.equals(scores.merge(None, first))
    # a newer scoring of the same forecasts replaces them; backtest rows keep their own key
    backtest = first.with_columns(pl.lit("backtest").alias("source"))
    both = scores.merge(merged, backtest)
    assert both.height == 2 * first.height
    series = scores.monitored(both)
    assert series.height == first.height and (series["source"] == "live").all()


def test_retention_plan_keeps_latest_and_report_runs(tmp_path):
    from core import layout
    from core.retention import apply, plan
    from core.storage import Store

    store = Store(str(tmp_path / "store"))
    runs = [f"2024010{i}T000000Z-run{i}0000" for i in range(1, 6)]
    for run in runs:
        store.write_json(layout.RUN_MANIFEST(run_id=run), {"run_id": run})
        store.write_json(layout.RUN_METRICS(run_id=run), {})
    store.write_json(layout.LATEST_RUN(), {"run_id": runs[0]})  # rolled back to the oldest
    for i, as_of in enumerate(["2024-02-01", "2024-02-02", "2024-02-03"]):
        store.write_bytes(layout.REPORT(as_of=as_of), b"<html></html>")
        store.write_json(layout.REPORT_META(as_of=as_of), {"run_id": runs[1 + i]})
    store.write_bytes(layout.REPORT_LATEST(), b"<html></html>")
    store.write_bytes(layout.QUARANTINE(symbol="A", run_id="20230101T000000Z-old"), b"x")
    store.write_bytes(layout.QUARANTINE(symbol="A", run_id="20240301T000000Z-new"), b"x")
    wandb = tmp_path / "wandb"
    for run, name in (
        (runs[1], "offline-run-20240101_000000-a"),
        (runs[2], "run-20240102_000000-b"),
        (runs[4], "offline-run-20240103_000000-c"),
    ):
        (wandb / "wandb" / name).mkdir(parents=True)  # W&B writes its runs into <dir>/wandb
        store.write_json(layout.RUN_WANDB(run_id=run), {"folder": name})  # the runs' own
    for marker in ("run-a.wandb", "run-a.wandb.synced"):  # `wandb sync` has synced a
        (wandb / "wandb" / "offline-run-20240101_000000-a" / marker).touch()
    todo = plan(
        store,
        RetentionSettings(runs=1, reports=1, quarantine_keep_days=60),
        dt.date(2024, 3, 5),
        wandb,
    )
    # kept: the newest run, the latest.json run, and the run the kept report was drawn from
    assert todo.protected_runs == [runs[0], runs[3], runs[4]]
    removed = {k for keys in todo.delete.values() for k in keys}
    assert (
        layout.RUN_MANIFEST(run_id=runs[1]) in removed
        and layout.RUN_MANIFEST(run_id=runs[2]) in removed
    )
    assert (
        layout.REPORT(as_of="2024-02-01") in removed
        and layout.REPORT(as_of="2024-02-03") not in removed
    )
    assert layout.REPORT_LATEST() not in removed
    assert removed & set(store.list("raw/quarantine")) == {
        layout.QUARANTINE(symbol="A", run_id="20230101T000000Z-old")
    }
    assert [p.name for p in todo.local] == [
        "offline-run-20240101_000000-a",
        "run-20240102_000000-b",
    ]
    apply(store, todo)
    assert store.exists(layout.RUN_MANIFEST(run_id=runs[0])) and not store.exists(
        layout.RUN_MANIFEST(run_id=runs[1])
    )
    assert [p.name for p in (wandb / "wandb").iterdir()] == ["offline-run-20240103_000000-c"]


def test_the_deployed_method_and_its_interval_are_read_from_any_layout():
    """Held-out and backtest predictions hold the learner in ``q_*`` and the others under
    their prefix: the report and monitor show the deployed one. Old files carry their own
    ``lo``/``hi``; in a frame of both layouts the new rows' interval comes from its levels."""
    from core.modeling.scorecard import as_method, with_interval

    frame = pl.DataFrame({"q_0.1": [-1.0], "q_0.9": [1.0], "har_q_0.1": [-2.0], "har_q_0.9": [2.0]})
    assert as_method(frame, "har", "lightgbm", [0.1, 0.9])["q_0.1"].to_list() == [-2.0]  # pyright: ignore[reportOptionalSubscript]
    assert as_method(frame, "lightgbm", "lightgbm", [0.1, 0.9]) is frame
    assert as_method(frame, "boa", "lightgbm", [0.1, 0.9]) is None  # no such forecasts
    old = pl.DataFrame({"q_0.1": [-1.0], "q_0.9": [1.0], "lo": [-1.5], "hi": [1.5]})
    mixed = pl.concat([old, frame.select("q_0.1", "q_0.9")], how="diagonal_relaxed")
    out = with_interval(mixed, (0.1, 0.9))
    assert out["lo"].to_list() == [-1.5, -1.0] and out["hi"].to_list() == [1.5, 1.0]


def var_series(days: int, symbols: int, extra: dict[str, int], seed: int = 0) -> pl.DataFrame:
    """A scored series with q_0.01 / q_0.99 at -1 / +1: outcomes standard normal scaled so
    each tail is hit 1 % of the time, plus ``extra`` forced long exceptions per symbol."""
    from statistics import NormalDist

    rng = np.random.default_rng(seed)
    dates = weekdays(days)
    z = NormalDist().inv_cdf(0.99)
    frames = []
    for k in range(symbols):
        symbol = f"S{k:02d}"
        y = rng.standard_normal(days) / z
        y[:: max(days // max(extra.get(symbol, 0), 1), 1)][: extra.get(symbol, 0)] = -5.0
        frames.append(pl.DataFrame({"symbol": symbol, "date": dates, "y": y}))
    return pl.concat(frames).with_columns(
        pl.lit(-1.0).alias("q_0.01"), pl.lit(0.0).alias("q_0.5"), pl.lit(1.0).alias("q_0.99")
    )


def test_the_99_var_watch_names_red_symbols_once_and_the_pooled_band():
    from core.monitoring import tail

    levels = [0.01, 0.5, 0.99]
    assert not tail.tail_watch(var_series(200, 5, {}), 1, levels)["checked"]
    assert not tail.tail_watch(var_series(300, 5, {}), 1, [0.1, 0.5, 0.9])["checked"]

    watch = tail.tail_watch(var_series(300, 30, {"S03": 12}), 1, levels)
    assert watch["checked"] and watch["symbols"] == 30 and watch["outcomes_per_symbol"] == 250
    assert watch["red"]["long"] == ["S03"]
    row = next(z for z in watch["zones"] if z["symbol"] == "S03")
    assert row["long_exceptions"] >= 10 and row["long_zone"] == "red"
    now = tail.conditions(watch)
    assert "red:S03" in now and not any(k.startswith("var99") for k in now)

    state, fired = alerts.advance(None, now, "2025-01-01", {"red", "var99"})
    assert list(tail.grouped(fired)) == ["red_zone"]
    assert tail.grouped(fired)["red_zone"]["symbols"] == ["S03"]
    # the next day S03 is still red and S07 enters: one alert naming S07 only
    later = tail.conditions(tail.tail_watch(var_series(300, 30, {"S03": 12, "S07": 15}), 1, levels))
    state, fired = alerts.advance(state, later, "2025-01-02", {"red", "var99"})
    assert tail.grouped(fired)["red_zone"]["symbols"] == ["S07"]

    # every symbol over its VaR far more often: the pooled exceedance leaves its band
    broad = tail.tail_watch(var_series(300, 30, {f"S{k:02d}": 8 for k in range(30)}), 1, levels)
    assert broad["pooled"]["long"]["outside"] and not broad["pooled"]["short"]["outside"]
    assert "var99_long" in tail.conditions(broad)


def test_at_h_above_one_zones_count_non_overlapping_outcomes():
    from core.monitoring import tail

    watch = tail.tail_watch(var_series(300, 10, {}), 5, [0.01, 0.5, 0.99])
    assert watch["outcomes_per_symbol"] == 50


def test_prune_plans_every_horizon_of_a_store(tmp_path):
    """Layout 3: the other horizons' runs are pruned under horizons/h=<h>/, each keeping its
    newest and its latest.json run; the shared quarantine files are planned once."""
    from core import layout
    from core.retention import apply, plan_store
    from core.storage import Store

    root = Store(str(tmp_path / "store"))
    root.write_json(layout.FEATURES_MANIFEST(), {"horizon": 3})
    ten = root.for_horizon(10, home=3)
    for store in (root, ten):
        runs = [f"2024010{i}T000000Z-run{i}0000" for i in range(1, 4)]
        for run in runs:
            store.write_json(layout.RUN_MANIFEST(run_id=run), {"run_id": run})
        store.write_json(layout.LATEST_RUN(), {"run_id": runs[-1]})
    root.write_bytes(layout.QUARANTINE(symbol="A", run_id="20230101T000000Z-old"), b"x")
    todo = plan_store(root, RetentionSettings(runs=1), dt.date(2024, 3, 5))
    removed = {k for keys in todo.delete.values() for k in keys}
    assert f"horizons/h=10/{layout.RUN_MANIFEST(run_id=runs[0])}" in removed
    assert layout.RUN_MANIFEST(run_id=runs[0]) in removed
    assert todo.items["model runs"] == 4 and todo.items["quarantine files"] == 1
    assert f"horizons/h=10/{runs[-1]}" in todo.protected_runs
    apply(root, todo)
    assert not ten.exists(layout.RUN_MANIFEST(run_id=runs[0]))
    assert ten.exists(layout.RUN_MANIFEST(run_id=runs[-1]))
