"""Collection benchmark: wall time, rows/s and peak RSS of the collect flow.

    python -m benchmarks.collect [--repeats 3] [--only synthetic|yahoo]

Scenarios, each run in a fresh process into a fresh local store (wall time includes
Python start-up and the temporary Prefect server's start-up):
- synthetic: 500 symbols x 20 years from the synthetic source;
- yahoo: the 249 tickers of ../shared/data/yahoo_sp500_2005_2021 through the local source.
Prints the median of the repeats (Prefect home kept between them, as on a user's machine)
and, apart, one cold start with a brand-new Prefect home. Targets (2 cores): synthetic <= 30 s, peak RSS <= 1.5 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
YAHOO = ROOT.parent / "shared" / "data" / "yahoo_sp500_2005_2021"


def scenario_args(name: str, work: Path) -> list[str]:
    tickers = work / "tickers.csv"
    if name == "synthetic":
        tickers.write_text("Symbol\n" + "\n".join(f"SYN{i:04d}" for i in range(500)) + "\n")
        return [
            "--tickers",
            str(tickers),
            "--source",
            "synthetic",
            "--start",
            "2001-01-01",
            "--end",
            "2020-12-31",
        ]
    if not YAHOO.is_dir():
        raise SystemExit(f"missing {YAHOO}")
    tickers.write_text("Symbol\n" + "\n".join(sorted(p.stem for p in YAHOO.glob("*.csv"))) + "\n")
    return [
        "--tickers",
        str(tickers),
        "--source",
        "local",
        "--source-path",
        str(YAHOO),
        "--start",
        "2005-01-01",
        "--end",
        "2021-02-05",
    ]


def child(args: list[str]) -> None:
    """Run the flow in this process; print rows and peak RSS of this process and its server."""
    from flows.collect import COMMAND, collect

    parsed = COMMAND.parser().parse_args(args)
    params = {arg.dest: getattr(parsed, arg.dest) for arg in COMMAND.args}
    summary: dict[str, Any] = collect(**params)  # pyright: ignore[reportAssignmentType]
    print(
        "RESULT "
        + json.dumps(
            {
                "rows": summary["new_rows"],
                "ok": summary["ok"],
                "failed": summary["failed"],
                "flow_seconds": summary["seconds"],
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "server_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            }
        )
    )


def measure(name: str, prefect_home: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sma-bench-") as tmp:
        work = Path(tmp)
        args = [*scenario_args(name, work), "--store", str(work / "store")]
        env = os.environ | {
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PYTHONPATH": str(ROOT),
        }
        env.pop("PREFECT_API_URL", None)
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.collect", "--child", *args],
            env=env,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        wall = time.perf_counter() - started
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            raise SystemExit(f"{name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return json.loads(line.removeprefix("RESULT ")) | {"wall_seconds": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=["synthetic", "yahoo"])
    parser.add_argument("--child", nargs=argparse.REMAINDER)
    ns = parser.parse_args()
    if ns.child is not None:
        child(ns.child)
        return
    home = Path(tempfile.mkdtemp(prefix="sma-bench-prefect-"))
    # A brand-new PREFECT_HOME pays the temporary server's database migrations once;
    # that first (cold) run is reported apart from the median of the warm repeats.
    cold = measure("synthetic" if ns.only != "yahoo" else "yahoo", home)
    print(f"cold start (new PREFECT_HOME, database created): wall {cold['wall_seconds']:.1f} s")
    print(
        f"{'scenario':<10} {'rows':>10} {'wall s':>8} {'flow s':>8} {'rows/s':>10} {'flow RSS MB':>12} {'server RSS MB':>14}"
    )
    for name in [ns.only] if ns.only else ["synthetic", "yahoo"]:
        runs = [measure(name, home) for _ in range(ns.repeats)]
        wall = statistics.median(r["wall_seconds"] for r in runs)
        flow_s = statistics.median(r["flow_seconds"] for r in runs)
        rss = statistics.median(r["rss_mb"] for r in runs)
        server = statistics.median(r["server_rss_mb"] for r in runs)
        rows = runs[0]["rows"]
        print(
            f"{name:<10} {rows:>10,} {wall:>8.1f} {flow_s:>8.1f} {rows / wall:>10,.0f} {rss:>12,.0f} {server:>14,.0f}"
        )
        print(
            f"  runs: walls {[round(r['wall_seconds'], 1) for r in runs]}, ok {runs[0]['ok']}, failed {runs[0]['failed']}"
        )


if __name__ == "__main__":
    main()
