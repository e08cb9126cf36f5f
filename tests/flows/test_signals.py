"""A flow stopped the way production stops it: SIGTERM (ECS, systemd, ``timeout``, a Prefect
cancellation), Ctrl-C (SIGINT to the terminal's process group) and SIGKILL, mid-run (while
train's GARCH pool works). Nothing it started keeps running (checked by process tree), the
run is marked Cancelled, no file but the stopped run's own unfinished folder appears, and
the next run completes."""

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

from benchmarks.processes import is_worker
from benchmarks.servers import flow_runs
from core import layout
from tests.factories import ROOT, store_files

LINE = "error: stopped by {}{}; run the same command again to continue"
MARKED = ": the flow run is marked Cancelled"


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


def started(worker: psutil.Process) -> bool:
    """Whether a pool worker is past its interpreter's start: it ignores SIGINT (it leaves
    Ctrl-C to its parent) once its parent's main module, or its initializer, has said so.
    A Ctrl-C in the fraction of a second before that is the worker's own KeyboardInterrupt."""
    status = Path(f"/proc/{worker.pid}/status").read_text()
    ignored = int(
        next(line for line in status.splitlines() if line.startswith("SigIgn:")).split()[1], 16
    )
    return bool(ignored & (1 << (signal.SIGINT - 1)))


def mid_fit(proc: subprocess.Popen[str]) -> list[psutil.Process]:
    """Wait until the run's GARCH pool has all its workers (one per core: mid-run), started;
    every process the run started by then."""
    workers = len(os.sched_getaffinity(0))
    deadline = time.monotonic() + 240  # a temporary server's start on a busy machine too
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            children = psutil.Process(proc.pid).children(recursive=True)
            pool = [c for c in children if is_worker(c)]
            if len(pool) >= workers and all(map(started, pool)):
                return children
        except (psutil.Error, OSError):  # one just exited
            pass
        time.sleep(0.2)
    raise AssertionError(f"no pool of {workers} workers: {proc.communicate()[1][-2000:]}")


def left_running(processes: list[psutil.Process], seconds: float = 30) -> list[str]:
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


@pytest.mark.parametrize(
    ("signum", "api"),
    [(signal.SIGTERM, True), (signal.SIGINT, False)],
    ids=["term-on-a-server", "ctrl-c-on-its-own-temporary-server"],
)
def test_a_stopped_run_is_cancelled_in_one_line_and_leaves_no_process(
    prefect_server, featured, tmp_path, signum, api
):
    store = tmp_path / "store"
    shutil.copytree(featured, store)
    before = store_files(store)
    proc = start_train(store, prefect_server if api else None, tmp_path)
    started = mid_fit(proc)
    assert any("deployments.temporary" in " ".join(p.cmdline()) for p in started) is not api
    if signum == signal.SIGINT:  # Ctrl-C: the terminal signals the whole process group
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err[-2000:]
    assert err.strip().splitlines()[-1] == LINE.format(signal.Signals(signum).name, MARKED)
    assert "Traceback" not in err
    assert left_running(started) == []
    if api:  # the server outlives the run: its state is there to read
        runs = [r for r in flow_runs(prefect_server) if r["parameters"].get("store") == str(store)]
        assert [r["state_type"] for r in runs] == ["CANCELLED"], runs
    # nothing the run did not finish is published: every file as it was, beside the stopped
    # run's own unfinished folder (no manifest: never read, pruned)
    after = store_files(store)
    assert {k: v for k, v in after.items() if k in before} == before
    new = after.keys() - before.keys()
    assert all(k.startswith("models/") and layout.RUN_MANIFEST.match(k) is None for k in new)


def test_a_sigkilled_run_leaves_nothing_running_and_the_next_run_completes(featured, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(featured, store)
    latest = store / layout.LATEST_RUN()
    pointer = latest.read_bytes() if latest.exists() else None
    proc = start_train(store, None, tmp_path)  # its own temporary server: a child too
    started = mid_fit(proc)
    assert any("deployments.temporary" in " ".join(p.cmdline()) for p in started)
    proc.kill()
    proc.wait(timeout=30)
    assert left_running(started) == []
    assert (latest.read_bytes() if latest.exists() else None) == pointer
    from flows.train import COMMAND as TRAIN

    assert TRAIN.main(["--store", str(store), "--model", "historical"]) == 0
    run_id = json.loads(latest.read_text())["run_id"]
    assert (store / layout.RUN_MANIFEST(run_id=run_id)).exists()
