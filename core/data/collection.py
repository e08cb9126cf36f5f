"""Collect one batch of symbols into the store: plan, fetch, validate, merge, write.

Each symbol's files are written atomically and independently, so a crash mid-batch
leaves every symbol either as it was or fully updated, and one symbol's failure never
touches another's data.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from core import layout
from core.config import CollectJob
from core.data.collectors import Collector, FetchResult
from core.data.incremental import fetch_start, overlap_changed
from core.data.prices import (
    PRICE_COLUMNS,
    empty_prices,
    merge_bars,
    price_schema_problem,
    sort_bars,
)
from core.data.quality import apply_rules, symbol_counts
from core.data.tickers import Tickers
from core.locks import store_lock
from core.storage import DamagedFileError, Store


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
    repaired: str | None = None  # what was found damaged and how it was repaired
    error: str | None = None
    quality: dict[str, Any] = field(default_factory=dict)


def set_aside(store: Store, key: str, run_id: str) -> str:
    """Move a damaged file out of the way (kept for inspection); returns where it went."""
    aside = layout.CORRUPT(run_id=run_id, key=key)
    store.move(key, aside)
    return store.uri(aside)


def read_stored(store: Store, symbol: str, run_id: str) -> tuple[pl.DataFrame | None, str | None]:
    """(stored bars or None, repair note). A price file that cannot be read is set aside
    and the symbol counts as new: the caller refetches it in full. So is one that parses but
    lacks a price column or holds one of another type (a hand edit, another tool's file)."""
    key = layout.PRICES(symbol=symbol)
    if not store.exists(key):
        return None, None
    try:
        frame = store.read_parquet(key)
        wrong = price_schema_problem(frame)
        if wrong is None:
            return frame, None
        problem = f"stored prices have the wrong schema ({wrong})"
    except DamagedFileError as exc:
        problem = f"stored prices unreadable ({exc.problem})"
    aside = set_aside(store, key, run_id)
    return None, f"{problem}: moved to {aside}, refetched in full"


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
    job: CollectJob,
    run_id: str,
    today: dt.date | None = None,
) -> list[SymbolOutcome]:
    """Bring ``symbols`` up to date in the store; return one outcome per symbol.

    Raises only batch-wide errors (``RetryableCollectorError`` from the collector);
    per-symbol problems become ``failed`` outcomes.
    """
    today = today or dt.date.today()
    end = job.end
    read = {s: read_stored(store, s, run_id) for s in symbols}
    stored = {s: frame for s, (frame, _) in read.items()}
    repaired = {s: note for s, (_, note) in read.items() if note}
    starts = {
        s: fetch_start(stored[s], job.start, job.collect.overlap_days, job.full_refresh)
        for s in symbols
    }
    fetched = _fetch_grouped(collector, starts, end)
    fresh = fetched.bars.filter(pl.col("symbol").is_in(list(symbols)))

    stale = [
        s
        for s in symbols
        if (old := stored[s]) is not None
        and s not in fetched.failures
        and overlap_changed(old, fresh.filter(pl.col("symbol") == s), job.collect.overlap_tolerance)
    ]
    if stale:
        refetch = _fetch_grouped(collector, dict.fromkeys(stale, job.start), end)
        fresh = pl.concat(
            [
                fresh.filter(~pl.col("symbol").is_in(stale)),
                refetch.bars.filter(pl.col("symbol").is_in(stale)),
            ]
        )
        fetched.failures.update(refetch.failures)

    checked = apply_rules(fresh, job.quality, today)
    counts = symbol_counts(checked)
    valid_by = checked.valid.partition_by("symbol", as_dict=True)
    bad_by = checked.quarantine.partition_by("symbol", as_dict=True)

    outcomes = []
    # under the store's prices lock, each symbol merged into its file as it is now: another
    # collect may have written it since it was read above (no fetch is held up by it)
    with store_lock(store, "prices"):
        for symbol in symbols:
            if symbol in fetched.failures:
                outcomes.append(
                    SymbolOutcome(
                        symbol,
                        "failed",
                        error=fetched.failures[symbol],
                        repaired=repaired.get(symbol),
                        **_span(stored[symbol]),
                    )
                )
                continue
            valid = valid_by.get((symbol,), empty_prices())
            bad = bad_by.get((symbol,))
            replace = symbol in stale or job.full_refresh
            old = _current(store, symbol, stored[symbol])
            base = None if replace else old
            drop = bad.get_column("date") if bad is not None else None
            merged = sort_bars(valid) if base is None else merge_bars(base, valid, drop_dates=drop)
            if bad is not None and bad.height:
                store.write_parquet(layout.QUARANTINE(symbol=symbol, run_id=run_id), bad)
            if merged.height and (old is None or not merged.equals(old.select(PRICE_COLUMNS))):
                store.write_parquet(layout.PRICES(symbol=symbol), merged.select(PRICE_COLUMNS))
            new_rows = (
                merged.height if old is None else merged.join(old, on="date", how="anti").height
            )
            status = (
                "no_data"
                if merged.is_empty()
                else "insufficient"
                if merged.height < job.quality.min_rows
                else "ok"
            )
            outcomes.append(
                SymbolOutcome(
                    symbol,
                    status,
                    new_rows=new_rows,
                    quarantined=0 if bad is None else bad.height,
                    refetched_full=symbol in stale,
                    repaired=repaired.get(symbol),
                    error=None
                    if status == "ok"
                    else _status_reason(status, merged.height, job.quality.min_rows),
                    quality=counts.get(symbol, {}),
                    **_span(merged),
                )
            )
    return outcomes


def _current(store: Store, symbol: str, read_before: pl.DataFrame | None) -> pl.DataFrame | None:
    """The symbol's stored bars as they are now; those read before when they cannot be
    read now (the next collect repairs the file)."""
    key = layout.PRICES(symbol=symbol)
    try:
        now = store.read_parquet(key) if store.exists(key) else None
    except DamagedFileError:
        return read_before
    return now if now is None or price_schema_problem(now) is None else read_before


def _span(frame: pl.DataFrame | None) -> dict[str, Any]:
    if frame is None or frame.is_empty():
        return {"rows": 0, "first_date": None, "last_date": None}
    dates = frame.get_column("date")
    return {"rows": frame.height, "first_date": str(dates.min()), "last_date": str(dates.max())}


def _status_reason(status: str, rows: int, min_rows: int) -> str:
    if status == "no_data":
        return "no valid rows in the requested range"
    return f"{rows} valid rows, fewer than the minimum {min_rows}"


def outcome_dicts(outcomes: list[SymbolOutcome]) -> list[dict[str, Any]]:
    return [asdict(o) for o in outcomes]


def failed_batch(symbols: Sequence[str], error: str) -> list[dict[str, Any]]:
    """Outcomes of a batch that failed as a whole (after its retries): every symbol failed."""
    return outcome_dicts([SymbolOutcome(s, "failed", error=error) for s in symbols])


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
        "repaired": {o["symbol"]: o["repaired"] for o in outcomes if o.get("repaired")},
        "failed_symbols": failed,
        "rejected_tickers": tickers.rejected,
        "quality_report": recorded["report"],
        "seconds": round(seconds, 2),
    }
