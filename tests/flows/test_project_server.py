"""``make server``: one local Prefect server that ad-hoc flows of the checkout use, through the
project's profile (``deployments/server.py``), and a warning, not a failure, once it is gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

import deployments.server as server
from benchmarks.servers import flow_runs
from tests.factories import ROOT, free_port

OLD_STORE = ROOT / "tests" / "data" / "store_v1"


@pytest.fixture()
def project(tmp_path, monkeypatch) -> Path:
    """The server's home in a temporary folder instead of the checkout's ``.prefect/``."""
    home = tmp_path / ".prefect"
    monkeypatch.setattr(server, "HOME", home)
    monkeypatch.setattr(server, "PROFILES", home / "sma-profiles.toml")
    monkeypatch.setattr(server, "PID_FILE", home / "sma-server.pid")
    monkeypatch.setattr(server, "LOG_FILE", home / "server.log")
    monkeypatch.setenv("PREFECT_SERVER_API_PORT", str(free_port()))
    return home


def ad_hoc_run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m flows.prune ARGS`` as a user runs it, with no Prefect API or profile in the
    environment, in a checkout whose ``.prefect/`` is ``home``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PREFECT_API_URL", "PREFECT_PROFILES_PATH") and not k.startswith("SMA_")
    }
    env["PYTHONPATH"] = str(ROOT)
    code = (
        "import runpy, sys; from pathlib import Path; import deployments.server as s; "
        f"s.PROFILES = Path({str(home / 'sma-profiles.toml')!r}); "
        f"s.PID_FILE = Path({str(home / 'sma-server.pid')!r}); "
        f"sys.argv = ['flows.prune', *{list(args)!r}]; "
        "runpy.run_module('flows.prune', run_name='__main__')"
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )


def flow_names(url: str) -> list[str]:
    """Names of the flows whose runs the server holds, one per run."""
    names = []
    for run in flow_runs(url):
        with urllib.request.urlopen(f"{url}/flows/{run['flow_id']}", timeout=10) as response:
            names.append(json.loads(response.read())["name"])
    return sorted(names)


def test_an_ad_hoc_flow_runs_on_the_project_server_and_not_once_it_is_stopped(
    project, old_store, capsys
):
    store = old_store
    assert server.start() == 0
    try:
        url = server.project_api_url()
        assert url and url.endswith(f":{os.environ['PREFECT_SERVER_API_PORT']}/api")
        assert server.status() == 0
        assert server.start() == 0  # a second start reports the running one
        assert "is running" in capsys.readouterr().out

        done = ad_hoc_run(project, "--store", str(store), "--dry-run")
        assert done.returncode == 0, done.stderr
        assert "Starting temporary server" not in done.stdout + done.stderr
        assert flow_names(url) == ["prune"]

        env = {"HOME": "/root"}
        assert server.use_project_server(env) == url
        assert env["PREFECT_PROFILES_PATH"] == str(project / "sma-profiles.toml")
        for own in ("PREFECT_API_URL", "PREFECT_PROFILE"):  # the user's own choice wins
            mine = {own: "x"}
            assert server.use_project_server(mine) is None and "PREFECT_PROFILES_PATH" not in mine
    finally:
        assert server.stop() == 0
    assert (
        not (project / "sma-profiles.toml").exists() and not (project / "sma-server.pid").exists()
    )
    assert server.status() == 1

    # a profile whose server is gone (a reboot): one warning line, a temporary server
    server._write_profile(url)
    capsys.readouterr()
    assert server.use_project_server({}) is None
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("warning: the project's Prefect server")


def test_a_hand_edited_profile_or_a_reused_pid_is_not_taken_for_the_server(project, capsys):
    """A profile ``start`` did not write means no project server (never a traceback), and a
    recorded pid that a reboot gave to another process is never signalled."""
    project.mkdir()
    for text in ('profiles = "x"', "[profiles.sma-local]\nPREFECT_API_URL = 5", b"\xff\xfe"):
        path = project / "sma-profiles.toml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        assert server.project_api_url() is None
        assert server.use_project_server({}) is None and not capsys.readouterr().err
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        (project / "sma-server.pid").write_text(str(other.pid))
        assert server.recorded_pid() == other.pid and server.server_pid() is None
        assert server.stop() == 0 and other.poll() is None  # still running: not ours
    finally:
        other.kill()
        other.wait()
