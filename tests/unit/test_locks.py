"""Store locks: two runs that read, update and write back one shared file keep each
other's rows (the interleaving forced, not left to chance); a run that cannot get a lock
says so in one line; a dead holder's lock is not in the way."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time

import polars as pl
import pytest

import core.data.ingestion as ingestion
from core import layout
from core.errors import NothingUsableError
from core.features.table import MissingInputError, price_keys
from core.locks import StoreBusyError, store_lock
from core.storage import Store
from tests.factories import ROOT

NOW = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)


def outcome(symbol: str) -> dict:
    return {
        "symbol": symbol,
        "status": "ok",
        "first_date": "2020-01-02",
        "last_date": "2020-06-30",
        "rows": 120,
    }


def test_two_collects_recording_at_once_keep_every_row(tmp_path, monkeypatch):
    """Run A reads the table, then waits half a second before writing; run B starts as soon
    as A has read. Without the lock B reads the table without A's rows and writes it back
    over A's: A's new symbol is lost. With it, B waits and both runs' rows stay."""
    store = Store(str(tmp_path / "store"))
    ingestion.record_outcomes(store, [outcome("OLD")], "r0", 20, NOW)
    a_has_read = threading.Event()
    real = ingestion.update_ingestion

    def slow_update(previous, outcomes, now):
        outcomes = list(outcomes)
        if outcomes[0]["symbol"] == "AAA":  # run A: between its read and its write
            a_has_read.set()
            time.sleep(0.5)
        return real(previous, outcomes, now)

    monkeypatch.setattr(ingestion, "update_ingestion", slow_update)
    run_a = threading.Thread(
        target=ingestion.record_outcomes,
        args=(store, [outcome("AAA"), outcome("BOTH")], "ra", 20, NOW),
    )
    run_a.start()
    assert a_has_read.wait(10)
    ingestion.record_outcomes(store, [outcome("BBB"), outcome("BOTH")], "rb", 20, NOW)
    run_a.join()
    table = store.read_parquet(layout.INGESTION())
    assert table["symbol"].to_list() == ["AAA", "BBB", "BOTH", "OLD"]
    assert table.filter(pl.col("symbol") == "BOTH")["attempts"].item() == 2
    assert (
        tmp_path / "store" / layout.LOCK(name="ingestion")
    ).read_bytes() != b""  # names its holder


def test_a_run_that_cannot_get_the_lock_says_so_in_one_line(tmp_path):
    store = Store(str(tmp_path / "store"))
    with (
        store_lock(store, "monitor"),
        pytest.raises(StoreBusyError) as caught,
        store_lock(store, "monitor", wait=0.3),
    ):
        pass
    message = str(caught.value)
    assert "\n" not in message and isinstance(caught.value, NothingUsableError)
    assert message.startswith(
        f"store {store.url} is busy: its monitor lock is held by pid {os.getpid()} on "
    )
    with store_lock(store, "monitor", wait=0):  # released
        pass


def test_a_killed_holder_does_not_keep_the_lock(tmp_path):
    store_dir = tmp_path / "store"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from core.storage import Store; from core.locks import store_lock\n"
            "with store_lock(Store(sys.argv[1]), 'predict'):\n"
            "    print('held', flush=True); time.sleep(600)",
            str(store_dir),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(StoreBusyError), store_lock(Store(str(store_dir)), "predict", wait=0.2):
        pass
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with store_lock(Store(str(store_dir)), "predict", wait=5):
        pass


def test_s3_locks_are_conditional_writes_and_an_expired_one_is_taken_over(
    s3_endpoint, s3_bucket, monkeypatch
):
    import core.locks as locks

    store = Store(f"s3://{s3_bucket}/store", endpoint_url=s3_endpoint)
    key = layout.LOCK(name="ingestion")
    busy = pytest.raises(StoreBusyError, match=f"store s3://{s3_bucket}/store is busy")
    with store_lock(store, "ingestion"), busy, store_lock(store, "ingestion", wait=0.3):
        pass
    assert not store.exists(key)  # released, though the block raised
    monkeypatch.setattr(locks, "S3_EXPIRY_SECONDS", -1.0)  # a holder that died long ago
    with store_lock(store, "ingestion"):
        monkeypatch.setattr(locks, "S3_EXPIRY_SECONDS", 3600.0)
        with store_lock(store, "ingestion", wait=2):  # its lock has expired: taken over
            pass


def test_features_refuse_prices_of_a_collection_that_never_finished(tmp_path):
    """A first collect killed mid-run leaves some symbols' prices and no ingestion table:
    features would build from whichever symbols landed. Exit 2, naming the command."""
    store = Store(str(tmp_path / "store"))
    store.write_parquet(layout.PRICES(symbol="AAA"), pl.DataFrame({"date": [dt.date(2020, 1, 2)]}))
    with pytest.raises(MissingInputError) as caught:
        price_keys(store)
    assert caught.value.exit_code == 2
    assert str(caught.value) == (
        f"the collection into {store.uri(layout.PRICES.prefix)} never finished (no "
        f"{store.uri(layout.INGESTION())}): run `python -m flows.collect` again"
    )
