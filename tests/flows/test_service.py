"""The HTTP forecast service as a client meets it: ``python -m service`` (a real uvicorn) over
a local store and over the same store on S3 (moto), called with httpx."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import polars as pl
import pytest

from core import layout
from core.forecasts import Forecasts
from core.storage import Store
from tests.factories import FORECAST_DATES, ROOT, forecast_store, free_port

TOKEN = "t0ken-never-logged"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REPORT = b"<!doctype html><title>report</title>"


def serve(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m service`` with ``env``; waits until /health answers."""
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("SMA_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service"],
            cwd=ROOT,
            env=base | {"PYTHONPATH": str(ROOT), "SMA_API__PORT": str(port)} | env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            httpx.get(f"{url}/health", timeout=5)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(log.read_text()[-2000:])


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> Iterator[tuple[str, Path, Path]]:
    """The service over a local store with two horizons and a report; (url, store, log)."""
    root = forecast_store(tmp_path_factory.mktemp("service") / "store")
    Store(str(root)).write_bytes(layout.REPORT_LATEST(), REPORT)
    log = root.parent / "service.log"
    proc, url = serve({"SMA_STORE": str(root), "SMA_API__TOKEN": TOKEN}, log)
    yield url, root, log
    proc.terminate()
    proc.wait(10)


def test_the_latest_forecasts_filtered_cached_and_as_parquet(local):
    url, root, _ = local
    assert httpx.get(f"{url}/v1/forecasts/latest").status_code == 401  # no token
    wrong = httpx.get(f"{url}/v1/forecasts/latest", headers={"Authorization": "Bearer no"})
    assert wrong.status_code == 401 and wrong.json() == {
        "error": "a bearer token is needed (Authorization: Bearer <token>)"
    }
    got = httpx.get(
        f"{url}/v1/forecasts/latest",
        params={"symbols": "AAPL,KO", "horizon": 3, "levels": "0.1,0.9"},
        headers=AUTH,
    )
    assert got.status_code == 200 and "max-age" in got.headers["cache-control"]
    rows = got.json()["forecasts"]
    assert [r["symbol"] for r in rows] == ["AAPL", "KO"]
    expected = Forecasts.open(str(root)).latest(["AAPL", "KO"], [3], [0.1, 0.9])
    assert [r["q_0.9"] for r in rows] == expected["q_0.9"].to_list()
    again = httpx.get(
        f"{url}/v1/forecasts/latest",
        params={"symbols": "AAPL,KO", "horizon": 3, "levels": "0.1,0.9"},
        headers=AUTH | {"If-None-Match": got.headers["etag"]},
    )
    assert again.status_code == 304 and again.headers["etag"] == got.headers["etag"]
    listed = AUTH | {"If-None-Match": f'W/"other", W/{got.headers["etag"]}'}  # weak, a list
    assert httpx.get(got.url, headers=listed).status_code == 304
    as_parquet = AUTH | {"Accept": "application/vnd.apache.parquet"}
    other_format = httpx.get(got.url, headers=as_parquet | {"If-None-Match": got.headers["etag"]})
    assert other_format.status_code == 200 and got.headers["vary"] == "Accept"  # a tag per format
    lower = httpx.get(got.url, headers={"Authorization": f"bearer {TOKEN}"})  # any case of scheme
    assert lower.status_code == 200 and lower.json() == got.json()
    table = httpx.get(
        f"{url}/v1/forecasts/latest", headers=AUTH | {"Accept": "application/vnd.apache.parquet"}
    )
    frame = pl.read_parquet(io.BytesIO(table.content))
    assert frame.equals(Forecasts.open(str(root)).latest())  # both horizons, every column
    assert "access-control-allow-origin" not in got.headers  # no CORS origin by default


def test_a_symbols_history_in_pages_with_its_outcomes(local):
    url, _, _ = local
    first = httpx.get(f"{url}/v1/forecasts/AAPL", params={"limit": 1}, headers=AUTH).json()
    assert [r["date"] for r in first["forecasts"]] == [FORECAST_DATES[0].isoformat()]
    assert first["forecasts"][0]["y"] is not None and first["next_cursor"]
    second = httpx.get(
        f"{url}/v1/forecasts/AAPL",
        params={"limit": 1, "cursor": first["next_cursor"]},
        headers=AUTH,
    ).json()
    assert [r["date"] for r in second["forecasts"]] == [FORECAST_DATES[1].isoformat()]
    assert second["forecasts"][0]["y"] is None and second["next_cursor"] is None  # NaN-free null
    calibration = httpx.get(f"{url}/v1/calibration", headers=AUTH).json()["windows"]
    assert [w["window"] for w in calibration] == [20, 60]


def test_bad_requests_are_their_status_and_one_line(local):
    url, _, log = local
    cases = {
        "/v1/forecasts/ZZZ": (404, "no forecast for ZZZ"),
        "/v1/forecasts/AAPL?start=yesterday": (400, "start: "),
        "/v1/forecasts/AAPL?cursor=@@": (400, "cursor '@@' is not one this service gave"),
        "/v1/forecasts/latest?levels=0.3": (400, "no level 0.3 in the forecasts"),
        "/v1/forecasts/latest?horizon=5": (404, "holds no horizon 5"),
        "/v1/calibration?horizon=1": (404, "no monitoring figures"),
        "/v1/forecasts/%C3%9F": (404, "symbols are ASCII"),  # not looked up as SS
        "/v1/forecasts/AAPL?start=2018-01-02&end=2018-01-01": (400, "is after end"),
        "/v1/nothing": (404, "GET /v1/nothing: Not Found"),
    }
    for path, (status, words) in cases.items():
        got = httpx.get(url + path, headers=AUTH)
        message = got.json()["error"]
        assert got.status_code == status and words in message and "\n" not in message, path
    posted = httpx.post(f"{url}/health")
    assert posted.status_code == 405 and posted.json() == {
        "error": "POST /health: Method Not Allowed"
    }
    assert httpx.head(f"{url}/health").status_code == 200  # a load balancer's probe
    lower = httpx.get(f"{url}/v1/forecasts/latest?symbols=aapl", headers=AUTH).json()
    assert [row["symbol"] for row in lower["forecasts"]] == ["AAPL", "AAPL"]  # two horizons
    report = httpx.get(f"{url}/report", headers=AUTH)
    assert report.status_code == 200 and report.content == REPORT
    assert "/v1/forecasts/latest" in httpx.get(f"{url}/openapi.json").json()["paths"]
    assert httpx.get(f"{url}/docs").status_code == 200
    health = httpx.get(f"{url}/health").json()  # no token needed
    assert health["newest_forecast"] == FORECAST_DATES[1].isoformat()
    assert health["status"] == "stale" and health["sessions_behind"] > 1
    output = log.read_text()
    assert TOKEN not in output and "Traceback" not in output


def test_a_store_that_does_not_answer_is_503_within_the_timeout(local):
    """A read that blocks (a FIFO where a prediction file should be) answers 503 in time."""
    url, root, _ = local
    stuck = root / "horizons" / "h=9" / layout.PREDICTIONS(as_of="2017-12-29")
    stuck.parent.mkdir(parents=True)
    os.mkfifo(stuck)
    try:
        started = time.monotonic()
        got = httpx.get(f"{url}/v1/forecasts/latest?horizon=9", headers=AUTH, timeout=10)
        assert got.status_code == 503 and "did not answer within 3 s" in got.json()["error"]
        assert time.monotonic() - started < 4.5
        with ThreadPoolExecutor(12) as pool:  # more stuck reads than a default thread pool
            stuck_reads = list(
                pool.map(
                    lambda _: httpx.get(f"{url}/v1/forecasts/latest?horizon=9", headers=AUTH),
                    range(12),
                )
            )
        assert {r.status_code for r in stuck_reads} == {503}
        healthy = httpx.get(f"{url}/v1/calibration", headers=AUTH, timeout=10)
        assert healthy.status_code == 200  # the stuck reads hold only their own threads
    finally:
        with contextlib.suppress(OSError):  # a writer's open and close ends the stuck reads
            os.close(os.open(stuck, os.O_WRONLY | os.O_NONBLOCK))
        stuck.unlink()


def test_a_port_in_use_or_a_missing_store_is_one_line(local, tmp_path):
    """Exit 1 when the port is taken, 2 when the store folder does not exist; one line."""
    url, root, _ = local
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMA_")}
    cases = [
        (str(root), url.rsplit(":", 1)[1], 1, "address already in use"),
        (str(tmp_path / "nowhere"), "1", 2, "not a folder (SMA_STORE, --store)"),
    ]
    for store, port, code, words in cases:
        done = subprocess.run(
            [sys.executable, "-m", "service", "--store", store, "--port", port],
            cwd=ROOT,
            env=env | {"PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == code, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and words in done.stderr


def test_the_same_service_on_s3(local, s3_endpoint, s3_bucket, tmp_path):
    """Started on an empty bucket, it is up but not healthy (503, one line); once the
    store's files are there, it serves what the local one does."""
    url, root, _ = local
    s3 = Store(f"s3://{s3_bucket}/prod", endpoint_url=s3_endpoint)
    origin = "https://dashboard.example"
    env = {
        "SMA_STORE": s3.url,
        "SMA_S3__ENDPOINT_URL": s3_endpoint,
        "SMA_API__CORS_ORIGINS": origin,
    }
    proc, s3_url = serve(env, tmp_path / "s3.log")
    try:
        empty = httpx.get(f"{s3_url}/health")
        assert empty.status_code == 503 and "holds no forecasts" in empty.json()["error"]
        for path in root.rglob("*"):
            if path.is_file() and "h=9" not in path.as_posix():
                s3.write_bytes(path.relative_to(root).as_posix(), path.read_bytes())
        on_s3 = httpx.get(f"{s3_url}/v1/forecasts/latest").json()
        assert on_s3 == httpx.get(f"{url}/v1/forecasts/latest", headers=AUTH).json()
        assert httpx.get(f"{s3_url}/health").json()["newest_forecast"] == "2017-12-29"
        cors = httpx.get(f"{s3_url}/v1/calibration", headers={"Origin": origin})
        assert cors.headers["access-control-allow-origin"] == origin  # the one origin set
        other = httpx.get(f"{s3_url}/v1/calibration", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        preflight = httpx.options(
            f"{s3_url}/v1/calibration",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 200  # a browser may send the token
    finally:
        proc.terminate()
        proc.wait(10)
    down = {"SMA_STORE": s3.url, "SMA_S3__ENDPOINT_URL": "http://127.0.0.1:1"}
    proc, down_url = serve(down, tmp_path / "down.log")
    try:
        for path in ("/health", "/v1/forecasts/latest"):
            got = httpx.get(down_url + path, timeout=10)
            assert got.status_code == 503 and "cannot be read" in got.json()["error"], got.text
    finally:
        proc.terminate()
        proc.wait(10)
