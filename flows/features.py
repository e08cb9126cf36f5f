"""Feature flow: validated prices in the store -> the feature table.

    python -m flows.features [--store URL] [--groups seed,risk,alpha158] [--horizon H]
        [--symbols-per-task N]

Reads the stored prices and writes the feature parts and, last, the manifest. Unchanged
inputs (per symbol: last date and row count), config and feature code skip the work.
"""

from __future__ import annotations

from flows.shell import HORIZON, STORE, Arg, Command, csv_list

COMMAND = Command(
    "features",
    __doc__,
    (
        STORE,
        Arg(
            "--groups",
            "feature groups, comma-separated (core.features.registry)",
            setting="features.groups",
            type=csv_list,
        ),
        HORIZON,
        Arg(
            "--symbols-per-task",
            "symbols per task (default: the whole panel)",
            setting="features.symbols_per_task",
            type=int,
        ),
    ),
)
if __name__ == "__main__":
    raise SystemExit(COMMAND.main())

import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture

from core.config import FeatureSettings, StoreRef
from core.features.manifest import FeaturePart, FeaturesManifest, Fingerprint, digest
from core.features.table import config_dict, short_histories
from core.storage import StoreFullError
from flows.shell import each_horizon
from tasks.caching import cached_or_rerun, with_result_storage
from tasks.features import (
    build_part_task,
    current_manifest_task,
    damaged_files_task,
    discard_task,
    fingerprint_task,
    market_task,
    parts_intact,
    publish_summary,
    publish_task,
    summary_markdown,
)
from tasks.hooks import ALERT_HOOKS
from tasks.runners import SettingsTaskRunner, finished, settle


@flow(name="features", log_prints=True, task_runner=SettingsTaskRunner(), **ALERT_HOOKS)
def features(
    store: str | None = None,
    groups: list[str] | None = None,
    horizon: int | None = None,
    symbols_per_task: int | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Build the feature table; parameters left as None come from settings.

    ``batch_size`` is the old name of ``symbols_per_task`` (deprecated: it warns)."""
    started = time.perf_counter()
    settings = COMMAND.start(
        store=store,
        groups=groups,
        horizon=horizon,
        symbols_per_task=symbols_per_task,
        batch_size=batch_size,
    )
    several = each_horizon(
        settings,
        horizon,
        lambda h: features(store, groups, h, symbols_per_task, batch_size),
    )
    if several is not None:
        return several
    ref, cfg = settings.store_ref, settings.features
    logger = get_run_logger()
    fingerprint = fingerprint_task(ref)
    version = digest({"inputs": fingerprint, "config": config_dict(cfg)})
    previous = current_manifest_task(ref)
    if previous is not None and previous.version == version:
        damaged = damaged_files_task(ref, previous)
        if not damaged:
            logger.info("inputs and config unchanged (version %s): skipping", version)
            publish_summary(previous, skipped=True)
            return previous.model_dump(mode="json") | {"skipped": True}
        logger.warning("build %s is damaged (%s): building it again", version, damaged)

    short = short_histories(fingerprint, cfg)  # every symbol short: an error, nothing written
    if short:
        logger.warning(
            "%d symbol(s) left out, their history within the warm-up: %s",
            len(short),
            ", ".join(f"{s} ({n} rows)" for s, n in short.items()),
        )
    symbols = list(fingerprint)
    size = cfg.symbols_per_task or len(symbols)
    batches = [symbols[i : i + size] for i in range(0, len(symbols), size)]
    logger.info(
        "building %s for %d symbols in %d part(s)", ",".join(cfg.groups), len(symbols), len(batches)
    )
    doc = build(ref, cfg, fingerprint, batches, version, started)
    publish_summary(doc, skipped=False)
    return doc.model_dump(mode="json") | {"skipped": False}


def build(
    ref: StoreRef,
    cfg: FeatureSettings,
    fingerprint: Fingerprint,
    batches: list[list[str]],
    version: str,
    started: float,
) -> FeaturesManifest:
    """The market series, every batch's parts (a cached batch whose parts are intact is not
    built again), then the manifest that publishes them; on a full disk, what this build
    wrote is deleted again."""
    inputs = [
        (ref, cfg, {s: fingerprint[s] for s in batch}, version, i)
        for i, batch in enumerate(batches)
    ]
    task = with_result_storage(build_part_task, ref.url)
    built: dict[int, list[FeaturePart]] = {}
    submitted: list[PrefectFuture[Any]] = []
    try:
        market = market_task(ref, cfg, list(fingerprint), version)
        for i, future, _ in finished(task, inputs, submitted=submitted):
            built[i], _ = cached_or_rerun(
                task, future, *inputs[i], usable=lambda p: parts_intact(ref, p)
            )
        parts = [part for i in range(len(inputs)) for part in built[i]]
        doc = publish_task(
            ref, cfg, version, fingerprint, parts, time.perf_counter() - started, market
        )
    except StoreFullError:
        # what the build wrote holds space the disk lacks: deleted, the store left as it was
        # (another failure keeps the parts, for the rerun to take its finished batches from
        # the cache); a failure to delete them leaves the disk-full error the one reported
        settle(submitted)  # no batch still writes: those not started dropped, others ended
        discard_task(ref, version, return_state=True)
        raise
    return doc


def report(doc: dict[str, Any]) -> str:
    return summary_markdown(FeaturesManifest.model_validate(doc), doc["skipped"])
