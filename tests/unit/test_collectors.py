import datetime as dt
import shutil

import pandas as pd
import polars as pl
import pytest
from yfinance.base import TickerBase
from yfinance.exceptions import YFPricesMissingError, YFRateLimitError
from yfinance.scrapers.history import PriceHistory

from core.data.collectors import RetryableCollectorError
from core.data.collectors.local import LocalCollector
from core.data.collectors.synthetic import SyntheticCollector
from core.data.collectors.yahoo import YFinanceCollector
from core.data.prices import PRICE_SCHEMA
from tests.factories import KAGGLE, SAMPLE

START, END = dt.date(2015, 1, 1), dt.date(2015, 3, 31)


def assert_canonical(frame: pl.DataFrame) -> None:
    assert dict(frame.schema) == PRICE_SCHEMA


# -- local ----------------------------------------------------------------------------
def yahoo_csv(symbol: str) -> pl.DataFrame:
    """A sample symbol in Yahoo's CSV columns (Date, ..., Adj Close, Volume), as Yahoo's
    downloads (and the Yahoo set the benchmarks read) have them; Adj Close made up."""
    raw = pl.read_csv(SAMPLE / "prices" / f"{symbol}.csv")
    return raw.select(
        pl.col("date").alias("Date"),
        pl.col("open").alias("Open"),
        pl.col("high").alias("High"),
        pl.col("low").alias("Low"),
        pl.col("close").alias("Close"),
        (pl.col("close") * 0.98).alias("Adj Close"),
        pl.col("volume").alias("Volume"),
    )


# stooq's columns (WIT.csv of the stooq set) and its preferred-share file name (EPR_C.csv).
STOOQ_ROWS = "Date,Open,High,Low,Close,Volume,OpenInt\n2015-01-02,5.98,6.02,5.95,6.0,1000,0\n2015-01-05,6.0,6.1,5.9,6.05,1200,0\n"


def test_local_reads_yahoo_kaggle_and_stooq_columns(tmp_path):
    yahoo_csv("JNJ").write_csv(tmp_path / "jnj.CSV")  # case-insensitive names
    shutil.copy(KAGGLE / "AOS_data.csv", tmp_path / "AOS_data.csv")  # Kaggle naming
    (tmp_path / "WIT.csv").write_text(STOOQ_ROWS)
    (tmp_path / "EPR_C.csv").write_text(STOOQ_ROWS)
    pl.read_csv(KAGGLE / "LNT_data.csv").write_parquet(tmp_path / "LNT.parquet")
    start, end = dt.date(2014, 1, 1), dt.date(2016, 12, 31)
    symbols = ["JNJ", "AOS", "WIT", "EPR-PC", "LNT", "NOPE"]
    result = LocalCollector(tmp_path).fetch(symbols, start, end)
    assert_canonical(result.bars)
    assert set(result.bars["symbol"].unique()) == {"JNJ", "AOS", "WIT", "EPR-PC", "LNT"}
    assert result.failures == {"NOPE": f"no file for NOPE in {tmp_path}"}
    assert result.bars.select(pl.col("date").is_between(start, end).all()).item()
    jnj = result.bars.filter(pl.col("symbol") == "JNJ")
    assert jnj["adj_close"].null_count() == 0  # Yahoo's Adj Close kept
    assert (
        result.bars.filter(pl.col("symbol") == "WIT")["adj_close"].null_count() == 2
    )  # none in stooq
    jan2 = jnj.filter(pl.col("date") == dt.date(2015, 1, 2)).row(0, named=True)
    raw = yahoo_csv("JNJ").filter(pl.col("Date") == "2015-01-02").row(0, named=True)
    assert jan2["close"] == pytest.approx(raw["Close"]) and jan2["volume"] == raw["Volume"]
    assert jan2["adj_close"] == pytest.approx(raw["Adj Close"])


def test_local_unreadable_file_is_a_symbol_failure(tmp_path):
    (tmp_path / "BAD.csv").write_text("when,price\n2015-01-02,3\n")
    shutil.copy(KAGGLE / "AOS_data.csv", tmp_path / "AOS.csv")
    result = LocalCollector(tmp_path).fetch(
        ["BAD", "AOS"], dt.date(2014, 1, 1), dt.date(2014, 12, 31)
    )
    assert "missing required column" in result.failures["BAD"]
    assert result.bars["symbol"].unique().to_list() == ["AOS"]


def test_local_missing_folder():
    with pytest.raises(FileNotFoundError, match="local source folder not found"):
        LocalCollector("/nonexistent/folder")


# -- synthetic --------------------------------------------------------------------------
def test_synthetic_is_deterministic_and_valid_shape():
    collector = SyntheticCollector(seed=3)
    a = collector.fetch(["X", "Y"], dt.date(2010, 1, 1), dt.date(2012, 12, 31)).bars
    b = collector.fetch(["Y"], dt.date(2011, 6, 1), dt.date(2013, 12, 31)).bars
    assert_canonical(a)
    overlap = a.filter(pl.col("symbol") == "Y").join(b, on="date")
    assert overlap.height > 300 and (overlap["close"] == overlap["close_right"]).all()
    assert (
        a.filter(pl.col("symbol") == "X")["close"].to_list()
        != a.filter(pl.col("symbol") == "Y")["close"].to_list()
    )
    assert (a["date"].dt.weekday() <= 5).all()
    assert (a["high"] >= a[["open", "close"]].max_horizontal()).all() and (
        a["low"] <= a[["open", "close"]].min_horizontal()
    ).all()
    returns = a.filter(pl.col("symbol") == "X")["close"].log().diff().drop_nulls()
    assert 0.005 < returns.std() < 0.05  # type: ignore[operator]


# -- yfinance, fed at its own download boundary ----------------------------------------
FTV_LISTED = "2016-07-05"  # FTV (Fortive) began trading then: yf.download pads its earlier dates


def _history_frame(symbol: str, start: str, end: str) -> pd.DataFrame:
    """What PriceHistory.history returns for daily bars with auto_adjust=False, actions=False:
    a tz-aware DatetimeIndex named Date and yfinance's column names. Prices come from the
    bundled sample; 'FTV' is CAT's history from FTV's listing date on (a late listing)."""
    raw = yahoo_csv("CAT" if symbol == "FTV" else symbol).to_pandas()
    raw["Date"] = pd.to_datetime(raw["Date"])
    first = FTV_LISTED if symbol == "FTV" else start
    raw = raw[(raw["Date"] >= max(start, first)) & (raw["Date"] < end)].set_index("Date")
    raw.index = pd.DatetimeIndex(raw.index).tz_localize("America/New_York")
    raw["Volume"] = raw["Volume"].astype("int64")
    return pd.DataFrame(raw[["Open", "High", "Low", "Close", "Adj Close", "Volume"]])


@pytest.fixture()
def fake_yahoo(monkeypatch: pytest.MonkeyPatch):
    """Replace only Yahoo's HTTP answers (timezone and price history): yf.download's own
    threading, error capture, concat and reindexing run as they do online."""
    behaviour: dict[str, str] = {}
    calls: list[str] = []

    def history(self, *args, **kwargs):
        calls.append(self.ticker)
        mode = behaviour.get(self.ticker, "ok")
        if mode == "rate_limited":
            raise YFRateLimitError()
        if mode == "missing":
            raise YFPricesMissingError(self.ticker, f"(1d {kwargs['start']} -> {kwargs['end']})")
        return _history_frame(self.ticker, kwargs["start"], kwargs["end"])

    monkeypatch.setattr(TickerBase, "_fetch_ticker_tz", lambda self, timeout: "America/New_York")
    monkeypatch.setattr(PriceHistory, "history", history)
    return behaviour, calls


def test_yfinance_batch_converts_multiindex_output(fake_yahoo):
    _behaviour, calls = fake_yahoo
    # FTV starts on 2016-07-05: the union index pads its earlier dates with NaN rows
    collector = YFinanceCollector()
    result = collector.fetch(["JNJ", "HD", "FTV"], dt.date(2016, 6, 1), dt.date(2016, 8, 31))
    assert sorted(calls) == ["FTV", "HD", "JNJ"]  # one download call, all tickers
    assert result.failures == {}
    assert_canonical(result.bars)
    counts = dict(result.bars.group_by("symbol").len().iter_rows())
    expected = (
        yahoo_csv("CAT")
        .filter(pl.col("Date").is_between(pl.lit(FTV_LISTED), pl.lit("2016-08-31")))
        .height
    )
    assert counts["FTV"] == expected < counts["JNJ"] == counts["HD"]  # padding rows dropped
    assert result.bars["date"].max() == dt.date(2016, 8, 31)  # inclusive end
    row = result.bars.filter(
        (pl.col("symbol") == "HD") & (pl.col("date") == dt.date(2016, 6, 3))
    ).row(0, named=True)
    raw = yahoo_csv("HD").filter(pl.col("Date") == "2016-06-03").row(0, named=True)
    assert (row["open"], row["close"], row["adj_close"]) == pytest.approx(
        (raw["Open"], raw["Close"], raw["Adj Close"])
    )


def test_yfinance_empty_symbol_is_a_failure_with_reason(fake_yahoo):
    behaviour, _ = fake_yahoo
    behaviour["ZZZZ"] = "missing"
    result = YFinanceCollector().fetch(["JNJ", "ZZZZ"], START, END)
    assert set(result.failures) == {"ZZZZ"}
    assert "possibly delisted" in result.failures["ZZZZ"]
    assert result.bars["symbol"].unique().to_list() == ["JNJ"]


def test_yfinance_rate_limit_is_retryable(fake_yahoo):
    behaviour, _ = fake_yahoo
    behaviour["AAPL"] = "rate_limited"
    with pytest.raises(RetryableCollectorError, match="rate limit"):
        YFinanceCollector().fetch(["JNJ", "AAPL"], START, END)


def test_yfinance_offline_empty_frame_is_detected():
    """Real yf.download with no internet returns an empty frame instead of raising."""
    with pytest.raises(RetryableCollectorError, match="network"):
        YFinanceCollector(timeout=5).fetch(["MSFT", "AAPL"], START, END)
