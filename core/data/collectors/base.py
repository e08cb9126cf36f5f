"""The collector protocol: fetch daily bars of a batch of symbols for a date range."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import polars as pl


class RetryableCollectorError(RuntimeError):
    """A transient failure of a whole batch (network, rate limit): the task retries it."""


@dataclass(frozen=True)
class FetchResult:
    """Bars in the canonical schema (``core.data.prices``) plus the symbols that failed, with why."""

    bars: pl.DataFrame
    failures: dict[str, str] = field(default_factory=dict)


class Collector(Protocol):
    """A market-data source. ``end`` is inclusive. Per-symbol problems go in ``failures``;
    a batch-wide transient problem raises ``RetryableCollectorError``."""

    name: str

    def fetch(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> FetchResult: ...
