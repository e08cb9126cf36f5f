"""Market-data collectors behind one protocol, by name: the registry ``COLLECTORS`` is the
single list of sources (``--source`` choices, settings validation and the docs read it).

A collector's module is imported only when it is built, so naming a source costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.data.collectors.base import Collector, FetchResult, RetryableCollectorError
from core.errors import InputError

if TYPE_CHECKING:
    from core.config import CollectJob

__all__ = [
    "COLLECTORS",
    "Collector",
    "FetchResult",
    "RetryableCollectorError",
    "SourceError",
    "check_source",
    "make_collector",
]


@dataclass(frozen=True)
class CollectorSpec:
    """How to build a collector from a collection job, and what it needs."""

    build: Callable[[CollectJob], Collector]
    summary: str
    needs_source_path: bool = False
    concurrency_limit: str | None = None  # Prefect global limit a batch holds while fetching


def _yfinance(job: CollectJob) -> Collector:
    from core.data.collectors.yahoo import YFinanceCollector

    return YFinanceCollector(
        timeout=job.collect.yfinance_timeout, threads=job.collect.yfinance_threads
    )


def _local(job: CollectJob) -> Collector:
    from core.data.collectors.local import LocalCollector

    assert job.source_path is not None  # enforced by Settings (needs_source_path)
    return LocalCollector(job.source_path)


def _synthetic(job: CollectJob) -> Collector:
    from core.data.collectors.synthetic import SyntheticCollector

    return SyntheticCollector(seed=job.synthetic.seed, start_price=job.synthetic.start_price)


COLLECTORS: dict[str, CollectorSpec] = {
    "yfinance": CollectorSpec(
        _yfinance,
        "Yahoo Finance through yfinance, one download per batch",
        concurrency_limit="yahoo-requests",
    ),
    "local": CollectorSpec(
        _local,
        "a folder of per-symbol CSV or Parquet files (Yahoo, Kaggle, stooq columns)",
        needs_source_path=True,
    ),
    "synthetic": CollectorSpec(
        _synthetic, "seeded random walks with volatility regimes and jumps (load tests)"
    ),
}


class SourceError(InputError):
    """The source a run names cannot be used (a missing folder); nothing is written."""


def check_source(job: CollectJob) -> None:
    """Fail before anything is written when the source's own input is missing."""
    if COLLECTORS[job.source].needs_source_path and not Path(str(job.source_path)).is_dir():
        raise SourceError(f"source {job.source!r}: source_path {job.source_path} is not a folder")


def make_collector(job: CollectJob) -> Collector:
    """The collector named by ``job.source``, configured from the job."""
    return COLLECTORS[job.source].build(job)
