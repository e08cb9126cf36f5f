"""Batch collection flow: tickers file -> validated daily OHLCV in the store.

    python -m flows.collect [--tickers FILE] [--source yfinance|local|synthetic]
        [--source-path DIR] [--store URL] [--start DATE] [--end DATE]
        [--batch-size N] [--full-refresh]

Every flag is also a setting (``SMA_TICKERS``, ``SMA_STORE``, ...) and a flow parameter of
the same name. Exit code 0 when the flow completes (failed symbols are listed and retried
next run), 2 for invalid input, 1 when no symbol could be collected.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import uuid
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import as_completed
from prefect.runtime import flow_run

from core.config import ConfigError, SourceName, load_settings
from core.tickers import TickersFileError
from tasks.collect import (
    batch_task_options,
    cached_batch_still_valid,
    collect_batch,
    load_tickers_task,
    publish_summary,
    record_run,
    summarize,
    summary_markdown,
)
from tasks.hooks import ALERT_HOOKS


class NothingCollectedError(RuntimeError):
    """No symbol of the run could be collected."""


def new_run_id() -> str:
    """Sortable, unique: UTC time plus the flow run's short id."""
    run = flow_run.get_id() or uuid.uuid4().hex
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{str(run).replace('-', '')[:8]}"


@flow(name="collect", log_prints=True, **ALERT_HOOKS)
def collect(
    tickers: str | None = None,
    source: SourceName | None = None,
    source_path: str | None = None,
    store: str | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    batch_size: int | None = None,
    full_refresh: bool | None = None,
) -> dict[str, Any]:
    """Collect daily bars for every symbol of the tickers file into the store.

    Parameters left as None take their value from settings (environment / .env).
    """
    started = time.perf_counter()
    settings = load_settings(
        tickers=tickers, source=source, source_path=source_path, store=store,
        start=start, end=end, batch_size=batch_size, full_refresh=full_refresh,
    )  # fmt: skip
    settings = settings.model_copy(update={"end": settings.resolved_end()})
    logger = get_run_logger()
    universe = load_tickers_task(settings.tickers)
    if not universe.symbols:
        raise TickersFileError(f"no valid symbol in {settings.tickers}: {universe.rejected}")
    run_id = new_run_id()
    batches = [
        universe.symbols[i : i + settings.batch_size]
        for i in range(0, len(universe.symbols), settings.batch_size)
    ]
    logger.info(
        "run %s: %d symbols in %d batches from %s into %s (%s..%s)",
        run_id, len(universe.symbols), len(batches), settings.source, settings.store, settings.start, settings.end,
    )  # fmt: skip

    task = collect_batch.with_options(**batch_task_options(settings))
    futures = [task.submit(batch, settings, run_id) for batch in batches]
    batch_of = dict(zip(futures, batches, strict=True))
    progress: Any = create_progress_artifact(
        0.0, key="collect-progress", description=f"Collection run {run_id}"
    )
    outcomes: list[dict[str, Any]] = []
    for done, future in enumerate(as_completed(futures), start=1):
        batch = batch_of[future]
        state = future.wait() or future.state
        if state.is_completed():
            results: list[dict[str, Any]] = future.result()  # pyright: ignore[reportAssignmentType]
            if state.name == "Cached":
                if not cached_batch_still_valid(results, settings):
                    # Failed symbols are retried every run; data deleted from the store is refetched.
                    results = (
                        task.with_options(refresh_cache=True)
                        .submit(batch, settings, run_id)
                        .result()
                    )  # pyright: ignore[reportAssignmentType]
                else:  # nothing was fetched or checked in this run
                    results = [
                        r | {"new_rows": 0, "quarantined": 0, "quality": {}} for r in results
                    ]
        else:
            error = _first_line(state)
            logger.error("batch %s..%s failed after retries: %s", batch[0], batch[-1], error)
            results = [
                {"symbol": s, "status": "failed", "error": error, **_empty_outcome()} for s in batch
            ]
        outcomes.extend(results)
        update_progress_artifact(progress, 100.0 * done / len(batches))

    recorded = record_run(outcomes, settings, run_id)
    summary = summarize(universe, outcomes, recorded, run_id, time.perf_counter() - started)
    publish_summary(summary)
    logger.info(
        "summary: %s",
        json.dumps({k: v for k, v in summary.items() if k != "failed_symbols"}, default=str),
    )
    for symbol, error in summary["failed_symbols"].items():
        logger.warning("failed: %s: %s", symbol, error)
    if summary["failed"] == len(universe.symbols):
        raise NothingCollectedError(
            f"no symbol could be collected ({summary['failed']} failed); see the summary"
        )
    return summary


def _empty_outcome() -> dict[str, Any]:
    return {"rows": 0, "new_rows": 0, "quarantined": 0, "first_date": None, "last_date": None,
            "refetched_full": False, "quality": {}}  # fmt: skip


def _first_line(state: Any) -> str:
    try:
        state.result()
    except Exception as exc:
        text = str(exc)
        return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
    return str(state.message or state.name)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m flows.collect", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument(
        "--tickers", help="tickers file (Nasdaq screener CSV or one symbol per line)"
    )
    parser.add_argument("--source", choices=["yfinance", "local", "synthetic"])
    parser.add_argument("--source-path", help="folder of <SYMBOL>.csv/.parquet for --source local")
    parser.add_argument("--store", help="store root: a folder or s3://bucket/prefix")
    parser.add_argument(
        "--start", type=dt.date.fromisoformat, help="first date for new symbols (YYYY-MM-DD)"
    )
    parser.add_argument(
        "--end", type=dt.date.fromisoformat, help="last date, inclusive (default today)"
    )
    parser.add_argument("--batch-size", type=int, help="symbols per task")
    parser.add_argument(
        "--full-refresh", action="store_true", default=None, help="refetch everything from --start"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        load_settings(**vars(args))  # fail on bad settings before Prefect starts
        summary: dict[str, Any] = collect(**vars(args))  # pyright: ignore[reportAssignmentType]
    except (ConfigError, TickersFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NothingCollectedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(summary_markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
