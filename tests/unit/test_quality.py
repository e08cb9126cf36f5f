import datetime as dt

import polars as pl
import pytest

from core.config import QualitySettings
from core.data.collectors.local import LocalCollector
from core.data.quality import RULES, apply_rules, quality_report, symbol_counts
from tests.factories import KAGGLE, bars, clean, weekdays

RULESET = QualitySettings()
TODAY = dt.date(2024, 6, 28)


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
        # non-finite numbers (an inf volume once passed and broke the feature build)
        ((10.0, 10.5, 9.5, 10.0, float("inf")), "schema"),
        ((10.0, 10.5, 9.5, float("nan"), 1000.0), "schema"),
        ((float("-inf"), 10.5, 9.5, 10.0, 1000.0), "schema"),
        ((10.0, float("inf"), 9.5, 10.0, 1000.0), "schema"),
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


def test_non_finite_adjusted_close_is_rejected_but_a_missing_one_is_not():
    rows = clean(4)
    frame = bars(rows).with_columns(
        pl.Series("adj_close", [10.0, float("nan"), None, 10.0], dtype=pl.Float64)
    )
    result = apply_rules(frame, RULESET, TODAY)
    assert rejected(result) == {rows[1][0]: "schema"}
    assert result.valid.height == 3


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
    return LocalCollector(folder).fetch(list(symbols), dt.date(1960, 1, 1), TODAY).bars


def test_real_kaggle_defects():
    """The Kaggle set's real defects, from the slices in tests/data/kaggle."""
    result = apply_rules(_local(KAGGLE, "AOS", "LNT", "DHR", "DISCA"), RULESET, TODAY)
    got = {
        (s, d.isoformat()): r
        for s, d, r in result.quarantine.select("symbol", "date", "rule").iter_rows()
    }
    assert got == {
        ("AOS", "2014-05-19"): "high_ge_low",
        ("LNT", "2016-05-19"): "ohlc_in_range",
        ("DHR", "2015-07-17"): "schema",  # blank open
        ("DHR", "2016-01-12"): "schema",  # blank open, high and low
    }
    counts = symbol_counts(result)
    assert counts["AOS"]["rows_valid"] == counts["AOS"]["rows_checked"] - 1 == 40
    assert counts["LNT"]["rows_valid"] == 40
    # DISCA's unadjusted 2014-08-07 split (84 -> 41) persists: a warning, not a rejection.
    disca = result.warnings.filter(pl.col("symbol") == "DISCA")
    assert disca.rows() == [("DISCA", dt.date(2014, 8, 7), "large_move")]


STOOQ_LOOKALIKE = {
    # BLJ 2008-02-07: zero open, low and volume
    "BLJ": "2008-02-05,11.966,11.966,11.966,11.966,1464,0\n2008-02-06,12.066,12.138,12.066,12.138,1464,0\n"
    "2008-02-07,0,12.138,0,12.138,0,0\n2008-02-11,12.283,12.415,12.283,12.283,1756,0\n",
    # EVSTC 2016-02-27: a bar dated on a Saturday
    "EVSTC": "2016-02-26,99.86,99.87,99.86,99.87,120,0\n2016-02-27,99.87,99.87,99.87,99.87,50202,0\n"
    "2016-02-29,99.87,99.87,99.86,99.86,200,0\n2016-03-01,99.87,99.87,99.87,99.87,1677,0\n",
    # ADXS 2008-11-24: a one-day spike 2.50 -> 1.25 -> 2.50
    "ADXS": "2008-11-20,2.5,2.5,2.5,2.5,7,0\n2008-11-21,2.5,2.5,2.5,2.5,1,0\n2008-11-24,1.25,1.25,1.25,1.25,7,0\n"
    "2008-11-25,2.5,2.5,2.5,2.5,8,0\n2008-11-28,2.5,2.5,2.5,2.5,2,0\n",
}


def test_stooq_lookalike_defects(tmp_path):
    """Small copies of real defects of the stooq set, in stooq's own file format."""
    for symbol, rows in STOOQ_LOOKALIKE.items():
        (tmp_path / f"{symbol}.csv").write_text("Date,Open,High,Low,Close,Volume,OpenInt\n" + rows)
    frame = _local(tmp_path, *STOOQ_LOOKALIKE)
    result = apply_rules(frame, RULESET, TODAY)
    got = {
        (s, d.isoformat()): r
        for s, d, r in result.quarantine.select("symbol", "date", "rule").iter_rows()
    }
    assert got == {
        ("BLJ", "2008-02-07"): "positive_price",
        ("EVSTC", "2016-02-27"): "trading_day",
        ("ADXS", "2008-11-24"): "bad_tick",
    }
    assert result.valid.height + result.quarantine.height == frame.height == 13
    report = quality_report("r1", symbol_counts(result), {"BLJ": "ok"})
    assert report["totals"]["rows_quarantined"] == 3
    assert set(report["totals"]["by_rule"]) <= set(RULES)
    assert report["symbols"]["BLJ"]["status"] == "ok"
