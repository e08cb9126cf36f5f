"""Backtest flow: replay production over history with walk-forward refits, score every
method against the baselines on the same rows, write backtests/<id>/.

    python -m flows.backtest [--store URL] [--horizon H] [--model NAME] [--start DATE] [--end DATE]
                             [--refit-every N] [--params FILE|best]

Its steps: plan the refit windows (core.modeling.timeline: each refit uses only the data
before its first forecast date) -> refit (mapped Prefect tasks, cached per window and data,
so a rerun resumes) -> calibrate (the online calibration once over all forecasts in date
order) -> score -> write (core.modeling.backtest, core.backtests).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flows.shell import HORIZON, MODEL, PARAMS, STORE, Arg, Command

COMMAND = Command(
    "backtest",
    __doc__,
    (
        STORE,
        HORIZON,
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

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from core import layout
from core.backtests import backtest_record, summary_markdown
from core.data.tickers import sectors_of
from core.modeling.backtest import calibrate_backtest, plan_backtest, score_backtest
from core.runs import new_run_id
from core.storage import Store
from flows.shell import each_horizon, with_params
from tasks.backtest import run_refits, write_backtest_task
from tasks.hooks import ALERT_HOOKS
from tasks.runners import SettingsTaskRunner
from tasks.train import load_training_data


@flow(name="backtest", log_prints=True, task_runner=SettingsTaskRunner(), **ALERT_HOOKS)
def backtest(
    store: str | None = None,
    model: str | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    refit_every: int | None = None,
    params: dict[str, Any] | str | None = None,
    horizon: int | None = None,
) -> dict[str, Any]:
    """Walk-forward backtest of the configured model; None parameters come from settings."""
    settings, source = with_params(
        COMMAND.start(
            store=store, model=model, start=start, end=end, refit_every=refit_every, horizon=horizon
        ),
        params,
    )
    several = each_horizon(
        settings,
        horizon,
        lambda h: backtest(store, model, start, end, refit_every, params, horizon=h),
    )
    if several is not None:
        return several
    cfg, ref = settings.model.resolved(), settings.store_ref
    data = load_training_data(ref)
    plan = plan_backtest(data, cfg, settings.refit, settings.backtest)
    backtest_id = new_run_id(flow_run.get_id())
    get_run_logger().info(
        "backtest %s: %s, %d refits every %d trading days, forecasts %s .. %s",
        backtest_id, cfg.name, len(plan.windows), settings.backtest.refit_every,
        plan.windows[0].refit, plan.windows[-1].until,
    )  # fmt: skip
    blocks, reused, fallbacks = run_refits(ref, plan, data, settings.backtest.concurrency)
    calibrated = calibrate_backtest(
        blocks, cfg, plan.horizon, data.prices, sectors_of(settings.tickers)
    )
    scores = score_backtest(calibrated, plan, cfg, settings.backtest, backtest_id, fallbacks)
    record = backtest_record(
        backtest_id, cfg.name, settings.model_dump(mode="json"), source,
        plan.fingerprint, plan.fit_key, reused,
    )  # fmt: skip
    manifest, wandb_dir = write_backtest_task(
        ref, record, calibrated.frame, scores, cfg.target_coverage, settings.tracking
    )
    get_run_logger().info("backtest %s written to %s", backtest_id, settings.store)
    return {
        "backtest_id": backtest_id,
        "metrics": scores.metrics,
        "summary": summary_markdown(scores.metrics),
        "manifest": manifest.model_dump(mode="json"),
        "wandb_dir": wandb_dir,
        "folder": Store.open(ref)
        .uri(layout.BACKTEST_MANIFEST(backtest_id=backtest_id))
        .rsplit("/", 1)[0],
    }


def report(result: dict[str, Any]) -> str:
    return result["summary"] + f"\n\nWritten to {result['folder']}/"
