"""A Prefect server for a day of work: ``make server`` starts one in the background and
points every flow of this checkout at it; ``make server-stop`` stops it.

    python -m deployments.server start|stop|status

Without a server, each ``python -m flows.<name>`` starts a temporary one of its own
(``deployments.temporary``: about 6 s of every ad-hoc run on this machine class, more on a
busy one). The server's home (its
database, log and pid) is ``.prefect/`` in the checkout, so run history outlives a
restart. ``start`` writes ``.prefect/sma-profiles.toml``, a Prefect profile ``sma-local``
whose ``PREFECT_API_URL`` is the server: the flows' command line uses it
(``use_project_server``) unless ``PREFECT_API_URL``, ``PREFECT_PROFILES_PATH`` or
``PREFECT_PROFILE`` is set; the prefect CLI does with
``export PREFECT_PROFILES_PATH=$PWD/.prefect/sma-profiles.toml``.
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
from collections.abc import MutableMapping
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / ".prefect"
PROFILES = HOME / "sma-profiles.toml"  # not profiles.toml: the server's own, in its home
PID_FILE = HOME / "sma-server.pid"
LOG_FILE = HOME / "server.log"
PROFILE = "sma-local"
HOST, PORT = "127.0.0.1", 4200
PREFECT = str(Path(sys.executable).parent / "prefect")
STARTUP_SECONDS = 120  # a first start creates the database
# a user's own Prefect API or profile: the project's server never overrides them
USER_CHOICE = ("PREFECT_API_URL", "PREFECT_PROFILES_PATH", "PREFECT_PROFILE")


def project_api_url() -> str | None:
    """The API URL the project's profile names (None: no server was started here, or a
    profile that is not one ``start`` wrote)."""
    try:
        url = tomllib.loads(PROFILES.read_text())["profiles"][PROFILE]["PREFECT_API_URL"]
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises on a malformed port
    except Exception:  # missing, unreadable or hand-edited: no project server
        return None
    return url if isinstance(url, str) and parts.hostname else None


def answers(url: str, timeout: float = 0.5) -> bool:
    """Whether something accepts connections where ``url`` points (a TCP connect: cheap)."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or HOST, parts.port or 80), timeout):
            return True
    except (OSError, ValueError):
        return False


def use_project_server(environ: MutableMapping[str, str] = os.environ) -> str | None:
    """Point this process's Prefect at the project's server (the profile ``make server``
    wrote) when the environment names no API or profile of its own; the URL used, or None.
    Call it before Prefect is imported: Prefect reads its settings then. A profile whose
    server is gone is left alone with a one-line warning: the flow then runs on a temporary
    server, as without ``make server``."""
    if any(name in environ for name in USER_CHOICE):
        return None
    url = project_api_url()
    if url is None:
        return None
    if recorded_pid() is None or not answers(url):
        print(
            f"warning: the project's Prefect server ({url}, {PROFILES}) does not answer; "
            "using a temporary one (make server starts it again, make server-stop forgets it)",
            file=sys.stderr,
        )
        return None
    environ["PREFECT_PROFILES_PATH"] = str(PROFILES)
    return url


def recorded_pid() -> int | None:
    """The pid ``start`` recorded (None: none, or that process has exited)."""
    try:
        pid = int(PID_FILE.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def server_pid() -> int | None:
    """The recorded pid while that process still runs a Prefect server that leads its own
    process group: a pid reused after a reboot is not ours to signal."""
    pid = recorded_pid()
    if pid is None:
        return None
    try:
        command = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, timeout=5
        ).stdout
        leads = os.getpgid(pid) == pid
    except (OSError, subprocess.SubprocessError):
        return None
    return pid if leads and "prefect" in command and "server" in command else None


def free_port(host: str = HOST, wanted: int = 0) -> int:
    """``wanted`` when it is free, else any free port (probed as servers bind: a port in
    TIME_WAIT after a stop counts as free)."""
    for port in (wanted, 0) if wanted else (0,):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError("no free port")


def wait_healthy(url: str, proc: subprocess.Popen[bytes], seconds: float = STARTUP_SECONDS) -> bool:
    """Poll ``url``/health until it answers (True), the process exits or time runs out."""
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).close()
            return True
        except OSError:
            time.sleep(0.3)
    return False


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
    if server_pid() is not None:
        if url and answers(url):
            print(f"the project's Prefect server is running: {url}")
            return 0
        stop()  # started here but not answering: replaced, not left running beside a new one
    port = free_port(HOST, int(os.environ.get("PREFECT_SERVER_API_PORT", PORT)))
    url = f"http://{HOST}:{port}/api"
    env = {k: v for k, v in os.environ.items() if k not in USER_CHOICE}
    env |= {"PREFECT_HOME": str(HOME), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    with LOG_FILE.open("ab") as log:
        proc = subprocess.Popen(
            [PREFECT, "server", "start", "--host", HOST, "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this command and the terminal's Ctrl-C
        )
    PID_FILE.write_text(str(proc.pid))
    if not wait_healthy(url, proc):
        why = f"exited ({proc.returncode})" if proc.poll() is not None else "did not answer"
        stop()
        print(f"error: the Prefect server {why}: see {LOG_FILE}", file=sys.stderr)
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
    pid = server_pid()
    PID_FILE.unlink(missing_ok=True)
    if pid is None:
        print("no project Prefect server is running")
        return 0
    try:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(100):
            if _pid_gone(pid):
                break
            time.sleep(0.1)
        else:
            os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:  # gone meanwhile
        pass
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
    if server_pid() is not None and url and answers(url):
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
