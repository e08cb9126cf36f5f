import errno
import os
import threading

import polars as pl
import pytest

from core.storage import Manifest, Store, StoreError, StoreFullError, disk_full
from tests.factories import free_port

FRAME = pl.DataFrame({"symbol": ["A", "B"], "x": [1.0, 2.0]})


def exercise(store: Store) -> None:
    assert not store.exists("raw/x.parquet") and store.list("raw") == []
    store.write_parquet("raw/prices/symbol=A/data.parquet", FRAME)
    store.write_json("raw/reports/r1/quality.json", {"n": 1, "rules": ["a"]})
    assert store.exists("raw/prices/symbol=A/data.parquet")
    assert store.read_parquet("raw/prices/symbol=A/data.parquet").equals(FRAME)
    assert store.read_json("raw/reports/r1/quality.json") == {"n": 1, "rules": ["a"]}
    assert store.list("raw") == ["raw/prices/symbol=A/data.parquet", "raw/reports/r1/quality.json"]
    store.write_parquet("raw/prices/symbol=A/data.parquet", FRAME.head(1))  # overwrite
    assert store.read_parquet("raw/prices/symbol=A/data.parquet").height == 1
    with pytest.raises(StoreError, match="not found"):
        store.read_parquet("raw/missing.parquet")
    for bad in ("../escape.json", "raw/../../x", "/abs/../x", "raw//x"):
        with pytest.raises(StoreError, match="invalid store key"):
            store.write_json(bad, {})
    store.delete("raw/reports/r1/quality.json")
    assert not store.exists("raw/reports/r1/quality.json")


def test_local_store(tmp_path):
    exercise(Store(str(tmp_path / "store")))


def test_s3_store(s3_bucket, s3_endpoint):
    store = Store(f"s3://{s3_bucket}/prefix", endpoint_url=s3_endpoint)
    exercise(store)
    # outside tools read the same objects, e.g. Polars' native S3 reader
    store.write_parquet("raw/prices/symbol=B/data.parquet", FRAME)
    read = pl.read_parquet(
        f"s3://{s3_bucket}/prefix/raw/prices/symbol=B/data.parquet",
        storage_options=store.storage_options(),
    )
    assert read.equals(FRAME)
    keys = ["raw/prices/symbol=A/data.parquet", "raw/prices/symbol=B/data.parquet"]
    assert store.scan_parquet(keys).collect().height == 3


def test_s3_endpoint_from_environment(s3_bucket, s3_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    store = Store(f"s3://{s3_bucket}")
    store.write_json("a.json", [1])
    assert store.read_json("a.json") == [1]


def test_local_writes_are_atomic(tmp_path):
    """A concurrent reader only ever sees a whole old or whole new file, never a torn one."""
    store = Store(str(tmp_path))
    big = pl.DataFrame({"x": range(300_000)})
    small = pl.DataFrame({"x": range(10)})
    store.write_parquet("f.parquet", small)
    stop = threading.Event()
    seen: set[int] = set()
    errors: list[Exception] = []

    def reader():
        while not stop.is_set():
            try:
                seen.add(store.read_parquet("f.parquet").height)
            except Exception as exc:  # a torn file would raise here
                errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(30):
        store.write_parquet("f.parquet", big if i % 2 == 0 else small)
    stop.set()
    thread.join()
    assert errors == [] and seen <= {10, 300_000}
    assert [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")] == []


def test_unsupported_urls():
    with pytest.raises(StoreError, match="unsupported store URL"):
        Store("gs://bucket/x")
    with pytest.raises(StoreError, match="needs a bucket"):
        Store("s3://")


def test_check_names_a_store_that_cannot_be_used(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match=r"store .*file is a file, not a folder"):
        Store(str(tmp_path / "file")).check()
    Store(str(tmp_path / "new" / "store")).check()  # to be created: fine
    assert not (tmp_path / "new").exists()


def test_check_names_s3_problems_in_one_line(s3_endpoint, s3_bucket, monkeypatch):
    import time

    Store(f"s3://{s3_bucket}/p", endpoint_url=s3_endpoint).check()
    with pytest.raises(
        StoreError,
        match=r"S3 bucket 'no-such-bucket' of store s3://no-such-bucket/p does not exist",
    ):
        Store("s3://no-such-bucket/p", endpoint_url=s3_endpoint).check()
    closed = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(
        StoreError, match=rf"cannot reach the S3 endpoint {closed} of store s3://b/p"
    ):
        Store("s3://b/p", endpoint_url=closed).check()
    assert time.monotonic() - started < 30
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(
        StoreError, match=r"no AWS credentials for store s3://b/p: set AWS_ACCESS_KEY_ID"
    ):
        Store("s3://b/p", endpoint_url=s3_endpoint).check()


def test_a_store_that_refuses_writes_is_named_in_one_line(tmp_path):
    """A refusal made by the test itself (a file where a folder of the key must go: refused
    to root too, in a container as on a host), named by its path, not the OS's wording."""
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "a").write_text("in the way")
    store = Store(str(tmp_path / "store"))
    store.check()  # looks writable: the refusal comes with the first write
    with pytest.raises(StoreError) as refused:
        store.write_json("a/b.json", {})
    message = str(refused.value)
    assert message.startswith(f"cannot write {tmp_path / 'store' / 'a' / 'b.json'}: ")
    assert "\n" not in message and (tmp_path / "store" / "a").read_text() == "in the way"


def test_a_writer_killed_mid_write_leaves_nothing_once_the_folder_is_written_again(tmp_path):
    """A killed writer runs no cleanup: its temporary file stays until the next write into
    that folder removes it; a live writer's temporary file is never touched."""
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = tmp_path / f".tmp-{dead.pid}-abcdefgh"
    live = tmp_path / f".tmp-{os.getpid()}-ijklmnop"
    orphan.write_bytes(b"half")
    live.write_bytes(b"in progress")
    Store(str(tmp_path)).write_bytes("f.bin", b"whole")
    assert not orphan.exists() and live.exists()
    assert (tmp_path / "f.bin").read_bytes() == b"whole"


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_store_files_take_the_umasks_mode(tmp_path, umask, mode):
    """An atomic write's temporary file is owner-only; the file put in place is not: a report
    a web server serves, or a store shared by a team, is readable as the umask says."""
    old = os.umask(umask)
    try:
        store = Store(str(tmp_path / "store"))
        store.write_json("reports/latest/report.json", {"a": 1})
        store.write_parquet("raw/ingestion.parquet", pl.DataFrame({"a": [1]}))
    finally:
        os.umask(old)
    for key in ("reports/latest/report.json", "raw/ingestion.parquet", "store.json"):
        assert (tmp_path / "store" / key).stat().st_mode & 0o777 == mode, key


NO_SPACE = (
    "parquet: File out of specification: underlying IO error: No space left on device (os error 28)"
)


def fail_from(call: int, error: Exception, write: bool = True):
    """A writer standing in for ``polars.DataFrame.write_parquet`` (``write``) or ``os.fsync``
    that works until its ``call``-th call, which writes a few bytes, then raises ``error``."""
    real = pl.DataFrame.write_parquet if write else os.fsync
    calls: list[int] = []

    def writer(*args, **kwargs):
        calls.append(1)
        if len(calls) < call:
            return real(*args, **kwargs)
        if write:
            args[1].write(b"PAR1 half a file")
        raise error

    return writer


@pytest.mark.parametrize(
    ("target", "error", "what"),
    [
        ("parquet", pl.exceptions.ComputeError(NO_SPACE), "no space left on device"),
        ("json", OSError(errno.ENOSPC, "No space left on device"), "no space left on device"),
        ("json", OSError(errno.EDQUOT, "Disk quota exceeded"), "disk quota exceeded"),
    ],
    ids=["polars-enospc", "oserror-enospc", "oserror-edquot"],
)
def test_a_full_disk_names_the_file_exits_1_and_leaves_the_old_file_alone(
    tmp_path, monkeypatch, target, error, what
):
    """ENOSPC or EDQUOT mid-write (Polars wraps it in a ComputeError; Python's writes raise
    OSError): one line naming the key's file, exit code 1 (not bad input: no StoreError), no
    temporary file left, the file written before untouched."""
    store = Store(str(tmp_path / "store"))
    key = f"features/v1/part-00003-000.{target}"
    if target == "parquet":
        store.write_parquet(key, FRAME)
        monkeypatch.setattr(pl.DataFrame, "write_parquet", fail_from(1, error))
    else:
        store.write_json(key, {"old": 1})
        monkeypatch.setattr("core.storage.os.fsync", fail_from(1, error, write=False))
    folder = tmp_path / "store" / "features" / "v1"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(StoreFullError) as full:
        if target == "parquet":
            store.write_parquet(key, FRAME.head(1))
        else:
            store.write_json(key, {"new": 2})
    assert str(full.value) == (
        f"{what} writing {folder / key.rsplit('/', 1)[1]}: free space or move the store (SMA_STORE)"
    )
    assert full.value.exit_code == 1 and not isinstance(full.value, StoreError)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no .tmp-, no half file


def test_a_full_s3_server_names_the_object(monkeypatch):
    """An S3 server out of space (MinIO's XMinioStorageFull, which s3fs raises as an OSError
    with the server's words) is the same one line, naming the object."""
    store = Store("s3://bucket/prefix", endpoint_url="http://127.0.0.1:9")
    store._layout_recorded = True  # no request before the write

    def pipe_file(*args, **kwargs):
        raise OSError(
            errno.EIO,
            "An error occurred (XMinioStorageFull) when calling the PutObject operation: Storage "
            "backend has reached its minimum free drive threshold.",
        )

    monkeypatch.setattr(store.fs, "pipe_file", pipe_file)
    with pytest.raises(
        StoreFullError, match=r"^no space left on device writing s3://bucket/prefix/a\.json: "
    ):
        store.write_json("a.json", {})


def test_only_a_full_disk_reads_as_one():
    assert disk_full(OSError(errno.EACCES, "Permission denied")) is None
    assert disk_full(pl.exceptions.ComputeError("parquet: invalid schema")) is None
    assert disk_full(ValueError("No space left on device")) is None  # not an I/O error
    wrapped = RuntimeError("writing failed")
    wrapped.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert disk_full(wrapped) == "no space left on device"


def test_a_full_disk_midway_through_a_set_of_files_removes_those_already_written(
    tmp_path, monkeypatch
):
    """A run folder or a backtest is files then their manifest: on a full disk the files
    written before it are removed (no manifest will vouch for them), the error raised."""
    from core.storage import StoreFullError, write_files

    store = Store(str(tmp_path / "store"))
    store.write_json("models/old/manifest.json", {"kept": True})
    real = Store.write_bytes

    def third_fails(self, key, data, content_type=None):
        if key.endswith("c.json"):  # the third file, or a manifest named so
            raise StoreFullError(f"no space left on device writing {self.uri(key)}: free space")
        return real(self, key, data, content_type)

    monkeypatch.setattr(Store, "write_bytes", third_fails)
    files = {f"models/new/{n}.json": b"{}" for n in "abcd"}
    with pytest.raises(StoreFullError, match=r"models/new/c\.json"):
        write_files(store, files)
    assert store.list("models") == ["models/old/manifest.json"]
    # the files all written, then the manifest itself fails: they go too

    class Files(Manifest):
        files: dict[str, str] = {}  # noqa: RUF012 -- pydantic copies a field's default

        def hashed(self) -> dict[str, str]:
            return self.files

        def with_hashes(self, written):
            return self.model_copy(update={"files": dict(written)})

    with pytest.raises(StoreFullError, match=r"models/new/manifest\.c\.json"):
        Files().publish(store, "models/new/manifest.c.json", {"models/new/a.json": b"{}"})
    assert store.list("models") == ["models/old/manifest.json"]


def test_a_write_that_loses_the_os_error_on_a_full_disk_is_still_one(tmp_path, monkeypatch):
    """Polars writing into a Python file handle on a full disk raises "Invalid thrift:
    transport error", the OS's error lost: the folder's free space tells. A collect batch
    failing so stops the run instead of marking every symbol failed."""
    import shutil
    from collections import namedtuple

    from prefect.states import Failed

    from tasks.collect import _error_line

    store = Store(str(tmp_path / "store"))
    lost = pl.exceptions.ComputeError(
        "parquet: File out of specification: Invalid thrift: transport error"
    )
    monkeypatch.setattr(pl.DataFrame, "write_parquet", lambda *a, **k: (_ for _ in ()).throw(lost))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10, 10, 4096))
    with pytest.raises(
        StoreFullError, match=r"no space left on device writing .*/x\.parquet"
    ) as full:
        store.write_parquet("x.parquet", pl.DataFrame({"a": [1]}))
    assert [p.name for p in (tmp_path / "store").iterdir()] == ["store.json"]  # no .tmp- file
    with pytest.raises(StoreFullError):
        _error_line(Failed(data=full.value))
    assert _error_line(Failed(data=ValueError("bad row"))) == "ValueError: bad row"
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**9, 0, 10**9))  # room left
    with pytest.raises(pl.exceptions.ComputeError):
        store.write_parquet("x.parquet", pl.DataFrame({"a": [1]}))
