"""A 5,000-symbol universe: synthetic 5,000 symbols x 20 years (26 M rows) through
collect -> features -> train, each stage as a user runs it (`python -m flows.<stage>`)
against a running `prefect server start`, on threads and then on Dask (2 local workers).

    python -m benchmarks.universe [--symbols 5000] [--runners threads,dask]
                                  [--stages collect,features,train] [--model NAME] [--keep DIR]

Prints wall time and peak RSS per stage (the flow process, each Dask worker process, and
the whole process tree, sampled every 0.2 s: ``benchmarks.processes``). The one setting a
user at this scale sets, and this benchmark uses: feature batches of 500 symbols
(`SMA_FEATURES__SYMBOLS_PER_TASK`). Train fits the default model on the default lookback,
with every baseline, at the default horizon; it maps no tasks: it runs once, on threads.
Targets: every stage finishes with peak RSS under 16 GB; train within 15 minutes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.processes import Measured, run_measured
from benchmarks.servers import prefect_server

ROOT = Path(__file__).resolve().parent.parent
STAGE_SETTINGS = {
    "collect": {"SMA_SOURCE": "synthetic", "SMA_START": "2001-01-01", "SMA_END": "2020-12-31"},
    "features": {"SMA_FEATURES__SYMBOLS_PER_TASK": "500"},
    "train": {"SMA_TRACKING__WANDB_MODE": "disabled"},  # the default model and lookback
}


def run_stage(stage: str, env: dict[str, str]) -> Measured:
    """Run one flow as a whole process; its wall time and peak RSS."""
    got = run_measured(["-m", f"flows.{stage}"], env)
    if got.returncode:
        raise SystemExit(f"{stage} failed ({got.returncode}):\n{got.output[-4000:]}")
    return got


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=5000)
    parser.add_argument("--runners", default="threads,dask")
    parser.add_argument("--stages", default="collect,features,train")
    parser.add_argument("--model", help="train this regressor instead of the default model")
    parser.add_argument(
        "--keep",
        help="folder kept afterwards (tickers, stores): a later run can take --stages train",
    )
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="sma-universe-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
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
                settings = STAGE_SETTINGS[stage]
                if stage == "train" and args.model:
                    settings = settings | {"SMA_MODEL__NAME": args.model}
                got = run_stage(stage, env | settings)
                rows.append((runner, stage, got))
                print(
                    f"{runner:<8} {stage:<9} {got.seconds:8.1f} s  flow {got.flow:8,.0f} MB  "
                    f"worker {got.worker:7,.0f} MB ({got.workers} seen)  tree {got.tree:8,.0f} MB",
                    flush=True,
                )
            size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file()) / 2**30
            print(f"{runner}: store {size:.1f} GB", flush=True)
            if not args.keep:
                shutil.rmtree(store)
    if not args.keep:
        shutil.rmtree(work)
    worst = max(r[2].tree for r in rows)
    train = max((r[2].seconds for r in rows if r[1] == "train"), default=0.0)
    print(f"peak RSS of any stage's process tree: {worst / 1024:.1f} GiB (target < 16 GB)")
    print(f"train: {train / 60:.1f} min (target <= 15 min)")
    return 0 if worst * 2**20 < 16e9 and train <= 900 else 1


if __name__ == "__main__":
    sys.exit(main())
