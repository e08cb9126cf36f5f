"""Predict flow: the latest feature row of each symbol -> the deployed method's quantiles at
every level, each calibrated.

    python -m flows.predict [--store URL] [--horizon H] [--run latest|RUN_ID]

Loads the run (refusing files whose hash differs from its manifest: exit code 3),
continues its per-level tracker with the outcomes known since, and writes the day's
predictions (one column per level; the target interval is its two levels' columns).
"""

from __future__ import annotations

from flows.shell import HORIZON, STORE, Arg, Command

COMMAND = Command(
    "predict",
    __doc__,
    (
        STORE,
        HORIZON,
        Arg("--run", "run id, or 'latest'", default="latest"),
    ),
)
if __name__ == "__main__":
    raise SystemExit(COMMAND.main())

from typing import Any

from prefect import flow, get_run_logger

from flows.shell import each_horizon
from tasks.hooks import ALERT_HOOKS
from tasks.predict import predict_task


@flow(name="predict", log_prints=True, **ALERT_HOOKS)
def predict(
    store: str | None = None, run: str = "latest", horizon: int | None = None
) -> dict[str, Any]:
    settings = COMMAND.start(store=store, horizon=horizon)
    several = each_horizon(settings, horizon, lambda h: predict(store=store, run=run, horizon=h))
    if several is not None:
        return several
    summary = predict_task(settings.store_ref, run, settings.model.quantile_bound)
    get_run_logger().info(report(summary))
    return summary


def report(summary: dict[str, Any]) -> str:
    line = (
        f"predictions of run {summary['run_id']} ({summary['method']}) as of {summary['as_of']} for "
        f"{summary['symbols']} symbols -> "
        f"{summary['key']} ({summary['online_state']}, {summary['outcomes_added']} new outcomes)"
    )
    return "\n".join([line, *(f"warning: {w}" for w in summary.get("warnings", []))])
