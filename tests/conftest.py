"""Shared fixtures: a Prefect test server for the session, S3 via moto, a Slack stand-in,
and a store holding the collected sample."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Prefect reads its settings at import: keep its home, results and caches out of the
# user's ~/.prefect and fresh for every test session (cached results must not leak).
_PREFECT_TMP = Path(tempfile.mkdtemp(prefix="sma-test-prefect-"))
atexit.register(shutil.rmtree, _PREFECT_TMP, ignore_errors=True)  # after every server stopped
os.environ["PREFECT_HOME"] = str(_PREFECT_TMP)
os.environ["PREFECT_LOCAL_STORAGE_PATH"] = str(_PREFECT_TMP / "storage")
# and out of a developer's `make server` profile (deployments/server.py): flows run in
# subprocesses read this rather than the checkout's .prefect/sma-profiles.toml
os.environ["PREFECT_PROFILES_PATH"] = str(_PREFECT_TMP / "profiles.toml")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_TO_API_ENABLED"] = "false"
for _name in [n for n in os.environ if n.startswith("SMA_")]:
    del os.environ[_name]

import pytest  # noqa: E402

from tests.factories import SAMPLE_COLLECT, SECRET, free_port  # noqa: E402


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """A real Prefect API (temporary SQLite) for the whole session; yields its URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield str(PREFECT_API_URL.value())


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Run in a temp cwd (no stray .env) with fast retries."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMA_COLLECT__RETRY_BACKOFF_SECONDS", "0")
    monkeypatch.setenv("SMA_COLLECT__RETRY_JITTER_FACTOR", "0")
    return tmp_path


@pytest.fixture()
def fresh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A folder without .env, no SMA_ variable, and no renamed-setting warning given yet in
    this process."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("core.config._warned", set())
    for name in [n for n in os.environ if n.upper().startswith("SMA_")]:
        monkeypatch.delenv(name)
    return tmp_path


@pytest.fixture()
def old_store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch) -> Path:
    """A copy of the store written by an earlier main that the test module names in
    ``OLD_STORE`` (tests/data), W&B disabled."""
    monkeypatch.setenv("SMA_TRACKING__WANDB_MODE", "disabled")
    store = tmp_path / "store"
    shutil.copytree(request.module.OLD_STORE, store)
    return store


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 (random port) with test credentials in the environment."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture()
def s3_bucket(s3_endpoint: str) -> str:
    """A fresh bucket on the moto server; yields its name."""
    import uuid

    import boto3

    name = f"sma-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture()
def slack() -> Iterator[tuple[str, list[dict]]]:
    """A stand-in for Slack's webhook endpoint on 127.0.0.1; yields (url, received bodies)."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "json": json.loads(body)})
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/services/{SECRET}", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def collected(prefect_server, tmp_path_factory) -> Path:
    """A store holding the bundled sample, collected once per session (copy before changing it)."""
    from flows.collect import collect

    store = tmp_path_factory.mktemp("collected") / "store"
    collect(store=str(store), **SAMPLE_COLLECT)
    return store


@pytest.fixture(scope="session")
def featured(collected: Path, tmp_path_factory) -> Path:
    """The collected sample with its feature table (copy before changing it)."""
    from flows.features import features

    store = tmp_path_factory.mktemp("featured") / "store"
    shutil.copytree(collected, store)
    features(store=str(store))  # the default groups: seed and risk
    return store


@pytest.fixture()
def store_dir(featured: Path, tmp_path: Path, monkeypatch) -> Path:
    """A fresh copy of the featured sample store, W&B offline into the test's folder."""
    monkeypatch.setenv("SMA_TRACKING__WANDB_MODE", "offline")
    monkeypatch.setenv("SMA_TRACKING__DIRECTORY", str(tmp_path / "wandb"))
    target = tmp_path / "store"
    shutil.copytree(featured, target)
    return target
