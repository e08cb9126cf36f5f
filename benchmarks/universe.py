"""A 5,000-symbol universe: synthetic 5,000 symbols x 20 years (26 M rows) through
collect -> features -> train, each stage as a user runs it (`python -m flows.<stage>`)
against a running `prefect server start`, on threads and then on Dask (2 local workers).

    python -m benchmarks.universe [--symbols 5000] [--runners threads,dask] [--stages collect,features,train]

Prints wall time and peak RSS per stage (the flow process, each Dask worker process, and
the whole process tree, sampled every 0.2 s). Settings a user at this scale sets, and
this benchmark uses: feature batches of 500 symbols (`SMA_FEATURES__SYMBOLS_PER_TASK`), LightGBM
on a 730-day lookback (`SMA_MODEL__NAME`, `SMA_MODEL__LOOKBACK_DAYS`; train reads only
that window). Train maps no tasks: it runs once, on threads. Target: every stage
finishes with peak RSS under 16 GB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from benchmarks.servers import prefect_server

ROOT = Path(__file__).resolve().parent.parent
STAGE_SETTINGS = {
    "collect": {"SMA_SOURCE": "synthetic", "SMA_START": "2001-01-01", "SMA_END": "2020-12-31"},
    "features": {"SMA_FEATURES__SYMBOLS_PER_TASK": "500"},
    "train": {
        "SMA_MODEL__NAME": "lightgbm",
        "SMA_MODEL__LOOKBACK_DAYS": "730",
        "SMA_TRACKING__WANDB_MODE": "disabled",
    },
}


def run_stage(stage: str, env: dict[str, str]) -> dict[str, float]:
    """Run one flow; its wall time, and peak RSS (MB) of the flow process, of its largest
    worker process, and of the whole process tree."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", f"flows.{stage}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    root = psutil.Process(proc.pid)
    peak = {"flow": 0.0, "worker": 0.0, "tree": 0.0}
    workers: set[int] = set()
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            rss = {p.pid: p.memory_info().rss / 2**20 for p in tree}
            for p in tree[1:]:
                if "spawn_main" in " ".join(p.cmdline()):
                    workers.add(p.pid)
        except psutil.Error:
            continue
        peak["flow"] = max(peak["flow"], rss.get(proc.pid, 0.0))
        peak["worker"] = max([peak["worker"], *(rss.get(w, 0.0) for w in workers)])
        peak["tree"] = max(peak["tree"], sum(rss.values()))
        time.sleep(0.2)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode:
        raise SystemExit(f"{stage} failed ({proc.returncode}):\n{out[-4000:]}")
    return peak | {"seconds": time.perf_counter() - started, "workers": len(workers)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=5000)
    parser.add_argument("--runners", default="threads,dask")
    parser.add_argument("--stages", default="collect,features,train")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sma-universe-"))
    tickers = work / "tickers.csv"
    tickers.write_text("Symbol\n" + "".join(f"SYN{i:04d}\n" for i in range(args.symbols)))
    rows = []
    with prefect_server() as server:
        for runner in args.runners.split(","):
            store = work / f"store-{runner}"
            env = {k: v for k, v in os.environ.items() if not k.startswith("SMA_")} | server
            env |= {
                "PYTHONPATH": str(ROOT),
                "SMA_STORE": str(store),
                "SMA_TICKERS": str(tickers),
                "SMA_TASK_RUNNER": runner,
                "SMA_DASK__WORKERS": "2",
            }
            for stage in args.stages.split(","):
                if stage == "train" and runner != "threads":
                    continue  # no mapped task: the same process on either runner
                got = run_stage(stage, env | STAGE_SETTINGS[stage])
                rows.append((runner, stage, got))
                print(
                    f"{runner:<8} {stage:<9} {got['seconds']:8.1f} s  flow {got['flow']:8,.0f} MB  "
                    f"worker {got['worker']:7,.0f} MB ({got['workers']:.0f} seen)  "
                    f"tree {got['tree']:8,.0f} MB",
                    flush=True,
                )
            size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file()) / 2**30
            print(f"{runner}: store {size:.1f} GB", flush=True)
            shutil.rmtree(store)
    shutil.rmtree(work)
    worst = max(r[2]["tree"] for r in rows)
    print(f"peak RSS of any stage's process tree: {worst / 1024:.1f} GB (target < 16 GB)")
    return 0 if worst < 16 * 1024 else 1


if __name__ == "__main__":
    sys.exit(main())
