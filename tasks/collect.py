"""Prefect tasks of the collection flow: thin wrappers around ``core``."""

from __future__ import annotations

import datetime as dt
import time
from contextlib import nullcontext
from typing import Any

from prefect import task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE
from prefect.client.schemas.objects import State, TaskRun
from prefect.concurrency.sync import concurrency
from prefect.logging import get_run_logger
from prefect.tasks import Task, exponential_backoff

from core import layout
from core.config import CollectJob, CollectSettings, StoreRef
from core.data.collection import collect_symbols, failed_batch, outcome_dicts
from core.data.collectors import COLLECTORS, RetryableCollectorError, make_collector
from core.data.ingestion import record_outcomes
from core.data.prices import price_schema_problem
from core.data.quality import quality_report
from core.data.tickers import Tickers, load_tickers
from core.errors import first_line
from core.storage import DamagedFileError, Store, StoreError, StoreFullError
from tasks.caching import cached_or_rerun, s3_result_storage
from tasks.runners import finished

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
def collect_batch(
    symbols: list[str], job: CollectJob, store: StoreRef, run_id: str
) -> list[dict[str, Any]]:
    """Fetch, validate and store one batch; cached on (symbols, job, store) for
    ``cache_hours``. A source with a concurrency limit (Yahoo) holds a slot of that global
    limit while it fetches, when the API has one (``python -m deployments.setup``)."""
    started = time.perf_counter()
    limit = COLLECTORS[job.source].concurrency_limit
    with concurrency(limit, occupy=1, strict=False) if limit else nullcontext():
        outcomes = collect_symbols(make_collector(job), Store.open(store), symbols, job, run_id)
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


def batch_still_valid(results: list[dict[str, Any]], store: StoreRef) -> bool:
    """A cached batch result may stand in for a fetch only if none of its symbols failed and
    every symbol it stored is still in the store and readable (someone may have deleted,
    moved or damaged it)."""
    if any(r["status"] == "failed" for r in results):
        return False
    opened = Store.open(store)
    return all(sound_prices(opened, r["symbol"]) for r in results if r["rows"])


def sound_prices(store: Store, symbol: str) -> bool:
    """The symbol's price file is there, parses and has the price schema (a cached result
    must not vouch for a damaged file)."""
    try:
        return price_schema_problem(store.read_parquet(layout.PRICES(symbol=symbol))) is None
    except (StoreError, DamagedFileError):
        return False


def batch_task_options(cfg: CollectSettings, full_refresh: bool, store: StoreRef) -> dict[str, Any]:
    """Retry, backoff, cache and result-storage options of ``collect_batch``."""
    return {
        "retries": cfg.retries,
        "retry_delay_seconds": exponential_backoff(backoff_factor=cfg.retry_backoff_seconds)
        if cfg.retries
        else 0,
        "retry_jitter_factor": cfg.retry_jitter_factor,
        "cache_expiration": dt.timedelta(hours=cfg.cache_hours),
        "refresh_cache": full_refresh or cfg.cache_hours == 0,
    } | ({"result_storage": storage} if (storage := s3_result_storage(store.url)) else {})


def collect_batches(
    batches: list[list[str]], job: CollectJob, ref: StoreRef, run_id: str
) -> list[dict[str, Any]]:
    """Run ``collect_batch`` over every batch (retried, cached, resubmitted when a worker
    dies), reporting progress as an artifact; each symbol's outcome. A cached batch stands
    only while its files are in the store; a batch that failed after its retries is
    recorded as failed for each of its symbols (retried next run)."""
    task = collect_batch.with_options(**batch_task_options(job.collect, job.full_refresh, ref))
    calls = [(batch, job, ref, run_id) for batch in batches]
    progress: Any = create_progress_artifact(
        0.0, key="collect-progress", description=f"Collection run {run_id}"
    )
    outcomes: list[dict[str, Any]] = []
    for done, (i, future, state) in enumerate(finished(task, calls), start=1):
        batch = batches[i]
        if state.is_completed():
            # Failed symbols are retried every run; data deleted from the store is refetched.
            try:
                results, cached = cached_or_rerun(
                    task, future, *calls[i], usable=lambda r: batch_still_valid(r, ref)
                )
            except StoreFullError:  # every other batch would fail on it too: the run stops
                raise
            except Exception as exc:  # the rerun failed after its retries: the batch failed
                results = failed_batch(batch, f"{type(exc).__name__}: {first_line(str(exc))}")
                cached = False
            if cached:  # nothing was fetched, checked or repaired in this run
                results = [r | UNCHANGED for r in results]
        else:
            error = _error_line(state)
            get_run_logger().error(
                "batch %s..%s failed after retries: %s", batch[0], batch[-1], error
            )
            results = failed_batch(batch, error)
        outcomes.extend(results)
        update_progress_artifact(progress, 100.0 * done / len(batches))
    return outcomes


# what a batch served from the cache did in this run
UNCHANGED = {
    "new_rows": 0,
    "quarantined": 0,
    "quality": {},
    "repaired": None,
    "refetched_full": False,
}


def _error_line(state: Any) -> str:
    """What failed a batch, in one line; a full disk is raised instead: it stops the run
    (each symbol's files are whole, the ingestion table is not updated)."""
    try:
        state.result()
    except StoreFullError:
        raise
    except Exception as exc:
        return f"{type(exc).__name__}: {first_line(str(exc))}"
    return str(state.message or state.name)


@task(name="record-run", cache_policy=NO_CACHE)
def record_run(
    outcomes: list[dict[str, Any]], store: StoreRef, run_id: str, min_rows: int
) -> dict[str, Any]:
    """Update the ingestion table (a damaged one is set aside and rebuilt from the price
    files) and write the quality report, then publish it."""
    opened = Store.open(store)
    table, repaired = record_outcomes(opened, outcomes, run_id, min_rows, dt.datetime.now(dt.UTC))
    if repaired is not None:
        get_run_logger().warning(repaired)
    report = quality_report(
        run_id,
        {o["symbol"]: o["quality"] for o in outcomes if o["quality"]},
        {o["symbol"]: o["status"] for o in outcomes},
    )
    report_key = layout.QUALITY_REPORT(run_id=run_id)
    opened.write_json(report_key, report)
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
        f"report at {opened.uri(report_key)}",
    )
    return {
        "report": opened.uri(report_key),
        "totals": report["totals"],
        "ingestion_rows": table.height,
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
    if summary.get("repaired"):
        lines += ["", "## Repaired", ""]
        lines += [f"- `{sym}`: {note}" for sym, note in sorted(summary["repaired"].items())]
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
