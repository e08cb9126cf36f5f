"""Prefect task of the report: gather (``core.report.data``), draw (``core.report.page``),
write both report keys, publish a link artifact."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_link_artifact
from prefect.cache_policies import NO_CACHE

from core import layout
from core.config import MonitorSettings, StoreRef
from core.report.data import report_data
from core.report.page import render
from core.storage import Store


@task(name="report", cache_policy=NO_CACHE)
def report_task(store: StoreRef, cfg: MonitorSettings, tickers: str) -> dict[str, Any]:
    """The sidecar naming the run first (retention keeps that run), then the page."""
    import plotly.offline  # only the report needs Plotly's 5 MB of JavaScript

    opened = Store.open(store)
    data = report_data(opened, cfg, tickers)
    page = render(data, plotly.offline.get_plotlyjs()).encode()
    dated = layout.REPORT(as_of=data["as_of"])
    opened.write_json(
        layout.REPORT_META(as_of=data["as_of"]),
        {
            "as_of": data["as_of"],
            "run_id": data["run_id"],
            "backtest_id": (data["backtest"] or {}).get("backtest_id"),
        },
    )
    opened.write_bytes(dated, page, content_type="text/html; charset=utf-8")
    opened.write_bytes(layout.REPORT_LATEST(), page, content_type="text/html; charset=utf-8")
    link = opened.link(dated)
    create_link_artifact(
        key="report",
        link=link,
        link_text=f"Forecast report {data['as_of']}",
        description=f"HTML report of the predictions as of {data['as_of']} (run {data['run_id']})",
    )
    return {
        "as_of": data["as_of"],
        "uri": opened.uri(dated) if opened.is_s3 else opened.path(dated),
        "link": link,
        "megabytes": len(page) / 1e6,
    }
