"""Prune's store hygiene (issue 24): a store's W&B folders by ownership and sync state, the
temporary files of killed writers, the folders left empty."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import time
from pathlib import Path

from core import layout
from core.config import RetentionSettings
from core.retention import GRACE, apply, plan_store
from core.storage import Store
from flows.prune import report

TODAY = dt.date(2024, 3, 5)
KEEP_ONE = RetentionSettings(runs=1)
OLD = time.time() - 2 * GRACE.total_seconds()  # past the grace period


def wandb_run(wandb_dir: Path, stamp: str, wandb_id: str, *, online: bool = False) -> Path:
    """A W&B run folder as wandb lays it out: ``<dir>/wandb/offline-run-<time>-<id>/`` (an
    online run: ``run-<time>-<id>``) with its transaction log ``run-<id>.wandb`` and
    ``files/``, ``logs/``, ``tmp/``."""
    folder = wandb_dir / "wandb" / f"{'run' if online else 'offline-run'}-{stamp}-{wandb_id}"
    for sub in ("files", "logs", "tmp"):
        (folder / sub).mkdir(parents=True)
    (folder / "files" / "config.yaml").write_text("a: 1\n")
    (folder / "logs" / "debug.log").write_text("log\n")
    (folder / f"run-{wandb_id}.wandb").write_bytes(b":W&B\x00\x01")
    return folder


def synced(folder: Path) -> Path:
    """Mark it as `wandb sync` does once uploaded (wandb/cli/beta_sync.py ``_is_synced``)."""
    for log in folder.glob("*.wandb"):
        log.with_suffix(".wandb.synced").touch()
    return folder


def model_run(store: Store, run: str, wandb: Path | None = None) -> None:
    """A run's files in nested folders as train writes them, and its W&B record."""
    store.write_json(layout.RUN_MODEL(run_id=run, file="params.json"), {})
    store.write_json(layout.RUN_HOLDOUT_MODEL(run_id=run, file="params.json"), {})
    store.write_bytes(layout.RUN_PLOT(run_id=run, name="calibration"), b"png")
    store.write_json(layout.RUN_METRICS(run_id=run), {})
    store.write_json(layout.RUN_MANIFEST(run_id=run), {"run_id": run})
    if wandb is not None:
        record = {"run_id": run, "wandb_id": wandb.name.rsplit("-", 1)[1], "folder": wandb.name}
        store.write_json(layout.RUN_WANDB(run_id=run), record | {"mode": "offline"})


def listing(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its sha256, and every folder."""
    return {
        p.relative_to(root).as_posix(): (
            hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
        )
        for p in root.rglob("*")
    }


def dead_pid() -> int:
    """The pid of a process that has exited."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_prune_removes_only_its_own_removed_runs_wandb_folders(tmp_path):
    """Two stores sharing one W&B folder: pruning A removes the folders of A's removed runs
    (synced, or online), keeps A's unsynced offline run unless asked, never touches B's
    folders nor a folder no run records, says which runs record none; no folder is left
    empty under models/."""
    wandb = tmp_path / "wandb"
    a, b = Store(str(tmp_path / "a")), Store(str(tmp_path / "b"))
    runs = [f"2024010{i}T000000Z-run{i}0000" for i in range(1, 6)]
    a_synced = synced(wandb_run(wandb, "20240102_000000", "asynced1"))
    a_unsynced = wandb_run(wandb, "20240103_000000", "aunsync1")
    a_online = wandb_run(wandb, "20240104_000000", "aonline1", online=True)
    a_kept = wandb_run(wandb, "20240105_000000", "akept001")
    model_run(a, runs[0])  # trained before the record existed
    model_run(a, runs[1], a_synced)
    model_run(a, runs[2], a_unsynced)
    model_run(a, runs[3], a_online)
    model_run(a, runs[4], a_kept)
    b_old = synced(wandb_run(wandb, "20240101_000000", "bold0001"))  # older than all of A's
    b_unsynced = wandb_run(wandb, "20240101_100000", "bunsync1")
    model_run(b, runs[0], b_old)
    model_run(b, runs[1], b_unsynced)
    tune = wandb_run(wandb, "20240101_200000", "tune0001")  # recorded by no run
    others = {p: listing(p) for p in (Path(b.root), b_old, b_unsynced, tune)}

    todo = plan_store(a, KEEP_ONE, TODAY, wandb)
    assert todo.protected_runs == [runs[4]] and todo.items["model runs"] == 4
    assert todo.local == [a_synced, a_online] and todo.unsynced == [a_unsynced]
    assert todo.unrecorded == [runs[0]]
    assert {f"models/{run}" for run in runs[:4]} <= set(todo.folders)
    text = report(
        {
            "dry_run": True,
            "removed": todo.items,
            "wandb_folders": todo.local,
            "wandb_unsynced_kept": todo.unsynced,
            "runs_without_wandb_record": todo.unrecorded,
            "empty_folders": todo.folders,
            "kept_runs": todo.protected_runs,
        }
    )
    assert "would remove 4 model runs" in text and "would remove 2 local W&B run folders" in text
    assert f"would remove {len(todo.folders)} empty folders" in text
    assert "kept 1 W&B folders of removed runs not synced yet" in text and a_unsynced.name in text
    assert "1 removed runs record no W&B run" in text

    apply(a, todo)
    assert not a_synced.exists() and not a_online.exists()
    assert a_unsynced.is_dir() and a_kept.is_dir()
    assert {p: listing(p) for p in others} == others  # B and its W&B runs: unchanged
    models = Path(a.root) / "models"
    assert sorted(p.relative_to(models).as_posix() for p in models.iterdir()) == [runs[4]]
    assert all(any(f.is_file() for f in d.rglob("*")) for d in models.rglob("*") if d.is_dir())

    again = plan_store(a, KEEP_ONE, TODAY, wandb)  # the run is gone: its W&B folder is not A's
    assert again.local == [] and again.unsynced == [] and again.count == 0
    model_run(a, runs[2], a_unsynced)  # unless asked, no unsynced offline run goes
    asked = plan_store(a, KEEP_ONE, TODAY, wandb, wandb_unsynced=True)
    assert asked.local == [a_unsynced] and asked.unsynced == []
    apply(a, asked)
    assert not a_unsynced.exists() and b_unsynced.is_dir() and tune.is_dir()


def test_prune_removes_dead_writers_temporary_files_and_the_folders_they_leave(tmp_path):
    """A killed collect left five symbol folders holding only a temporary file: prune
    removes them (the files of a writer not running, over the grace period old) with their
    folders; a live writer's file (this process) and a dead writer's recent one stay, as
    does an empty folder just created; a dry run removes nothing; every other file stays
    byte for byte."""
    store = Store(str(tmp_path / "store"))
    root = Path(store.root)
    for symbol in ("AAA", "BBB"):
        store.write_bytes(layout.PRICES(symbol=symbol), b"prices of " + symbol.encode())
    store.write_json(layout.INGESTION(), {})
    dead = dead_pid()
    killed = [root / f"raw/prices/symbol=K{i}/.tmp-{dead}-k{i}abc" for i in range(5)]
    live = root / f"raw/prices/symbol=AAA/.tmp-{os.getpid()}-live"
    recent = root / f"raw/prices/symbol=K9/.tmp-{dead}-recent"  # its folder stays
    for path in [*killed, live, recent]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    for path in [*killed, live]:
        os.utime(path, (OLD, OLD))
    stale, new = root / "reports/stale", root / "reports/new"  # empty: an hour old, new
    stale.mkdir(parents=True)
    new.mkdir()
    os.utime(stale, (OLD, OLD))
    before = listing(root)

    todo = plan_store(store, KEEP_ONE, TODAY, tmp_path / "no-wandb")
    gone = [p.relative_to(root).as_posix() for p in killed]
    assert todo.delete == {"temporary files": gone} and todo.items == {"temporary files": 5}
    assert sorted(todo.folders) == [*sorted(str(Path(k).parent) for k in gone), "reports/stale"]
    assert listing(root) == before  # planning (a dry run) removes nothing

    apply(store, todo)
    after = listing(root)
    removed = set(gone) | set(todo.folders)
    assert after == {k: v for k, v in before.items() if k not in removed}
    assert live.is_file() and recent.is_file() and new.is_dir()


def test_on_s3_prune_plans_no_leftovers_and_removes_the_runs_wandb_folder(
    tmp_path, s3_bucket, s3_endpoint
):
    """S3 has neither temporary files nor folders: nothing of the kind is planned; the
    removed run's record is read from the bucket and its local W&B folder goes."""
    store = Store(f"s3://{s3_bucket}/store", endpoint_url=s3_endpoint)
    wandb = tmp_path / "wandb"
    old, new = (synced(wandb_run(wandb, f"2024010{i}_000000", f"s3run00{i}")) for i in (1, 2))
    model_run(store, "20240101T000000Z-run10000", old)
    model_run(store, "20240102T000000Z-run20000", new)
    todo = plan_store(store, KEEP_ONE, TODAY, wandb)
    assert todo.folders == [] and "temporary files" not in todo.delete
    assert todo.local == [old] and todo.items == {"model runs": 1}
    apply(store, todo)
    assert not old.exists() and new.is_dir()
    kept = store.list("models")
    assert kept and all(k.startswith("models/20240102T000000Z-run20000/") for k in kept)
    assert store.exists(layout.RUN_WANDB(run_id="20240102T000000Z-run20000"))
