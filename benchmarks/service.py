"""The forecast service on a synthetic store of 500 symbols (local store, warm process).

    python -m benchmarks.service [--symbols 500] [--requests 200] [--clients 100]

Writes a store holding one prediction file of ``--symbols`` symbols (11 levels, VaR/ES
columns), starts ``python -m service`` on it, and prints: seconds from launch until
``/health`` answers (target <= 3 s); the median and p99 of ``GET /v1/forecasts/latest``
with one sequential client after a warm-up (targets < 50 ms, < 200 ms); and ``--clients``
concurrent clients (httpx, async) each making one call, counting errors (target: none).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import polars as pl

from core import layout
from core.modeling.tail_risk import RISK_ALPHAS
from core.storage import Store
from deployments.server import free_port

ROOT = Path(__file__).resolve().parent.parent
LEVELS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975, 0.99]


def synthetic_store(root: Path, symbols: int) -> None:
    """One prediction file: ``symbols`` symbols' normal quantiles and tail columns."""
    rng = np.random.default_rng(7)
    sigma = rng.uniform(0.01, 0.04, symbols)
    from statistics import NormalDist

    z = [NormalDist().inv_cdf(q) for q in LEVELS]
    frame = pl.DataFrame(
        {
            "symbol": [f"S{i:04d}" for i in range(symbols)],
            "date": [dt.date(2026, 12, 4)] * symbols,
            "target_date": [dt.date(2026, 12, 9)] * symbols,
            "horizon": [3] * symbols,
            "method": ["catboost"] * symbols,
            **{f"q_{q}": sigma * zq for q, zq in zip(LEVELS, z, strict=True)},
            **{
                f"{kind}_{side}_{a}": sigma * (2.5 if kind == "es" else 2.0)
                for a in RISK_ALPHAS
                for side in ("long", "short")
                for kind in ("var", "es")
            },
            "run_id": ["bench"] * symbols,
        }
    )
    Store(str(root)).write_parquet(layout.PREDICTIONS(as_of="2026-12-04"), frame)


async def concurrent(url: str, clients: int) -> int:
    """Errors among ``clients`` simultaneous calls."""
    async with httpx.AsyncClient(
        timeout=30, limits=httpx.Limits(max_connections=clients)
    ) as client:
        answers = await asyncio.gather(
            *(client.get(f"{url}/v1/forecasts/latest") for _ in range(clients)),
            return_exceptions=True,
        )
    return sum(not isinstance(a, httpx.Response) or a.status_code != 200 for a in answers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sma-service-") as tmp:
        store = Path(tmp) / "store"
        synthetic_store(store, args.symbols)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMA_")}
        env |= {"PYTHONPATH": str(ROOT), "SMA_STORE": str(store), "SMA_API__PORT": str(port)}
        url = f"http://127.0.0.1:{port}"
        launched = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=env)
        try:
            while True:
                try:
                    httpx.get(f"{url}/health", timeout=5)
                    break
                except httpx.TransportError:
                    time.sleep(0.02)
            up = time.perf_counter() - launched
            with httpx.Client() as client:
                for _ in range(20):  # warm-up
                    client.get(f"{url}/v1/forecasts/latest").raise_for_status()
                times = []
                for _ in range(args.requests):
                    started = time.perf_counter()
                    client.get(f"{url}/v1/forecasts/latest").raise_for_status()
                    times.append((time.perf_counter() - started) * 1000)
            errors = asyncio.run(concurrent(url, args.clients))
        finally:
            proc.terminate()
            proc.wait(10)
    p99 = float(np.percentile(times, 99))
    print(f"/health answered {up:.2f} s after launch (target <= 3 s)")
    print(
        f"GET /v1/forecasts/latest, {args.symbols} symbols, {args.requests} sequential calls: "
        f"median {statistics.median(times):.1f} ms (target < 50), p99 {p99:.1f} ms (target < 200)"
    )
    print(f"{args.clients} concurrent clients: {errors} errors (target 0)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
