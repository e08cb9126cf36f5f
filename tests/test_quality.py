import datetime as dt

import polars as pl
import pytest

from core.collectors.local import LocalCollector
from core.config import QualitySettings
from core.prices import PRICE_COLUMNS
from core.quality import RULES, apply_rules, quality_report, symbol_counts
from tests.conftest import KAGGLE, STOOQ, require

RULESET = QualitySettings()
TODAY = dt.date(2024, 6, 28)


def bars(rows: list[tuple], symbol: str = "T") -> pl.DataFrame:
    """Rows of (date, open, high, low, close, volume) as canonical bars."""
    return pl.DataFrame(
        [(symbol, d, o, h, lo, c, c, v) for d, o, h, lo, c, v in rows],
        schema={
            c: t
            for c, t in zip(PRICE_COLUMNS, [pl.String, pl.Date] + [pl.Float64] * 6, strict=True)
        },
        orient="row",
    )


def weekdays(n: int, start: dt.date = dt.date(2024, 1, 1)) -> list[dt.date]:
    days = pl.date_range(start, start + dt.timedelta(days=2 * n + 7), eager=True)
    return days.filter(days.dt.weekday() <= 5).head(n).to_list()


def clean(n: int = 10) -> list[tuple]:
    return [(d, 10.0, 10.5, 9.5, 10.0, 1000.0) for d in weekdays(n)]


def rejected(result) -> dict[dt.date, str]:
    return dict(
        zip(result.quarantine["date"].to_list(), result.quarantine["rule"].to_list(), strict=True)
    )


@pytest.mark.parametrize(
    ("row", "rule"),
    [
        ((10.0, None, 9.5, 10.0, 1000.0), "schema"),
        ((10.0, 10.5, 9.5, None, 1000.0), "schema"),
        ((-1.0, 10.5, 9.5, 10.0, 1000.0), "positive_price"),
        ((10.0, 10.5, 0.0, 10.0, 1000.0), "positive_price"),
        ((10.0, 10.5, 9.5, 10.0, -5.0), "non_negative_volume"),
        ((10.0, 9.0, 9.5, 9.2, 1000.0), "high_ge_low"),
        ((10.0, 10.5, 9.5, 12.0, 1000.0), "ohlc_in_range"),
        ((8.0, 10.5, 9.5, 10.0, 1000.0), "ohlc_in_range"),
    ],
)
def test_row_rules_quarantine_only_the_bad_row(row, rule):
    rows = clean()
    bad_day = rows[4][0]
    rows[4] = (bad_day, *row)
    result = apply_rules(bars(rows), RULESET, TODAY)
    assert rejected(result) == {bad_day: rule}
    assert result.valid.height == 9 and bad_day not in result.valid["date"].to_list()
    assert result.quarantine["detail"][0].startswith(f"broke {rule}")


def test_first_rule_in_order_is_named_and_detail_lists_all():
    rows = clean()
    rows[2] = (
        rows[2][0],
        -1.0,
        9.0,
        9.5,
        9.2,
        1000.0,
    )  # non-positive, high < low, open outside range
    q = apply_rules(bars(rows), RULESET, TODAY).quarantine
    assert q["rule"].to_list() == ["positive_price"]
    assert q["detail"][0].startswith("broke positive_price, high_ge_low, ohlc_in_range")


def test_ohlc_tolerance_is_configurable():
    rows = clean()
    rows[3] = (rows[3][0], 10.0, 10.5, 9.5, 10.52, 1000.0)  # 0.19% above high
    assert apply_rules(bars(rows), RULESET, TODAY).quarantine.is_empty()
    strict = QualitySettings(ohlc_tolerance=0.0)
    assert list(rejected(apply_rules(bars(rows), strict, TODAY)).values()) == ["ohlc_in_range"]


def test_duplicates_keep_the_first_copy():
    rows = clean(5)
    rows.insert(3, (rows[2][0], 11.0, 11.5, 10.5, 11.0, 10.0))
    result = apply_rules(bars(rows), RULESET, TODAY)
    assert result.quarantine["rule"].to_list() == ["duplicate"]
    assert result.quarantine["close"].to_list() == [11.0]
    assert result.valid.height == 5 and result.valid["date"].is_unique().all()


def test_weekends_and_future_dates():
    rows = [
        *clean(5),
        (dt.date(2024, 6, 29), 10.0, 10.5, 9.5, 10.0, 1.0),
        (dt.date(2024, 7, 1), 10.0, 10.5, 9.5, 10.0, 1.0),
    ]
    assert rejected(apply_rules(bars(rows), RULESET, TODAY)) == {
        dt.date(2024, 6, 29): "trading_day",  # a Saturday
        dt.date(2024, 7, 1): "trading_day",  # after "today"
    }


def test_bad_tick_rejected_but_persistent_move_kept_as_warning():
    days = weekdays(12)
    closes = [
        10,
        10,
        10,
        25,
        10,
        10,
        10,
        4,
        4,
        4,
        4,
        4.0,
    ]  # spike up and back; then a crash that persists
    rows = [(d, c, c * 1.01, c * 0.99, c, 100.0) for d, c in zip(days, closes, strict=True)]
    result = apply_rules(bars(rows), RULESET, TODAY)
    assert rejected(result) == {days[3]: "bad_tick"}
    assert days[7] in result.valid["date"].to_list()
    assert result.warnings.filter(pl.col("warning") == "large_move")["date"].to_list() == [days[7]]


def test_bad_ticks_never_cross_symbols():
    # B's first close is far from A's last: no jump, because the previous close is A's.
    a = bars([(d, 10.0, 10.5, 9.5, 10.0, 1.0) for d in weekdays(5)], "A")
    b = bars([(d, 50.0, 50.5, 49.5, 50.0, 1.0) for d in weekdays(5)], "B")
    a_spike = bars([(weekdays(6)[5], 30.0, 30.5, 29.5, 30.0, 1.0)], "A")
    result = apply_rules(pl.concat([b, a, a_spike]), RULESET, TODAY)
    assert result.quarantine.is_empty()
    assert result.warnings.filter(pl.col("warning") == "large_move")["symbol"].to_list() == ["A"]


def test_zero_volume_is_kept_and_counted():
    rows = clean(6)
    rows[1] = (rows[1][0], 10.0, 10.0, 10.0, 10.0, 0.0)
    result = apply_rules(bars(rows), RULESET, TODAY)
    assert result.valid.height == 6
    assert symbol_counts(result)["T"]["warnings"] == {"zero_volume": 1}


def _local(folder, *symbols):
    return LocalCollector(require(folder)).fetch(list(symbols), dt.date(1960, 1, 1), TODAY).bars


def test_real_kaggle_defects():
    result = apply_rules(_local(KAGGLE, "AOS", "LNT", "DHR"), RULESET, TODAY)
    got = {
        (s, d.isoformat()): r
        for s, d, r in result.quarantine.select("symbol", "date", "rule").iter_rows()
    }
    assert got[("AOS", "2014-05-19")] == "high_ge_low"
    assert got[("LNT", "2016-05-19")] == "ohlc_in_range"
    assert got[("DHR", "2015-07-17")] == "schema"  # blank open
    counts = symbol_counts(result)
    assert counts["AOS"]["rows_valid"] == counts["AOS"]["rows_checked"] - 1 == 1258
    assert counts["LNT"]["rows_valid"] == 1258


def test_real_stooq_defects():
    result = apply_rules(_local(STOOQ, "BLJ", "EVSTC", "ADXS"), RULESET, TODAY)
    got = {
        (s, d.isoformat()): r
        for s, d, r in result.quarantine.select("symbol", "date", "rule").iter_rows()
    }
    assert got[("BLJ", "2008-02-07")] == "positive_price"
    assert got[("EVSTC", "2016-02-27")] == "trading_day"  # a Saturday
    assert got[("ADXS", "2008-11-24")] == "bad_tick"  # 2.5 -> 1.25 -> 2.5
    assert result.valid.height + result.quarantine.height == result.checked["rows"].sum()
    report = quality_report("r1", symbol_counts(result), {"BLJ": "ok"})
    assert report["totals"]["rows_quarantined"] == result.quarantine.height
    assert set(report["totals"]["by_rule"]) <= set(RULES)
    assert report["symbols"]["BLJ"]["status"] == "ok"


def test_whole_stooq_set_every_row_accounted_for():
    frame = _local(STOOQ, *[p.stem for p in sorted(require(STOOQ).glob("*.csv"))])
    result = apply_rules(frame, RULESET, TODAY)
    assert result.valid.height + result.quarantine.height == frame.height
    assert result.valid.select(pl.struct("symbol", "date").is_unique().all()).item()
    assert set(result.quarantine["rule"].unique()) >= {
        "positive_price",
        "high_ge_low",
        "ohlc_in_range",
        "trading_day",
        "bad_tick",
    }
