"""The feature table in the store: inputs fingerprint, parts and manifest.

Layout: ``features/<version>/part-<n>.parquet`` plus ``features/manifest.json``, written
last. Readers go through the manifest, so they never mix parts of two builds; the
version is derived from the inputs and the config, so an unchanged build is a no-op.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import polars as pl
from pandera.errors import SchemaErrors

from core.collection import INGESTION_KEY, prices_key
from core.config import FeatureSettings
from core.features import (
    TARGET,
    Windows,
    build_features,
    code_version,
    feature_names,
    features_schema,
    market_frame,
    needs_market,
    non_finite_columns,
    warmup_rows,
)
from core.storage import Store

MANIFEST_KEY = "features/manifest.json"
PRICES_PREFIX = "raw/prices"


class FeatureQualityError(ValueError):
    """Computed features broke the output schema (a formula produced NaN or inf)."""


class MissingInputError(RuntimeError):
    """An upstream artifact this step needs is not in the store; the message says which."""


def price_keys(store: Store) -> dict[str, str]:
    """symbol -> key of its prices file, for every symbol usable downstream: symbols whose
    last collection marked them ``insufficient`` (too short a history) are left out."""
    excluded = set()
    if store.exists(INGESTION_KEY):
        table = store.read_parquet(INGESTION_KEY)
        excluded = set(table.filter(pl.col("status") == "insufficient")["symbol"].to_list())
    keys = {}
    for key in store.list(PRICES_PREFIX):
        part = key.split("/")
        if len(part) == 4 and part[2].startswith("symbol=") and part[3] == "data.parquet":
            symbol = part[2].removeprefix("symbol=")
            if symbol not in excluded:
                keys[symbol] = key
    if not keys:
        raise MissingInputError(
            f"no prices in {store.uri(PRICES_PREFIX)}: run `python -m flows.collect` first"
        )
    return dict(sorted(keys.items()))


def close_prices(store: Store) -> pl.DataFrame:
    """symbol, date, close of every stored symbol (baselines and volatility terciles use them)."""
    return (
        store.scan_parquet(list(price_keys(store).values()))
        .select("symbol", "date", "close")
        .collect()
    )


def input_fingerprint(store: Store, keys: dict[str, str]) -> dict[str, list[Any]]:
    """Per symbol: [last date, row count] of its stored prices (reads two columns only)."""
    stats = (
        store.scan_parquet(list(keys.values()))
        .group_by("symbol")
        .agg(pl.col("date").max().alias("last"), pl.len().alias("rows"))
        .sort("symbol")
        .collect()
    )
    return {sym: [str(last), rows] for sym, last, rows in stats.iter_rows()}


def config_dict(cfg: FeatureSettings) -> dict[str, Any]:
    """What, besides the inputs, decides the table's content."""
    return {
        "groups": cfg.groups,
        "horizon": cfg.horizon,
        "window_mode": cfg.window_mode,
        "code": code_version(),
    }


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def chunks(fingerprint: dict[str, list[Any]], symbols: list[str], max_rows: int) -> list[list[str]]:
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


def market_key(version: str) -> str:
    return f"features/{version}/market.parquet"


def write_market(
    store: Store, symbols: list[str], cfg: FeatureSettings, version: str
) -> str | None:
    """The universe's market series (``core.features.market_frame``), written once per build
    before the batches that join it; None when no feature group needs it."""
    if not needs_market(cfg.groups):
        return None
    table = market_frame(
        store.scan_parquet([prices_key(s) for s in symbols]).select("symbol", "date", "close")
    ).collect()
    key = market_key(version)
    store.write_parquet(key, table)
    return key


def build_chunk(
    store: Store, keys: list[str], cfg: FeatureSettings, market: pl.LazyFrame | None = None
) -> pl.DataFrame:
    """Features of the symbols behind ``keys``, checked against the output schema and stored
    as Float32 (what the regressors bin them to anyway; half the memory and disk).
    ``market``: the whole universe's market series, for groups that need it."""
    names = feature_names(cfg.groups, cfg.horizon)
    columns = list(dict.fromkeys(n for g in cfg.groups for n in names[g]))
    query = build_features(
        store.scan_parquet(keys), cfg.groups, cfg.horizon, cfg.window_mode, market
    )
    table = query.with_columns(pl.exclude("symbol", "date", TARGET).cast(pl.Float32)).collect()
    try:  # on the stored Float32 values: an overflow to inf is caught too
        features_schema(columns, pl.Float32).validate(table, lazy=True)
    except SchemaErrors as exc:
        bad = non_finite_columns(table, columns)
        raise FeatureQualityError(
            f"feature table failed its schema; non-finite values in {bad or 'none'}: {exc}"
        ) from None
    return table


def part_key(version: str, index: int, chunk: int = 0) -> str:
    return f"features/{version}/part-{index:05d}-{chunk:03d}.parquet"


def write_parts(
    store: Store, fingerprint: dict[str, list[Any]], cfg: FeatureSettings, version: str, index: int,
    log: Callable[[str], None] = lambda _: None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Build the symbols of ``fingerprint`` ``chunk_rows`` input rows at a time and write one
    part per chunk; a chunk's write overlaps the next chunk's build."""
    parts: list[dict[str, Any]] = []
    market = store.scan_parquet([market_key(version)]) if needs_market(cfg.groups) else None
    with ThreadPoolExecutor(max_workers=1) as writer:
        pending: Future[None] | None = None
        for n, symbols in enumerate(chunks(fingerprint, list(fingerprint), cfg.chunk_rows)):
            started = time.perf_counter()
            table = build_chunk(store, [prices_key(s) for s in symbols], cfg, market)
            key = part_key(version, index, n)
            if pending is not None:
                pending.result()
            pending = writer.submit(store.write_parquet, key, table, "lz4")
            parts.append({"key": key, "rows": table.height, "symbols": len(symbols)})
            log(
                f"{key}: {len(symbols)} symbols, {table.height} rows built in {time.perf_counter() - started:.1f}s"
            )
        if pending is not None:
            pending.result()
    return parts


def manifest(
    cfg: FeatureSettings,
    version: str,
    fingerprint: dict[str, Any],
    parts: list[dict[str, Any]],
    seconds: float,
) -> dict[str, Any]:
    """``features/manifest.json``: what the table holds and what it was built from."""
    return {
        "version": version,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "groups": cfg.groups,
        "features": feature_names(cfg.groups, cfg.horizon),
        "target": "y",
        "horizon": cfg.horizon,
        "windows": Windows(cfg.horizon).as_dict(),
        "warmup_rows": warmup_rows(cfg.groups, cfg.horizon),
        "window_mode": cfg.window_mode,
        "code_version": code_version(),
        "rows": sum(p["rows"] for p in parts),
        "symbols": len(fingerprint),
        "parts": [p["key"] for p in parts],
        "input_fingerprint": fingerprint,
        "seconds": round(seconds, 2),
    }


def read_manifest(store: Store) -> dict[str, Any] | None:
    return store.read_json(MANIFEST_KEY) if store.exists(MANIFEST_KEY) else None


def load_features(store: Store) -> pl.LazyFrame:
    """The current feature table, as the manifest names it."""
    current = read_manifest(store)
    if current is None:
        raise MissingInputError(
            f"no feature table in {store.uri('features')}: run `python -m flows.features` first"
        )
    return store.scan_parquet(current["parts"])
