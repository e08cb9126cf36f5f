"""Store locks: two runs that read, update and write back one shared file keep each
other's rows (the interleaving forced, not left to chance); a run that cannot get a lock
says so in one line; a dead holder's lock is not in the way."""

from __future__ import annotations

import datetime as dt
import json
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
from tests.factories import ROOT, bars, weekdays

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
    """Run A reads the table, then waits (up to 1 s) for run B to have read it too before
    writing: without the lock both read the old table and the last writer drops the
    other's rows. With it, B cannot read before A has written: A's wait runs out, B
    then reads A's table, and both runs' rows stay."""
    store = Store(str(tmp_path / "store"))
    ingestion.record_outcomes(store, [outcome("OLD")], "r0", 20, NOW)
    a_has_read, b_has_read = threading.Event(), threading.Event()
    real = ingestion.update_ingestion

    def between_read_and_write(previous, outcomes, now):
        outcomes = list(outcomes)
        if outcomes[0]["symbol"] == "AAA":  # run A
            a_has_read.set()
            b_has_read.wait(1)
        else:
            b_has_read.set()
        return real(previous, outcomes, now)

    monkeypatch.setattr(ingestion, "update_ingestion", between_read_and_write)
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
    holder = json.loads((tmp_path / "store" / layout.LOCK(name="ingestion")).read_bytes())
    assert holder["pid"] == os.getpid()  # the lock names its last holder


def test_a_run_that_cannot_get_the_lock_says_so_in_one_line(tmp_path, caplog):
    store = Store(str(tmp_path / "store"))
    with (
        store_lock(store, "monitor"),
        pytest.raises(StoreBusyError) as caught,
        store_lock(store, "monitor", wait=0.3),
    ):
        pass
    waits = [r.getMessage() for r in caplog.records if "waiting up to" in r.getMessage()]
    assert len(waits) == 1  # said once, as the wait starts
    assert waits[0].startswith(
        f"store {store.url}: waiting up to 0.3 s for its monitor lock, held by pid {os.getpid()} on "
    )
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
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreBusyError), store_lock(Store(str(store_dir)), "predict", wait=0.2):
            pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    with store_lock(Store(str(store_dir)), "predict", wait=5):
        pass


def test_s3_locks_are_conditional_writes_kept_alive_and_taken_over_once_expired(
    s3_endpoint, s3_bucket, monkeypatch
):
    import core.locks as locks

    store = Store(f"s3://{s3_bucket}/store", endpoint_url=s3_endpoint)
    key = layout.LOCK(name="ingestion")
    monkeypatch.setattr(locks, "S3_EXPIRY_SECONDS", 0.6)  # a heartbeat every 0.2 s
    busy = pytest.raises(StoreBusyError, match=f"store s3://{s3_bucket}/store is busy")
    with store_lock(store, "ingestion"):
        time.sleep(1.0)  # past its first expiry: the heartbeat has moved it on
        with busy, store_lock(store, "ingestion", wait=0.5):
            pass
    assert not store.exists(key)  # released, though the block raised
    # a holder that died: its lock expired, then taken over (only if still the one read)
    store.write_bytes(
        key, json.dumps({"pid": 1, "host": "gone", "since": "x", "expires": 0}).encode()
    )
    with store_lock(store, "ingestion", wait=2):
        assert json.loads(store.read_bytes(key))["pid"] == os.getpid()
    assert not store.exists(key)


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


def test_two_collects_of_one_symbol_with_different_windows_keep_every_bar(tmp_path):
    """Run A reads T's stored bars, then its fetch is held until run B (a longer window)
    has written T in full; A then merges into T's file as it is now, not as A read it:
    B's later bars stay."""
    from core.config import CollectJob
    from core.data.collection import collect_symbols
    from tests.unit.test_quality import TODAY, Frames, frames_job, normal

    days = weekdays(30)
    frame = bars([normal(d) for d in days], "T")
    store = Store(str(tmp_path / "store"))

    def job(end: dt.date) -> CollectJob:
        return frames_job(days[0], end)

    collect_symbols(Frames(frame), store, ["T"], job(days[9]), "r0", TODAY)
    a_has_read, b_done = threading.Event(), threading.Event()

    class HeldFrames(Frames):
        def fetch(self, symbols, start, end):  # run A: it has read T's stored bars
            a_has_read.set()
            assert b_done.wait(10)
            return super().fetch(symbols, start, end)

    run_a = threading.Thread(
        target=collect_symbols, args=(HeldFrames(frame), store, ["T"], job(days[19]), "ra", TODAY)
    )
    run_a.start()
    assert a_has_read.wait(10)
    (b,) = collect_symbols(Frames(frame), store, ["T"], job(days[29]), "rb", TODAY)
    b_done.set()
    run_a.join()
    assert b.rows == 30
    assert store.read_parquet(layout.PRICES(symbol="T"))["date"].to_list() == days
