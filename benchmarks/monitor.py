"""Monitoring benchmark: ``monitor --backfill`` and the HTML report on the 249 Yahoo tickers.

    python -m benchmarks.monitor --store DIR [--repeats 3]

``--store`` is a store with a finished backtest (``python -m benchmarks.backtest --store
DIR``). A LightGBM run is trained and predicts there first when the store has none. Then,
``--repeats`` times from an empty ``monitoring/``: ``python -m flows.monitor --backfill``
as of the newest price date, as a whole process (wall time), and the monitor pass itself
as the flow measures it (after Prefect's start-up: the target is 30 s); then the report's
size (target 10 MB) and headless Chromium's navigation-start-to-load-event time (target
3 s), medians of ``--repeats`` loads.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return time.perf_counter() - started


def load_times(page: Path, repeats: int) -> list[float]:
    """Navigation start to the load event, in seconds, per fresh load in headless Chromium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    out = []
    try:
        for _ in range(repeats):
            browser.get(page.as_uri())
            while browser.execute_script("return document.readyState") != "complete":
                time.sleep(0.05)
            time.sleep(0.2)
            out.append(
                browser.execute_script(
                    "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;"
                )
                / 1000
            )
    finally:
        browser.quit()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    ns = parser.parse_args()
    store = Path(ns.store).resolve()
    env = os.environ | {
        "SMA_STORE": str(store),
        "SMA_TICKERS": str(store.parent / "tickers.csv"),
        "SMA_TRACKING__WANDB_MODE": "disabled",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    if not list(store.glob("backtests/*/manifest.json")):
        raise SystemExit(
            f"no backtest in {store}: run python -m benchmarks.backtest --store {store}"
        )
    if not (store / "models" / "latest.json").exists():
        print(
            f"train (lightgbm): {run(['-m', 'flows.train', '--model', 'lightgbm'], env):.0f} s",
            flush=True,
        )
        print(f"predict: {run(['-m', 'flows.predict'], env):.0f} s", flush=True)
    as_of = max(p.stem for p in (store / "predictions").glob("*.parquet"))
    walls, passes, summary = [], [], {}
    for _ in range(ns.repeats):
        shutil.rmtree(store / "monitoring", ignore_errors=True)
        walls.append(run(["-m", "flows.monitor", "--backfill", "--as-of", as_of], env))
        summary = json.loads((store / "monitoring" / "summary.json").read_text())
        passes.append(summary["seconds"])
    page = store / "reports" / as_of / "index.html"
    loads = load_times(page, ns.repeats)
    print(
        "\n".join(
            [
                f"monitor --backfill as of {as_of}: {summary['scored']} forecasts scored "
                f"({summary['scores_by_source']}), {summary['prediction_files']} prediction files",
                "",
                f"| target | measured (median of {ns.repeats}) | met |",
                "|---|---|---|",
                f"| monitor pass <= 30 s after Prefect start-up | {statistics.median(passes):.1f} s (whole process {statistics.median(walls):.1f} s) | {statistics.median(passes) <= 30} |",
                f"| report <= 10 MB | {page.stat().st_size / 1e6:.1f} MB | {page.stat().st_size <= 10e6} |",
                f"| Chromium load event <= 3 s | {statistics.median(loads):.2f} s | {statistics.median(loads) <= 3} |",
            ]
        )
    )


if __name__ == "__main__":
    main()
