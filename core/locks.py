"""Store locks: a run that reads a shared store file, updates it and writes it back (the
ingestion table, a run's tracker state, the monitoring tables) holds the file's lock
meanwhile, so two runs on one store cannot lose each other's rows: the second waits.

Locally a ``flock`` on ``layout.LOCK`` (released by the system when its holder dies, however
it dies); on S3 the lock object itself, created only when absent (a conditional write,
``If-None-Match: *``), kept alive by a heartbeat and deleted on release; one left by a
holder that died is taken over once it ``expires`` (two minutes). A run that cannot get
the lock within ``WAIT_SECONDS`` ends in one line naming the store, the lock and its
holder.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from core import layout
from core.errors import NothingUsableError, first_line
from core.storage import Store, StoreError

WAIT_SECONDS = 600.0  # longer than a predict or a monitor holds its lock on a big store
S3_EXPIRY_SECONDS = 120.0  # a held S3 lock's heartbeat moves it on; past it, its holder died
POLL_SECONDS = 0.2
logger = logging.getLogger(__name__)


class StoreBusyError(NothingUsableError):
    """Another run held a store lock for longer than this run would wait."""


def _holder(expires: float | None = None, token: str | None = None) -> bytes:
    """Who holds a lock (for the message of a run that waited on it); on S3 also until when
    and the holder's token."""
    now = dt.datetime.now(dt.UTC)
    return json.dumps(
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": now.isoformat(timespec="seconds"),
        }
        | ({"expires": expires, "token": token} if expires is not None else {})
    ).encode()


def _held_by(holder: bytes | str) -> str:
    try:
        who = json.loads(holder)
        return f"pid {who['pid']} on {who['host']} since {who['since']}"
    except (ValueError, KeyError, TypeError):
        return "another run"


def _waiting(store: Store, name: str, holder: bytes, wait: float) -> None:
    """Say, as the wait starts, whom this run waits for."""
    logger.warning(
        "store %s: waiting up to %g s for its %s lock, held by %s",
        store.shared_root or store.url,
        wait,
        name,
        _held_by(holder),
    )


def _busy(store: Store, name: str, holder: bytes | str, wait: float) -> StoreBusyError:
    held = _held_by(holder)
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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+b")  # noqa: SIM115 -- closed below, after the lock's release
    except OSError as exc:  # read-only, permission, a file where the folder should be
        raise StoreError(f"cannot take the {name} lock {path}: {exc.strerror or exc}") from None
    with handle:
        deadline, waited = time.monotonic() + wait, False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise _busy(store, name, _read(handle), wait) from None
                if not waited:
                    _waiting(store, name, _read(handle), wait)
                waited = True
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


def _precondition_failed(exc: BaseException) -> bool:
    """Whether an S3 call failed on its condition (the object exists, or is not the one
    named): s3fs raises ``FileExistsError`` or ``OSError``, from botocore's error."""
    cause = exc.__cause__
    code = getattr(cause, "response", {}).get("Error", {}).get("Code")
    return isinstance(exc, FileExistsError) or code in (
        "PreconditionFailed",
        "ConditionalRequestConflict",
    )


def _s3_call(store: Store, name: str, action: str, **kwargs: Any) -> dict[str, Any] | None:
    """One conditional S3 call on the lock object: its response, or None when its condition
    did not hold (or the object is gone); any other failure is a ``StoreError`` naming the store and the lock."""
    bucket, _, key = store.path(layout.LOCK(name=name)).partition("/")
    try:
        return store.fs.call_s3(action, Bucket=bucket, Key=key, **kwargs)  # pyright: ignore[reportAttributeAccessIssue]
    except Exception as exc:
        if isinstance(exc, FileNotFoundError) or _precondition_failed(exc):
            return None
        raise StoreError(
            f"cannot take the {name} lock of store {store.url}: {type(exc).__name__}: "
            f"{first_line(str(exc), 200)}"
        ) from None


def _s3_read(store: Store, name: str) -> tuple[bytes, str] | None:
    """The lock object's content and ETag, read in one request (None: there is none)."""
    from fsspec.asyn import sync

    async def read() -> tuple[bytes, str] | None:
        bucket, _, key = store.path(layout.LOCK(name=name)).partition("/")
        try:
            got = await store.fs._call_s3("get_object", Bucket=bucket, Key=key)  # pyright: ignore[reportAttributeAccessIssue]
        except FileNotFoundError:
            return None
        async with got["Body"] as body:
            return await body.read(), got["ETag"]

    return sync(store.fs.loop, read)  # pyright: ignore[reportAttributeAccessIssue]


@contextmanager
def _s3_lock(store: Store, name: str, wait: float) -> Iterator[None]:
    """Created only if absent; an expired one (its holder died) is replaced only if it is
    still the one read (``If-Match`` its ETag), so two waiters never both take it over; a
    heartbeat keeps it from expiring while held; released only if still ours."""
    token = uuid.uuid4().hex
    deadline, waited = time.monotonic() + wait, False
    while True:
        body = _holder(time.time() + S3_EXPIRY_SECONDS, token)
        put = _s3_call(store, name, "put_object", Body=body, IfNoneMatch="*")
        if put is None:  # held: by whom, and until when
            held = _s3_read(store, name)
            if held is None:  # released meanwhile
                continue
            data, etag = held
            try:
                expires = float(json.loads(data)["expires"])
            except (ValueError, KeyError, TypeError):  # not a lock this code wrote
                expires = 0.0
            if expires < time.time():
                put = _s3_call(store, name, "put_object", Body=body, IfMatch=etag)
            elif time.monotonic() > deadline:
                raise _busy(store, name, data, wait)
            else:
                if not waited:
                    _waiting(store, name, data, wait)
                waited = True
                time.sleep(POLL_SECONDS)
        if put is not None:
            break
    beat = _Heartbeat(store, name, token, put["ETag"])
    beat.start()
    try:
        yield
    finally:
        beat.stop()
        _s3_call(store, name, "delete_object", IfMatch=beat.etag)


class _Heartbeat(threading.Thread):
    """Moves a held S3 lock's expiry on every third of ``S3_EXPIRY_SECONDS``."""

    def __init__(self, store: Store, name: str, token: str, etag: str):
        super().__init__(name=f"lock-{name}", daemon=True)
        self.store, self.lock, self.token, self.etag = store, name, token, etag
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(S3_EXPIRY_SECONDS / 3):
            body = _holder(time.time() + S3_EXPIRY_SECONDS, self.token)
            try:
                put = _s3_call(self.store, self.lock, "put_object", Body=body, IfMatch=self.etag)
            except StoreError:  # S3 unreachable for now: the next beat tries again
                continue
            if put is None:  # taken over: not ours any more
                return
            self.etag = put["ETag"]

    def stop(self) -> None:
        self.done.set()
        self.join()
