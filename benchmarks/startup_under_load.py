"""A flow started while both cores are saturated: does it start and complete?

    python -m benchmarks.startup_under_load [--repeats 3] [--burners N] [--code DIR]

Starts N busy processes (default: one per core, each a pure-Python loop), then runs
``python -m flows.collect`` on the bundled sample (local source, a fresh store) as a user
runs it: no Prefect API configured, so the command starts a temporary server, and a fresh
``PREFECT_HOME`` each repeat (the first start creates the server's database: the slow
case). ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` is left unset (the defaults
apply). Prints each run's exit code, wall seconds and error line (else last line), then the
median.
``--code`` runs another checkout (e.g. the previous main) with this interpreter.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BURN = "while True: pass"


def run_once(code: Path, work: Path) -> tuple[int, float, str]:
    """One collect of the sample into a fresh store: (exit code, seconds, its error line, else
    its last stderr line)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMA_", "PREFECT_"))}
    env |= {
        "PYTHONPATH": str(code),
        "PREFECT_HOME": str(work / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "SMA_STORE": str(work / "store"),
        "SMA_TICKERS": str(ROOT / "data/sample/tickers.csv"),
        "SMA_SOURCE": "local",
        "SMA_SOURCE_PATH": str(ROOT / "data/sample/prices"),
        "SMA_START": "2013-01-01",
        "SMA_END": "2018-02-07",
        "SMA_TRACKING__WANDB_MODE": "disabled",
    }
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "flows.collect"], cwd=code, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    lines = done.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    return done.returncode, seconds, ((errors or lines or [""])[-1])[:200]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--burners", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--code", type=Path, default=ROOT)
    args = parser.parse_args()
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(args.burners)]
    results = []
    try:
        time.sleep(2)  # the burners are running
        for i in range(args.repeats):
            with tempfile.TemporaryDirectory(prefix="sma-load-") as tmp:
                code, seconds, last = run_once(args.code.resolve(), Path(tmp))
            results.append((code, seconds))
            print(f"run {i + 1}: exit {code} in {seconds:.1f} s: {last}")
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    ok = [s for c, s in results if c == 0]
    print(
        f"{len(ok)}/{len(results)} completed with {args.burners} busy processes"
        + (f"; median {statistics.median(ok):.1f} s" if ok else "")
    )
    return 0 if len(ok) == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
