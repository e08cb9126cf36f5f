"""What ``flows.prune`` removes: the store grows every day (quarantine files, quality reports,
reports, predictions, model runs) and so does W&B's local folder. Newest first, it keeps
``retention.runs`` runs, ``retention.reports`` dated reports, ``quarantine_keep_days`` of
quarantine files and quality reports and (when set) ``predictions_days`` of predictions;
never the run ``models/latest.json`` names, nor one a kept report was drawn from.

W&B folders: only those the store's removed runs name (``layout.RUN_WANDB``, written by
``core.tracking``), so never one of another store's runs, nor of a run kept, nor of a run
trained before the record existed; an offline run (``offline-run-*``) only once ``wandb
sync`` has marked it synced (``run-<id>.wandb.synced`` beside each ``.wandb`` file: wandb's
``cli/beta_sync.py`` ``_is_synced``, ``cli/clean.py``), unless asked (``wandb_unsynced``).

Leftovers, in a local store (an S3 store has neither temporary files nor folders): the
temporary file of a write (``.tmp-<pid>-*``, ``core.storage``) whose writer is not a process
of this machine *and* that nobody has written for ``GRACE`` (the pid alone would misjudge a
writer in another container sharing the store, the age alone a slow live writer; a write
takes seconds); then every folder left holding nothing, but for one found already empty and
younger than ``GRACE`` (a writer creates its folder just before its temporary file).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from core import layout
from core.config import RetentionSettings
from core.monitoring.health import run_date
from core.runs import resolve
from core.storage import DamagedFileError, Store, StoreError, dead_writer

GRACE = dt.timedelta(hours=1)  # a temporary file or empty folder younger than this stays
WANDB_FOLDER = re.compile(r"(offline-)?run-\d{8}_\d{6}-[A-Za-z0-9]+")  # W&B's run folders


@dataclass
class Plan:
    """Keys to delete, by what they are, and what was kept on purpose."""

    delete: dict[str, list[str]] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)  # reports, runs, files: what users count
    protected_runs: list[str] = field(default_factory=list)
    local: list[Path] = field(default_factory=list)  # W&B run folders of removed runs
    unsynced: list[Path] = field(default_factory=list)  # theirs not synced yet: kept
    unrecorded: list[str] = field(default_factory=list)  # removed runs naming no W&B run
    folders: list[str] = field(default_factory=list)  # store folders left empty, deepest first

    def add(self, kind: str, keys: list[str], items: int | None = None) -> None:
        """Keys of ``items`` things (default: one per key) of one kind."""
        if keys:
            self.delete.setdefault(kind, []).extend(keys)
            self.items[kind] = self.items.get(kind, 0) + (len(keys) if items is None else items)

    @property
    def count(self) -> int:
        return sum(map(len, self.delete.values())) + len(self.local) + len(self.folders)


def _by(store: Store, key: layout.Key, prefix: str | None = None) -> dict[str, list[str]]:
    """Keys of one pattern under its prefix, grouped by their first field."""
    groups: dict[str, list[str]] = {}
    for k in store.list(prefix or key.prefix):
        parts = key.match(k)
        if parts is not None:
            groups.setdefault(next(iter(parts.values())), []).append(k)
    return groups


def report_runs(store: Store, as_ofs: list[str]) -> set[str]:
    """The runs the kept reports were drawn from (their sidecar files)."""
    runs = set()
    for as_of in as_ofs:
        key = layout.REPORT_META(as_of=as_of)
        try:
            runs.add(store.read_json(key)["run_id"])
        except (
            StoreError,
            DamagedFileError,
            KeyError,
            TypeError,
        ):  # no sidecar (or a damaged one): no run named
            continue
    return runs


def newest_live_score(store: Store) -> dt.date:
    """The newest forecast date the monitor has scored (date.min when none)."""
    import polars as pl

    if not store.exists(layout.MONITOR_SCORES()):
        return dt.date.min
    scores = store.scan_parquet([layout.MONITOR_SCORES()])
    newest = scores.filter(pl.col("source") == "live").select(pl.col("date").max()).collect().item()
    return newest or dt.date.min


def horizon_views(store: Store) -> dict[str, Store]:
    """The store's other horizons (layout 3), each a view, by its folder (``horizons/h=<h>``)."""
    found = layout.horizons_in(store.list("horizons"))
    views = {layout.HORIZON_ROOT.format(horizon=h): store.for_horizon(h) for h in found}
    return {folder: view for folder, view in views.items() if view is not store}


def plan_store(
    store: Store,
    cfg: RetentionSettings,
    today: dt.date,
    wandb_dir: Path | None = None,
    wandb_unsynced: bool = False,
) -> Plan:
    """``plan`` of the store's root and of each of its other horizons (their keys under
    ``horizons/h=<h>/``, kept runs named with their horizon), then the ``leftovers`` of the
    whole store."""
    out = plan(store, cfg, today, wandb_dir, wandb_unsynced)
    for folder, view in horizon_views(store).items():
        part = plan(view, cfg, today, wandb_dir, wandb_unsynced)
        for kind, keys in part.delete.items():
            out.add(kind, [f"{folder}/{k}" for k in keys], items=part.items[kind])
        out.protected_runs += [f"{folder}/{run}" for run in part.protected_runs]
        out.local += part.local
        out.unsynced += part.unsynced
        out.unrecorded += [f"{folder}/{run}" for run in part.unrecorded]
    temporary, out.folders = leftovers(store, {k for keys in out.delete.values() for k in keys})
    out.add("temporary files", temporary)
    return out


def wandb_record(store: Store, run: str) -> str | None:
    """The local W&B folder (its name) that run ``run`` records (``layout.RUN_WANDB``); None
    when it records none, or not readably (then no folder is the run's)."""
    key = layout.RUN_WANDB(run_id=run)
    try:
        folder = store.read_json(key)["folder"] if store.exists(key) else None
    except (StoreError, DamagedFileError, KeyError, TypeError):
        return None
    return folder if isinstance(folder, str) and WANDB_FOLDER.fullmatch(folder) else None


def wandb_synced(folder: Path) -> bool:
    """Whether a W&B run folder holds nothing ``wandb sync`` has still to upload: an online
    run (``run-*``), or an offline one whose every ``.wandb`` file has the
    ``<name>.wandb.synced`` marker ``wandb sync`` writes beside it once uploaded."""
    if not folder.name.startswith("offline-"):
        return True
    logs = list(folder.glob("*.wandb"))
    return bool(logs) and all(log.with_suffix(".wandb.synced").exists() for log in logs)


def _wandb_folders(
    out: Plan, store: Store, removed: list[str], wandb_dir: Path, unsynced: bool
) -> None:
    """The local folders of the removed runs' W&B runs, into ``out.local`` (or
    ``out.unsynced`` when not synced and ``unsynced`` is off); runs without a record into
    ``out.unrecorded``. W&B writes its runs into ``<dir>/wandb`` (older setups: ``<dir>``)."""
    roots = [d for d in (wandb_dir / "wandb", wandb_dir) if d.is_dir()]
    if not roots:
        return
    for run in removed:
        name = wandb_record(store, run)
        if name is None:
            out.unrecorded.append(run)
            continue
        for folder in (root / name for root in roots):
            if folder.is_dir():
                (out.local if unsynced or wandb_synced(folder) else out.unsynced).append(folder)


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:  # gone meanwhile
        return time.time()


def leftovers(
    store: Store, deleting: set[str], now: float | None = None
) -> tuple[list[str], list[str]]:
    """In a local store: the temporary files of dead writers (see the module's docstring),
    and the folders that hold nothing once those and ``deleting`` (keys) are removed, deepest
    first (never the root). Nothing for S3 or a horizon view (its root store's to plan)."""
    if store.is_s3 or store.shared_root is not None or not Path(store.root).is_dir():
        return [], []
    root = Path(store.root)
    old = (time.time() if now is None else now) - GRACE.total_seconds()
    temporary: list[str] = []
    empty: list[str] = []
    holds: dict[str, bool] = {}  # folder (relative) -> it keeps something
    for here, dirs, names in os.walk(root, topdown=False):  # a folder after its subfolders
        rel = Path(here).relative_to(root).as_posix()
        prefix = "" if rel == "." else f"{rel}/"
        kept = any(holds.get(prefix + d, True) for d in dirs)  # unwalked (a link): kept
        for name in names:
            key = prefix + name
            if key in deleting:
                continue
            if dead_writer(name) and _mtime(Path(here, name)) < old:
                temporary.append(key)
                continue
            kept = True
        if not names and not dirs and _mtime(Path(here)) >= old:
            kept = True  # just created: a writer's temporary file may follow
        holds[rel] = kept
        if not kept and rel != ".":
            empty.append(rel)
    return sorted(temporary), sorted(empty, key=lambda rel: (-rel.count("/"), rel))


def plan(
    store: Store,
    cfg: RetentionSettings,
    today: dt.date,
    wandb_dir: Path | None = None,
    wandb_unsynced: bool = False,
) -> Plan:
    """Everything past the retention settings (nothing is deleted here), with the local W&B
    folders of the runs removed (under ``wandb_dir``; unsynced offline ones only with
    ``wandb_unsynced``); a horizon view (``Store.for_horizon``) leaves the shared files
    (quarantine, quality reports) to the root."""
    out = Plan()
    reports = sorted(
        a
        for a in _by(store, layout.REPORT, "reports")
        if layout.REPORT(as_of=a) != layout.REPORT_LATEST()
    )
    kept_reports = reports[-cfg.reports :]
    for as_of in reports[: -cfg.reports]:
        out.add("reports", store.list(f"reports/{as_of}"), items=1)

    runs = sorted(
        set(_by(store, layout.RUN_MANIFEST, "models"))
        | set(_by(store, layout.RUN_METRICS, "models"))
    )
    protected = set(runs[-cfg.runs :]) | report_runs(store, kept_reports)
    if store.exists(layout.LATEST_RUN()):
        protected.add(resolve(store, "latest"))
    out.protected_runs = sorted(protected & set(runs))
    removed = [run for run in runs if run not in protected]
    for run in removed:
        states = [layout.TRACKER_STATE(run_id=run), layout.ACI_STATE(run_id=run)]
        keys = store.list(f"models/{run}") + [s for s in states if store.exists(s)]
        out.add("model runs", keys, items=1)
    if wandb_dir is not None:
        _wandb_folders(out, store, removed, wandb_dir, wandb_unsynced)

    oldest = today - dt.timedelta(days=cfg.quarantine_keep_days)
    shared = () if store.shared_root is not None else (
        ("quarantine files", layout.QUARANTINE, "raw/quarantine"),
        ("quality reports", layout.QUALITY_REPORT, "raw/reports"),
    )  # fmt: skip
    for kind, key, prefix in shared:
        for k in store.list(prefix):
            parts = key.match(k)
            day = run_date(parts["run_id"]) if parts else None
            if day is not None and day < oldest:
                out.add(kind, [k])
    if cfg.predictions_days:
        # never a file the monitor has not scored: none before the newest live score
        first = min(today - dt.timedelta(days=cfg.predictions_days), newest_live_score(store))
        out.add(
            "predictions",
            [
                k
                for k in store.list(layout.PREDICTIONS.prefix)
                if (p := layout.PREDICTIONS.match(k)) and p["as_of"] < first.isoformat()
            ],
        )
    return out


def apply(store: Store, todo: Plan) -> None:
    """Delete what the plan lists (store keys, local W&B folders, then the store's folders
    left empty: each only if still empty, as something may have been written there since)."""
    for keys in todo.delete.values():
        for key in keys:
            store.delete(key)
    for folder in todo.local:
        shutil.rmtree(folder, ignore_errors=True)
    for rel in todo.folders:
        try:
            os.rmdir(Path(store.root, rel))
        except OSError:  # not empty (written meanwhile) or gone
            continue
