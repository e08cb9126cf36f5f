"""Mapped tasks on a Dask ``LocalCluster`` of 2 worker processes (``SMA_TASK_RUNNER=dask``),
run as a user runs the flows: the same stored prices, quarantine rows and feature table as
on threads (the session's ``collected`` and ``featured`` stores), and a worker killed
mid-run still ends with every symbol collected."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import psutil
import pytest

from benchmarks.processes import is_worker
from core import layout
from core.features.table import FeatureBuild
from core.storage import Store
from tests.factories import ROOT, SAMPLE_COLLECT

pytestmark = pytest.mark.usefixtures("prefect_server")


def flow(name: str, store: Path, prefect_server: str, **settings: str) -> subprocess.Popen[str]:
    """``python -m flows.<name>`` on the sample, its mapped tasks on a local Dask cluster."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMA_")}
    env |= {
        "PREFECT_API_URL": prefect_server,
        "PYTHONPATH": str(ROOT),
        "SMA_STORE": str(store),
        "SMA_TASK_RUNNER": "dask",
        "SMA_DASK__WORKERS": "2",
        "SMA_COLLECT__CACHE_HOURS": "0",
    }
    env |= {f"SMA_{k.upper()}": str(v) for k, v in SAMPLE_COLLECT.items()}
    env |= {f"SMA_{k.upper()}": v for k, v in settings.items()}
    return subprocess.Popen(
        [sys.executable, "-m", f"flows.{name}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    return out


def stored(store: Path, prefix: str) -> pl.DataFrame:
    """Every parquet file under ``prefix``, as one frame in a fixed order."""
    opened = Store(str(store))
    keys = [k for k in opened.list(prefix) if k.endswith(".parquet")]
    frame = pl.concat([opened.read_parquet(k) for k in keys])
    return frame.sort("symbol", "date", *(["rule"] if "rule" in frame.columns else []))


def test_collect_and_features_on_dask_store_what_threads_store(
    prefect_server, collected, featured, tmp_path
):
    store = tmp_path / "store"
    # 6 collection batches and 4 feature batches over the 2 workers
    finish(flow("collect", store, prefect_server, collect__symbols_per_task="7"))
    for prefix in (layout.PRICES.prefix, layout.QUARANTINE.prefix):
        expected = stored(collected, prefix)
        assert stored(store, prefix).equals(expected), prefix
    assert not stored(store, layout.QUARANTINE.prefix).is_empty()
    finish(flow("features", store, prefect_server, features__symbols_per_task="10"))
    got = Store(str(store))
    assert len(got.read_json(layout.FEATURES_MANIFEST())["parts"]) >= 4
    table = FeatureBuild.open(got).scan().collect().sort("symbol", "date")
    expected = FeatureBuild.open(Store(str(featured))).scan().collect().sort("symbol", "date")
    assert table.equals(expected)


def test_a_worker_killed_mid_run_still_ends_with_every_symbol_collected(
    prefect_server, collected, tmp_path
):
    store = tmp_path / "store"
    proc = flow("collect", store, prefect_server, collect__symbols_per_task="1")
    prices = store / "raw" / "prices"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(prices.glob("symbol=*"))) < 4:
        time.sleep(0.05)  # the workers are running batches now
    workers = [p for p in psutil.Process(proc.pid).children(recursive=True) if is_worker(p)]
    assert len(workers) == 2, [p.cmdline() for p in workers]
    os.kill(workers[-1].pid, signal.SIGKILL)
    out = finish(proc)
    assert "crashed (worker lost: KilledWorker" in out and "submitting it again" in out
    assert stored(store, layout.PRICES.prefix).equals(stored(collected, layout.PRICES.prefix))
    assert not [p for p in store.rglob(".tmp-*")]  # nothing half-written


def test_tuning_trials_on_dask_each_draw_their_own_parameters(prefect_server, featured, tmp_path):
    """A trial pickled to a worker carries a copy of the sampler: the flow draws every trial's
    parameters before submitting it, so the trials of a wave differ (as on threads)."""
    import optuna

    store = tmp_path / "store"
    shutil.copytree(featured, store)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    finish(
        flow(
            "tune",
            store,
            prefect_server,
            model__name="lightgbm",
            model__params='{"num_boost_round": 40}',
            tuning__trials="2",
            tuning__concurrency="2",
            optuna_storage=storage,
        )
    )
    trials = optuna.load_study(study_name="lightgbm", storage=storage).trials
    assert len(trials) == 2 and {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    params = {tuple(sorted(t.params.items())) for t in trials}
    assert len(params) == 2  # one wave of two draws, not one repeated
