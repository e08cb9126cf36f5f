"""Prune flow: retention for a store that grows every day.

    python -m flows.prune [--store URL] [--runs N] [--reports N] [--quarantine-keep-days N]
        [--wandb-unsynced] [--dry-run]

Keeps the newest ``--runs`` model runs, ``--reports`` dated reports, ``--quarantine-keep-days``
of quarantine files and quality reports (and, with ``SMA_RETENTION__PREDICTIONS_DAYS``,
that many days of predictions). Never removes the run ``models/latest.json`` names or one a
kept report was drawn from. Removes the local W&B folders of the runs it removes (those the
store records, ``models/<run>/wandb.json``), but not an offline one ``wandb sync`` has not
synced unless ``--wandb-unsynced``; and the leftovers of killed writers (temporary files)
and the folders left empty in a local store. Prints what it removed (with ``--dry-run``:
what it would remove).
"""

from __future__ import annotations

from flows.shell import STORE, Arg, Command

COMMAND = Command(
    "prune",
    __doc__,
    (
        STORE,
        Arg("--runs", "model runs to keep", setting="retention.runs", type=int),
        Arg("--reports", "dated reports to keep", setting="retention.reports", type=int),
        Arg("--quarantine-keep-days", "days of quarantine files and quality reports to keep", setting="retention.quarantine_keep_days", type=int),
        Arg("--wandb-unsynced", "also remove removed runs' offline W&B folders `wandb sync` has not synced", switch=True),
        Arg("--dry-run", "list what would be removed, remove nothing", switch=True),
    ),
)  # fmt: skip
if __name__ == "__main__":
    raise SystemExit(COMMAND.main())

import datetime as dt
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from core.config import RetentionSettings, StoreRef
from core.retention import apply, plan_store
from core.storage import Store
from tasks.hooks import ALERT_HOOKS


@task(name="prune", cache_policy=NO_CACHE)
def prune_task(
    store_ref: StoreRef,
    cfg: RetentionSettings,
    wandb_dir: str,
    dry_run: bool,
    wandb_unsynced: bool = False,
) -> dict[str, Any]:
    store = Store.open(store_ref)
    todo = plan_store(store, cfg, dt.date.today(), Path(wandb_dir), wandb_unsynced)
    if not dry_run:
        apply(store, todo)
    result = {
        "dry_run": dry_run,
        "removed": todo.items,
        "files": todo.count,
        "keys": todo.delete,
        "wandb_folders": [str(p) for p in todo.local],
        "wandb_unsynced_kept": [str(p) for p in todo.unsynced],
        "runs_without_wandb_record": todo.unrecorded,
        "empty_folders": todo.folders,
        "kept_runs": todo.protected_runs,
    }
    create_markdown_artifact(key="prune", markdown=report(result), description="Retention")
    return result


@flow(name="prune", log_prints=True, **ALERT_HOOKS)
def prune(
    store: str | None = None,
    runs: int | None = None,
    reports: int | None = None,
    quarantine_keep_days: int | None = None,
    dry_run: bool | None = None,
    quarantine_days: int | None = None,
    wandb_unsynced: bool | None = None,
) -> dict[str, Any]:
    """Apply retention; parameters left as None come from settings. ``quarantine_days`` is
    the old name of ``quarantine_keep_days`` (deprecated: it warns)."""
    settings = COMMAND.start(
        store=store,
        runs=runs,
        reports=reports,
        quarantine_keep_days=quarantine_keep_days,
        quarantine_days=quarantine_days,
    )
    return prune_task(
        settings.root_ref,
        settings.retention,
        settings.tracking.directory,
        bool(dry_run),
        bool(wandb_unsynced),
    )


def report(result: dict[str, Any]) -> str:
    verb = "would remove" if result["dry_run"] else "removed"
    lines = [f"{verb} {n} {kind}" for kind, n in result["removed"].items()]
    if result["wandb_folders"]:
        lines.append(f"{verb} {len(result['wandb_folders'])} local W&B run folders")
    if result.get("empty_folders"):
        lines.append(f"{verb} {len(result['empty_folders'])} empty folders")
    if not lines:
        lines.append("nothing to remove")
    if kept := result.get("wandb_unsynced_kept"):
        lines.append(
            f"kept {len(kept)} W&B folders of removed runs not synced yet (`wandb sync` them, "
            "or prune with --wandb-unsynced): " + ", ".join(Path(p).name for p in kept)
        )
    if bare := result.get("runs_without_wandb_record"):
        lines.append(
            f"{len(bare)} removed runs record no W&B run (trained before the record, or "
            "with W&B off): no W&B folder removed for them"
        )
    lines.append(f"kept runs: {', '.join(result['kept_runs']) or 'none'}")
    return "\n".join(lines)
