"""What ``flows.prune`` removes: the store grows every day (quarantine files, quality reports,
reports, predictions, model runs) and so does W&B's local folder. Newest first, it keeps
``retention.runs`` runs, ``retention.reports`` dated reports, ``quarantine_keep_days`` of
quarantine files and quality reports and (when set) ``predictions_days`` of predictions;
never the run ``models/latest.json`` names, nor one a kept report was drawn from.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from core import layout
from core.config import RetentionSettings
from core.monitoring.health import run_date
from core.runs import resolve
from core.storage import DamagedFileError, Store, StoreError


@dataclass
class Plan:
    """Keys to delete, by what they are, and what was kept on purpose."""

    delete: dict[str, list[str]] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)  # reports, runs, files: what users count
    protected_runs: list[str] = field(default_factory=list)
    local: list[Path] = field(default_factory=list)  # W&B run folders

    def add(self, kind: str, keys: list[str], items: int | None = None) -> None:
        """Keys of ``items`` things (default: one per key) of one kind."""
        if keys:
            self.delete.setdefault(kind, []).extend(keys)
            self.items[kind] = self.items.get(kind, 0) + (len(keys) if items is None else items)

    @property
    def count(self) -> int:
        return sum(map(len, self.delete.values())) + len(self.local)


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
    found = sorted(
        {int(m[1]) for k in store.list("horizons") if (m := re.match(r"horizons/h=(\d+)/", k))}
    )
    views = {layout.HORIZON_ROOT.format(horizon=h): store.for_horizon(h) for h in found}
    return {folder: view for folder, view in views.items() if view is not store}


def plan_store(
    store: Store, cfg: RetentionSettings, today: dt.date, wandb_dir: Path | None = None
) -> Plan:
    """``plan`` of the store's root and of each of its other horizons (their keys under
    ``horizons/h=<h>/``, kept runs named with their horizon); W&B keeps ``retention.runs``
    folders per horizon."""
    views = horizon_views(store)
    out = plan(store, cfg, today, wandb_dir, wandb_runs=cfg.runs * (1 + len(views)))
    for folder, view in views.items():
        part = plan(view, cfg, today)
        for kind, keys in part.delete.items():
            out.add(kind, [f"{folder}/{k}" for k in keys], items=part.items[kind])
        out.protected_runs += [f"{folder}/{run}" for run in part.protected_runs]
    return out


def plan(
    store: Store,
    cfg: RetentionSettings,
    today: dt.date,
    wandb_dir: Path | None = None,
    wandb_runs: int | None = None,
) -> Plan:
    """Everything past the retention settings (nothing is deleted here); a horizon view
    (``Store.for_horizon``) leaves the shared files (quarantine, quality reports) to the root."""
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
    for run in runs:
        if run not in protected:
            states = [layout.TRACKER_STATE(run_id=run), layout.ACI_STATE(run_id=run)]
            keys = store.list(f"models/{run}") + [s for s in states if store.exists(s)]
            out.add("model runs", keys, items=1)

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
    if wandb_dir is not None:  # W&B writes its runs into <dir>/wandb
        roots = [d for d in (wandb_dir, wandb_dir / "wandb") if d.is_dir()]
        folders = sorted(
            (
                p
                for root in roots
                for p in root.iterdir()
                if p.is_dir() and p.name.startswith(("run-", "offline-run-"))
            ),
            key=lambda p: (
                p.name.split("-run-")[-1] if "-run-" in p.name else p.name.removeprefix("run-")
            ),
        )
        out.local = folders[: -(wandb_runs or cfg.runs)]
    return out


def apply(store: Store, todo: Plan) -> None:
    """Delete what the plan lists (store keys, then local W&B folders)."""
    for keys in todo.delete.values():
        for key in keys:
            store.delete(key)
    for folder in todo.local:
        shutil.rmtree(folder, ignore_errors=True)
