"""Collect one batch of symbols into the store: plan, fetch, validate, merge, write.

Each symbol's files are written atomically and independently, so a crash mid-batch
leaves every symbol either as it was or fully updated, and one symbol's failure never
touches another's data.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from core.collectors import Collector, FetchResult
from core.config import Settings
from core.prices import PRICE_COLUMNS, empty_prices, merge_bars, sort_bars
from core.quality import apply_rules, symbol_counts
from core.storage import Store
from core.timeline import fetch_start, overlap_changed


def prices_key(symbol: str) -> str:
    return f"raw/prices/symbol={symbol}/data.parquet"


def quarantine_key(symbol: str, run_id: str) -> str:
    return f"raw/quarantine/symbol={symbol}/{run_id}.parquet"


INGESTION_KEY = "raw/ingestion.parquet"


def report_key(run_id: str) -> str:
    return f"raw/reports/{run_id}/quality.json"


@dataclass
class SymbolOutcome:
    """What happened to one symbol in one run (JSON-friendly: dates as ISO strings)."""

    symbol: str
    status: str  # ok | failed | no_data | insufficient
    rows: int = 0
    new_rows: int = 0
    quarantined: int = 0
    first_date: str | None = None
    last_date: str | None = None
    refetched_full: bool = False
    error: str | None = None
    quality: dict[str, Any] = field(default_factory=dict)


def _read_stored(store: Store, symbol: str) -> pl.DataFrame | None:
    key = prices_key(symbol)
    return store.read_parquet(key) if store.exists(key) else None


def _fetch_grouped(collector: Collector, starts: dict[str, dt.date], end: dt.date) -> FetchResult:
    """One collector call per distinct start date (usually one: all symbols are up to date)."""
    by_start: dict[dt.date, list[str]] = defaultdict(list)
    for symbol, start in starts.items():
        by_start[start].append(symbol)
    frames, failures = [], {}
    for start, symbols in sorted(by_start.items()):
        if start > end:
            frames.append(empty_prices())
            continue
        result = collector.fetch(symbols, start, end)
        frames.append(result.bars)
        failures.update(result.failures)
    return FetchResult(bars=pl.concat(frames, how="vertical"), failures=failures)


def collect_symbols(
    collector: Collector,
    store: Store,
    symbols: Sequence[str],
    settings: Settings,
    run_id: str,
    today: dt.date | None = None,
) -> list[SymbolOutcome]:
    """Bring ``symbols`` up to date in the store; return one outcome per symbol.

    Raises only batch-wide errors (``RetryableCollectorError`` from the collector);
    per-symbol problems become ``failed`` outcomes.
    """
    today = today or dt.date.today()
    end = settings.resolved_end(today)
    stored = {s: _read_stored(store, s) for s in symbols}
    starts = {
        s: fetch_start(
            stored[s], settings.start, settings.collect.overlap_days, settings.full_refresh
        )
        for s in symbols
    }
    fetched = _fetch_grouped(collector, starts, end)
    fresh = fetched.bars.filter(pl.col("symbol").is_in(list(symbols)))

    stale = [
        s
        for s in symbols
        if (old := stored[s]) is not None
        and s not in fetched.failures
        and overlap_changed(
            old, fresh.filter(pl.col("symbol") == s), settings.collect.overlap_tolerance
        )
    ]
    if stale:
        refetch = _fetch_grouped(collector, dict.fromkeys(stale, settings.start), end)
        fresh = pl.concat(
            [
                fresh.filter(~pl.col("symbol").is_in(stale)),
                refetch.bars.filter(pl.col("symbol").is_in(stale)),
            ]
        )
        fetched.failures.update(refetch.failures)

    checked = apply_rules(fresh, settings.quality, today)
    counts = symbol_counts(checked)
    valid_by = checked.valid.partition_by("symbol", as_dict=True)
    bad_by = checked.quarantine.partition_by("symbol", as_dict=True)

    outcomes = []
    for symbol in symbols:
        if symbol in fetched.failures:
            outcomes.append(
                SymbolOutcome(
                    symbol, "failed", error=fetched.failures[symbol], **_span(stored[symbol])
                )
            )
            continue
        valid = valid_by.get((symbol,), empty_prices())
        bad = bad_by.get((symbol,))
        replace = symbol in stale or settings.full_refresh
        base = None if replace else stored[symbol]
        drop = bad.get_column("date") if bad is not None else None
        merged = sort_bars(valid) if base is None else merge_bars(base, valid, drop_dates=drop)
        if bad is not None and bad.height:
            store.write_parquet(quarantine_key(symbol, run_id), bad)
        old = stored[symbol]
        if merged.height and (old is None or not merged.equals(old.select(PRICE_COLUMNS))):
            store.write_parquet(prices_key(symbol), merged.select(PRICE_COLUMNS))
        new_rows = merged.height if old is None else merged.join(old, on="date", how="anti").height
        status = (
            "no_data"
            if merged.is_empty()
            else "insufficient"
            if merged.height < settings.quality.min_rows
            else "ok"
        )
        outcomes.append(
            SymbolOutcome(
                symbol,
                status,
                new_rows=new_rows,
                quarantined=0 if bad is None else bad.height,
                refetched_full=symbol in stale,
                error=None if status == "ok" else _status_reason(status, merged.height, settings),
                quality=counts.get(symbol, {}),
                **_span(merged),
            )
        )
    return outcomes


def _span(frame: pl.DataFrame | None) -> dict[str, Any]:
    if frame is None or frame.is_empty():
        return {"rows": 0, "first_date": None, "last_date": None}
    dates = frame.get_column("date")
    return {"rows": frame.height, "first_date": str(dates.min()), "last_date": str(dates.max())}


def _status_reason(status: str, rows: int, settings: Settings) -> str:
    if status == "no_data":
        return "no valid rows in the requested range"
    return f"{rows} valid rows, fewer than the minimum {settings.quality.min_rows}"


def outcome_dicts(outcomes: list[SymbolOutcome]) -> list[dict[str, Any]]:
    return [asdict(o) for o in outcomes]
