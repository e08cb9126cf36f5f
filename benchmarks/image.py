"""Container image benchmark: the image built without network access, then the collect flow
run inside it against a Prefect server and an S3 server on the host, and the forecast
service run from it over a store on that S3 server.

    python -m benchmarks.image [--work DIR] [--mirror URL] [--rebuild-base] [--no-build]
                               [--keep-dockerd]
    python -m benchmarks.image --wheelhouse DIR   # only a wheelhouse, for an air-gapped build

Needs root, `docker` with `dockerd` (started here when not running, stopped at the end) and
`debootstrap` (`apt-get install -y docker.io debootstrap`); installs nothing itself. Steps:
- a base image made without a registry: `debootstrap --variant=minbase` of Debian 12 with
  python3 (3.11), python3-venv, ca-certificates and libgomp1, then `docker import` (made once,
  kept as a tag; `--rebuild-base` makes it again);
- a wheelhouse downloaded on the host: `uv export --frozen --no-default-groups` (with
  hashes: the runtime dependencies, no dev or docs group) and the wheels of those pins for
  CPython 3.11 on manylinux x86_64 (`pip download --only-binary`), kept in --work (default
  ~/.cache/sma-image) and topped up when uv.lock changes;
- `docker build --build-arg BASE=<that base>` of a context holding the repository's files and
  `wheels/` (nothing is fetched inside the build): cold (`--no-cache`) and again after a code
  change (the dependency layers cached); the image's size (`--no-build` reuses the image);
- inside the image: non-root, `import lightgbm, catboost`, `prefect worker start --help`,
  `dask worker --help`; no package locked only for the dev or docs group (`uv export
  --all-groups` less `--no-default-groups`): mkdocs, pytest, ruff and the rest neither
  installed, importable nor on PATH;
- `prefect server start` and a moto S3 server on 127.0.0.1, then the collect flow on the
  bundled sample (as `make demo`) into S3, each run with `--network host`: `python -m
  flows.collect` in a container, the same on the host for comparison, the `collect`
  deployment (registered from the image) run by a process worker in a container, and
  `python -m flows.collect` in a container whose tasks run on Dask (`SMA_TASK_RUNNER=dask`),
  the scheduler and the worker two more containers of the image. Checked: the prices in S3,
  the flow runs in the server, the task runs in the Dask worker's log;
- the forecast service: a trained store (tests/data/store_v2: models, predictions,
  monitoring) copied into the moto bucket, its report written by `python -m flows.report`
  in a container, then `python -m service` in a container over that S3 store (`SMA_STORE`,
  `SMA_S3__ENDPOINT_URL`, `SMA_API__TOKEN`; --network host, a free port). Measured: the
  seconds from `docker run` to `GET /health` answering 200, and `docker stop`. Checked:
  `GET /v1/forecasts/latest` 200 with the bearer token (one row per symbol), 401 without it
  or with a wrong one; `GET /report` 200 (when the store holds a report); the process not
  root; `docker stop` within 5 s with exit code 0 (uvicorn ends on SIGTERM), no container
  left, the port closed, neither the token nor a traceback in the container's log.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from benchmarks.servers import flow_runs, prefect_server
from deployments.server import free_port

ROOT = Path(__file__).resolve().parent.parent
BASE_TAG = "sma-base:bookworm-debootstrap"
IMAGE_TAG = "sma:image-bench"
SUITE = "bookworm"  # Debian 12: python3 is CPython 3.11
BASE_PACKAGES = "python3,python3-venv,ca-certificates,libgomp1"
# glibc of Debian 12 is 2.36: wheels tagged for it or older run there.
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
]
# The sample collect of `make demo`.
SAMPLE_ENV = {
    "SMA_SOURCE": "local",
    "SMA_SOURCE_PATH": "data/sample/prices",
    "SMA_TICKERS": "data/sample/tickers.csv",
    "SMA_START": "2013-01-01",
    "SMA_END": "2018-02-07",
    "SMA_TRACKING__WANDB_MODE": "disabled",
}
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def sh(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command; its output captured; exit with its tail when it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode:
        raise SystemExit(
            f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    return proc


def timed(cmd: list[str], **kwargs: Any) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    proc = sh(cmd, **kwargs)
    return time.perf_counter() - started, proc


def uv() -> str:
    found = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    if not Path(found).exists():
        raise SystemExit("uv not found: run `make setup` first")
    return found


def check_tools() -> None:
    missing = [tool for tool in ("docker", "dockerd", "debootstrap") if not shutil.which(tool)]
    if missing:
        print(f"missing: {', '.join(missing)}; install with", file=sys.stderr)
        print("  apt-get update && apt-get install -y docker.io debootstrap", file=sys.stderr)
        raise SystemExit(2)


def docker_up() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@contextmanager
def dockerd(work: Path, keep: bool) -> Iterator[None]:
    """Docker's daemon: the running one, else one started here (stopped at the end)."""
    if docker_up():
        yield
        return
    log = (work / "dockerd.log").open("ab")
    proc = subprocess.Popen(["dockerd"], stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not docker_up():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"dockerd did not start: see {work / 'dockerd.log'}")
            time.sleep(0.5)
        print(f"started dockerd (pid {proc.pid})")
        yield
    finally:
        if keep:
            print(f"dockerd left running (pid {proc.pid})")
        else:
            proc.terminate()
            proc.wait(timeout=60)
        log.close()


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def image_size(tag: str) -> int:
    return int(sh(["docker", "image", "inspect", "--format", "{{.Size}}", tag]).stdout)


def make_base(work: Path, mirror: str) -> dict[str, float]:
    """A Debian base image with Python 3.11 from debootstrap and `docker import`."""
    rootfs = work / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    bootstrap, _ = timed(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={BASE_PACKAGES}",
            SUITE,
            str(rootfs),
            mirror,
        ]
    )
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for item in (rootfs / cache).glob("*"):
            if item.is_file():
                item.unlink()
    started = time.perf_counter()
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    sh(["docker", "import", "--change", 'CMD ["python3"]', "-", BASE_TAG], stdin=tar.stdout)
    tar.wait()
    imported = time.perf_counter() - started
    shutil.rmtree(rootfs)
    return {"debootstrap_s": bootstrap, "import_s": imported}


def _requirements(text: str) -> list[tuple[str, str, str]]:
    """(pin, marker, hash options) of each requirement of an exported requirements file."""
    lines: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if lines and lines[-1].endswith("\\"):
            lines[-1] = lines[-1][:-1].rstrip() + " " + line
        else:
            lines.append(line)
    parsed = []
    for line in lines:
        spec, sep, hashes = line.partition(" --hash")
        pin, _, marker = spec.partition(";")
        parsed.append((pin.strip(), marker.strip(), (sep + hashes).strip()))
    return parsed


def _linux_cpython311_envs() -> list[dict[str, str]]:
    """Marker environments of CPython 3.11.x (every patch release) on Linux x86_64."""
    base = {
        "os_name": "posix",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "python_version": "3.11",
    }
    return [base | {"python_full_version": f"3.11.{patch}"} for patch in range(30)]


def wheelhouse(dest: Path) -> dict[str, Any]:
    """`requirements.txt` (the lock without the dev and docs groups, hashed) and its wheels for CPython 3.11 on
    manylinux x86_64 into dest; wheels no longer locked are removed, wheels already there
    with a locked hash are kept. The lock may pin a package twice (soupsieve differs below
    and from 3.11.5): the wheelhouse holds both, so it serves Debian 12's Python 3.11.2 and
    the newest 3.11 alike."""
    import hashlib

    from packaging.markers import Marker
    from packaging.utils import canonicalize_name, parse_wheel_filename

    dest.mkdir(parents=True, exist_ok=True)
    requirements = dest / "requirements.txt"
    export = [uv(), "export", "--frozen", "--no-default-groups", "--no-emit-project"]
    sh([*export, "--format", "requirements.txt", "-o", str(requirements)], cwd=ROOT)
    have: dict[tuple[str, str], set[str]] = {}  # (name, version) -> sha256 of the wheels here
    for wheel in dest.glob("*.whl"):
        name, version, *_ = parse_wheel_filename(wheel.name)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        have.setdefault((name, str(version)), set()).add(digest)
    # pip evaluates markers for the Python that runs it: each download list holds, without
    # markers, the pins of one group of 3.11 patch releases (the install evaluates them).
    groups: dict[tuple[str, ...], str] = {}  # pins -> the newest patch release choosing them
    pins: set[tuple[str, str]] = set()
    missing: set[str] = set()
    locked = _requirements(requirements.read_text())
    for env in _linux_cpython311_envs():
        chosen = []
        for pin, marker, hashes in locked:
            if marker and not Marker(marker).evaluate(env):
                continue
            name, _, version = pin.partition("==")
            key = (canonicalize_name(name), version)
            pins.add(key)
            chosen.append(f"{pin} {hashes}")
            if not have.get(key, set()) & set(hashes.replace("--hash=sha256:", "").split()):
                missing.add(chosen[-1])
        groups[tuple(chosen)] = env["python_full_version"]
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    pip = [uv(), "tool", "run", "--from", "pip", "pip", "download", "--no-deps"]
    pip += ["--only-binary=:all:", "--require-hashes", "--implementation", "cp"]
    pip += ["--abi", "cp311", *platforms, "-d", str(dest)]
    started = time.perf_counter()
    for index, (group, python) in enumerate(groups.items()):
        if not missing.intersection(group):
            continue
        with tempfile.NamedTemporaryFile("w", suffix=f"-{index}.txt") as listing:
            listing.write("\n".join(line for line in group if line in missing) + "\n")
            listing.flush()
            sh([*pip, "--python-version", python, "-r", listing.name])
    for wheel in dest.glob("*.whl"):
        name, version, *_ = parse_wheel_filename(wheel.name)
        if (name, str(version)) not in pins:
            wheel.unlink()
    wheels = list(dest.glob("*.whl"))
    assert len(wheels) == len(pins), f"{len(pins)} pins, {len(wheels)} wheels"
    return {
        "seconds": time.perf_counter() - started,
        "downloaded": len(missing),
        "wheels": len(wheels),
        "mb": sum(w.stat().st_size for w in wheels) / 1e6,
        "environments": len(groups),
    }


def build_context(context: Path, wheels: Path) -> None:
    """The repository's files (tracked and untracked, not ignored) plus wheels/ (hard links)."""
    shutil.rmtree(context, ignore_errors=True)
    files = sh(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT).stdout
    for name in filter(None, files.split("\0")):
        source = ROOT / name
        if source.is_file():
            target = context / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (context / "wheels").mkdir()
    for item in wheels.iterdir():
        try:
            os.link(item, context / "wheels" / item.name)
        except OSError:
            shutil.copy2(item, context / "wheels" / item.name)


def docker_build(context: Path, *, no_cache: bool) -> float:
    cmd = ["docker", "build", "--build-arg", f"BASE={BASE_TAG}", "-t", IMAGE_TAG]
    seconds, _ = timed([*cmd, *(["--no-cache"] if no_cache else []), str(context)])
    return seconds


def build(work: Path) -> None:
    """The wheelhouse, then the image built from it twice: cold, and after a code change."""
    got = wheelhouse(work / "wheels")
    print(
        f"wheelhouse: {got['wheels']} wheels, {got['mb']:.0f} MB, for {got['environments']} "
        f"groups of CPython 3.11 releases ({got['downloaded']} downloaded in "
        f"{got['seconds']:.0f} s)"
    )
    with tempfile.TemporaryDirectory(prefix="sma-image-", dir=work) as tmp:
        context = Path(tmp) / "context"
        build_context(context, work / "wheels")
        cold = docker_build(context, no_cache=True)
        print(f"docker build, cold (--no-cache; nothing fetched): {cold:.0f} s")
        code = context / "flows" / "__init__.py"
        code.write_text(code.read_text() + "# a code change\n")
        warm = docker_build(context, no_cache=False)
        print(f"docker build after a code change (dependency layers cached): {warm:.1f} s")
    # The earlier image and the build stages, untagged now (the Dockerfile labels its stages).
    label = "label=org.opencontainers.image.title=stock-market-analytics"
    stale = sh(["docker", "images", "-q", "--filter", "dangling=true", "--filter", label]).stdout
    if stale.split():
        subprocess.run(["docker", "rmi", *sorted(set(stale.split()))], capture_output=True)


def docker_run(args: list[str], env: dict[str, str], *, name: str | None = None) -> str:
    """`docker run` of the image on the host's network (a container left running with a
    name, else removed at its end); returns its output."""
    flags = [f"--env={key}={value}" for key, value in env.items()]
    mode = ["-d", "--name", name] if name else ["--rm"]
    proc = sh(["docker", "run", *mode, "--network", "host", *flags, IMAGE_TAG, *args])
    return proc.stdout + proc.stderr


def locked_names(*groups: str) -> set[str]:
    """The normalized names of the packages `uv export --frozen` pins with those options."""
    from packaging.utils import canonicalize_name

    export = [uv(), "export", "--frozen", "--no-emit-project", "--no-hashes", *groups]
    text = sh([*export, "--format", "requirements.txt"], cwd=ROOT).stdout
    return {canonicalize_name(pin.partition("==")[0]) for pin, _, _ in _requirements(text)}


def check_image() -> dict[str, Any]:
    """Non-root, the model libraries load, the worker commands are there, and no package of
    the dev or docs group alone is installed (nor mkdocs, pytest or ruff importable)."""
    dev_only = sorted(locked_names("--all-groups") - locked_names("--no-default-groups"))
    assert {"mkdocs", "pytest", "ruff"} <= set(dev_only), dev_only
    probe = docker_run(
        [
            "python",
            "-c",
            "import importlib.metadata as md, importlib.util, json, os, shutil, sys; "
            "import lightgbm, catboost, prefect; "
            f"dev_only = {dev_only!r}; "
            "names = {d.metadata['Name'].lower().replace('_', '-').replace('.', '-') "
            "for d in md.distributions()}; "
            "print(json.dumps({'uid': os.getuid(), 'python': sys.version.split()[0], "
            "'lightgbm': lightgbm.__version__, 'catboost': catboost.__version__, "
            "'prefect': prefect.__version__, 'cwd': os.getcwd(), "
            "'prefect_on_path': shutil.which('prefect'), 'dask_on_path': shutil.which('dask'), "
            "'distributions': len(names), "
            "'dev_installed': sorted(names.intersection(dev_only)), "
            "'dev_importable': [m for m in ('mkdocs', 'material', 'mkdocstrings', 'pytest', "
            "'ruff', 'moto', 'hypothesis', 'selenium') if importlib.util.find_spec(m)], "
            "'dev_on_path': [c for c in ('mkdocs', 'pytest', 'ruff', 'pyright', 'moto_server') "
            "if shutil.which(c)]}))",
        ],
        {},
    )
    info = json.loads(probe.strip().splitlines()[-1])
    info["dev_only"] = len(dev_only)
    assert info["uid"] != 0, "the image must not run as root"
    for found in ("dev_installed", "dev_importable", "dev_on_path"):
        assert not info[found], f"the dev or docs group in the image: {found} {info[found]}"
    assert "--pool" in docker_run(["prefect", "worker", "start", "--help"], {})
    assert "SCHEDULER" in docker_run(["dask", "worker", "--help"], {}).upper()
    return info


def logs(name: str) -> str:
    proc = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
    return proc.stdout + proc.stderr


@contextmanager
def dask_cluster(env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """`dask scheduler` and `dask worker` (the worker with env), each a container of the
    image on the host's network; yields (scheduler address, the worker's container)."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler, worker = (f"sma-bench-dask-{role}-{os.getpid()}" for role in ("scheduler", "worker"))
    try:
        docker_run(
            [
                *("dask", "scheduler", "--host", "127.0.0.1", "--port", str(port)),
                *("--dashboard-address", "127.0.0.1:0"),
            ],
            {},
            name=scheduler,
        )
        docker_run(
            ["dask", "worker", address, "--nworkers", "1", "--nthreads", "2", "--no-dashboard"],
            env,
            name=worker,
        )
        deadline = time.monotonic() + 120
        while "Registered to" not in logs(worker):
            if time.monotonic() > deadline:
                raise SystemExit(f"the Dask worker did not register:\n{logs(worker)[-2000:]}")
            time.sleep(0.5)
        yield address, worker
    finally:
        for name in (scheduler, worker):
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)


@contextmanager
def s3_server() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 (request log off); yields its endpoint."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def flow_run_states(api: str) -> list[str]:
    return sorted(run["state"]["type"] for run in flow_runs(api))


def s3_client(endpoint: str) -> Any:
    """A client of the S3 server (moto's fixed credentials)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=AWS_ENV["AWS_DEFAULT_REGION"],
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    )


def collect_runs(api: str, endpoint: str) -> dict[str, Any]:
    """`python -m flows.collect` of the sample into S3: in a container of the image, on the
    host, as a deployment run by a process worker in a container, and in a container whose
    tasks run on a Dask worker container of the image."""
    bucket = "sma-image-bench"
    s3 = s3_client(endpoint)
    s3.create_bucket(Bucket=bucket)

    def symbols(prefix: str) -> int:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
        assert f"{prefix}/raw/ingestion.parquet" in keys, f"no ingestion table in {prefix}"
        return sum(key.endswith("/data.parquet") for key in keys if "/raw/prices/" in key)

    env = SAMPLE_ENV | AWS_ENV | {"PREFECT_API_URL": api, "AWS_ENDPOINT_URL": endpoint}
    collect = ["python", "-m", "flows.collect"]
    figures: dict[str, Any] = {}
    started = time.perf_counter()
    docker_run(collect, env | {"SMA_STORE": f"s3://{bucket}/container"})
    figures["container_s"] = time.perf_counter() - started
    figures["container_symbols"] = symbols("container")

    host = os.environ | env | {"SMA_STORE": f"s3://{bucket}/host", "PYTHONPATH": str(ROOT)}
    for name in ("SMA_SOURCE_PATH", "SMA_TICKERS"):
        host[name] = str(ROOT / env[name])
    figures["host_s"], _ = timed([sys.executable, *collect[1:]], env=host, cwd=ROOT)
    figures["host_symbols"] = symbols("host")

    # A process worker in a container runs a deployment registered from the image (its
    # working directory /app, where the code is).
    worker_env = env | {"SMA_STORE": f"s3://{bucket}/worker"}
    docker_run(["prefect", "work-pool", "create", "local", "--type", "process"], env)
    docker_run(["prefect", "--no-prompt", "deploy", "--name", "collect"], env)
    out = docker_run(["prefect", "deployment", "run", "collect/collect"], env)
    assert "UUID" in out, out
    started = time.perf_counter()
    out = docker_run(["prefect", "worker", "start", "--pool", "local", "--run-once"], worker_env)
    figures["worker_s"] = time.perf_counter() - started
    figures["worker_symbols"] = symbols("worker")

    # Four batches of 10 symbols, run by the Dask worker (the settings in its environment).
    dask_env = env | {"SMA_STORE": f"s3://{bucket}/dask", "SMA_COLLECT__SYMBOLS_PER_TASK": "10"}
    with dask_cluster(dask_env) as (address, worker):
        runner = {"SMA_TASK_RUNNER": "dask", "SMA_DASK__ADDRESS": address}
        started = time.perf_counter()
        docker_run(collect, dask_env | runner)
        figures["dask_s"] = time.perf_counter() - started
        worker_log = logs(worker)
    figures["dask_symbols"] = symbols("dask")
    figures["dask_worker_task_runs"] = worker_log.count("Finished in state Completed")
    assert figures["dask_worker_task_runs"] >= 4, worker_log[-3000:]
    # (the deployment's schedule adds runs for the coming days: SCHEDULED)
    figures["flow_runs"] = [state for state in flow_run_states(api) if state != "SCHEDULED"]
    assert figures["flow_runs"] == ["COMPLETED"] * 4, figures["flow_runs"]
    return figures


def service_run(api: str, endpoint: str) -> dict[str, Any]:
    """`python -m service` in a container of the image over an S3 store holding forecasts
    (a copy of tests/data/store_v2 in the moto bucket, its report written by `python -m
    flows.report` in a container first): the seconds from `docker run` to /health's 200, the
    latest forecasts behind the token, /report, the user, and `docker stop`."""
    from core.forecasts import Forecasts

    source = ROOT / "tests" / "data" / "store_v2"  # a trained store: models, predictions
    bucket, prefix = "sma-image-bench-service", "prod"
    store = f"s3://{bucket}/{prefix}"
    s3 = s3_client(endpoint)
    s3.create_bucket(Bucket=bucket)
    for path in sorted(source.rglob("*")):
        if path.is_file():
            key = f"{prefix}/{path.relative_to(source).as_posix()}"
            s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    symbols = sorted(Forecasts.open(str(source)).latest()["symbol"].unique().to_list())
    figures: dict[str, Any] = {"store": store, "symbols": len(symbols)}

    env = AWS_ENV | {"SMA_STORE": store, "SMA_S3__ENDPOINT_URL": endpoint}
    report_env = env | {"PREFECT_API_URL": api, "SMA_TRACKING__WANDB_MODE": "disabled"}
    started = time.perf_counter()
    docker_run(["python", "-m", "flows.report"], report_env)
    figures["report_s"] = time.perf_counter() - started

    token = f"bench-{os.urandom(8).hex()}"
    auth = {"Authorization": f"Bearer {token}"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    name = f"sma-bench-service-{os.getpid()}"
    service_env = env | {
        "SMA_API__HOST": "127.0.0.1",  # the host's network: reached on the host's loopback
        "SMA_API__PORT": str(port),
        "SMA_API__TOKEN": token,
    }
    try:
        started = time.perf_counter()
        docker_run(["python", "-m", "service"], service_env, name=name)
        deadline = time.monotonic() + 120
        while True:
            try:
                answer = httpx.get(f"{url}/health", timeout=10)
                status, body = answer.status_code, answer.content
            except httpx.TransportError:  # not listening yet
                status, body = 0, b""
            if status == 200:
                break
            running = sh(["docker", "inspect", "--format", "{{.State.Running}}", name]).stdout
            if running.strip() != "true" or time.monotonic() > deadline:
                raise SystemExit(
                    f"the service did not answer /health ({status}):\n{logs(name)[-3000:]}"
                )
            time.sleep(0.1)
        figures["health_s"] = time.perf_counter() - started
        figures["health"] = json.loads(body)

        latest = httpx.get(f"{url}/v1/forecasts/latest", headers=auth, timeout=10)
        assert latest.status_code == 200, (latest.status_code, latest.text[:500])
        rows = latest.json()["forecasts"]
        assert sorted(row["symbol"] for row in rows) == symbols, rows
        figures["latest"], figures["latest_rows"] = latest.status_code, len(rows)
        no_token = httpx.get(f"{url}/v1/forecasts/latest", timeout=10).status_code
        wrong = {"Authorization": "Bearer wrong"}
        wrong_token = httpx.get(f"{url}/v1/forecasts/latest", headers=wrong, timeout=10)
        figures["latest_no_token"], figures["latest_wrong_token"] = (
            no_token,
            wrong_token.status_code,
        )
        assert no_token == wrong_token.status_code == 401, figures
        page = httpx.get(f"{url}/report", headers=auth, timeout=30)  # flows.report wrote it
        assert page.status_code == 200 and b"<html" in page.content.lower(), page.status_code
        figures["report"], figures["report_mb"] = page.status_code, len(page.content) / 1e6

        status_line = sh(["docker", "exec", name, "cat", "/proc/1/status"]).stdout
        uids = next(
            line.split()[1:] for line in status_line.splitlines() if line.startswith("Uid:")
        )
        figures["uid"] = int(uids[0])
        assert all(int(uid) != 0 for uid in uids), f"the service runs as root: {uids}"

        figures["stop_s"], _ = timed(["docker", "stop", "-t", "30", name])
        state = sh(["docker", "inspect", "--format", "{{.State.ExitCode}}", name])
        figures["exit_code"] = int(state.stdout)
        output = logs(name)
        assert figures["stop_s"] < 5 and figures["exit_code"] == 0, (figures, output[-2000:])
        assert token not in output and "Traceback" not in output, output[-2000:]
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    left = sh(["docker", "ps", "-aq", "--filter", f"name={name}"]).stdout.split()
    assert not left, f"containers left: {left}"
    try:
        httpx.get(f"{url}/health", timeout=5)
        raise AssertionError(f"{url} still answers after docker stop")
    except httpx.TransportError:
        pass
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "sma-image")
    parser.add_argument("--mirror", default="http://deb.debian.org/debian")
    parser.add_argument("--rebuild-base", action="store_true")
    parser.add_argument("--keep-dockerd", action="store_true")
    parser.add_argument("--wheelhouse", type=Path, metavar="DIR")
    parser.add_argument("--no-build", action="store_true", help=f"reuse the image {IMAGE_TAG}")
    ns = parser.parse_args()
    if ns.wheelhouse:
        got = wheelhouse(ns.wheelhouse)
        print(f"{ns.wheelhouse}: {got['wheels']} wheels ({got['mb']:.0f} MB), requirements.txt")
        return
    if os.geteuid() != 0:
        raise SystemExit("run as root (debootstrap and dockerd)")
    check_tools()
    work = ns.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    with dockerd(work, ns.keep_dockerd):
        if ns.rebuild_base or not image_exists(BASE_TAG):
            base = make_base(work, ns.mirror)
            print(
                f"base {BASE_TAG} made: debootstrap {base['debootstrap_s']:.0f} s, "
                f"docker import {base['import_s']:.0f} s"
            )
        print(f"base {BASE_TAG}: {image_size(BASE_TAG) / 1e6:.0f} MB")
        if not (ns.no_build and image_exists(IMAGE_TAG)):
            build(work)
        print(f"image {IMAGE_TAG}: {image_size(IMAGE_TAG) / 1e6:.0f} MB")
        info = check_image()
        print(
            f"in the image: uid {info['uid']}, Python {info['python']}, cwd {info['cwd']}, "
            f"prefect {info['prefect']} ({info['prefect_on_path']}), dask "
            f"({info['dask_on_path']}), lightgbm {info['lightgbm']}, catboost "
            f"{info['catboost']}; `prefect worker start --help` and `dask worker --help` answer"
        )
        print(
            f"  {info['distributions']} distributions installed, none of the "
            f"{info['dev_only']} locked for the dev or docs group only (mkdocs, pytest, "
            "ruff, moto, ...): none importable, no mkdocs/pytest/ruff/pyright on PATH"
        )
        with prefect_server() as client_env, s3_server() as endpoint:
            run = collect_runs(client_env["PREFECT_API_URL"], endpoint)
            served = service_run(client_env["PREFECT_API_URL"], endpoint)
    rows = [
        ("a container: python -m flows.collect", run["container_s"], run["container_symbols"]),
        ("the host: the same command", run["host_s"], run["host_symbols"]),
        (
            "a process worker container: the deployment (--run-once)",
            run["worker_s"],
            run["worker_symbols"],
        ),
        (
            f"a container, {run['dask_worker_task_runs']} task runs on a Dask worker container",
            run["dask_s"],
            run["dask_symbols"],
        ),
    ]
    print("collect of the sample into moto S3, the Prefect server on the host (--network host):")
    print(f"  {'where':<66} {'wall s':>6} {'symbols in S3':>13}")
    for where, seconds, symbols in rows:
        print(f"  {where:<66} {seconds:>6.1f} {symbols:>13}")
    print(f"  flow runs in the server: {run['flow_runs']}")
    health = served["health"]
    print(f"the forecast service in a container (python -m service) over {served['store']}:")
    print(f"  `python -m flows.report` in a container first: {served['report_s']:.1f} s")
    print(
        f"  docker run to GET /health 200: {served['health_s']:.1f} s (status "
        f"{health['status']}, newest forecast {health['newest_forecast']}, "
        f"{health['sessions_behind']} sessions behind)"
    )
    print(
        f"  GET /v1/forecasts/latest: {served['latest']} with the token "
        f"({served['latest_rows']} rows, one per symbol of {served['symbols']}), "
        f"{served['latest_no_token']} without it, {served['latest_wrong_token']} with a wrong one"
    )
    print(f"  GET /report with the token: {served['report']} ({served['report_mb']:.1f} MB)")
    print(
        f"  the service's process: uid {served['uid']}; docker stop: {served['stop_s']:.1f} s, "
        f"exit code {served['exit_code']}, no container left, the port closed"
    )


if __name__ == "__main__":
    main()
