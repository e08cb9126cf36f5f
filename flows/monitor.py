"""Monitor flow: score the forecasts whose outcome is known, roll the figures up, check
feature drift and data health, alert once per new condition, refresh the report.

    python -m flows.monitor [--store URL] [--horizon H] [--as-of DATE] [--backfill]

Scores every forecast in ``predictions/`` made h trading days or more before ``--as-of``
(default today) against the stored prices and appends them to ``monitoring/scores.parquet``
(one row per source, symbol and date: rerunning never duplicates). ``--backfill`` scores
every prediction file and the newest backtest's forecasts (marked as backtest). Alerts go
out as the Prefect event ``sma.monitor.alert`` (the Slack automation of
``python -m deployments.setup`` posts them).
"""

from __future__ import annotations

import datetime as dt

from flows.shell import HORIZON, STORE, Arg, Command

COMMAND = Command(
    "monitor",
    __doc__,
    (
        STORE,
        HORIZON,
        Arg(
            "--as-of",
            "the day to monitor as of (YYYY-MM-DD; default today)",
            type=dt.date.fromisoformat,
        ),
        Arg("--backfill", "score every prediction file and the newest backtest", switch=True),
    ),
)
if __name__ == "__main__":
    raise SystemExit(COMMAND.main())

from typing import Any

from prefect import flow, get_run_logger

from flows.report import render_report
from flows.shell import each_horizon
from tasks.hooks import ALERT_HOOKS
from tasks.monitor import monitor_task


@flow(name="monitor", log_prints=True, **ALERT_HOOKS)
def monitor(
    store: str | None = None,
    as_of: dt.date | None = None,
    backfill: bool | None = None,
    horizon: int | None = None,
) -> dict[str, Any]:
    settings = COMMAND.start(store=store, horizon=horizon)
    several = each_horizon(
        settings, horizon, lambda h: monitor(store=store, as_of=as_of, backfill=backfill, horizon=h)
    )
    if several is not None:
        return several
    summary = monitor_task(settings.store_ref, settings.monitor, as_of, bool(backfill))
    summary["report"] = render_report(settings)
    get_run_logger().info(report(summary))
    return summary


def report(summary: dict[str, Any]) -> str:
    rolled = summary["rolling"]
    figures = "; ".join(
        f"{w} days: coverage {f['coverage']:.3f}, pinball / ewma {f['pinball_ratio_ewma']:.3f}"
        for w, f in rolled.items()
        if f
    )
    fired = summary["alerts"]["fired"]
    lines = [
        f"monitor as of {summary['as_of']} (run {summary['run_id']}): {summary['scored']} forecasts "
        f"scored, {summary['pending']} awaiting outcomes, {summary['scores_rows']} in the table",
        figures or "no scored forecast yet",
        summary["drift"]["note"],
        tail_line(summary.get("tail") or {}),
        *(f"alert: {v['reason']}" for v in fired.values()),
        f"active conditions: {', '.join(summary['alerts']['active']) or 'none'}",
        f"report: {summary['report']}",
    ]
    return "\n".join(lines)


def tail_line(watch: dict[str, Any]) -> str:
    """The 99 % VaR's window in one line (or why it is not watched yet)."""
    if not watch.get("checked"):
        return f"99 % VaR: {watch.get('note', 'not watched')}"
    pooled = "; ".join(
        f"{tail} exceedance {p['exceedance']:.4f} (band {p['band'][0]:.4f} .. {p['band'][1]:.4f})"
        for tail, p in watch["pooled"].items()
    )
    red = sorted({s for symbols in watch["red"].values() for s in symbols})
    return (
        f"99 % VaR over {watch['dates'][0]} .. {watch['dates'][1]}: {pooled}; "
        f"{len(red)} of {watch['symbols']} symbols in the red zone"
    )
