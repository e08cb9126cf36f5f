"""Prefect tasks of the feature flow: thin wrappers around ``core.feature_table``."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE
from prefect.logging import get_run_logger

from core.config import Settings
from core.feature_table import (
    MANIFEST_KEY,
    input_fingerprint,
    manifest,
    price_keys,
    read_manifest,
    write_market,
    write_parts,
)
from core.storage import Store


@task(name="fingerprint-prices", cache_policy=NO_CACHE)
def fingerprint_task(settings: Settings) -> dict[str, list[Any]]:
    """Per symbol [last date, rows] of the stored prices: the cache key of the build."""
    store = Store.from_settings(settings)
    return input_fingerprint(store, price_keys(store))


@task(name="market-series", cache_policy=NO_CACHE)
def market_task(settings: Settings, symbols: list[str], version: str) -> str | None:
    """Write the universe's market series that every batch joins (when a group needs it)."""
    return write_market(Store.from_settings(settings), symbols, settings.features, version)


@task(
    name="build-features",
    cache_policy=INPUTS + TASK_SOURCE,
    persist_result=True,
    result_serializer="json",
)
def build_part_task(
    settings: Settings, fingerprint: dict[str, list[Any]], version: str, index: int
) -> list[dict[str, Any]]:
    """Build and write the parts of one batch of symbols, ``chunk_rows`` input rows at a time.

    Cached on (settings, which name the store; the batch's fingerprint; version): never on frames."""
    store = Store.from_settings(settings)
    return write_parts(
        store, fingerprint, settings.features, version, index, log=get_run_logger().info
    )


@task(name="publish-features", cache_policy=NO_CACHE)
def publish_task(
    settings: Settings,
    version: str,
    fingerprint: dict[str, Any],
    parts: list[dict[str, Any]],
    seconds: float,
) -> dict[str, Any]:
    """Write the manifest (making the new parts current), then drop older builds' parts."""
    store = Store.from_settings(settings)
    doc = manifest(settings.features, version, fingerprint, parts, seconds)
    store.write_json(MANIFEST_KEY, doc)
    for key in store.list("features"):
        if key != MANIFEST_KEY and not key.startswith(f"features/{version}/"):
            store.delete(key)
    return doc


def parts_exist(settings: Settings, parts: list[dict[str, Any]]) -> bool:
    store = Store.from_settings(settings)
    return all(store.exists(p["key"]) for p in parts)


def current_manifest(settings: Settings) -> dict[str, Any] | None:
    return read_manifest(Store.from_settings(settings))


def summary_markdown(doc: dict[str, Any], skipped: bool) -> str:
    n_features = sum(len(v) for v in doc["features"].values())
    state = (
        "unchanged inputs and config: nothing rebuilt"
        if skipped
        else f"built in {doc['seconds']} s"
    )
    return "\n".join(
        [
            f"# Feature table `{doc['version']}`",
            "",
            f"{state}",
            "",
            "| rows | symbols | features | groups | horizon | seconds |",
            "|---|---|---|---|---|---|",
            f"| {doc['rows']} | {doc['symbols']} | {n_features} | {', '.join(doc['groups'])} | {doc['horizon']} | {doc['seconds']} |",
        ]
    )


def publish_summary(doc: dict[str, Any], skipped: bool) -> None:
    create_markdown_artifact(
        key="features-summary", markdown=summary_markdown(doc, skipped), description="Feature table"
    )
