"""The feature table in the store: inputs fingerprint, parts and manifest.

Layout (``core.layout``): the parts and the market series of a build under
``features/<version>/``, then ``features/manifest.json``, written last. Readers go through
the manifest, so they never mix parts of two builds; the version is derived from the
inputs, the config and the code, so an unchanged build is a no-op.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import polars as pl

from core import layout
from core.config import FeatureSettings
from core.errors import InputError, InsufficientDataError, NothingUsableError
from core.features.build import build_features
from core.features.context import TARGET, Windows
from core.features.manifest import FeaturePart, FeaturesManifest, Fingerprint, HashedFile
from core.features.market import market_frame
from core.features.registry import (
    code_version,
    feature_names,
    needs_market,
    output_columns,
    warmup_rows,
)
from core.features.schema import non_finite_columns, schema_problems
from core.storage import DamagedFileError, Store


class FeatureQualityError(NothingUsableError):
    """Computed features broke the output schema (a formula produced NaN or inf): nothing is
    written; the message names the columns and symbols."""


class MissingInputError(InputError):
    """An upstream artifact this step needs is not in the store; the message says which."""


def price_keys(store: Store) -> dict[str, str]:
    """symbol -> key of its prices file, for every symbol usable downstream: symbols whose
    last collection marked them ``insufficient`` (too short a history) are left out. Prices
    without the ingestion table are a collection that never finished (``MissingInputError``):
    features would be built from whichever symbols happened to land."""
    excluded = set()
    if store.exists(layout.INGESTION()):
        table = store.read_parquet(layout.INGESTION())
        excluded = set(table.filter(pl.col("status") == "insufficient")["symbol"].to_list())
    keys = {}
    for key in store.list(layout.PRICES.prefix):
        parts = layout.PRICES.match(key)
        if parts and parts["symbol"] not in excluded:
            keys[parts["symbol"]] = key
    if not keys:
        raise MissingInputError(
            f"no prices in {store.uri(layout.PRICES.prefix)}: run `python -m flows.collect` first"
        )
    if not store.exists(layout.INGESTION()):  # written last by a collect: it never finished
        raise MissingInputError(
            f"the collection into {store.uri(layout.PRICES.prefix)} never finished (no "
            f"{store.uri(layout.INGESTION())}): run `python -m flows.collect` again"
        )
    return dict(sorted(keys.items()))


def collect_naming_damage(store: Store, keys: list[str], query: pl.LazyFrame) -> pl.DataFrame:
    """Run a query over stored files; when a file cannot be parsed, the error names it (and
    how to rebuild it) instead of Polars' anonymous one."""
    try:
        return query.collect()
    except pl.exceptions.PolarsError:
        for key in keys:
            store.read_parquet(key)  # raises DamagedFileError for the damaged one
        raise


def price_panel(store: Store, since: dt.date | None = None) -> pl.DataFrame:
    """symbol, date, high, low, close of every stored symbol (the price models, and the
    volatility terciles of evaluations, use them); with ``since``, only the rows from that
    date on, filtered inside the scan."""
    keys = list(price_keys(store).values())
    query = store.scan_parquet(keys).select("symbol", "date", "high", "low", "close")
    if since is not None:
        query = query.filter(pl.col("date") >= since)
    return collect_naming_damage(store, keys, query)


def input_fingerprint(store: Store, keys: dict[str, str]) -> Fingerprint:
    """Per symbol: (last date, row count) of its stored prices (reads two columns only)."""
    files = list(keys.values())
    stats = collect_naming_damage(
        store,
        files,
        store.scan_parquet(files)
        .group_by("symbol")
        .agg(pl.col("date").max().alias("last"), pl.len().alias("rows"))
        .sort("symbol"),
    )
    return {sym: (str(last), rows) for sym, last, rows in stats.iter_rows()}


def short_histories(fingerprint: Fingerprint, cfg: FeatureSettings) -> dict[str, int]:
    """Symbols whose stored history is no longer than the groups' warm-up, with their row
    counts: they give no feature row. Every symbol short is an error (nothing to build)."""
    warmup = warmup_rows(cfg.groups, cfg.horizon)
    short = {symbol: n for symbol, (_, n) in fingerprint.items() if n <= warmup}
    if short and len(short) == len(fingerprint):
        listed = ", ".join(f"{s} ({n})" for s, n in list(short.items())[:10])
        raise InsufficientDataError(
            f"no symbol has more rows than the {warmup} rows of warm-up that groups "
            f"{', '.join(cfg.groups)} need (rows: {listed}{' ...' if len(short) > 10 else ''}): "
            "collect a longer history"
        )
    return short


def config_dict(cfg: FeatureSettings) -> dict[str, Any]:
    """What, besides the inputs, decides the table's content."""
    return {
        "groups": cfg.groups,
        "horizon": cfg.horizon,
        "window_mode": cfg.window_mode,
        "code": code_version(),
    }


def chunks(fingerprint: Fingerprint, symbols: list[str], max_rows: int) -> list[list[str]]:
    """Consecutive groups of symbols holding at most ``max_rows`` stored rows (at least one symbol)."""
    groups: list[list[str]] = [[]]
    rows = 0
    for symbol in symbols:
        n = fingerprint[symbol][1]
        if groups[-1] and rows + n > max_rows:
            groups.append([])
            rows = 0
        groups[-1].append(symbol)
        rows += n
    return [g for g in groups if g]


def write_market(
    store: Store, symbols: list[str], cfg: FeatureSettings, version: str
) -> HashedFile | None:
    """The universe's market series (``core.features.market.market_frame``), written once per build
    before the batches that join it: its key and sha256; None when no group needs it."""
    if not needs_market(cfg.groups):
        return None
    table = market_frame(
        store.scan_parquet([layout.PRICES(symbol=s) for s in symbols]).select(
            "symbol", "date", "close"
        )
    ).collect()
    key = layout.MARKET(version=version)
    return HashedFile(key=key, sha256=store.write_parquet(key, table))


def build_chunk(
    store: Store, keys: list[str], cfg: FeatureSettings, market: pl.LazyFrame | None = None
) -> pl.DataFrame:
    """Features of the symbols behind ``keys``, checked against the output schema and stored
    as Float32 (what the regressors bin them to anyway; half the memory and disk).
    ``market``: the whole universe's market series, for groups that need it."""
    columns = output_columns(cfg.groups, cfg.horizon)
    query = build_features(
        store.scan_parquet(keys), cfg.groups, cfg.horizon, cfg.window_mode, market
    )
    table = collect_naming_damage(
        store, keys, query.with_columns(pl.exclude("symbol", "date", TARGET).cast(pl.Float32))
    )
    # on the stored Float32 values: an overflow to inf is caught too
    if problems := schema_problems(table, columns, pl.Float32):
        bad, where = non_finite_columns(table, columns), ""
        if bad and problems[-1].startswith("non-finite"):  # name the symbols too
            rows = ~pl.all_horizontal(pl.col(bad).is_finite().fill_null(False))
            symbols = sorted(table.filter(rows)["symbol"].unique().to_list())
            where = f" (symbols {', '.join(symbols[:10])}{' ...' if len(symbols) > 10 else ''})"
        raise FeatureQualityError(f"feature table failed its schema: {'; '.join(problems)}{where}")
    return table


def write_parts(
    store: Store,
    fingerprint: Fingerprint,
    cfg: FeatureSettings,
    version: str,
    index: int,
    log: Callable[[str], None] = lambda _: None,
) -> list[FeaturePart]:
    """Build the symbols of ``fingerprint`` ``chunk_rows`` input rows at a time and write one
    part per chunk; a chunk's write overlaps the next chunk's build."""
    market = (
        store.scan_parquet([layout.MARKET(version=version)]) if needs_market(cfg.groups) else None
    )
    built: list[tuple[str, int, int]] = []  # key, rows, symbols of each part
    writes: list[Future[str]] = []  # their sha256 once written
    with ThreadPoolExecutor(max_workers=1) as writer:
        for n, symbols in enumerate(chunks(fingerprint, list(fingerprint), cfg.chunk_rows)):
            started = time.perf_counter()
            table = build_chunk(store, [layout.PRICES(symbol=s) for s in symbols], cfg, market)
            key = layout.FEATURE_PART(version=version, index=index, chunk=n)
            if writes:
                writes[-1].result()  # one chunk waits to be written at a time (bounds memory)
            writes.append(writer.submit(store.write_parquet, key, table, "lz4"))
            built.append((key, table.height, len(symbols)))
            log(
                f"{key}: {len(symbols)} symbols, {table.height} rows built in {time.perf_counter() - started:.1f}s"
            )
    return [
        FeaturePart(key=key, rows=rows, symbols=n, sha256=write.result())
        for (key, rows, n), write in zip(built, writes, strict=True)
    ]


def manifest(
    cfg: FeatureSettings,
    version: str,
    fingerprint: Fingerprint,
    parts: list[FeaturePart],
    seconds: float,
    market: HashedFile | None = None,
) -> FeaturesManifest:
    """``features/manifest.json``: what the table holds and what it was built from."""
    files = [*parts, *([market] if market else [])]
    return FeaturesManifest(
        version=version,
        created_at=dt.datetime.now(dt.UTC).isoformat(),
        groups=cfg.groups,
        features=feature_names(cfg.groups, cfg.horizon),
        target=TARGET,
        horizon=cfg.horizon,
        windows=Windows(cfg.horizon).as_dict(),
        warmup_rows=warmup_rows(cfg.groups, cfg.horizon),
        window_mode=cfg.window_mode,
        code_version=code_version(),
        rows=sum(p.rows for p in parts),
        symbols=len(fingerprint),
        parts=[p.key for p in parts],
        checksums={f.key: f.sha256 for f in files},
        input_fingerprint=fingerprint,
        seconds=round(seconds, 2),
    )


def publish(store: Store, doc: FeaturesManifest) -> None:
    """Make a build current: write its manifest, then delete older builds' files."""
    manifest_key = layout.FEATURES_MANIFEST()
    doc.publish(store, manifest_key)
    own = layout.FEATURE_PART.prefix + f"/{doc.version}/"
    for key in store.list(layout.FEATURE_PART.prefix):
        if key != manifest_key and not key.startswith(own):
            store.delete(key)


def discard_unpublished(store: Store, version: str) -> list[str]:
    """After build ``version`` failed: delete the files it wrote (parts, market series) that
    the current manifest does not vouch for, and the folders it made when they are left
    empty, so that the store holds what it held before the run (the previous build current
    and readable); their keys. Call it once no batch of the build still writes."""
    try:
        current = read_manifest(store)
    except DamagedFileError:  # no build can be read: none to keep
        current = None
    kept = set(current.hashed()) if current is not None else set()
    folder = f"{layout.FEATURE_PART.prefix}/{version}"
    gone = [key for key in store.list(folder) if key not in kept]
    for key in gone:
        store.delete(key)
    if not store.is_s3:  # S3 has no folders
        for rel in (folder, layout.FEATURE_PART.prefix):
            with contextlib.suppress(OSError):  # not empty, or not there
                os.rmdir(store.path(rel))
    return gone


def read_manifest(store: Store) -> FeaturesManifest | None:
    """The current build's manifest, unverified (None when there is none)."""
    key = layout.FEATURES_MANIFEST()
    return FeaturesManifest.read(store, key) if store.exists(key) else None


@dataclass(frozen=True)
class FeatureBuild:
    """The current feature build, opened once: its manifest read and every file it names
    checked against its sha256 (flipped bytes that still parse are caught here, not
    trained on). Hand it on rather than reading the store again."""

    store: Store
    manifest: FeaturesManifest

    @classmethod
    def open(cls, store: Store) -> FeatureBuild:
        doc = read_manifest(store)
        if doc is None:
            raise MissingInputError(
                f"no feature table in {store.uri(layout.FEATURE_PART.prefix)}: run `python -m flows.features` first"
            )
        return cls(store, doc.verify(store))

    def scan(self, since: dt.date | None = None) -> pl.LazyFrame:
        """The feature table (rows from ``since`` on, filtered inside the scan)."""
        table = self.store.scan_parquet(self.manifest.parts)
        return table if since is None else table.filter(pl.col("date") >= since)

    def prices(self, since: dt.date | None = None) -> pl.DataFrame:
        """The stored price panel (``price_panel``) beside the build."""
        return price_panel(self.store, since)

    def newest_prices(self) -> str | None:
        """The newest date of any stored prices now (a build older than it is stale)."""
        fingerprint = input_fingerprint(self.store, price_keys(self.store))
        return max((last for last, _ in fingerprint.values()), default=None)
