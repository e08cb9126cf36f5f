"""The temporary Prefect server of one ``python -m flows.<name>`` run, started by the
command line itself instead of by Prefect on first use, so that it

- ends with the run however the run ends: the server watches its parent
  (``core.lifeline``) and exits when it is gone, a SIGKILL of the run included;
- gets a start-up limit that holds on a busy machine (``STARTUP_LIMIT``, Prefect's own
  setting, default ``DEFAULT_LIMIT`` s instead of Prefect's 20) measured on the clock;
- fails in one line naming the cause and the cure.

Used only when no API is configured (no ``PREFECT_API_URL``, no project server). Run as a
module it is that server: ``python -m deployments.temporary PARENT_PID PORT``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from core.errors import NothingUsableError
from deployments.server import HOST, ROOT, free_port, wait_healthy

STARTUP_LIMIT = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
DEFAULT_LIMIT = 120.0  # both cores busy: starts of 30-80 s were seen (Prefect waits 20 s)
# what Prefect sets for the temporary server it starts itself (prefect.server.api.server)
SERVER_ENV = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
}


class ServerStartError(NothingUsableError):
    """The temporary Prefect server did not answer within the start-up limit."""


@dataclass
class TemporaryServer:
    """A running temporary server: its API URL and its process."""

    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Terminate it (killed when it has not exited 5 s later)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def startup_limit(environ: dict[str, str] | None = None) -> float:
    """The start-up limit in seconds (``STARTUP_LIMIT``, else ``DEFAULT_LIMIT``)."""
    value = (os.environ if environ is None else environ).get(STARTUP_LIMIT, "")
    try:
        return float(value) if value.strip() else DEFAULT_LIMIT
    except ValueError:
        raise ServerStartError(f"{STARTUP_LIMIT}={value!r} is not a number of seconds") from None


def start_temporary() -> TemporaryServer:
    """Start a server for this process and wait until it answers (``ServerStartError``, one
    line with the cause and the cure, when it does not within the limit)."""
    limit = startup_limit()
    port = free_port(HOST)
    env = dict(os.environ) | SERVER_ENV
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    url = f"http://{HOST}:{port}/api"
    with tempfile.TemporaryFile() as log:  # the server's output: its last line names a failure
        process = subprocess.Popen(
            [sys.executable, "-m", "deployments.temporary", str(os.getpid()), str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C reaches the run, which then stops the server
        )
        if wait_healthy(url, process, limit):
            return TemporaryServer(url, process)
        exited = process.poll()
        TemporaryServer(url, process).stop()
        log.seek(0)
        lines = log.read().decode(errors="replace").strip().splitlines()
    why = (
        f"exited with code {exited}" + (f" ({lines[-1][:300]})" if lines else "")
        if exited is not None
        else f"did not answer within {limit:g} s (a busy machine?)"
    )
    raise ServerStartError(
        f"Prefect's temporary server {why}: start one with `make server` or point "
        f"PREFECT_API_URL at a running server, or raise {STARTUP_LIMIT}"
    )


def serve(parent: int, port: int) -> None:
    """Be the server: Prefect's API app under uvicorn, ending with ``parent``."""
    from core.lifeline import watch_parent

    watch_parent(parent)
    import uvicorn

    uvicorn.run(
        "prefect.server.api.server:create_app",
        factory=True,
        host=HOST,
        port=port,
        log_level="error",
        lifespan="on",
    )


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
