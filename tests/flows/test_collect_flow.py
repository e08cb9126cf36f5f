"""The collection flow end to end under a real (temporary) Prefect server."""

from __future__ import annotations

import datetime as dt
import io
import random
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from core import layout
from core.data.collectors.base import FetchResult
from core.data.collectors.local import LocalCollector
from core.data.prices import PRICE_COLUMNS
from core.storage import Store
from flows.collect import COMMAND, collect
from tests.factories import ROOT, SAMPLE, store_files

pytestmark = pytest.mark.usefixtures("prefect_server", "clean_env")

PRICES = SAMPLE / "prices"
SAMPLE_TICKERS = SAMPLE / "tickers.csv"
START, END = dt.date(2013, 1, 1), dt.date(2018, 2, 7)


class Recording:
    """Wraps a collector, recording every call; optional faults per call."""

    def __init__(self, inner, fault=None):
        self.inner = inner
        self.calls: list[tuple[tuple[str, ...], dt.date, dt.date]] = []
        self.fault = fault
        self.lock = threading.Lock()
        self.name = "recording"

    def fetch(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> FetchResult:
        with self.lock:
            self.calls.append((tuple(symbols), start, end))
            attempt = sum(1 for c in self.calls if c[0] == tuple(symbols))
        if self.fault:
            self.fault(tuple(symbols), attempt)
        result = self.inner.fetch(symbols, start, end)
        return result


def use_collector(monkeypatch: pytest.MonkeyPatch, collector) -> None:
    monkeypatch.setattr("tasks.collect.make_collector", lambda settings: collector)


def local_args(tickers: str, store: Path, *more: str) -> list[str]:
    """Command-line arguments of a collect from the sample's price folder."""
    return [
        "--tickers",
        tickers,
        "--source",
        "local",
        "--source-path",
        str(PRICES),
        "--store",
        str(store),
        *more,
    ]


def tickers_file(tmp: Path, symbols: list[str]) -> str:
    path = tmp / "tickers.csv"
    path.write_text("Symbol\n" + "\n".join(symbols) + "\n")
    return str(path)


def run(store: Path | str, tickers: str = str(SAMPLE_TICKERS), **kw: Any) -> dict[str, Any]:
    params = {"source": "local", "source_path": str(PRICES), "start": START, "end": END} | kw
    return collect(tickers=tickers, store=str(store), **params)  # pyright: ignore[reportReturnType]


def stored(store: Store, symbol: str) -> pl.DataFrame:
    return store.read_parquet(layout.PRICES(symbol=symbol))


def test_sample_collection_layout_and_incremental_rerun(tmp_path, monkeypatch):
    recorder = Recording(LocalCollector(PRICES))
    use_collector(monkeypatch, recorder)
    summary = run(tmp_path / "store", symbols_per_task=15)
    store = Store(str(tmp_path / "store"))
    symbols = [line for line in SAMPLE_TICKERS.read_text().split()[1:]]
    assert (summary["symbols"], summary["failed"], summary["insufficient"]) == (40, 0, 1)
    assert summary["ok"] == 39 and summary["rows_quarantined"] >= 2
    assert len(recorder.calls) == 3  # three batches, one call each

    for symbol in symbols:
        frame = stored(store, symbol)
        assert frame.columns == PRICE_COLUMNS
        assert frame["date"].is_sorted() and frame["date"].is_unique().all()
        assert (frame["symbol"] == symbol).all()
    ingestion = store.read_parquet(layout.INGESTION())
    assert sorted(ingestion["symbol"]) == sorted(symbols)
    statuses = dict(ingestion.select("symbol", "status").iter_rows())
    assert statuses["APTV"] == "insufficient" and statuses["AOS"] == "ok"
    aos = ingestion.filter(pl.col("symbol") == "AOS").row(0, named=True)
    assert aos["rows"] == 1258 and aos["last_date"] == dt.date(2018, 2, 7) and aos["attempts"] == 1

    run_id = summary["run_id"]
    bad = store.read_parquet(f"raw/quarantine/symbol=AOS/{run_id}.parquet")
    assert bad.select("date", "rule").rows() == [(dt.date(2014, 5, 19), "high_ge_low")]
    assert "detail" in bad.columns
    assert dt.date(2014, 5, 19) not in stored(store, "AOS")["date"].to_list()
    report = store.read_json(f"raw/reports/{run_id}/quality.json")
    assert report["symbols"]["LNT"]["quarantined"] == {"ohlc_in_range": 1}
    assert report["totals"]["rows_quarantined"] == summary["rows_quarantined"]

    # Same request inside the cache window: nothing is fetched again, even with settings
    # changed that collection does not use (a task's cache key covers only its inputs).
    monkeypatch.setenv("SMA_MODEL__QUANTILES", "[0.05, 0.1, 0.5, 0.9, 0.95]")
    monkeypatch.setenv("SMA_FEATURES__HORIZON", "5")
    again = run(tmp_path / "store", symbols_per_task=15)
    assert len(recorder.calls) == 3 and again["ok"] == 39
    monkeypatch.setenv("SMA_QUALITY__MIN_ROWS", "61")  # a rule it does use: fetched again
    run(tmp_path / "store", symbols_per_task=15)
    assert len(recorder.calls) == 6
    monkeypatch.delenv("SMA_QUALITY__MIN_ROWS")
    recorder.calls = recorder.calls[:3]

    # The store is wiped inside the cache window: the cached batches are not trusted.
    shutil.rmtree(tmp_path / "store")
    restored = run(tmp_path / "store", symbols_per_task=15)
    assert len(recorder.calls) == 6 and restored["new_rows"] == summary["new_rows"]
    assert stored(store, "AOS").height == 1258
    recorder.calls = recorder.calls[:3]

    # A later end date: an incremental fetch from 5 stored trading days back, no duplicates.
    before = stored(store, "AOS")
    later = run(tmp_path / "store", symbols_per_task=15, end=dt.date(2018, 2, 9))
    starts = {start for _, start, _ in recorder.calls[3:]}
    assert starts == {before["date"][-6]}
    assert later["new_rows"] == 0 and later["refetched_full"] == []  # the sample ends on 2018-02-07
    assert stored(store, "AOS").equals(before)
    assert (
        store.read_parquet(layout.INGESTION()).filter(pl.col("symbol") == "AOS")["attempts"].item()
        == 2  # since the wipe: the restoring run and this one
    )


def test_readjusted_history_is_refetched_in_full(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    raw = pl.read_csv(PRICES / "AOS.csv")
    raw.filter(pl.col("date") <= "2017-12-29").write_csv(source / "AOS.csv")
    tickers = tickers_file(tmp_path, ["AOS"])
    run(tmp_path / "store", tickers=tickers, source_path=str(source), end=dt.date(2017, 12, 29))
    # The vendor re-adjusts the whole history (a 2:1 split) and adds January's bars.
    halved = raw.with_columns(pl.col("open", "high", "low", "close") / 2)
    halved.write_csv(source / "AOS.csv")
    summary = run(
        tmp_path / "store", tickers=tickers, source_path=str(source), end=dt.date(2018, 2, 7)
    )
    assert summary["refetched_full"] == ["AOS"]
    frame = stored(Store(str(tmp_path / "store")), "AOS")
    first = frame.filter(pl.col("date") == dt.date(2013, 2, 8))["close"].item()
    assert first == pytest.approx(17.4875 / 2)
    assert frame["date"].max() == dt.date(2018, 2, 7) and frame["date"].is_unique().all()


def test_flaky_source_every_symbol_ends_collected(tmp_path, monkeypatch):
    rng = random.Random(42)
    failed_first: set[tuple[str, ...]] = set()

    def fault(batch: tuple[str, ...], attempt: int) -> None:
        if attempt == 1 and rng.random() < 0.3:
            failed_first.add(batch)
            raise ConnectionError(f"connection reset while fetching {batch[0]}")

    recorder = Recording(LocalCollector(PRICES), fault)
    use_collector(monkeypatch, recorder)
    summary = run(tmp_path / "store", symbols_per_task=3)
    assert failed_first, "the seeded fault injector should have hit some batches"
    assert summary["failed"] == 0 and summary["ok"] + summary["insufficient"] == 40
    for batch in failed_first:
        assert sum(1 for c in recorder.calls if c[0] == batch) == 2  # retried once, by Prefect


def test_always_failing_symbols_are_kept_and_retried_next_run(tmp_path, monkeypatch):
    broken = {"AOS", "GE", "NVDA"}

    class PartlyBroken(LocalCollector):
        def fetch(self, symbols, start, end):
            result = super().fetch([s for s in symbols if s not in broken], start, end)
            return FetchResult(
                result.bars, {s: "HTTP 404 from vendor" for s in symbols if s in broken}
            )

    use_collector(monkeypatch, PartlyBroken(PRICES))
    first = run(tmp_path / "store", symbols_per_task=10)
    store = Store(str(tmp_path / "store"))
    assert (
        set(first["failed_symbols"]) == broken
        and first["failed_symbols"]["GE"] == "HTTP 404 from vendor"
    )
    assert not store.exists(layout.PRICES(symbol="GE")) and store.exists(layout.PRICES(symbol="KO"))
    table = store.read_parquet(layout.INGESTION())
    assert dict(
        table.filter(pl.col("symbol").is_in(list(broken))).select("symbol", "status").iter_rows()
    ) == dict.fromkeys(broken, "failed")

    broken.clear()  # the vendor recovers; same request, inside the cache window
    second = run(tmp_path / "store", symbols_per_task=10)
    assert second["failed"] == 0
    assert store.exists(layout.PRICES(symbol="GE"))
    ge = store.read_parquet(layout.INGESTION()).filter(pl.col("symbol") == "GE").row(0, named=True)
    assert ge["status"] == "ok" and ge["attempts"] == 2 and ge["error"] is None


def test_non_retryable_error_fails_fast_and_exits_nonzero(tmp_path, monkeypatch, capsys):
    def fault(batch, attempt):
        raise ValueError("vendor changed its schema")

    recorder = Recording(LocalCollector(PRICES), fault)
    use_collector(monkeypatch, recorder)
    tickers = tickers_file(tmp_path, ["AOS", "LNT"])
    assert COMMAND.main(local_args(tickers, tmp_path / "store")) == 1
    assert len(recorder.calls) == 1  # no retries for a bug
    assert "no symbol could be collected" in capsys.readouterr().err
    table = Store(str(tmp_path / "store")).read_parquet(layout.INGESTION())
    assert set(table["status"]) == {"failed"} and "vendor changed its schema" in table["error"][0]


def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    store = tmp_path / "store"
    assert COMMAND.main(["--tickers", str(tmp_path / "missing.csv"), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert "tickers file not found" in err and "missing.csv" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("Name,Sector\nApple,Tech\n")
    assert COMMAND.main(["--tickers", str(bad), "--store", str(store)]) == 2
    assert "no 'Symbol' column" in capsys.readouterr().err
    assert COMMAND.main(["--tickers", str(bad), "--source", "local", "--store", str(store)]) == 2
    assert "source_path" in capsys.readouterr().err
    assert not store.exists()
    # A source folder that does not exist: exit 2 before anything is written.
    args = ["--tickers", str(SAMPLE_TICKERS), "--source", "local", "--store", str(store)]
    assert COMMAND.main([*args, "--source-path", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"error: source 'local': source_path {tmp_path / 'nowhere'} is not a folder"
    assert not store.exists()
    # An empty or a binary tickers file: one short line naming it.
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n")
    assert COMMAND.main(["--tickers", str(empty), "--store", str(store)]) == 2
    assert (
        capsys.readouterr().err.strip().splitlines()[-1] == f"error: tickers file is empty: {empty}"
    )
    binary = tmp_path / "tickers.bin"
    binary.write_bytes(bytes(range(1, 256)) * 40)
    assert COMMAND.main(["--tickers", str(binary), "--store", str(store)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"error: no valid symbol in tickers file {binary}: ") and len(last) < 400
    assert not store.exists()


def test_cli_success_prints_summary(tmp_path, capsys):
    tickers = tickers_file(tmp_path, ["AOS", "LNT", "BRK/B"])
    args = local_args(tickers, tmp_path / "s", "--start", "2013-01-01", "--end", "2018-02-07")
    assert COMMAND.main(args) == 0
    out = capsys.readouterr().out
    assert "| 3 | 2 | 1 |" in out and "BRK-B" in out


def test_collect_into_s3(tmp_path, s3_bucket, s3_endpoint, monkeypatch):
    monkeypatch.setenv("SMA_S3__ENDPOINT_URL", s3_endpoint)
    url = f"s3://{s3_bucket}/prod"
    tickers = tickers_file(tmp_path, ["AOS", "LNT", "KO", "APTV"])
    summary = run(url, tickers=tickers, symbols_per_task=2)
    assert (summary["ok"], summary["insufficient"], summary["failed"]) == (3, 1, 0)
    store = Store(url, endpoint_url=s3_endpoint)
    keys = store.list("raw")
    assert {f"raw/prices/symbol={s}/data.parquet" for s in ["AOS", "LNT", "KO", "APTV"]} <= set(
        keys
    )
    assert layout.INGESTION() in keys and any(k.startswith("raw/reports/") for k in keys)
    assert (
        store.read_parquet(layout.PRICES(symbol="KO")).height
        == pl.read_csv(PRICES / "KO.csv").height
    )
    assert store.exists(f"raw/quarantine/symbol=AOS/{summary['run_id']}.parquet")
    # incremental second run against S3: no duplicates
    run(url, tickers=tickers, symbols_per_task=2, end=dt.date(2018, 2, 8))
    assert store.read_parquet(layout.PRICES(symbol="KO"))["date"].is_unique().all()


def test_full_refresh_replaces_history(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(PRICES, source)
    tickers = tickers_file(tmp_path, ["KO"])
    run(tmp_path / "store", tickers=tickers, source_path=str(source))
    trimmed = pl.read_csv(PRICES / "KO.csv").filter(pl.col("date") >= "2016-01-01")
    trimmed.write_csv(source / "KO.csv")
    run(tmp_path / "store", tickers=tickers, source_path=str(source), full_refresh=True)
    frame = stored(Store(str(tmp_path / "store")), "KO")
    assert frame["date"].min() == dt.date(2016, 1, 4) and frame.height == trimmed.height


def test_killed_mid_run_then_rerun_collects_everything(tmp_path, prefect_server):
    """SIGKILL a collection process mid-run: no partial file, no duplicate, rerun completes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    symbols = [f"SYN{i:03d}" for i in range(160)]
    tickers = tickers_file(tmp_path, symbols)
    store_dir = tmp_path / "store"
    args = [
        "--tickers",
        tickers,
        "--source",
        "synthetic",
        "--store",
        str(store_dir),
        "--start",
        "2001-01-01",
        "--end",
        "2020-12-31",
        "--symbols-per-task",
        "4",
    ]
    env = os.environ | {
        "PREFECT_API_URL": prefect_server,
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.collect", *args],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    prices = store_dir / "raw" / "prices"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if prices.exists() and len(list(prices.glob("symbol=*/data.parquet"))) >= 30:
            break
        time.sleep(0.02)
    assert proc.poll() is None, (
        f"the run ended before it could be killed: {proc.stderr.read() if proc.stderr else ''}"
    )
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    written = list(prices.glob("symbol=*/data.parquet"))
    assert 30 <= len(written) < len(symbols)
    assert not (store_dir / "raw" / "ingestion.parquet").exists()  # the run never finished
    for path in written:  # every visible file is whole
        frame = pl.read_parquet(path)
        assert frame.height > 4000 and frame["date"].is_unique().all()

    summary: dict[str, Any] = collect(
        tickers=tickers,
        store=str(store_dir),
        source="synthetic",
        start=dt.date(2001, 1, 1),
        end=dt.date(2020, 12, 31),
        symbols_per_task=4,
    )  # pyright: ignore[reportAssignmentType]
    assert summary["ok"] == len(symbols) and summary["failed"] == 0
    store = Store(str(store_dir))
    heights = {stored(store, s).height for s in symbols}
    days = pl.date_range(dt.date(2001, 1, 1), dt.date(2020, 12, 31), eager=True)
    assert heights == {int((days.dt.weekday() <= 5).sum())}
    assert store.read_parquet(layout.INGESTION()).height == len(symbols)


def test_a_damaged_or_wrong_schema_price_file_is_set_aside_and_refetched(tmp_path, collected):
    """A truncated price file fails only its symbol's read: it is moved to raw/corrupt/,
    refetched in full in the same run and named in the summary; every other file stays as
    it was. Within the cache window too: a cache hit does not vouch for a damaged file."""
    store_dir = tmp_path / "store"
    shutil.copytree(collected, store_dir)
    store = Store(str(store_dir))
    before = store_files(store_dir)
    key = layout.PRICES(symbol="AOS")
    damaged = before[key][:5000]
    (store_dir / key).write_bytes(damaged)
    summary = run(store_dir)
    assert summary["failed"] == 0 and set(summary["repaired"]) == {"AOS"}
    assert "stored prices unreadable" in summary["repaired"]["AOS"]
    aside = store_dir / layout.CORRUPT(run_id=summary["run_id"], key=key)
    assert aside.read_bytes() == damaged
    assert store.read_parquet(key).equals(pl.read_parquet(io.BytesIO(before[key])))
    after = store_files(store_dir)
    changed = {k for k in before if after.get(k) != before[k]}
    assert changed == {layout.INGESTION()}  # the run's own record; prices as they were
    # The same request again, inside the cache window: the damaged file is still found.
    (store_dir / layout.PRICES(symbol="KO")).write_bytes(before[layout.PRICES(symbol="KO")][:3000])
    again = run(store_dir)
    assert set(again["repaired"]) == {"KO"} and again["failed"] == 0
    # A file that parses but has the wrong schema (its close turned to text) is damage too.
    key = layout.PRICES(symbol="MMM")
    texts = pl.read_parquet(io.BytesIO(before[key])).with_columns(pl.col("close").cast(pl.String))
    texts.write_parquet(store_dir / key)
    third = run(store_dir)
    assert set(third["repaired"]) == {"MMM"} and third["failed"] == 0
    assert "wrong schema (close is String, not Float64)" in third["repaired"]["MMM"]
    assert pl.read_parquet(store_dir / layout.CORRUPT(run_id=third["run_id"], key=key)).equals(
        texts
    )
    assert store.read_parquet(key).equals(pl.read_parquet(io.BytesIO(before[key])))
