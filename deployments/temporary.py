"""The temporary Prefect server of one ``python -m flows.<name>`` run, started by the
command line itself instead of by Prefect on first use, so that it

- ends with the run however the run ends: the server watches its parent
  (``core.lifeline``) and exits when it is gone, a SIGKILL of the run included;
- gets a start-up limit that holds on a busy machine (``STARTUP_LIMIT``, Prefect's own
  setting's name, read from the environment; default ``DEFAULT_LIMIT`` s instead of
  Prefect's 20) measured on the clock;
- fails in one line naming the cause and the cure.

Used only when no API is configured (no ``PREFECT_API_URL``, no project server). Run as a
module it is that server: ``python -m deployments.temporary PARENT_PID PORT``.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import tempfile
from collections.abc import MutableMapping
from dataclasses import dataclass

from core.errors import InputError, NothingUsableError
from deployments.server import HOST, ROOT, free_port, wait_healthy

STARTUP_LIMIT = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
DEFAULT_LIMIT = 120  # both cores busy: starts of 30-80 s were seen (Prefect waits 20 s)
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


class StartupLimitError(InputError):
    """The start-up limit is not a whole number of seconds (Prefect reads it as one too)."""


def startup_limit(environ: MutableMapping[str, str] | None = None) -> int:
    """The start-up limit in seconds: ``STARTUP_LIMIT`` from the environment, else (unset or
    empty) ``DEFAULT_LIMIT``; checked before Prefect reads it (``StartupLimitError``, exit 2)."""
    env = os.environ if environ is None else environ
    value = env.get(STARTUP_LIMIT, "").strip()
    if not value:
        env.pop(STARTUP_LIMIT, None)  # set but empty: unset (Prefect would refuse it)
        return DEFAULT_LIMIT
    if not value.isdigit() or int(value) < 1:
        raise StartupLimitError(
            f"{STARTUP_LIMIT}={value!r} is not a whole number of seconds of at least 1"
        )
    return int(value)


def start_temporary(limit: int) -> TemporaryServer:
    """Start a server for this process and wait until it answers (``ServerStartError``, one
    line with the cause and the cure, when it does not within ``limit`` seconds). It is
    stopped at exit (after Prefect's own exit handlers, registered later, have shipped the
    run's last logs to it), at once when it fails or a stop signal cuts the wait short."""
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
        server = TemporaryServer(url, process)
        atexit.register(server.stop)
        try:
            healthy = wait_healthy(url, process, limit)
        except BaseException:  # a stop signal while waiting
            server.stop()
            raise
        if healthy:
            return server
        exited = process.poll()
        server.stop()
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
