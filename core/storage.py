"""The artifact store: one root URL, a local folder or ``s3://bucket/prefix``.

Keys are ``/``-separated paths under the root. Every write is atomic: a local write goes
to a temporary file in the same folder and is renamed into place; an S3 write is one PUT
(S3 shows an object only once it is complete), so a reader never sees half a file.
"""

from __future__ import annotations

import copy
import errno
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, Self

import fsspec
import polars as pl
from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import DamagedArtifactError, InputError, NothingUsableError, first_line

if TYPE_CHECKING:
    from polars._typing import ParquetCompression

    from core.config import StoreRef


TMP_PREFIX = ".tmp-"  # a local write's temporary file: .tmp-<writer's pid>-<random>


def dead_writer(name: str) -> bool:
    """Whether ``name`` is the temporary file (``.tmp-<pid>-*``) of a local writer that no
    longer runs on this machine; False for a live pid (under any user), or no pid."""
    pid = name.split("-")[1] if name.startswith(TMP_PREFIX) and name.count("-") >= 2 else ""
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):  # alive under another user; not a pid
        return False
    return False


def _remove_orphans(folder: Path) -> None:
    """Remove the temporary files in ``folder`` of local writers that died mid-write (a
    killed worker runs no cleanup); each is named by its writer's process id, and a live
    writer's file is left alone."""
    for tmp in folder.glob(f"{TMP_PREFIX}*"):
        if dead_writer(tmp.name):
            tmp.unlink(missing_ok=True)


class StoreError(InputError):
    """A store operation failed, a key is not allowed, or the store URL is not usable."""


class StoreFullError(NothingUsableError):
    """A write ran out of disk space (ENOSPC) or quota (EDQUOT): not bad input but a fault
    of the machine (exit 1). The message names the file; the write left nothing behind."""


# what ran out, by errno, and how the same reads in an error's text: Polars wraps the OS
# error of a Parquet write in a ``ComputeError`` ("... No space left on device (os error
# 28)"); an S3 server on a full disk (MinIO) answers ``XMinioStorageFull``
_FULL = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}
_FULL_TEXT = {
    "No space left on device": _FULL[errno.ENOSPC],
    f"(os error {errno.ENOSPC})": _FULL[errno.ENOSPC],
    "XMinioStorageFull": _FULL[errno.ENOSPC],
    "Disk quota exceeded": _FULL[errno.EDQUOT],
    f"(os error {errno.EDQUOT})": _FULL[errno.EDQUOT],
}


def disk_full(exc: BaseException | None) -> str | None:
    """What ran out when ``exc``, or an error it was raised from, is a full disk or quota
    ('no space left on device', 'disk quota exceeded'); None for any other error. Reads an
    ``OSError``'s errno, else the text of an ``OSError`` or a Polars error."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _FULL:
            return _FULL[exc.errno]
        if isinstance(exc, OSError | pl.exceptions.PolarsError):
            text = str(exc)
            for words, what in _FULL_TEXT.items():
                if words in text:
                    return what
        exc = exc.__cause__ or exc.__context__
    return None


def full_store(exc: BaseException, uri: str) -> StoreFullError | None:
    """The one-line error for a write of ``uri`` that failed on a full disk; None when
    ``exc`` is another error (``disk_full``), or a stop (``KeyboardInterrupt``)."""
    what = disk_full(exc) if isinstance(exc, Exception) else None
    if what is None:
        return None
    return StoreFullError(f"{what} writing {uri}: free space or move the store (SMA_STORE)")


NO_ROOM_BYTES = 1 << 20  # less free space than this after a failed write: the disk is full


def _no_room(folder: Path, uri: str) -> StoreFullError | None:
    """The full-disk error for a failed write of ``uri`` when ``folder``'s file system has
    (next to) no space left; None otherwise."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    return (
        full_store(OSError(errno.ENOSPC, "No space left on device"), uri)
        if free < NO_ROOM_BYTES
        else None
    )


def _s3_problem(exc: Exception, url: str, endpoint: str | None) -> str:
    """One line on why an S3 store cannot be reached (the exception's type tells which)."""
    kind = type(exc).__name__
    if isinstance(exc, PermissionError):
        return f"access to store {url} denied (check the AWS credentials and the bucket's policy)"
    if "Credential" in kind:
        return (
            f"no AWS credentials for store {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if "Connect" in kind or "Timeout" in kind or isinstance(exc, OSError):
        return f"cannot reach the S3 endpoint {endpoint or 'AWS'} of store {url}: {kind}"
    return f"S3 store {url} is not usable: {kind}: {first_line(str(exc), 200)}"


class DamagedFileError(DamagedArtifactError):
    """A stored file cannot be parsed; the message names it and the command that rebuilds it."""

    def __init__(self, uri: str, key: str, problem: str):
        from core.layout import rebuild_hint

        hint = rebuild_hint(key)
        super().__init__(
            f"damaged file {uri}: {problem}" + (f"; to rebuild it: {hint}" if hint else "")
        )
        self.uri, self.key, self.problem = uri, key, problem

    def __reduce__(self) -> tuple[Any, ...]:  # Prefect may persist or ship task errors
        return (type(self), (self.uri, self.key, self.problem))


def sha256(data: bytes) -> str:
    """The hex sha256 of bytes (what manifests record of each file)."""
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: str) -> str:
    """The sha256 of a local file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _check_key(key: str) -> str:
    """Reject keys that could leave the store root."""
    key = key.strip("/")
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") for p in parts) or "\\" in key:
        raise StoreError(f"invalid store key {key!r}")
    return key


_HOMES: dict[str, int] = {}  # store root -> its home horizon, once its root build exists


def file_mode() -> int:
    """The mode a new file gets from the process's umask (``0o666 & ~umask``): what the store's
    atomic writes give their files, instead of ``mkstemp``'s owner-only 0600, so that a report
    another user or a web server serves can be read. Read from /proc where there is one (the
    umask cannot be read without setting it, which would race with other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    return 0o666 & ~_IMPORT_UMASK


def _umask_at_import() -> int:
    current = os.umask(0o022)  # at import: before any thread of this process writes a file
    os.umask(current)
    return current


_IMPORT_UMASK = _umask_at_import()


class Store:
    """Read and write Parquet and JSON under one root, locally or on S3."""

    def __init__(self, url: str, *, endpoint_url: str | None = None, region: str | None = None):
        self._layout_recorded = False
        self.shared_root: str | None = None  # a horizon view's store root (``for_horizon``)
        self.is_s3 = url.startswith("s3://")
        self.url = (
            url.rstrip("/") if not self.is_s3 else "s3://" + url.removeprefix("s3://").strip("/")
        )
        if self.is_s3:
            import s3fs

            self.endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
            self.region = (
                region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            )
            client_kwargs: dict[str, Any] = {}
            if self.region:
                client_kwargs["region_name"] = self.region
            self.fs: fsspec.AbstractFileSystem = s3fs.S3FileSystem(
                endpoint_url=self.endpoint,
                client_kwargs=client_kwargs,
                # give up on an unreachable endpoint within about 20 s, not minutes
                config_kwargs={
                    "connect_timeout": 5,
                    "read_timeout": 20,
                    "retries": {"max_attempts": 2, "mode": "standard"},
                },
                use_listings_cache=False,
                skip_instance_cache=True,
            )
            self.fs.retries = 2  # s3fs's own retry loop (5 by default) on top of botocore's
            self.root = self.url.removeprefix("s3://")
            if not self.root:
                raise StoreError("an S3 store needs a bucket: s3://bucket[/prefix]")
        elif "://" in self.url and not self.url.startswith("file://"):
            raise StoreError(
                f"unsupported store URL {url!r}: use a local folder or s3://bucket/prefix"
            )
        else:
            self.fs = fsspec.filesystem("file")
            self.root = str(Path(self.url.removeprefix("file://")).resolve())

    @classmethod
    def open(cls, ref: StoreRef) -> Store:
        """The store a ``StoreRef`` names (root URL plus S3 endpoint and region), on the
        artifacts of its horizon when it names one (``for_horizon``)."""
        store = cls(ref.url, endpoint_url=ref.endpoint_url, region=ref.region)
        if ref.horizon is None:
            return store
        return store.for_horizon(ref.horizon, ref.first_horizon or ref.horizon)

    def home_horizon(self) -> int | None:
        """The horizon whose artifacts live at the root: that of the root feature build
        (None before any build). Known once per process and store: a root build's horizon
        never changes (another horizon builds under ``horizons/``)."""
        from core import layout

        if self.shared_root is not None:
            return None
        if self.root in _HOMES:
            return _HOMES[self.root]
        key = layout.FEATURES_MANIFEST()
        if not self.exists(key):
            return None
        try:
            home = int(json.loads(self.read_bytes(key))["horizon"])
        except (KeyError, TypeError, ValueError) as exc:
            # which horizon owns the root keys must never be guessed: refuse, naming the file
            raise DamagedFileError(self.uri(key), key, f"no horizon to read ({exc})") from None
        _HOMES[self.root] = home
        return home

    def for_horizon(self, horizon: int, home: int | None = None) -> Store:
        """This store as horizon ``horizon`` sees it (layout 3): the root itself for the home
        horizon (the root build's, else ``home``: the first configured; None: none yet), else a
        view whose keys live under ``horizons/h=<h>/`` but for the shared ones
        (``layout.SHARED``)."""
        from core import layout

        built = self.home_horizon()
        if horizon == (built if built is not None else home):
            return self
        view = copy.copy(self)
        view.shared_root = self.root
        prefix = layout.HORIZON_ROOT.format(horizon=horizon)
        view.root, view.url = f"{self.root}/{prefix}", f"{self.url}/{prefix}"
        return view

    def check(self) -> None:
        """Fail at once, in one line, when the store cannot be used: a local store that is a
        file or not writable; an S3 store whose endpoint, credentials or bucket fail."""
        if self.is_s3:
            bucket = self.root.split("/", 1)[0]
            try:
                self.fs.call_s3("head_bucket", Bucket=bucket)  # pyright: ignore[reportAttributeAccessIssue]
            except FileNotFoundError:
                raise StoreError(
                    f"S3 bucket {bucket!r} of store {self.url} does not exist or is not visible "
                    f"with these credentials (endpoint {self.endpoint or 'AWS'})"
                ) from None
            except Exception as exc:  # botocore's and aiohttp's errors, named below
                raise StoreError(_s3_problem(exc, self.url, self.endpoint)) from None
            return
        path = Path(self.root)
        if path.exists() and not path.is_dir():
            raise StoreError(f"store {self.url} is a file, not a folder")
        existing = next(p for p in [path, *path.parents] if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise StoreError(f"store {self.url} cannot be written ({existing} is read-only)")

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def _root_of(self, key: str) -> str:
        """The root a key lives under: a horizon view's own, or the store's for shared keys."""
        from core import layout

        return self.shared_root if self.shared_root and layout.is_shared(key) else self.root

    def path(self, key: str) -> str:
        """The filesystem path of a key (without protocol)."""
        key = _check_key(key)
        return f"{self._root_of(key)}/{key}"

    def uri(self, key: str) -> str:
        """A full URL of a key, for messages and outside tools."""
        return f"s3://{self.path(key)}" if self.is_s3 else self.path(key)

    def storage_options(self) -> dict[str, str]:
        """Options for Polars' native cloud readers (``scan_parquet``) pointing at the same S3."""
        if not self.is_s3:
            return {}
        opts = {"aws_region": self.region or "us-east-1"}
        if self.endpoint:
            opts["aws_endpoint_url"] = self.endpoint
            if self.endpoint.startswith("http://"):
                opts["aws_allow_http"] = "true"
        return opts

    # -- queries ---------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.path(key)))

    def list(self, prefix: str = "") -> list[str]:
        """All keys (files) under a prefix, sorted, relative to the root."""
        root = self._root_of(prefix) if prefix else self.root
        base = root if not prefix else self.path(prefix)
        if not self.fs.exists(base):
            return []
        found = self.fs.find(base)
        cut = len(root) + 1
        keys = [str(p)[cut:] if str(p).startswith(root) else str(p) for p in found]
        return sorted(k for k in keys if not Path(k).name.startswith(TMP_PREFIX))

    def scan_parquet(self, keys: list[str]) -> pl.LazyFrame:
        """One lazy scan over several Parquet objects (Polars' native reader, local or S3)."""
        if not keys:
            raise StoreError("nothing to scan")
        if not self.is_s3:
            return pl.scan_parquet([self.path(k) for k in keys])
        return pl.scan_parquet([self.uri(k) for k in keys], storage_options=self.storage_options())

    # -- bytes -----------------------------------------------------------------------
    def read_bytes(self, key: str) -> bytes:
        try:
            data = self.fs.cat_file(self.path(key))
        except FileNotFoundError:
            raise StoreError(f"not found in store: {self.uri(key)}") from None
        except OSError as exc:  # permission, S3 access denied or unreachable
            raise StoreError(
                f"cannot read {self.uri(key)}: {first_line(str(exc), 200) or type(exc).__name__}"
            ) from None
        return data if isinstance(data, bytes) else data.encode()

    def _record_layout(self) -> None:
        """Before the first write through this handle: mark the store with this code's layout
        version (``store.json``, ``core.layout``) unless it has it, so that older code refuses
        the files written from now on instead of misreading them."""
        if self._layout_recorded:
            return
        self._layout_recorded = True
        from core import layout

        key = layout.STORE_META()
        old = self.read_json(key) if self.exists(key) else None
        if old is None or int(old.get("layout_version", 1)) < layout.LAYOUT_VERSION:
            self.write_json(key, layout.store_meta(old))

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> str:
        """Write a whole object atomically (on S3 with ``content_type`` when given, so a
        browser opens an HTML page instead of downloading it); returns its sha256."""
        self._record_layout()
        if self.is_s3:
            try:
                extra = {"ContentType": content_type} if content_type else {}
                self.fs.pipe_file(self.path(key), data, **extra)
            except Exception as exc:  # botocore's and aiohttp's errors, named by _s3_problem
                if (full := full_store(exc, self.uri(key))) is not None:
                    raise full from exc
                raise StoreError(
                    f"cannot write {self.uri(key)}: " + _s3_problem(exc, self.url, self.endpoint)
                ) from None
        else:
            self._write_local(key, lambda handle: handle.write(data))
        return sha256(data)

    def _write_local(
        self, key: str, fill: Callable[[BinaryIO], object], digest: bool = False
    ) -> str:
        """Fill a temporary file beside the target, flush it to disk, rename it into place;
        with ``digest``, the sha256 of what was written (hashed before the rename, so a
        concurrent writer of the same key cannot slip its bytes in), else ''."""
        path = self.path(key)
        folder = Path(path).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=folder)
        except OSError as exc:  # read-only, permission, a file where a folder should be
            if (full := full_store(exc, self.uri(key))) is not None:
                raise full from exc
            raise StoreError(f"cannot write {self.uri(key)}: {exc.strerror or exc}") from None
        _remove_orphans(folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                fill(handle)
                handle.flush()
                os.fsync(handle.fileno())
            sha = _file_sha256(tmp) if digest else ""
            os.chmod(tmp, file_mode())
            os.replace(tmp, path)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            # a full disk: Python's writes raise OSError, Polars' a ComputeError (disk_full);
            # Polars writing into a Python handle loses the OS's error ("Invalid thrift:
            # transport error"): then the folder's free space tells
            full = full_store(exc, self.uri(key)) or (
                _no_room(folder, self.uri(key)) if isinstance(exc, Exception) else None
            )
            if full is not None:
                raise full from exc
            raise
        return sha

    def link(self, key: str, seconds: int = 7 * 24 * 3600) -> str:
        """Where a browser opens ``key``: a presigned URL on S3 (valid ``seconds``), else a
        file:// URL."""
        if self.is_s3:
            try:
                return self.fs.sign(self.path(key), expiration=seconds)
            except Exception as exc:  # botocore's errors, named by _s3_problem
                raise StoreError(
                    f"cannot sign {self.uri(key)}: " + _s3_problem(exc, self.url, self.endpoint)
                ) from None
        return Path(self.path(key)).resolve().as_uri()

    def delete(self, key: str) -> None:
        if self.exists(key):
            self.fs.rm(self.path(key))

    def move(self, key: str, to: str) -> None:
        """Move an object to another key (a rename locally; copy then delete on S3)."""
        if self.is_s3:
            self.fs.copy(self.path(key), self.path(to))
            self.fs.rm(self.path(key))
            return
        target = Path(self.path(to))
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path(key), target)

    # -- formats ---------------------------------------------------------------------
    def parse_parquet(self, key: str, data: bytes) -> pl.DataFrame:
        """A frame from the bytes read of ``key`` (unparseable: ``DamagedFileError``)."""
        try:
            return pl.read_parquet(io.BytesIO(data))
        except pl.exceptions.PolarsError as exc:
            raise DamagedFileError(
                self.uri(key), key, f"not readable Parquet ({first_line(str(exc), 200)})"
            ) from None

    def read_parquet(self, key: str) -> pl.DataFrame:
        """Read a frame. Its bytes are read whole first, through one handle (Polars would
        re-open a path and could mix the old and the new inode when a writer replaces the
        file meanwhile): a failure to read is a ``StoreError``, a failure to parse the bytes
        read is a ``DamagedFileError``."""
        try:
            if self.is_s3:
                data = self.read_bytes(key)
            else:
                with open(self.path(key), "rb") as handle:
                    data = handle.read()
        except FileNotFoundError:
            raise StoreError(f"not found in store: {self.uri(key)}") from None
        except OSError as exc:  # permission, I/O: the file may be fine
            raise StoreError(f"cannot read {self.uri(key)}: {exc.strerror or exc}") from None
        return self.parse_parquet(key, data)

    def write_parquet(
        self, key: str, frame: pl.DataFrame, compression: ParquetCompression = "zstd"
    ) -> str:
        """Write a frame atomically (locally straight into the temporary file: no extra copy);
        returns the sha256 of the object written, for manifests that vouch for it."""
        self._record_layout()
        if self.is_s3:
            buffer = io.BytesIO()
            frame.write_parquet(buffer, compression=compression, statistics=True)
            return self.write_bytes(key, buffer.getvalue())
        return self._write_local(
            key,
            lambda handle: frame.write_parquet(handle, compression=compression, statistics=True),
            digest=True,
        )  # pyright: ignore[reportArgumentType]

    def sha256(self, key: str) -> str:
        """The sha256 of an object, read in blocks."""
        if not self.is_s3:
            return _file_sha256(self.path(key))
        digest = hashlib.sha256()
        with self.fs.open(self.path(key), "rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block if isinstance(block, bytes) else block.encode())
        return digest.hexdigest()

    def parse_json(self, key: str, data: bytes) -> Any:
        """A value from the bytes read of ``key`` (not JSON: ``DamagedFileError``)."""
        try:
            return json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DamagedFileError(self.uri(key), key, f"not valid JSON ({exc})") from None

    def read_json(self, key: str) -> Any:
        return self.parse_json(key, self.read_bytes(key))

    def write_json(self, key: str, obj: Any) -> str:
        return self.write_bytes(key, json_bytes(obj))


def json_bytes(obj: Any) -> bytes:
    """How the store writes JSON: indented, keys sorted, anything else as its string."""
    return json.dumps(obj, indent=2, sort_keys=True, default=str).encode()


def write_files(store: Store, files: Mapping[str, bytes | pl.DataFrame]) -> dict[str, str]:
    """Write each file (bytes as they are, a frame as Parquet): key -> sha256 of what was
    written, for the manifest written after them (``Manifest``). On a full disk the files
    already written are removed again: no manifest will ever vouch for them."""
    written: dict[str, str] = {}
    try:
        for key, data in files.items():
            written[key] = (
                store.write_parquet(key, data)
                if isinstance(data, pl.DataFrame)
                else store.write_bytes(key, data)
            )
    except StoreFullError:
        for key in written:
            store.delete(key)
        raise
    return written


def file_problems(store: Store, hashed: Mapping[str, str], label: str) -> dict[str, str]:
    """Files that are missing or differ from their recorded sha256 (``hashed``: key ->
    sha256): key -> problem, naming where the hash is recorded (``label``)."""
    found = {}
    for key, digest in hashed.items():
        if not store.exists(key):
            found[key] = "missing"
        elif store.sha256(key) != digest:
            found[key] = f"does not match the sha256 in {label}"
    return found


class Manifest(BaseModel):
    """A JSON manifest that vouches for files by their sha256. ``publish`` writes the files,
    then the manifest with their hashes, then verifies what it wrote; every reader goes
    through ``read``, then ``verify`` (every file) or ``read_file`` (one file, hashed as it
    is read). A subclass says which files it vouches for (``hashed``: store key -> sha256),
    how it records new ones (``with_hashes``) and how a damaged one is told (``damage``).
    Fields the class does not declare are kept as they were read; infinite and NaN numbers
    are written as JSON's ``Infinity`` and ``NaN``, as ``Store.write_json`` writes them."""

    model_config = ConfigDict(extra="allow", ser_json_inf_nan="constants")
    LABEL: ClassVar[str] = "its manifest"  # how messages name the manifest

    def hashed(self) -> dict[str, str]:
        """Store key -> sha256 of every file this manifest vouches for."""
        raise NotImplementedError

    def with_hashes(self, written: Mapping[str, str]) -> Self:
        """A copy that also vouches for ``written`` (store key -> sha256)."""
        raise NotImplementedError

    def damage(self, store: Store, key: str, problem: str) -> Exception:
        """The error for a file of this manifest that is missing or differs from its hash."""
        return DamagedFileError(store.uri(key), key, problem)

    @classmethod
    def read(cls, store: Store, key: str) -> Self:
        """The manifest at ``key``; one that is not valid JSON or lacks a field is damaged."""
        doc = store.read_json(key)
        try:
            return cls.model_validate(doc)
        except ValidationError as exc:
            problem = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'manifest'}: {e['msg']}"
                for e in exc.errors()[:3]
            )
            raise DamagedFileError(
                store.uri(key), key, f"not a valid manifest ({problem})"
            ) from None

    def publish(
        self, store: Store, key: str, files: Mapping[str, bytes | pl.DataFrame] | None = None
    ) -> Self:
        """Write ``files``, then the manifest at ``key`` vouching for them (a reader never
        finds it naming a file that is not there yet), then verify: every file it names is
        there, and the manifest reads back as it was meant. Returns what was written."""
        done = self.with_hashes(write_files(store, files)) if files else self
        written = json_bytes(done.model_dump(mode="json"))
        try:
            store.write_bytes(key, written)
        except StoreFullError:  # the files it would vouch for go too (as write_files does)
            for file in files or {}:
                store.delete(file)
            raise
        missing = [k for k in done.hashed() if not store.exists(k)]
        if missing or json_bytes(type(self).read(store, key).model_dump(mode="json")) != written:
            raise StoreError(
                f"cannot verify {store.uri(key)}: "
                + (f"{missing[0]} is missing" if missing else "it reads back changed")
            )
        return done

    def problems(self, store: Store) -> dict[str, str]:
        """Files that are missing or differ from their recorded sha256: key -> problem."""
        return file_problems(store, self.hashed(), self.LABEL)

    def verify(self, store: Store) -> Self:
        """Raise for the first file that is missing or differs from its hash; else self."""
        for key, problem in self.problems(store).items():
            raise self.damage(store, key, problem)
        return self

    def read_file(self, store: Store, key: str) -> bytes:
        """The bytes of one of the manifest's files, checked against its hash as read."""
        digest = self.hashed().get(key)
        if digest is None:
            raise self.damage(store, key, f"not listed in {self.LABEL}")
        try:
            data = store.read_bytes(key)
        except StoreError:
            if store.exists(key):
                raise
            raise self.damage(store, key, "missing") from None
        if sha256(data) != digest:
            raise self.damage(store, key, f"does not match the sha256 in {self.LABEL}")
        return data

    def read_parquet(self, store: Store, key: str) -> pl.DataFrame:
        """A Parquet file of the manifest, checked against its hash."""
        return store.parse_parquet(key, self.read_file(store, key))

    def read_json(self, store: Store, key: str) -> Any:
        """A JSON file of the manifest, checked against its hash."""
        return store.parse_json(key, self.read_file(store, key))
