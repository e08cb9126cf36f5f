"""A Prefect server for a day of work: ``make server`` starts one in the background and
points every flow of this checkout at it; ``make server-stop`` stops it.

    python -m deployments.server start|stop|status

Without a server, each ``python -m flows.<name>`` starts Prefect's temporary one (about 6 s
of every ad-hoc run on this machine class, more on a busy one). The server's home (its
database, log and pid) is ``.prefect/`` in the checkout, so run history outlives a
restart. ``start`` writes ``.prefect/profiles.toml``, a Prefect profile ``sma-local``
whose ``PREFECT_API_URL`` is the server: the flows' command line uses it
(``use_project_server``) unless ``PREFECT_API_URL`` or ``PREFECT_PROFILES_PATH`` is set;
the prefect CLI does with ``export PREFECT_PROFILES_PATH=$PWD/.prefect/profiles.toml``.
Only the standard library is imported here: the flows' command line reads this module
before Prefect.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / ".prefect"
PROFILES = HOME / "profiles.toml"
PID_FILE = HOME / "sma-server.pid"
LOG_FILE = HOME / "server.log"
PROFILE = "sma-local"
HOST, PORT = "127.0.0.1", 4200
STARTUP_SECONDS = 120  # a first start creates the database


def project_api_url() -> str | None:
    """The API URL the project's profile names (None: no server was started here)."""
    try:
        profile = tomllib.loads(PROFILES.read_text())["profiles"][PROFILE]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return None
    return profile.get("PREFECT_API_URL")


def answers(url: str, timeout: float = 0.5) -> bool:
    """Whether something accepts connections where ``url`` points (a TCP connect: cheap)."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or HOST, parts.port or 80), timeout):
            return True
    except OSError:
        return False


def use_project_server(environ: os._Environ[str] | dict[str, str] = os.environ) -> str | None:
    """Point this process's Prefect at the project's server (the profile ``make server``
    wrote) when the environment names no API or profile of its own; the URL used, or None.
    A profile whose server is gone is left alone with a one-line warning: the flow then
    runs on a temporary server as it would without ``make server``."""
    if "PREFECT_API_URL" in environ or "PREFECT_PROFILES_PATH" in environ:
        return None
    url = project_api_url()
    if url is None:
        return None
    if not answers(url):
        print(
            f"warning: the project's Prefect server ({url}, {PROFILES}) does not "
            "answer; using a temporary one (make server starts it again, make server-stop forgets it)",
            file=sys.stderr,
        )
        return None
    environ["PREFECT_PROFILES_PATH"] = str(PROFILES)
    return url


def _pid() -> int | None:
    """The server's process id while it runs (a stale pid file is removed)."""
    try:
        pid = int(PID_FILE.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        PID_FILE.unlink(missing_ok=True)
        return None
    return pid


def _port() -> int:
    """4200 (or ``PREFECT_SERVER_API_PORT``) when free, else any free port."""
    wanted = int(os.environ.get("PREFECT_SERVER_API_PORT", PORT))
    for port in (wanted, 0):
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError("no free port")


def _write_profile(url: str) -> None:
    """The project's profile, written whole then moved into place."""
    text = f'active = "{PROFILE}"\n\n[profiles.{PROFILE}]\nPREFECT_API_URL = "{url}"\n'
    tmp = PROFILES.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(PROFILES)


def start() -> int:
    """Start the server (or report the one running), wait until it answers, write the profile."""
    HOME.mkdir(exist_ok=True)
    url = project_api_url()
    if _pid() is not None and url and answers(url):
        print(f"the project's Prefect server is running: {url}")
        return 0
    port = _port()
    url = f"http://{HOST}:{port}/api"
    env = {
        k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_PROFILES_PATH")
    }
    env |= {"PREFECT_HOME": str(HOME), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    prefect = str(Path(sys.executable).parent / "prefect")
    with LOG_FILE.open("ab") as log:
        proc = subprocess.Popen(
            [prefect, "server", "start", "--host", HOST, "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this command and the terminal's Ctrl-C
        )
    PID_FILE.write_text(str(proc.pid))
    import urllib.request

    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            PID_FILE.unlink(missing_ok=True)
            print(
                f"error: the Prefect server exited ({proc.returncode}): see {LOG_FILE}",
                file=sys.stderr,
            )
            return 1
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).close()
            break
        except OSError:
            time.sleep(0.3)
    else:
        stop()
        print(
            f"error: the Prefect server did not answer in {STARTUP_SECONDS} s: see {LOG_FILE}",
            file=sys.stderr,
        )
        return 1
    _write_profile(url)
    print(
        f"Prefect server at {url} (UI {url.removesuffix('/api')}); python -m flows.<name> in this "
        f"checkout uses it (profile {PROFILES}); make server-stop stops it"
    )
    return 0


def stop() -> int:
    """Stop the server and remove the profile (flows go back to temporary servers)."""
    PROFILES.unlink(missing_ok=True)
    pid = _pid()
    if pid is None:
        print("no project Prefect server is running")
        return 0
    os.killpg(pid, signal.SIGTERM)
    for _ in range(100):
        if _pid_gone(pid):
            break
        time.sleep(0.1)
    else:
        os.killpg(pid, signal.SIGKILL)
    PID_FILE.unlink(missing_ok=True)
    print("the project's Prefect server is stopped")
    return 0


def _pid_gone(pid: int) -> bool:
    """Whether the process has exited (reaped, or a zombie of another parent)."""
    try:
        os.kill(pid, 0)
    except OSError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return False


def status() -> int:
    """0 when the server runs and answers, else 1."""
    url = project_api_url()
    if _pid() is not None and url and answers(url):
        print(f"running: {url}")
        return 0
    print("not running (make server starts it)")
    return 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    commands = {"start": start, "stop": stop, "status": status}
    if len(args) != 1 or args[0] not in commands:
        print(f"usage: python -m deployments.server {'|'.join(commands)}", file=sys.stderr)
        return 2
    return commands[args[0]]()


if __name__ == "__main__":
    raise SystemExit(main())
