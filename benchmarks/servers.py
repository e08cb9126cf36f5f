"""Servers a benchmark runs against, started and stopped by the benchmark itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deployments.server import PREFECT, free_port, wait_healthy


@contextmanager
def prefect_server(host: str = "127.0.0.1") -> Iterator[dict[str, str]]:
    """`prefect server start` (free port, fresh home); yields the environment of a client."""
    home = Path(tempfile.mkdtemp(prefix="sma-bench-prefect-"))
    port = free_port(host)
    env = os.environ | {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": f"http://{host}:{port}/api",
    }
    proc = subprocess.Popen(
        [PREFECT, "server", "start", "--host", host, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        if not wait_healthy(env["PREFECT_API_URL"], proc):
            raise RuntimeError("prefect server did not start in 120 s")
        yield env
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)


def flow_runs(api: str) -> list[dict[str, Any]]:
    """Every flow run a Prefect API holds, as its JSON."""
    request = urllib.request.Request(
        f"{api}/flow_runs/filter",
        data=b"{}",
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())
