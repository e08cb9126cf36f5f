"""Prefect tasks of the collection flow: thin wrappers around ``core``."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from contextlib import nullcontext
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE
from prefect.client.schemas.objects import State, TaskRun
from prefect.concurrency.sync import concurrency
from prefect.logging import get_run_logger
from prefect.tasks import Task, exponential_backoff

from core.collection import INGESTION_KEY, collect_symbols, outcome_dicts, prices_key, report_key
from core.collectors import RetryableCollectorError, make_collector
from core.config import Settings
from core.ingestion import update_ingestion
from core.quality import quality_report
from core.storage import Store
from core.tickers import Tickers, load_tickers

YAHOO_LIMIT = "yahoo-requests"
RESULTS_BLOCK = "sma-results"
RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (
    RetryableCollectorError,
    ConnectionError,
    TimeoutError,
)


def is_retryable(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only transient errors (network, rate limits); a bug or bad input fails at once."""
    try:
        state.result()
    except RETRYABLE_ERRORS:
        return True
    except Exception:
        return False
    return False


@task(name="load-tickers", cache_policy=NO_CACHE)
def load_tickers_task(path: str) -> Tickers:
    """Read and validate the tickers file (raises ``TickersFileError`` before anything is written)."""
    tickers = load_tickers(path)
    logger = get_run_logger()
    logger.info(
        "%d symbols from %s; %d rejected", len(tickers.symbols), path, len(tickers.rejected)
    )
    for raw, reason in tickers.rejected.items():
        logger.warning("rejected ticker %r: %s", raw, reason)
    return tickers


@task(
    name="collect-batch",
    cache_policy=(INPUTS - "run_id") + TASK_SOURCE,
    persist_result=True,
    result_serializer="json",
    retry_condition_fn=is_retryable,
)
def collect_batch(symbols: list[str], settings: Settings, run_id: str) -> list[dict[str, Any]]:
    """Fetch, validate and store one batch; cached on (symbols, settings) for ``cache_hours``.
    Yahoo batches hold a slot of the ``yahoo-requests`` global concurrency limit when the
    API has one (``python -m deployments.setup`` creates it)."""
    started = time.perf_counter()
    with (
        concurrency(YAHOO_LIMIT, occupy=1, strict=False)
        if settings.source == "yfinance"
        else nullcontext()
    ):
        outcomes = collect_symbols(
            make_collector(settings), Store.from_settings(settings), symbols, settings, run_id
        )
    get_run_logger().info(
        "batch %s..%s: %d ok, %d failed, %d new rows in %.1fs",
        symbols[0],
        symbols[-1],
        sum(o.status == "ok" for o in outcomes),
        sum(o.status == "failed" for o in outcomes),
        sum(o.new_rows for o in outcomes),
        time.perf_counter() - started,
    )
    return outcome_dicts(outcomes)


def cached_batch_still_valid(results: list[dict[str, Any]], settings: Settings) -> bool:
    """A cached batch result may stand in for a fetch only if none of its symbols failed and
    every symbol it stored is still in the store (someone may have deleted or moved it)."""
    if any(r["status"] == "failed" for r in results):
        return False
    store = Store.from_settings(settings)
    return all(store.exists(prices_key(r["symbol"])) for r in results if r["rows"])


def batch_task_options(settings: Settings) -> dict[str, Any]:
    """Retry, backoff and cache options of ``collect_batch`` from settings."""
    c = settings.collect
    return {
        "retries": c.retries,
        "retry_delay_seconds": exponential_backoff(backoff_factor=c.retry_backoff_seconds)
        if c.retries
        else 0,
        "retry_jitter_factor": c.retry_jitter_factor,
        "cache_expiration": dt.timedelta(hours=c.cache_hours),
        "refresh_cache": settings.full_refresh or c.cache_hours == 0,
    } | ({"result_storage": storage} if (storage := s3_result_storage(settings)) else {})


def s3_result_storage(settings: Settings) -> str | None:
    """The saved S3Bucket block for task results when the store is on S3 (so caches are
    shared across workers); None keeps Prefect's local default."""
    if not settings.store.startswith("s3://"):
        return None
    try:
        from prefect_aws import S3Bucket

        S3Bucket.load(RESULTS_BLOCK)
    except Exception:  # no block saved on this API (run `python -m deployments.setup`)
        return None
    return f"s3-bucket/{RESULTS_BLOCK}"


@task(name="record-run", cache_policy=NO_CACHE)
def record_run(outcomes: list[dict[str, Any]], settings: Settings, run_id: str) -> dict[str, Any]:
    """Update ``raw/ingestion.parquet`` and write the quality report, then publish it."""
    store = Store.from_settings(settings)
    previous = store.read_parquet(INGESTION_KEY) if store.exists(INGESTION_KEY) else None
    table = update_ingestion(previous, outcomes, dt.datetime.now(dt.UTC))
    store.write_parquet(INGESTION_KEY, table)
    report = quality_report(
        run_id,
        {o["symbol"]: o["quality"] for o in outcomes if o["quality"]},
        {o["symbol"]: o["status"] for o in outcomes},
    )
    store.write_json(report_key(run_id), report)
    rows = [
        {
            "symbol": sym,
            "status": entry["status"],
            "checked": entry["rows_checked"],
            "valid": entry["rows_valid"],
        }
        | {f"q:{rule}": n for rule, n in entry["quarantined"].items()}
        | {f"w:{kind}": n for kind, n in entry["warnings"].items()}
        for sym, entry in report["symbols"].items()
        if entry["quarantined"] or entry["warnings"] or entry["status"] != "ok"
    ]
    create_table_artifact(
        key="collect-quality",
        table=rows or [{"symbol": "(all clean)", "status": "ok"}],
        description=f"Quality of run {run_id}: {report['totals']['rows_quarantined']} rows quarantined; "
        f"report at {store.uri(report_key(run_id))}",
    )
    return {
        "report": store.uri(report_key(run_id)),
        "totals": report["totals"],
        "ingestion_rows": table.height,
    }


def summarize(
    tickers: Tickers,
    outcomes: list[dict[str, Any]],
    recorded: dict[str, Any],
    run_id: str,
    seconds: float,
) -> dict[str, Any]:
    """The flow's summary: what was asked, what happened, where the report is."""
    by_status = Counter(o["status"] for o in outcomes)
    failed = {o["symbol"]: o["error"] for o in outcomes if o["status"] == "failed"}
    return {
        "run_id": run_id,
        "symbols": len(tickers.symbols),
        "ok": by_status.get("ok", 0),
        "failed": by_status.get("failed", 0),
        "no_data": by_status.get("no_data", 0),
        "insufficient": by_status.get("insufficient", 0),
        "new_rows": sum(o["new_rows"] for o in outcomes),
        "rows_quarantined": recorded["totals"]["rows_quarantined"],
        "refetched_full": sorted(o["symbol"] for o in outcomes if o["refetched_full"]),
        "failed_symbols": failed,
        "rejected_tickers": tickers.rejected,
        "quality_report": recorded["report"],
        "seconds": round(seconds, 2),
    }


def summary_markdown(summary: dict[str, Any]) -> str:
    """The summary as a Markdown artifact / console text."""
    lines = [
        f"# Collection run `{summary['run_id']}`",
        "",
        "| symbols | ok | failed | no data | insufficient | new rows | quarantined | seconds |",
        "|---|---|---|---|---|---|---|---|",
        f"| {summary['symbols']} | {summary['ok']} | {summary['failed']} | {summary['no_data']} | "
        f"{summary['insufficient']} | {summary['new_rows']} | {summary['rows_quarantined']} | {summary['seconds']} |",
        "",
        f"Quality report: `{summary['quality_report']}`",
    ]
    if summary["refetched_full"]:
        lines += [
            "",
            f"Refetched in full (history re-adjusted): {', '.join(summary['refetched_full'])}",
        ]
    if summary["failed_symbols"]:
        lines += ["", "## Failed symbols (retried on the next run)", ""]
        lines += [f"- `{sym}`: {err}" for sym, err in sorted(summary["failed_symbols"].items())]
    if summary["rejected_tickers"]:
        lines += ["", "## Rejected tickers", ""]
        lines += [f"- `{raw}`: {why}" for raw, why in sorted(summary["rejected_tickers"].items())]
    return "\n".join(lines)


def publish_summary(summary: dict[str, Any]) -> None:
    create_markdown_artifact(
        key="collect-summary", markdown=summary_markdown(summary), description="Collection summary"
    )
