"""Report flow: the self-contained HTML report of the latest predictions.

    python -m flows.report [--store URL] [--horizon H]

Writes ``reports/<as-of date of the latest predictions>/index.html`` and a copy at
``reports/latest/index.html`` (on S3 served as text/html); a Prefect link artifact points to
it (a presigned URL on S3). One file: Plotly and the data inlined, it opens offline.
"""

from __future__ import annotations

from flows.shell import HORIZON, STORE, Command

COMMAND = Command("report", __doc__, (STORE, HORIZON))
if __name__ == "__main__":
    raise SystemExit(COMMAND.main())

from typing import TYPE_CHECKING, Any

from prefect import flow, get_run_logger

from flows.shell import each_horizon
from tasks.hooks import ALERT_HOOKS
from tasks.report import report_task

if TYPE_CHECKING:
    from core.config import Settings


def render_report(settings: Settings) -> str:
    """Write the report (a task, so it shows in the calling flow) and return where it is."""
    return report_task(settings.store_ref, settings.monitor, settings.tickers)["uri"]


@flow(name="report", log_prints=True, **ALERT_HOOKS)
def report(store: str | None = None, horizon: int | None = None) -> dict[str, Any]:
    settings = COMMAND.start(store=store, horizon=horizon)
    several = each_horizon(settings, horizon, lambda h: report(store=store, horizon=h))
    if several is not None:
        return several
    result = report_task(settings.store_ref, settings.monitor, settings.tickers)
    get_run_logger().info("report: %s", result["uri"])
    return result


def report_text(result: dict[str, Any]) -> str:
    return f"report of the predictions as of {result['as_of']} ({result['megabytes']:.1f} MB): {result['uri']}"
