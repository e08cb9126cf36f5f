"""Backtest flow: replay production over history with walk-forward refits, score every
method against the baselines on the same rows, write backtests/<id>/.

    python -m flows.backtest [--store URL] [--model NAME] [--start DATE] [--end DATE]
                             [--refit-every N] [--params FILE|best]

Each refit uses only the data before its first forecast date (core.modeling.walkforward);
refits run as mapped Prefect tasks, cached per window and data, so a rerun resumes;
ACI then runs once over all forecasts in date order.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flows.shell import MODEL, PARAMS, STORE, Arg, Command

COMMAND = Command(
    "backtest",
    __doc__,
    (
        STORE,
        MODEL,
        Arg(
            "--start",
            "first forecast date (YYYY-MM-DD)",
            setting="backtest.start",
            type=dt.date.fromisoformat,
        ),
        Arg(
            "--end",
            "last forecast date (YYYY-MM-DD)",
            setting="backtest.end",
            type=dt.date.fromisoformat,
        ),
        Arg(
            "--refit-every", "trading days between refits", setting="backtest.refit_every", type=int
        ),
        PARAMS,
    ),
)
if __name__ == "__main__":
    raise SystemExit(COMMAND.main())

import tempfile
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from core.backtests import read_refit, refit_stored, summary_markdown, write_backtest
from core.data.tickers import sectors_of
from core.features.registry import code_version
from core.features.table import data_fingerprint, digest, model_inputs
from core.modeling import walkforward
from core.modeling.scorecard import (
    BASELINE_NAMES,
    monthly,
    scorecard,
    track_record,
    volatility_terciles,
    with_sectors,
)
from core.modeling.walkforward import calibrate_in_order, plan_refits, trading_dates
from core.plots import backtest_plots
from core.runs import new_run_id
from core.storage import Store
from core.tracking import Tracker, flatten
from flows.shell import with_params
from tasks.backtest import publish_summary, refit_task
from tasks.caching import cached_or_rerun, with_result_storage
from tasks.hooks import ALERT_HOOKS
from tasks.runners import SettingsTaskRunner, finished
from tasks.train import load_training_data

CRASH = ("2020-02", "2020-04")  # reported apart: the COVID crash months


@flow(name="backtest", log_prints=True, task_runner=SettingsTaskRunner(), **ALERT_HOOKS)
def backtest(
    store: str | None = None,
    model: str | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    refit_every: int | None = None,
    params: dict[str, Any] | str | None = None,
) -> dict[str, Any]:
    """Walk-forward backtest of the configured model; None parameters come from settings."""
    logger = get_run_logger()
    settings, source = with_params(
        COMMAND.start(store=store, model=model, start=start, end=end, refit_every=refit_every),
        params,
    )
    cfg, windows_cfg = settings.model, settings.backtest
    table, prices, features_manifest = load_training_data(settings.store_ref)
    features = model_inputs(features_manifest)
    horizon = features_manifest["horizon"]
    windows = plan_refits(trading_dates(table), horizon, cfg, windows_cfg)
    baselines = [b for b in BASELINE_NAMES if b != cfg.name]
    fingerprint = data_fingerprint(features_manifest)
    # the fits see the model settings without the online calibration's: another step or
    # method reuses every refit (the task's cache and the refit files alike)
    fit_cfg = type(cfg).model_validate(cfg.model_dump(exclude=cfg.ONLINE))
    fit_key = digest(
        {
            "data": fingerprint,
            "model": fit_cfg.model_dump(mode="json"),
            "windows": windows_cfg.model_dump(
                mode="json", include={"calibration_days", "validation_days"}
            ),
            "features": features,
            "baselines": baselines,
            "code": code_version(Path(walkforward.__file__).parent),
        }
    )
    backtest_id = new_run_id(flow_run.get_id())
    logger.info(
        "backtest %s: %s, %d refits every %d trading days, forecasts %s .. %s",
        backtest_id, cfg.name, len(windows), windows_cfg.refit_every, windows[0].refit, windows[-1].until,
    )  # fmt: skip
    opened = Store.open(settings.store_ref)
    task = with_result_storage(refit_task, settings.store)
    docs: list[dict[str, Any]] = []
    reused = 0
    for wave in range(0, len(windows), windows_cfg.concurrency):
        calls = [
            (
                settings.store_ref,
                fit_key,
                window.as_dict(),
                table,
                prices,
                features,
                fit_cfg,
                horizon,
                baselines,
            )
            for window in windows[wave : wave + windows_cfg.concurrency]
        ]
        done: dict[int, dict[str, Any]] = {}
        for i, future, _ in finished(task, calls):
            done[i], cached = cached_or_rerun(
                task, future, *calls[i], usable=lambda d: refit_stored(opened, d)
            )
            reused += cached
        docs.extend(done[i] for i in range(len(calls)))
    logger.info("%d of %d refits reused from an earlier run", reused, len(windows))

    blocks = [read_refit(opened, doc) for doc in docs]
    forecasts, aci = calibrate_in_order(blocks, cfg, horizon)
    forecasts = with_sectors(
        forecasts.with_columns(vol_tercile=volatility_terciles(forecasts, prices)),
        sectors_of(settings.tickers),
    )
    first_q = f"q_{cfg.quantiles[0]}"
    scored = [  # a baseline that could not be fitted on some window is left out of the scores
        b
        for b in baselines
        if f"{b}_{first_q}" in forecasts.columns and not forecasts[f"{b}_{first_q}"].null_count()
    ]
    card = scorecard(forecasts, cfg.quantiles, cfg.alpha, horizon, scored)
    card["baselines_skipped"] = sorted(set(baselines) - set(scored))
    months = monthly(forecasts, cfg.quantiles, scored)
    metrics = {
        "backtest_id": backtest_id,
        "model": cfg.name,
        "horizon": horizon,
        "target_coverage": cfg.target_coverage,
        "quantiles": cfg.quantiles,
        "forecasts": [str(windows[0].refit), str(windows[-1].until)],
        "refits": [w.as_dict() for w in windows],
        "refit_every": windows_cfg.refit_every,
        **card,
        "track_record": track_record(months, cfg.target_coverage, scored, CRASH),
        "monthly": months.to_dicts(),
        "online_state_end": {k: v for k, v in aci.to_dict().items() if k != "history"},
    }
    with tempfile.TemporaryDirectory(prefix="sma-backtest-") as tmp:
        plots = backtest_plots(months, cfg.target_coverage, scored, Path(tmp))
        manifest = write_backtest(
            opened,
            backtest_id,
            forecasts,
            metrics,
            plots,
            {
                "model": cfg.name,
                "settings": settings.model_dump(mode="json"),
                "params_source": source or "settings",
                "data_fingerprint": fingerprint,
                "fit_key": fit_key,
                "refits_reused": reused,
            },
        )
        tracker = Tracker(
            settings.tracking, backtest_id, settings.model_dump(mode="json"), job_type="backtest"
        )
        tracker.log(flatten({"test": card["test"], "baselines": card["baselines"]}))
        tracker.log_images(plots)
        wandb_dir = tracker.finish()
    summary = summary_markdown(metrics)
    publish_summary(summary, backtest_id)
    logger.info("backtest %s written to %s", backtest_id, settings.store)
    return {
        "backtest_id": backtest_id,
        "metrics": metrics,
        "summary": summary,
        "manifest": manifest,
        "wandb_dir": wandb_dir,
        "keys": {k: opened.uri(k) for k in manifest["files"]},
    }


def report(result: dict[str, Any]) -> str:
    folder = result["keys"][next(iter(result["keys"]))].rsplit("/", 1)[0]
    return result["summary"] + f"\n\nWritten to {folder}/"
