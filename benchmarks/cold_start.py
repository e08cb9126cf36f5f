"""Cold start: `--help` of every flow, and the features flow as a whole process.

    python -m benchmarks.cold_start [--repeats 3]

`--help` is timed for every `flows/<name>.py` (median of 5 processes each; target < 1 s).
The features flow runs as a user runs it, `python -m flows.features --groups seed`, against
a running `prefect server start`, on the 249 Yahoo tickers of ../shared/data (0.93 M rows
after the quality rules), each repeat on a fresh copy of the store's raw prices so the build
is never skipped. Target: <= 4.5 s whole-process wall (median); also prints the import
cost of `flows.features` alone.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.features import YAHOO, prepare
from benchmarks.servers import prefect_server

ROOT = Path(__file__).resolve().parent.parent
FLOWS = sorted(p.stem for p in (ROOT / "flows").glob("*.py") if p.stem not in ("__init__", "shell"))


def wall(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Seconds of one process; it must succeed."""
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr[-2000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not YAHOO.is_dir():
        print(f"error: {YAHOO} not found (see ../shared/data/README.md)", file=sys.stderr)
        return 2
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    env = {k: v for k, v in env.items() if not k.startswith("SMA_")}
    print("--help, median of 5 processes:")
    slow = []
    for name in FLOWS:
        seconds = statistics.median(
            wall([sys.executable, "-m", f"flows.{name}", "--help"], env) for _ in range(5)
        )
        slow += [name] if seconds >= 1 else []
        print(f"  {name:<10} {seconds:.2f} s")
    imports = [wall([sys.executable, "-c", "import flows.features"], env) for _ in range(3)]
    print(f"import flows.features: {statistics.median(imports):.2f} s (median of 3)")

    template = Path(tempfile.mkdtemp(prefix="sma-cold-"))
    rows = prepare(template / "store", 1)
    with prefect_server() as server:
        runs = []
        for i in range(args.repeats + 1):  # the first run registers the flow: a warm-up
            store = template / f"run{i}"
            shutil.copytree(template / "store", store)
            seconds = wall(
                [sys.executable, "-m", "flows.features", "--store", str(store), "--groups", "seed"],
                env | server,
            )
            print(f"  features run {i}{' (warm-up)' if i == 0 else ''}: {seconds:.2f} s")
            runs += [seconds] if i else []
            shutil.rmtree(store)
    shutil.rmtree(template)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    median = statistics.median(runs)
    print(
        f"features flow, whole process, seed group, {rows:,} rows: median {median:.2f} s "
        f"(target <= 4.5 s), peak RSS of a child process {peak:.0f} MB"
    )
    print(f"--help under 1 s: {'every flow' if not slow else 'NOT ' + ', '.join(slow)}")
    return 0 if median <= 4.5 and not slow else 1


if __name__ == "__main__":
    sys.exit(main())
