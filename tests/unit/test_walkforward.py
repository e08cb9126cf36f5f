"""Walk-forward refits on small synthetic panels with known volatility regimes: windows and
embargo, no information from after a forecast's date, every method calibrated per level with
its tracker carried across refits."""

from __future__ import annotations

import copy
import datetime as dt
import itertools

import numpy as np
import polars as pl
import pytest

from core.config import BacktestSettings, ModelSettings, RefitSettings
from core.errors import InsufficientDataError
from core.modeling.calibration import track
from core.modeling.timeline import deployment_window, plan_refits, segments, trading_dates
from core.modeling.walkforward import calibrate_in_order, new_tracker, refit

H = 3
FEATURES = ["symbol", "vol20", "ret5"]
MODEL = ModelSettings(
    name="lightgbm",
    quantiles=[0.1, 0.5, 0.9],
    params={"num_boost_round": 30, "min_data_in_leaf": 50},
    volatility_scaling="off",
)
WINDOWS = BacktestSettings(refit_every=60, min_history_days=900)
REFIT = RefitSettings(calibration_days=120, validation_days=60)
BASELINES = ["historical", "ewma", "garch", "har"]


def prices(days: int = 1300, symbols: int = 5, seed: int = 3) -> pl.DataFrame:
    """Daily bars whose volatility switches between 1 % and 3 % every 250 days."""
    rng = np.random.default_rng(seed)
    dates = pl.date_range(dt.date(2012, 1, 2), dt.date(2030, 1, 1), "1d", eager=True)
    dates = dates.filter(dates.dt.weekday() <= 5)[:days]
    frames = []
    for s in range(symbols):
        vol = np.where((np.arange(days) // 250) % 2 == 0, 0.01, 0.03) * (1 + 0.2 * s)
        r = rng.standard_t(5, days) * vol / np.sqrt(5 / 3)
        close = 50 * np.exp(np.cumsum(r))
        spread = np.abs(rng.normal(0, vol)) + vol / 2
        frames.append(
            pl.DataFrame(
                {
                    "symbol": f"S{s}",
                    "date": dates,
                    "close": close,
                    "high": close * np.exp(spread),
                    "low": close * np.exp(-spread),
                }
            )
        )
    return pl.concat(frames)


def table(bars: pl.DataFrame) -> pl.DataFrame:
    """A causal feature table (trailing volatility and return) with the h-day target y."""
    r = (pl.col("close") / pl.col("close").shift(1)).log().over("symbol")
    return (
        bars.sort("symbol", "date")
        .with_columns(r.alias("_r"))
        .select(
            "symbol",
            "date",
            pl.col("_r").rolling_std(20).over("symbol").alias("vol20"),
            (pl.col("close") / pl.col("close").shift(5)).log().over("symbol").alias("ret5"),
            (pl.col("close").shift(-H) / pl.col("close")).log().over("symbol").alias("y"),
        )
        .drop_nulls(["vol20", "ret5"])
    )


def backtest(
    bars: pl.DataFrame, cfg: BacktestSettings = WINDOWS, baselines: list[str] = BASELINES
) -> pl.DataFrame:
    t = table(bars)
    windows = plan_refits(trading_dates(t), H, MODEL, REFIT, cfg)
    blocks = [refit(t, bars, FEATURES, MODEL, H, w, baselines)[:2] for w in windows]
    return calibrate_in_order(blocks, MODEL, H).frame


def test_windows_are_ordered_embargoed_and_cover_the_forecast_dates():
    t = table(prices())
    dates = trading_dates(t)
    windows = plan_refits(dates, H, MODEL, REFIT, WINDOWS)
    assert len(windows) > 3
    first_allowed = dates[0] + dt.timedelta(days=WINDOWS.min_history_days)
    assert windows[0].refit >= first_allowed
    assert windows[-1].until == dates[-1]
    for a, b in itertools.pairwise(windows):
        assert dates.index(b.refit) == dates.index(a.until) + 1  # no gap, no overlap
        assert dates.index(b.refit) - dates.index(a.refit) == WINDOWS.refit_every
    for w in windows:
        i = dates.index
        assert i(w.refit) - i(w.cal[1]) == H  # the newest fitted target ends at the refit
        assert i(w.cal[0]) - i(w.val[1]) == H + 1 and i(w.val[0]) - i(w.train[1]) == H + 1
        assert i(w.cal[1]) - i(w.cal[0]) + 1 == REFIT.calibration_days
        assert i(w.val[1]) - i(w.val[0]) + 1 == REFIT.validation_days
        assert w.train[0] >= w.refit - dt.timedelta(days=MODEL.lookback_days)


def test_a_short_history_is_named_and_the_deployed_window_ends_at_the_newest_outcome():
    t = table(prices(days=400))
    dates = trading_dates(t)
    with pytest.raises(InsufficientDataError, match="min_history_days"):
        plan_refits(dates, H, MODEL, REFIT, WINDOWS)
    deployed = deployment_window(dates, H, MODEL, REFIT)
    labelled = t.filter(pl.col("y").is_not_null())["date"].max()
    assert deployed.cal[1] == labelled and deployed.refit == dates[-1]
    # too short for 120 + 60 dates: calibration and validation shrink in the split proportions
    assert dates.index(deployed.cal[1]) - dates.index(deployed.cal[0]) + 1 < 120


def test_a_shock_after_a_date_changes_nothing_forecast_at_or_before_it():
    bars = prices()
    dates = trading_dates(table(bars))
    cut = dates[1000]  # inside a refit's forecast window, not at its start
    shocked = bars.with_columns(
        [
            pl.when(pl.col("date") > cut).then(pl.col(c) * 1.5).otherwise(pl.col(c)).alias(c)
            for c in ("close", "high", "low")
        ]
    ).with_columns(  # and a volatility burst after the cut
        pl.when(pl.col("date") > cut)
        .then(pl.col("high") * 1.1)
        .otherwise(pl.col("high"))
        .alias("high")
    )
    span = WINDOWS.model_copy(update={"start": dates[900], "end": dates[1100]})
    before, after = backtest(bars, span), backtest(shocked, span)
    assert before["refit"].n_unique() == 4
    forecast = [c for c in before.columns if c not in ("y",)]
    a = before.filter(pl.col("date") <= cut).select(forecast)
    b = after.filter(pl.col("date") <= cut).select(forecast)
    assert a.height > 500 and a.equals(b)
    # ... and the shock does change forecasts after it (the test could fail)
    later = [c for c in forecast if c.startswith(("q_", "lo", "hi"))]
    assert (
        not before.filter(pl.col("date") > cut)
        .select(later)
        .equals(after.filter(pl.col("date") > cut).select(later))
    )


def test_trackers_carried_across_refits_equal_one_continuous_run():
    cfg = MODEL
    bars = prices(days=1200)
    t = table(bars)
    windows = plan_refits(trading_dates(t), H, cfg, REFIT, WINDOWS)
    blocks = [refit(t, bars, FEATURES, cfg, H, w, ["ewma"])[:2] for w in windows]
    whole = calibrate_in_order(blocks, cfg, H)
    head = calibrate_in_order(blocks[:2], cfg, H)
    tail = calibrate_in_order(blocks[2:], cfg, H, copy.deepcopy(head.states))
    assert pl.concat([head.frame, tail.frame]).equals(whole.frame)
    assert tail.states == whole.states and set(whole.states) == {"lightgbm", "ewma"}
    # each method has its own state, and it moved
    assert whole.states["lightgbm"].offsets != whole.states["ewma"].offsets
    assert all(abs(v) > 0 for v in whole.states["ewma"].offsets)

    # with one calibration for every block, it is exactly one online run over all the dates
    same = [(frame, blocks[0][1]) for frame, _ in blocks]
    joined = calibrate_in_order(same, cfg, H).frame
    rows = pl.concat([f for f, _ in blocks]).sort("date", "symbol")
    raw = rows.select("q_0.1_raw", "q_0.5_raw", "q_0.9_raw").to_numpy()
    state0 = new_tracker(cfg, H, "lightgbm")
    assert state0.symbol_step > 0  # the per-symbol tracker runs too, carried alike
    y = rows["y"].fill_null(np.nan).to_numpy()
    emitted, _ = track(
        blocks[0][1]["lightgbm"], state0, rows["date"].cast(pl.String).to_numpy(), raw, y,
        cfg.quantile_bound, rows["symbol"].to_numpy(),
    )  # fmt: skip
    assert np.allclose(joined.select("q_0.1", "q_0.5", "q_0.9").to_numpy(), emitted)


def test_the_backtest_tracks_the_regimes_at_every_level_for_every_method():
    """Each level's exceedance near its level in both regimes, calm and volatile, for the
    model and a baseline calibrated alike; the quantiles never cross."""
    out = backtest(prices(days=1500), baselines=["ewma"]).filter(pl.col("y").is_not_null())
    regime = (pl.col("date").rank("dense") // 250) % 2
    for _, part in out.with_columns(regime.alias("regime")).group_by("regime"):
        for p in ("", "ewma_"):
            for q in MODEL.quantiles:
                below = float((part["y"] <= part[f"{p}q_{q}"]).mean())  # pyright: ignore[reportArgumentType]
                assert abs(below - q) < 0.1, (p, q, below)
            values = part.select(f"{p}q_{q}" for q in MODEL.quantiles).to_numpy()
            assert (np.diff(values, axis=1) >= 0).all()


def test_the_embargo_holds_for_a_symbol_with_missing_days():
    """h rows of a symbol with a gap span more than h panel dates: its newest calibration
    rows, whose targets would end after the refit, are left out of the fit."""

    bars = prices(days=1100)
    t0 = table(bars)
    dates = trading_dates(t0)
    w = plan_refits(dates, H, MODEL, REFIT, WINDOWS)[0]
    i = dates.index(w.refit)
    gap = dates[i - 1]  # S0 misses the day before the refit
    t = table(bars.filter(~((pl.col("symbol") == "S0") & (pl.col("date") == gap))))
    cal = segments(t, w, H)["cal"]
    assert cal.filter(pl.col("symbol") == "S0")["date"].max() == dates[i - H - 1]
    assert cal.filter(pl.col("symbol") == "S1")["date"].max() == w.cal[1] == dates[i - H]


def test_fits_learn_from_every_hth_training_date_unless_set_otherwise():
    """Overlapping h-day targets make neighbouring dates near duplicates: by default a
    LightGBM window's fits (not CatBoost's: it lost quality) take the training rows of every
    h-th date, back from the newest (kept), and every model and baseline learns from the same
    rows; validation and calibration keep every date."""
    from core.modeling.timeline import every_nth_date
    from core.modeling.walkforward import fit_window, train_step

    t = table(prices(days=1100))
    w = plan_refits(trading_dates(t), H, MODEL, REFIT, WINDOWS)[0]
    seg = segments(t, w, H)
    train_dates = seg["train"]["date"].unique().sort(descending=True).to_list()
    thinned = every_nth_date(seg["train"], H)
    assert thinned["date"].unique().sort(descending=True).to_list() == train_dates[::H]
    assert every_nth_date(seg["train"], 1).equals(seg["train"])
    assert MODEL.train_every == 0 and train_step(MODEL, H) == H
    catboost = ModelSettings(name="catboost")
    assert train_step(catboost, H) == 1
    assert train_step(catboost.model_copy(update={"train_every": 5}), H) == 5

    by_default = fit_window(t, prices(days=1100), FEATURES, MODEL, H, w, ("har",))
    assert by_default.rows["train"] == thinned.height
    assert (
        by_default.rows["val"] == seg["val"].height and by_default.rows["cal"] == seg["cal"].height
    )
    every = fit_window(
        t, prices(days=1100), FEATURES, MODEL.model_copy(update={"train_every": 1}), H, w, ("har",)
    )
    assert every.rows["train"] == seg["train"].height
    # the baseline learnt from the thinned rows too: its fit differs from one on every date
    assert by_default.baselines["har"].coef != every.baselines["har"].coef  # type: ignore[attr-defined]


def test_a_baseline_is_calibrated_alike_in_train_in_the_backtest_and_when_deployed():
    """The same window gives a baseline the same calibration whichever role it has: scored
    beside the model (train's held-out fit, a backtest refit) or deployed itself on the same
    training rows."""
    from core.modeling.walkforward import fit_window

    bars = prices(days=1100)
    t = table(bars)
    w = plan_refits(trading_dates(t), H, MODEL, REFIT, WINDOWS)[0]
    beside = fit_window(t, bars, FEATURES, MODEL, H, w, ("har", "ewma"))
    _, in_backtest, _ = refit(t, bars, FEATURES, MODEL, H, w, ["har", "ewma"])
    alone = MODEL.model_copy(update={"name": "har", "train_every": H})  # the model's rows
    deployed = fit_window(t, bars, FEATURES, alone, H, w)
    assert beside.calibrations["har"] == in_backtest["har"]
    assert beside.calibrations["har"] == deployed.calibrations["har"]
    assert beside.calibrations["ewma"] == in_backtest["ewma"]
    # and each method's calibration is its own: scores divided by its own spread
    assert beside.calibrations["har"].floor != beside.calibrations["ewma"].floor


def test_a_scoring_change_reuses_a_backtests_refits_and_a_model_change_refits(tmp_path):
    """The refits' key hashes every module of core.modeling but those that only score them."""
    import shutil
    from pathlib import Path

    from core.features.registry import code_version
    from core.modeling import walkforward
    from core.modeling.backtest import SCORING_ONLY

    source = Path(walkforward.__file__).parent
    base = code_version(source, SCORING_ONLY)
    for module, same in (("risk_scorecard.py", True), ("scorecard.py", True),
                         ("models/filtered.py", False), ("calibration.py", False),
                         ("walkforward.py", False)):  # fmt: skip
        copy = tmp_path / module.replace("/", "_")
        shutil.copytree(source, copy)
        (copy / module).write_text((copy / module).read_text() + "\n# changed\n")
        assert (code_version(copy, SCORING_ONLY) == base) is same, module
