"""A flow stopped the way production stops it: SIGTERM (ECS, systemd, ``timeout``, a Prefect
cancellation), Ctrl-C (SIGINT to the terminal's process group) and SIGKILL, mid-run (while
train's GARCH pool works). Nothing it started keeps running, the run is marked Cancelled,
and the next run completes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from benchmarks.servers import flow_runs
from core import layout
from tests.factories import ROOT

LINE = (
    "error: stopped by {}: the flow run is marked Cancelled; run the same command again to continue"
)


def start_train(store: Path, api: str | None, cwd: Path) -> subprocess.Popen[str]:
    """``python -m flows.train --model garch`` in a session of its own (as a terminal runs
    it); without ``api``, on the temporary server the command starts itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMA_", "PREFECT_API"))}
    env |= {"PYTHONPATH": str(ROOT), "SMA_TRACKING__WANDB_MODE": "disabled"}
    if api is not None:
        env["PREFECT_API_URL"] = api
    return subprocess.Popen(
        [sys.executable, "-m", "flows.train", "--store", str(store), "--model", "garch"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def mid_fit(proc: subprocess.Popen[str]) -> list[psutil.Process]:
    """Wait until the run's GARCH pool works (mid-run); every process it started by then."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        children = psutil.Process(proc.pid).children(recursive=True)
        if any("spawn_main" in " ".join(c.cmdline()) for c in children):
            return children
        time.sleep(0.2)
    raise AssertionError(f"no pool worker started: {proc.communicate()[1][-2000:]}")


def left_running(processes: list[psutil.Process], seconds: float = 10) -> list[str]:
    """The processes still running (a zombie has ended) after up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        alive = []
        for p in processes:
            try:
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(" ".join(p.cmdline())[:120])
            except psutil.NoSuchProcess:
                continue
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def store_files(store: Path) -> dict[str, bytes]:
    return {
        p.relative_to(store).as_posix(): p.read_bytes() for p in store.rglob("*") if p.is_file()
    }


@pytest.mark.parametrize(
    ("signum", "to_group"), [(signal.SIGTERM, False), (signal.SIGINT, True)], ids=["term", "ctrl-c"]
)
def test_a_stopped_run_is_cancelled_in_one_line_and_leaves_no_process(
    prefect_server, featured, tmp_path, signum, to_group
):
    store = tmp_path / "store"
    shutil.copytree(featured, store)
    before = store_files(store)
    proc = start_train(store, prefect_server, tmp_path)
    started = mid_fit(proc)
    if to_group:  # Ctrl-C: the terminal signals the whole foreground process group
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err[-2000:]
    assert err.strip().splitlines()[-1] == LINE.format(signal.Signals(signum).name)
    assert "Traceback" not in err
    assert left_running(started) == []
    runs = [r for r in flow_runs(prefect_server) if r["parameters"].get("store") == str(store)]
    assert [r["state_type"] for r in runs] == ["CANCELLED"], runs
    # nothing the run did not finish is published: the store's files as they were, but for
    # the stopped run's own unfinished folder
    after = store_files(store)
    assert {k: v for k, v in after.items() if k in before} == before
    assert all(
        k.startswith("models/") and layout.RUN_MANIFEST.match(k) is None
        for k in after.keys() - before.keys()
    )


def test_a_sigkilled_run_leaves_nothing_running_and_the_next_run_completes(featured, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(featured, store)
    latest = (
        (store / layout.LATEST_RUN()).read_bytes()
        if (store / layout.LATEST_RUN()).exists()
        else None
    )
    proc = start_train(store, None, tmp_path)  # its own temporary server: a child too
    started = mid_fit(proc)
    assert any("deployments.temporary" in " ".join(p.cmdline()) for p in started)
    proc.kill()
    proc.wait(timeout=30)
    assert left_running(started) == []
    if latest is not None:
        assert (store / layout.LATEST_RUN()).read_bytes() == latest
    from flows.train import COMMAND as TRAIN

    assert TRAIN.main(["--store", str(store), "--model", "historical"]) == 0
    pointer = json.loads((store / layout.LATEST_RUN()).read_text())
    assert (store / layout.RUN_MANIFEST(run_id=pointer["run_id"])).exists()
