"""Prefect tasks of the feature flow: thin wrappers around ``core.features.table``."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE
from prefect.logging import get_run_logger

from core.config import FeatureSettings, StoreRef
from core.features.manifest import FeaturePart, FeaturesManifest, Fingerprint, HashedFile
from core.features.table import (
    discard_unpublished,
    input_fingerprint,
    manifest,
    price_keys,
    publish,
    read_manifest,
    write_market,
    write_parts,
)
from core.storage import DamagedFileError, Store, file_problems


@task(name="fingerprint-prices", cache_policy=NO_CACHE)
def fingerprint_task(store: StoreRef) -> Fingerprint:
    """Per symbol (last date, rows) of the stored prices: the cache key of the build."""
    opened = Store.open(store)
    return input_fingerprint(opened, price_keys(opened))


@task(name="current-manifest", cache_policy=NO_CACHE)
def current_manifest_task(store: StoreRef) -> FeaturesManifest | None:
    """The current build's manifest; None when there is none, or when it is damaged (the
    build that follows replaces it)."""
    try:
        return read_manifest(Store.open(store))
    except DamagedFileError as exc:
        get_run_logger().warning("%s: building the table anew", exc)
        return None


@task(name="market-series", cache_policy=NO_CACHE)
def market_task(
    store: StoreRef, cfg: FeatureSettings, symbols: list[str], version: str
) -> HashedFile | None:
    """Write the universe's market series that every batch joins (when a group needs it)."""
    return write_market(Store.open(store), symbols, cfg, version)


@task(
    name="build-features",
    cache_policy=INPUTS + TASK_SOURCE,
    persist_result=True,
    result_serializer="json",
)
def build_part_task(
    store: StoreRef,
    cfg: FeatureSettings,
    fingerprint: Fingerprint,
    version: str,
    index: int,
) -> list[FeaturePart]:
    """Build and write the parts of one batch of symbols, ``chunk_rows`` input rows at a time.

    Cached on (store, feature settings, the batch's fingerprint, version): never on frames."""
    return write_parts(
        Store.open(store), fingerprint, cfg, version, index, log=get_run_logger().info
    )


@task(name="publish-features", cache_policy=NO_CACHE)
def publish_task(
    store: StoreRef,
    cfg: FeatureSettings,
    version: str,
    fingerprint: Fingerprint,
    parts: list[FeaturePart],
    seconds: float,
    market: HashedFile | None,
) -> FeaturesManifest:
    """Write the manifest (making the new parts current), then drop older builds' parts."""
    doc = manifest(cfg, version, fingerprint, parts, seconds, market)
    publish(Store.open(store), doc)
    return doc


@task(name="discard-build", cache_policy=NO_CACHE)
def discard_task(store: StoreRef, version: str) -> list[str]:
    """After a failed build: delete the files it wrote that no manifest vouches for."""
    gone = discard_unpublished(Store.open(store), version)
    get_run_logger().warning(
        "build %s failed: the %d file(s) it wrote deleted; the current build is unchanged",
        version,
        len(gone),
    )
    return gone


@task(name="verify-build", cache_policy=NO_CACHE)
def damaged_files_task(store: StoreRef, doc: FeaturesManifest) -> dict[str, str]:
    """Files of the current build that are missing or fail their sha256."""
    return doc.problems(Store.open(store))


def parts_intact(store: StoreRef, parts: list[FeaturePart]) -> bool:
    """A cached batch's parts are all there with the sha256 recorded when they were written."""
    hashed = {p.key: p.sha256 for p in parts}
    return not file_problems(Store.open(store), hashed, "the batch's result")


def summary_markdown(doc: FeaturesManifest, skipped: bool) -> str:
    """The build's summary: what it holds and whether it was built or reused."""
    n_features = sum(len(v) for v in doc.features.values())
    state = (
        "unchanged inputs and config: nothing rebuilt" if skipped else f"built in {doc.seconds} s"
    )
    return "\n".join(
        [
            f"# Feature table `{doc.version}`",
            "",
            f"{state}",
            "",
            "| rows | symbols | features | groups | horizon | seconds |",
            "|---|---|---|---|---|---|",
            f"| {doc.rows} | {doc.symbols} | {n_features} | {', '.join(doc.groups)} | {doc.horizon} | {doc.seconds} |",
        ]
    )


def publish_summary(doc: FeaturesManifest, skipped: bool) -> None:
    create_markdown_artifact(
        key="features-summary", markdown=summary_markdown(doc, skipped), description="Feature table"
    )
