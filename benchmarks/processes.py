"""A command measured as a whole process tree: wall time and peak resident memory of the
process itself, of its largest worker (a ``multiprocessing`` spawn: GARCH fits, Dask), and
of everything it started together, sampled every 0.2 s."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Measured:
    """One run: wall seconds, peak RSS in MB (``flow``: the process; ``worker``: its largest
    spawned worker; ``tree``: the sum over the process and all its descendants), how many
    workers were seen, the exit code and what it printed (stdout and stderr together)."""

    seconds: float
    flow: float
    worker: float
    tree: float
    workers: int
    returncode: int
    output: str


def is_worker(process: psutil.Process) -> bool:
    """Whether a process is a ``multiprocessing`` spawn (a pool's or Dask's worker)."""
    return "spawn_main" in " ".join(process.cmdline())


def run_measured(args: list[str], env: dict[str, str], echo: bool = False) -> Measured:
    """``python ARGS`` from the repository root, sampled until it exits; with ``echo``, its
    output is shown as it comes (a long run's progress) as well as kept."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out: list[str] = []
    reader = _drain(proc, out, echo)
    root = psutil.Process(proc.pid)
    flow = worker = tree = 0.0
    workers: set[int] = set()
    while proc.poll() is None:
        rss: dict[int, float] = {}
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:  # the root just exited
            procs = []
        for p in procs:
            try:  # each on its own: one exiting (a zombie) must not void the sample
                rss[p.pid] = p.memory_info().rss / 2**20
                if p is not root and is_worker(p):
                    workers.add(p.pid)
            except psutil.Error:
                continue
        flow = max(flow, rss.get(proc.pid, 0.0))
        worker = max([worker, *(rss.get(w, 0.0) for w in workers)])
        tree = max(tree, sum(rss.values()))
        time.sleep(0.2)
    reader.join()
    seconds = time.perf_counter() - started
    return Measured(seconds, flow, worker, tree, len(workers), proc.returncode, "".join(out))


def _drain(proc: subprocess.Popen[str], out: list[str], echo: bool) -> threading.Thread:
    """Read the process's output on a thread (a full pipe would stall it)."""

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            if echo:
                print(line, end="", flush=True)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread
