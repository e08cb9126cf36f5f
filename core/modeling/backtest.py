"""A walk-forward backtest's steps, pure: plan the refits, calibrate their forecasts in date
order, score every method and baseline on the same rows. ``flows.backtest`` runs them as
plan -> refit (mapped tasks) -> calibrate -> score -> write (``core.backtests``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from core.config import AGGREGATE, BacktestSettings, ModelSettings, RefitSettings
from core.features.manifest import DataFingerprint, digest
from core.features.registry import code_version
from core.modeling import walkforward
from core.modeling.calibration import LevelCalibration
from core.modeling.inputs import TrainingData
from core.modeling.models import baseline_names
from core.modeling.scorecard import (
    monthly,
    scorecard,
    track_record,
    volatility_terciles,
    with_sectors,
)
from core.modeling.timeline import Window, plan_refits, trading_dates
from core.modeling.walkforward import (
    Calibrated,
    calibrate_in_order,
    complete_methods,
    with_aggregation,
)

CRASH = ("2020-02", "2020-04")  # reported apart: the COVID crash months
# tracker state left out of the metrics: the history, and the per-symbol offsets and hits
# (symbols x levels each: they belong to the state, not the figures)
UNREPORTED_STATE = {"history", "symbol_offsets", "symbol_hits"}
# modules that only score or combine the stored refits' forecasts: a change to them re-scores
# a backtest without refitting (every other module of core.modeling is in the refits' key)
SCORING_ONLY = frozenset(
    {
        "scorecard.py", "risk_scorecard.py", "risk_backtests.py",
        "tail_risk.py", "metrics.py", "selection.py", "aggregation.py", "backtest.py",
    }
)  # fmt: skip


@dataclass(frozen=True)
class BacktestPlan:
    """What a backtest fits: its refit windows, the baselines fitted beside the model, the
    model settings the fits see (without the online calibration's: another tracker step,
    decay or bound reuses every refit) and ``fit_key``, a digest of all that and the data."""

    windows: list[Window]
    baselines: list[str]
    fit_cfg: ModelSettings
    fit_key: str
    features: list[str]
    horizon: int
    fingerprint: DataFingerprint


def plan_backtest(
    data: TrainingData, cfg: ModelSettings, refit: RefitSettings, backtest: BacktestSettings
) -> BacktestPlan:
    """The refit windows over the backtest's dates and the key their fits are stored under."""
    windows = plan_refits(trading_dates(data.table), data.horizon, cfg, refit, backtest)
    others = [b for b in baseline_names() if b != cfg.name]
    fit_cfg = type(cfg).model_validate(cfg.model_dump(exclude=cfg.ONLINE))
    fingerprint = data.build.data_fingerprint
    fit_key = digest(
        {
            "data": fingerprint.model_dump(mode="json"),
            "model": fit_cfg.model_dump(mode="json"),
            "windows": refit.model_dump(mode="json"),
            "features": data.features,
            "baselines": others,
            "code": code_version(Path(walkforward.__file__).parent, SCORING_ONLY),
        }
    )
    return BacktestPlan(windows, others, fit_cfg, fit_key, data.features, data.horizon, fingerprint)


def calibrate_backtest(
    blocks: list[tuple[pl.DataFrame, dict[str, LevelCalibration]]],
    cfg: ModelSettings,
    horizon: int,
    prices: pl.DataFrame,
    sectors: dict[str, str] | None,
) -> Calibrated:
    """Every refit's forecasts calibrated in date order, every method alike
    (``calibrate_in_order``), with each row's volatility tercile and sector for the
    conditional figures."""
    done = calibrate_in_order(blocks, cfg, horizon)
    methods = complete_methods(done.frame, cfg, [cfg.name, *baseline_names()])
    frame, _ = with_aggregation(done.frame, cfg, horizon, methods)
    frame = frame.with_columns(vol_tercile=volatility_terciles(frame, prices))
    return Calibrated(with_sectors(frame, sectors), done.states, done.clipped)


@dataclass(frozen=True)
class BacktestScores:
    """``metrics.json`` of a backtest, its months and the other methods scored."""

    metrics: dict[str, Any]
    months: pl.DataFrame
    scored: list[str]


def score_backtest(
    calibrated: Calibrated,
    plan: BacktestPlan,
    cfg: ModelSettings,
    backtest: BacktestSettings,
    backtest_id: str,
    fallbacks: dict[str, dict[str, int]],
) -> BacktestScores:
    """Every method on the same rows, calibrated alike: the scorecard, the monthly track
    record, the trackers' end states, the fits that fell back (per method, symbol: refits)
    and the values the sanity bound clipped. A baseline that could not be fitted on some
    window is left out of the scores."""
    forecasts = calibrated.frame
    methods = complete_methods(forecasts, cfg, [cfg.name, *plan.baselines, AGGREGATE])
    scored = [m for m in methods if m != cfg.name]
    card = scorecard(forecasts, cfg.quantiles, cfg.alpha, plan.horizon, methods, CRASH)
    months = monthly(forecasts, cfg.quantiles, cfg.alpha, methods, cfg.name)
    metrics = {
        "backtest_id": backtest_id,
        "model": cfg.name,
        "horizon": plan.horizon,
        "target_coverage": cfg.target_coverage,
        "quantiles": cfg.quantiles,
        "interval": list(cfg.interval),
        "forecasts": [str(plan.windows[0].refit), str(plan.windows[-1].until)],
        "refits": [w.as_dict() for w in plan.windows],
        "refit_every": backtest.refit_every,
        **card,
        "baselines_skipped": sorted(set(plan.baselines) - set(scored)),
        "aggregated": [m for m in methods if m != AGGREGATE],
        "fallbacks": fallbacks,
        "clipped": calibrated.clipped,
        "track_record": track_record(months, cfg.target_coverage, scored, CRASH),
        "monthly": months.to_dicts(),
        "online_state_end": {
            name: {k: v for k, v in state.to_dict().items() if k not in UNREPORTED_STATE}
            for name, state in calibrated.states.items()
        },
    }
    return BacktestScores(metrics, months, scored)
