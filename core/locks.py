"""Store locks: a run that reads a shared store file, updates it and writes it back (the
ingestion table, a run's tracker state, the monitoring tables) holds the file's lock
meanwhile, so two runs on one store cannot lose each other's rows: the second waits.

Locally a ``flock`` on ``layout.LOCK`` (released by the system when its holder dies, however
it dies); on S3 the lock object itself, created only when absent (a conditional write,
``If-None-Match: *``) and deleted on release; one left by a holder that died is taken over
once it ``expires``. A run that cannot get the lock within ``WAIT_SECONDS`` ends in one line
naming the store, the lock and its holder.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from core import layout
from core.errors import NothingUsableError
from core.storage import Store

WAIT_SECONDS = 600.0  # a monitor or predict holds its lock for seconds, a collect for less
S3_EXPIRY_SECONDS = 3600.0  # an S3 lock older than this was left by a holder that died
POLL_SECONDS = 0.2


class StoreBusyError(NothingUsableError):
    """Another run held a store lock for longer than this run would wait."""


def _holder(expires: float | None = None) -> bytes:
    """Who holds a lock (for the message of a run that waited on it)."""
    now = dt.datetime.now(dt.UTC)
    return json.dumps(
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": now.isoformat(timespec="seconds"),
        }
        | ({"expires": expires} if expires is not None else {})
    ).encode()


def _busy(store: Store, name: str, holder: bytes | str, wait: float) -> StoreBusyError:
    try:
        who = json.loads(holder)
        held = f"pid {who['pid']} on {who['host']} since {who['since']}"
    except (ValueError, KeyError, TypeError):
        held = "another run"
    return StoreBusyError(
        f"store {store.shared_root or store.url} is busy: its {name} lock is held by {held} (waited {wait:g} s); "
        "run again when that run has ended"
    )


@contextmanager
def store_lock(store: Store, name: str, wait: float = WAIT_SECONDS) -> Iterator[None]:
    """Hold the store's lock ``name`` (``layout.LOCK``) for the block; wait for it up to
    ``wait`` seconds (``StoreBusyError`` then)."""
    if store.is_s3:
        with _s3_lock(store, name, wait):
            yield
        return
    import fcntl

    path = Path(store.path(layout.LOCK(name=name)))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise _busy(store, name, _read(handle), wait) from None
                time.sleep(POLL_SECONDS)
        try:
            handle.truncate(0)
            handle.write(_holder())
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read(handle: IO[bytes]) -> bytes:
    handle.seek(0)
    return handle.read()


@contextmanager
def _s3_lock(store: Store, name: str, wait: float) -> Iterator[None]:
    path = store.path(layout.LOCK(name=name))
    deadline = time.monotonic() + wait
    while True:
        try:
            store.fs.pipe_file(path, _holder(time.time() + S3_EXPIRY_SECONDS), mode="create")
            break
        except FileExistsError:
            try:
                held = store.fs.cat_file(path)
            except FileNotFoundError:  # released meanwhile
                continue
            if json.loads(held).get("expires", 0) < time.time():
                store.fs.rm(path)  # its holder died: taken over
                continue
            if time.monotonic() > deadline:
                raise _busy(store, name, held, wait) from None
            time.sleep(POLL_SECONDS)
    try:
        yield
    finally:
        store.fs.rm(path)
