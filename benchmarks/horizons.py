"""What several horizons in one store cost: features and train for horizons 1, 3 and 10
against horizon 3 alone, on the bundled sample (40 tickers, 2013-2018), each a whole
process; the median of ``--repeats`` runs of each.

    python -m benchmarks.horizons [--repeats 3] [--model lightgbm]

The store is collected once, then copied for every run (so every run builds its features
and trains from scratch). The backtest's figure (issue 23's other half) comes from whole
Yahoo backtests at each horizon (``benchmarks.tail_risk``, docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from benchmarks.processes import run_measured

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"


def timed(store: Path, horizons: str, model: str, env: dict[str, str]) -> float:
    """Seconds of flows.features then flows.train for these horizons, on ``store``."""
    env = env | {"SMA_STORE": str(store), "SMA_FEATURES__HORIZONS": horizons}
    total = 0.0
    for args in (["-m", "flows.features"], ["-m", "flows.train", "--model", model]):
        got = run_measured(args, env)
        if got.returncode:
            raise SystemExit(f"{args} failed ({got.returncode}):\n{got.output[-3000:]}")
        total += got.seconds
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="lightgbm")
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sma-bench-horizons-") as tmp:
        base = Path(tmp) / "collected"
        env = os.environ | {
            "SMA_TICKERS": str(SAMPLE / "tickers.csv"),
            "SMA_TRACKING__WANDB_MODE": "disabled",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        }
        got = run_measured(
            ["-m", "flows.collect", "--store", str(base), "--source", "local",
             "--source-path", str(SAMPLE / "prices"), "--start", "2013-01-01", "--end", "2018-02-07"],
            env,
        )  # fmt: skip
        if got.returncode:
            raise SystemExit(f"collect failed:\n{got.output[-3000:]}")
        seconds: dict[str, list[float]] = {"3": [], "1,3,10": []}
        for k in range(ns.repeats):
            for horizons in seconds:
                store = Path(tmp) / f"s{k}-{horizons.replace(',', '_')}"
                shutil.copytree(base, store)
                seconds[horizons].append(timed(store, horizons, ns.model, env))
                shutil.rmtree(store)
        one, three = (statistics.median(seconds[h]) for h in ("3", "1,3,10"))
        print(f"features + train, {ns.model}, median of {ns.repeats}: horizon 3 alone {one:.1f} s; "
              f"1, 3 and 10 in one store {three:.1f} s: {three / one:.2f} x")  # fmt: skip
        print("runs:", {h: [round(v, 1) for v in s] for h, s in seconds.items()})


if __name__ == "__main__":
    main()
