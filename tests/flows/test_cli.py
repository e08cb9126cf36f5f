"""Flows as a user runs them: ``python -m flows.<name>`` in its own process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.factories import ROOT


@pytest.fixture()
def run(prefect_server, tmp_path):
    """Run ``python -m flows.<name> ARGS`` against the session's Prefect server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMA_")}
    env |= {"PREFECT_API_URL": prefect_server, "PYTHONPATH": str(ROOT)}

    def go(name: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", f"flows.{name}", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    return go


def test_an_expected_error_is_one_line_without_traceback_unless_debug(run, tmp_path):
    done = run("features", "--store", str(tmp_path / "empty"))
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert (
        last
        == f"error: no prices in {tmp_path / 'empty'}/raw/prices: run `python -m flows.collect` first"
    )
    debug = run("features", "--store", str(tmp_path / "empty"), "--debug")
    assert debug.returncode == 2 and "Traceback" in debug.stdout + debug.stderr
    assert not (tmp_path / "empty").exists()


def test_tuning_a_model_without_a_search_space_is_exit_2_naming_the_tunable_ones(run, tmp_path):
    """--model lists every regressor (loading each spec would slow --help); tune refuses the
    ones with nothing to tune with the settings, before Prefect starts: one line, nothing else."""
    done = run("tune", "--model", "ewma", "--store", str(tmp_path / "store"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: model 'ewma' has no parameters to tune (tunable: catboost, lightgbm)"
    ]
    assert "Traceback" not in done.stdout + done.stderr


def test_a_temporary_server_that_does_not_start_in_time_is_one_line_with_the_cure(tmp_path):
    """No API configured: the command starts its own temporary server. One that does not
    answer within the start-up limit ends the run in one line naming the cause and both
    cures (exit 1), and is not left running; nothing is written to the store."""
    import psutil

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMA_", "PREFECT_API"))}
    env |= {"PYTHONPATH": str(ROOT), "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "1"}
    run = subprocess.Popen(
        [sys.executable, "-m", "flows.prune", "--store", str(tmp_path / "store")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 1, stderr
    assert stderr.strip().splitlines() == [
        "error: Prefect's temporary server did not answer within 1 s (a busy machine?): start "
        "one with `make server` or point PREFECT_API_URL at a running server, or raise "
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
    ]
    assert not (tmp_path / "store").exists()
    own = ["-m", "deployments.temporary", str(run.pid)]  # its server names it as parent
    servers = [
        p for p in psutil.process_iter(["pid", "cmdline"]) if (p.info["cmdline"] or [])[1:4] == own
    ]
    assert servers == []
