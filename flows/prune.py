"""Prune flow: retention for a store that grows every day.

    python -m flows.prune [--store URL] [--runs N] [--reports N] [--quarantine-keep-days N]
        [--dry-run]

Keeps the newest ``--runs`` model runs, ``--reports`` dated reports, ``--quarantine-keep-days``
of quarantine files and quality reports (and, with ``SMA_RETENTION__PREDICTIONS_DAYS``,
that many days of predictions), plus as many local W&B run folders as runs. Never removes
the run ``models/latest.json`` names or one a kept report was drawn from. Prints what it
removed (with ``--dry-run``: what it would remove).
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
    store_ref: StoreRef, cfg: RetentionSettings, wandb_dir: str, dry_run: bool
) -> dict[str, Any]:
    store = Store.open(store_ref)
    todo = plan_store(store, cfg, dt.date.today(), Path(wandb_dir))
    if not dry_run:
        apply(store, todo)
    result = {
        "dry_run": dry_run,
        "removed": todo.items,
        "files": todo.count,
        "keys": todo.delete,
        "wandb_folders": [str(p) for p in todo.local],
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
        settings.root_ref, settings.retention, settings.tracking.directory, bool(dry_run)
    )


def report(result: dict[str, Any]) -> str:
    verb = "would remove" if result["dry_run"] else "removed"
    lines = [f"{verb} {n} {kind}" for kind, n in result["removed"].items()]
    if result["wandb_folders"]:
        lines.append(f"{verb} {len(result['wandb_folders'])} local W&B run folders")
    lines.append(f"kept runs: {', '.join(result['kept_runs']) or 'none'}")
    return "\n".join(lines if len(lines) > 1 else ["nothing to remove", *lines])
