"""Data health: are the bars fresh, and is the quality gate rejecting more than usual?

Trading days come from an exchange calendar (``exchange_calendars``, NYSE by default), so
holidays and half days are not stale days.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import polars as pl

from core import layout
from core.errors import InputError, first_line
from core.storage import Store

RUN_DATE = re.compile(r"^(\d{8})T")  # run ids start with their UTC time


def latest_session(as_of: dt.date, calendar: str, now: dt.datetime | None = None) -> dt.date:
    """The newest session of ``calendar`` on or before ``as_of`` that has closed by ``now``
    (as of today before the close, that is the previous session)."""
    import exchange_calendars as xc  # seconds of imports: only when the monitor runs
    from exchange_calendars.errors import InvalidCalendarName

    try:
        cal = xc.get_calendar(
            calendar, start=as_of - dt.timedelta(days=30), end=as_of + dt.timedelta(days=7)
        )
    except (InvalidCalendarName, ValueError) as exc:
        raise InputError(f"monitor.calendar {calendar!r}: {first_line(str(exc))}") from None
    session = cal.date_to_session(as_of.isoformat(), direction="previous")
    now = now or dt.datetime.now(dt.UTC)
    if cal.session_close(session).to_pydatetime() > now:
        session = cal.previous_session(session)
    return session.date()


def freshness(last_dates: pl.DataFrame, session: dt.date) -> dict[str, Any]:
    """Share of symbols (``symbol, last_date``) with a bar on ``session``; the stale ones."""
    stale = last_dates.filter(pl.col("last_date").is_null() | (pl.col("last_date") < session)).sort(
        "symbol"
    )
    total = last_dates.height
    return {
        "session": str(session),
        "symbols": total,
        "fresh": total - stale.height,
        "fresh_share": (total - stale.height) / total if total else 0.0,
        "stale_symbols": stale["symbol"].to_list(),
    }


def run_date(run_id: str) -> dt.date | None:
    found = RUN_DATE.match(run_id)
    return dt.datetime.strptime(found[1], "%Y%m%d").date() if found else None


def quality_reports(store: Store) -> list[tuple[dt.date, str]]:
    """(run date, key) of every collect run's quality report, oldest first."""
    found = []
    for key in store.list(layout.QUALITY_REPORT.prefix):
        parts = layout.QUALITY_REPORT.match(key)
        day = run_date(parts["run_id"]) if parts else None
        if day is not None:
            found.append((day, key))
    return sorted(found)


def quarantine_rates(reports: list[dict[str, Any]], as_of: dt.date, days: int) -> dict[str, Any]:
    """The newest collect run's quarantine rate (rows quarantined / rows checked) on or before
    ``as_of`` against the mean rate of the runs in the ``days`` before it."""
    runs = sorted(
        (d, r["run_id"], r["totals"])
        for r in reports
        if (d := run_date(r.get("run_id", ""))) is not None and d <= as_of
    )
    rate = [
        (d, run, t["rows_quarantined"] / t["rows_checked"] if t.get("rows_checked") else 0.0)
        for d, run, t in runs
    ]
    if not rate:
        return {"latest_run": None, "latest_rate": None, "trailing_mean": None, "trailing_runs": 0}
    last_day, last_run, last_rate = rate[-1]
    trailing = [v for d, run, v in rate[:-1] if (last_day - d).days <= days and run != last_run]
    return {
        "latest_run": last_run,
        "latest_rate": last_rate,
        "by_rule": runs[-1][2].get("by_rule", {}),
        "trailing_mean": sum(trailing) / len(trailing) if trailing else None,
        "trailing_runs": len(trailing),
    }
