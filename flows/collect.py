"""Batch collection flow: tickers file -> validated daily OHLCV in the store.

    python -m flows.collect [--tickers FILE] [--source NAME] [--source-path DIR]
        [--store URL] [--start DATE] [--end DATE] [--symbols-per-task N] [--full-refresh]

Failed symbols are listed and retried on the next run; exit code 1 only when no symbol
could be collected.
"""

from __future__ import annotations

import datetime as dt

from flows.shell import STORE, Arg, Command


def _sources() -> list[str]:
    from core.data.collectors import COLLECTORS

    return list(COLLECTORS)


COMMAND = Command(
    "collect",
    __doc__,
    (
        Arg(
            "--tickers",
            "tickers file (Nasdaq screener CSV or one symbol per line)",
            setting="tickers",
        ),
        Arg("--source", "market data source", setting="source", choices=_sources),
        Arg(
            "--source-path",
            "folder of <SYMBOL>.csv/.parquet for --source local",
            setting="source_path",
        ),
        STORE,
        Arg(
            "--start",
            "first date for new symbols (YYYY-MM-DD)",
            setting="start",
            type=dt.date.fromisoformat,
        ),
        Arg(
            "--end",
            "last date, inclusive (default today)",
            setting="end",
            type=dt.date.fromisoformat,
        ),
        Arg(
            "--symbols-per-task",
            "symbols per task (one batch)",
            setting="collect.symbols_per_task",
            type=int,
        ),
        Arg(
            "--full-refresh", "refetch everything from --start", setting="full_refresh", switch=True
        ),
    ),
)
if __name__ == "__main__":
    raise SystemExit(COMMAND.main())

import json
import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from core.data.collection import summarize
from core.data.collectors import check_source
from core.data.tickers import TickersFileError, no_valid_symbol
from core.errors import NothingUsableError
from core.runs import new_run_id
from tasks.collect import (
    collect_batches,
    load_tickers_task,
    publish_summary,
    record_run,
    summary_markdown,
)
from tasks.hooks import ALERT_HOOKS
from tasks.runners import SettingsTaskRunner


class NothingCollectedError(NothingUsableError):
    """No symbol of the run could be collected."""


@flow(name="collect", log_prints=True, task_runner=SettingsTaskRunner(), **ALERT_HOOKS)
def collect(
    tickers: str | None = None,
    source: str | None = None,
    source_path: str | None = None,
    store: str | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    symbols_per_task: int | None = None,
    full_refresh: bool | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Collect daily bars for every symbol of the tickers file into the store.

    Parameters left as None take their value from settings (environment / .env).
    ``batch_size`` is the old name of ``symbols_per_task`` (deprecated: it warns).
    """
    started = time.perf_counter()
    settings = COMMAND.start(
        tickers=tickers,
        source=source,
        source_path=source_path,
        store=store,
        start=start,
        end=end,
        symbols_per_task=symbols_per_task,
        full_refresh=full_refresh,
        batch_size=batch_size,
    )
    job, ref = settings.collect_job(), settings.root_ref
    check_source(job)
    logger = get_run_logger()
    universe = load_tickers_task(settings.tickers)
    if not universe.symbols:
        raise TickersFileError(no_valid_symbol(settings.tickers, universe.rejected))
    run_id = new_run_id(flow_run.get_id())
    size = settings.collect.symbols_per_task
    batches = [universe.symbols[i : i + size] for i in range(0, len(universe.symbols), size)]
    logger.info(
        "run %s: %d symbols in %d batches from %s into %s (%s..%s)",
        run_id,
        len(universe.symbols),
        len(batches),
        job.source,
        ref.url,
        job.start,
        job.end,
    )

    outcomes = collect_batches(batches, job, ref, run_id)
    recorded = record_run(outcomes, ref, run_id, job.quality.min_rows)
    summary = summarize(universe, outcomes, recorded, run_id, time.perf_counter() - started)
    publish_summary(summary)
    logger.info(
        "summary: %s",
        json.dumps({k: v for k, v in summary.items() if k != "failed_symbols"}, default=str),
    )
    for symbol, error in summary["failed_symbols"].items():
        logger.warning("failed: %s: %s", symbol, error)
    for symbol, note in summary["repaired"].items():
        logger.warning("repaired: %s: %s", symbol, note)
    if summary["failed"] == len(universe.symbols):
        raise NothingCollectedError(
            f"no symbol could be collected ({summary['failed']} failed); see the summary"
        )
    return summary


def report(summary: dict[str, Any]) -> str:
    return summary_markdown(summary)
