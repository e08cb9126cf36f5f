import datetime as dt

import polars as pl

from core.data.incremental import fetch_start, overlap_changed
from core.data.ingestion import update_ingestion
from core.data.prices import merge_bars
from tests.factories import bars, weekdays

DAYS = weekdays(20)


def series(closes: list[float], days: list[dt.date] = DAYS) -> pl.DataFrame:
    return bars([(d, c, c, c, c, 1.0) for d, c in zip(days, closes, strict=False)])


def test_fetch_start():
    stored = series([10.0] * 20)
    assert fetch_start(None, dt.date(2000, 1, 1), 5, False) == dt.date(2000, 1, 1)
    assert fetch_start(stored, dt.date(2000, 1, 1), 5, True) == dt.date(2000, 1, 1)
    assert fetch_start(stored, dt.date(2000, 1, 1), 5, False) == DAYS[-6]  # 5 trading days back
    assert fetch_start(stored.head(3), dt.date(2000, 1, 1), 5, False) == DAYS[0]


def test_overlap_detects_readjusted_history():
    stored = series([10.0] * 20)
    same = series([10.0] * 6 + [11.0], DAYS[14:] + weekdays(21)[20:])
    assert not overlap_changed(stored, same, 1e-3)
    split = series([5.0] * 6, DAYS[14:])  # a 2:1 split re-adjusted the past
    assert overlap_changed(stored, split, 1e-3)
    dividend = series([10.0] * 6, DAYS[14:]).with_columns(pl.col("adj_close") * 0.98)
    assert overlap_changed(stored, dividend, 1e-3)
    assert not overlap_changed(stored, series([10.005] * 6, DAYS[14:]), 1e-3)  # within tolerance


def test_merge_new_rows_win_and_rejected_dates_leave():
    stored = series([10.0] * 10)
    fresh = series([11.0] * 4, DAYS[8:12])
    merged = merge_bars(stored, fresh, drop_dates=pl.Series([DAYS[5]]))
    assert merged["date"].to_list() == [d for d in DAYS[:12] if d != DAYS[5]]
    assert merged.filter(pl.col("date") == DAYS[9])["close"].item() == 11.0
    assert merged["date"].is_sorted() and merged["date"].is_unique().all()


def test_ingestion_upsert_keeps_every_symbol():
    t1 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    t2 = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
    first = update_ingestion(
        None,
        [
            {
                "symbol": "A",
                "status": "ok",
                "rows": 10,
                "first_date": "2020-01-02",
                "last_date": "2020-01-15",
                "error": None,
            },
            {
                "symbol": "B",
                "status": "failed",
                "rows": 0,
                "first_date": None,
                "last_date": None,
                "error": "boom",
            },
        ],
        t1,
    )
    second = update_ingestion(
        first,
        [
            {
                "symbol": "B",
                "status": "ok",
                "rows": 5,
                "first_date": "2020-01-02",
                "last_date": "2020-01-08",
                "error": None,
            }
        ],
        t2,
    )
    rows = {r["symbol"]: r for r in second.iter_rows(named=True)}
    assert set(rows) == {"A", "B"}
    assert rows["A"]["attempts"] == 1 and rows["A"]["last_success_at"] == t1
    assert (
        rows["B"]["attempts"] == 2
        and rows["B"]["last_success_at"] == t2
        and rows["B"]["error"] is None
    )
    third = update_ingestion(
        second, [{"symbol": "A", "status": "failed", "rows": 10, "error": "down"}], t2
    )
    a = third.filter(pl.col("symbol") == "A").row(0, named=True)
    assert a["status"] == "failed" and a["last_success_at"] == t1 and a["last_attempt_at"] == t2
