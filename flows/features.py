"""Feature flow: validated prices in the store -> the feature table.

    python -m flows.features [--store URL] [--groups seed,alpha158] [--horizon H] [--batch-size N]

Reads ``raw/prices/``, writes ``features/<version>/part-*.parquet`` and, last,
``features/manifest.json``. Unchanged inputs (per symbol: last date and row count) and
config skip the work. Exit code 0 on success, 2 for invalid input (bad settings, no
prices in the store).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from prefect import flow, get_run_logger

from core.config import ConfigError, load_settings
from core.feature_table import MissingInputError, config_dict, digest
from tasks.features import (
    build_part_task,
    current_manifest,
    fingerprint_task,
    market_task,
    parts_exist,
    publish_summary,
    publish_task,
    summary_markdown,
)
from tasks.hooks import ALERT_HOOKS


@flow(name="features", log_prints=True, **ALERT_HOOKS)
def features(
    store: str | None = None,
    groups: list[str] | None = None,
    horizon: int | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Build the feature table; parameters left as None come from settings."""
    started = time.perf_counter()
    settings = load_settings(
        store=store, features={"groups": groups, "horizon": horizon, "batch_size": batch_size}
    )
    logger = get_run_logger()
    fingerprint = fingerprint_task(settings)
    cfg = settings.features
    version = digest({"inputs": fingerprint, "config": config_dict(cfg)})
    previous = current_manifest(settings)
    if previous is not None and previous["version"] == version:
        logger.info("inputs and config unchanged (version %s): skipping", version)
        publish_summary(previous, skipped=True)
        return previous | {"skipped": True}

    symbols = list(fingerprint)
    size = cfg.batch_size or len(symbols)
    batches = [symbols[i : i + size] for i in range(0, len(symbols), size)]
    logger.info(
        "building %s for %d symbols in %d part(s)", ",".join(cfg.groups), len(symbols), len(batches)
    )
    market_task(settings, symbols, version)
    futures = [
        build_part_task.submit(settings, {s: fingerprint[s] for s in batch}, version, index)
        for index, batch in enumerate(batches)
    ]
    parts = []
    for index, future in enumerate(futures):
        built = future.result()
        if not parts_exist(settings, built):  # a cached result whose files were deleted since
            batch = batches[index]
            built = build_part_task.with_options(refresh_cache=True)(
                settings, {s: fingerprint[s] for s in batch}, version, index
            )
        parts.extend(built)
    doc = publish_task(settings, version, fingerprint, parts, time.perf_counter() - started)
    publish_summary(doc, skipped=False)
    return doc | {"skipped": False}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m flows.features", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--store", help="store root: a folder or s3://bucket/prefix")
    parser.add_argument(
        "--groups",
        type=lambda s: [g.strip() for g in s.split(",") if g.strip()],
        help="e.g. seed,alpha158",
    )
    parser.add_argument("--horizon", type=int, help="forecast horizon in trading days")
    parser.add_argument(
        "--batch-size", type=int, help="symbols per task (default: the whole panel)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        # fail on bad settings before Prefect starts
        load_settings(
            store=args.store,
            features={
                "groups": args.groups,
                "horizon": args.horizon,
                "batch_size": args.batch_size,
            },
        )
        doc: dict[str, Any] = features(**vars(args))  # pyright: ignore[reportAssignmentType]
    except (ConfigError, MissingInputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary_markdown(doc, doc["skipped"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
