import datetime as dt

import polars as pl
import pytest

from core import layout
from core.config import (
    CollectJob,
    CollectSettings,
    ConfigError,
    QualitySettings,
    SyntheticSettings,
)
from core.data.collection import collect_symbols
from core.data.collectors.base import FetchResult
from core.data.collectors.local import LocalCollector
from core.data.quality import RULES, apply_rules, quality_report, symbol_counts
from core.storage import Store
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


def flat(day: dt.date, volume: float = 0.0, price: float = 5.0) -> tuple:
    """A flat bar: open = high = low = close (a placeholder price when volume is 0)."""
    return (day, price, price, price, price, volume)


def normal(day: dt.date) -> tuple:
    return (day, 10.0, 10.5, 9.5, 10.0, 1000.0)


def test_stale_run_at_the_start_is_quarantined_and_the_rest_kept():
    """Case 13 of issue 24: a history opening with placeholder bars (a GARCH fit on it exploded)."""
    days = weekdays(40)
    t = bars([flat(d) for d in days[:30]] + [normal(d) for d in days[30:]], "T")
    u = bars(clean(10), "U")
    # any order in: the rule sees each symbol's bars by date
    result = apply_rules(pl.concat([u, t]).reverse(), RULESET, TODAY)
    assert rejected(result) == dict.fromkeys(days[:30], "stale_run")
    assert result.quarantine["detail"][0].startswith("broke stale_run; open=5.0")
    assert result.valid.equals(pl.concat([t.tail(10), u]))
    # nor does the jump from the placeholder price to the first real close warn
    assert result.warnings.is_empty()
    assert symbol_counts(result)["T"]["quarantined"] == {"stale_run": 30}


def test_a_flat_run_shorter_than_the_setting_is_kept():
    days = weekdays(30)
    n = RULESET.stale_run_bars
    # n - 1 placeholder bars first, then exactly n later on: only the second run goes
    rows = [flat(d, price=10.0) for d in days[: n - 1]] + [normal(d) for d in days[n - 1 : 20]]
    rows += [flat(d, price=10.0) for d in days[20 : 20 + n]] + [normal(d) for d in days[20 + n :]]
    result = apply_rules(bars(rows), RULESET, TODAY)
    assert rejected(result) == dict.fromkeys(days[20 : 20 + n], "stale_run")
    assert result.valid["date"].to_list() == days[:20] + days[20 + n :]
    assert symbol_counts(result)["T"]["warnings"] == {"zero_volume": n - 1}


def test_flat_bars_that_traded_break_a_run_and_zero_volume_alone_is_no_run():
    days = weekdays(40)
    traded = [
        flat(d, volume=100.0 if i in (4, 8, 12, 16) else 0.0) for i, d in enumerate(days[:20])
    ]
    # zero volume but a range: not a placeholder price
    moving = [(d, 10.0, 10.5, 9.5, 10.0, 0.0) for d in days[20:]]
    result = apply_rules(bars(traded + moving), RULESET, TODAY)
    assert result.quarantine.is_empty() and result.valid.height == 40


def test_stale_runs_never_cross_symbols():
    """A's run ends where B's starts in the sorted panel: two runs of 3, neither long enough."""
    days = weekdays(6)
    a = bars([normal(d) for d in days[:3]] + [flat(d) for d in days[3:]], "A")
    b = bars([flat(d) for d in days[:3]] + [normal(d) for d in days[3:]], "B")
    assert apply_rules(pl.concat([a, b]), RULESET, TODAY).quarantine.is_empty()


def test_stale_run_bars_is_configurable():
    days = weekdays(35)
    rows = [flat(d) for d in days[:30]] + [normal(d) for d in days[30:]]
    assert apply_rules(bars(rows), QualitySettings(stale_run_bars=31), TODAY).quarantine.is_empty()
    short = [flat(d) for d in days[:2]] + [normal(d) for d in days[2:5]]
    assert apply_rules(bars(short), RULESET, TODAY).quarantine.is_empty()
    two = rejected(apply_rules(bars(short), QualitySettings(stale_run_bars=2), TODAY))
    assert two == dict.fromkeys(days[:2], "stale_run")


@pytest.mark.parametrize("value", ["1", "0", "-3"])
def test_a_stale_run_of_fewer_than_two_bars_is_refused_at_load(fresh, monkeypatch, value):
    from core.settings import load_settings

    monkeypatch.setenv("SMA_QUALITY__STALE_RUN_BARS", value)
    with pytest.raises(ConfigError, match=r"quality\.stale_run_bars: .*greater than or equal to 2"):
        load_settings()
    monkeypatch.setenv("SMA_QUALITY__STALE_RUN_BARS", "8")
    assert load_settings().quality.stale_run_bars == 8


class Frames:
    """A source serving a frame's bars of the asked symbols and dates."""

    name = "frames"

    def __init__(self, frame: pl.DataFrame):
        self.frame = frame

    def fetch(self, symbols, start: dt.date, end: dt.date) -> FetchResult:
        asked = pl.col("symbol").is_in(list(symbols)) & pl.col("date").is_between(start, end)
        return FetchResult(bars=self.frame.filter(asked))


def frames_job(start: dt.date, end: dt.date) -> CollectJob:
    """A collect of ``Frames`` from ``start`` to ``end`` with the default settings."""
    return CollectJob(
        source="frames",
        source_path=None,
        start=start,
        end=end,
        full_refresh=False,
        collect=CollectSettings(),
        quality=QualitySettings(),
        synthetic=SyntheticSettings(),
    )


def test_collection_quarantines_a_stale_run_even_split_across_two_collects(tmp_path):
    """The quarantine file records the rule. A run split across collects is judged on the bars
    each collect checks, the new ones and the overlap (the last ``overlap_days`` + 1 stored):
    3 placeholder bars end the first collect (kept: too short), 3 more open the second, and
    the 6 in its window go, the 3 stored ones with them."""
    days = weekdays(30)
    rows = [normal(d) for d in days[:20]] + [flat(d) for d in days[20:26]]
    source = Frames(bars(rows + [normal(d) for d in days[26:]], "T"))
    store = Store(str(tmp_path))

    def job(end: dt.date) -> CollectJob:
        return frames_job(days[0], end)

    (first,) = collect_symbols(source, store, ["T"], job(days[22]), "r1", TODAY)
    assert (first.rows, first.quarantined) == (23, 0)
    (second,) = collect_symbols(source, store, ["T"], job(days[-1]), "r2", TODAY)
    assert second.quarantined == 6 and second.quality["quarantined"] == {"stale_run": 6}
    bad = store.read_parquet(layout.QUARANTINE(symbol="T", run_id="r2"))
    assert bad["rule"].to_list() == ["stale_run"] * 6
    assert bad["date"].to_list() == days[20:26]
    stored = store.read_parquet(layout.PRICES(symbol="T"))
    assert stored["date"].to_list() == days[:20] + days[26:]


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
