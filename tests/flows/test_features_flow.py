"""The feature flow under a real (temporary) Prefect server, on the collected sample."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from core import layout
from core.features.build import build_features
from core.features.registry import feature_names
from core.features.table import FeatureBuild, price_keys
from core.storage import Store
from flows.features import COMMAND, features
from tests.factories import assert_frames_close

pytestmark = pytest.mark.usefixtures("prefect_server", "clean_env")


@pytest.fixture()
def store_dir(collected: Path, tmp_path: Path) -> Path:
    target = tmp_path / "store"
    shutil.copytree(collected, target)
    return target


def run(store: Path | str, **kw: Any) -> dict[str, Any]:
    return features(store=str(store), **kw)  # pyright: ignore[reportReturnType]


def prices(store: Store) -> pl.DataFrame:
    return store.scan_parquet(list(price_keys(store).values())).collect()


def test_builds_table_and_manifest_then_skips_when_unchanged(store_dir):
    doc = run(store_dir, groups=["seed", "alpha158", "risk"])
    store = Store(str(store_dir))
    manifest = store.read_json(layout.FEATURES_MANIFEST())
    assert doc["skipped"] is False and manifest["version"] == doc["version"]
    # the registry's columns (their counts are pinned once, in tests/unit/test_features.py)
    assert manifest["features"] == feature_names(["seed", "alpha158", "risk"], 3)
    assert (
        manifest["horizon"] == 3
        and manifest["windows"]["long"] == 15
        and manifest["warmup_rows"] == 127
    )
    assert len(manifest["input_fingerprint"]) == 39  # APTV is `insufficient` (44 rows): left out
    assert "APTV" not in manifest["input_fingerprint"]
    assert manifest["input_fingerprint"]["AOS"] == ["2018-02-07", 1258]
    table = FeatureBuild.open(store).scan().collect()
    assert table.height == manifest["rows"] > 40_000
    expected = build_features(prices(store).lazy(), ["seed", "alpha158", "risk"], 3).collect()
    # stored as Float32: equal to the Float64 computation up to float32 rounding
    assert_frames_close(
        table, expected.with_columns(pl.exclude("symbol", "date", "y").cast(pl.Float32)), rtol=1e-6
    )

    again = run(store_dir, groups=["seed", "alpha158", "risk"])
    assert (
        again["skipped"] is True
        and store.read_json(layout.FEATURES_MANIFEST())["created_at"] == manifest["created_at"]
    )

    # the table is deleted inside the cache window: rebuilt, not taken from the cache
    shutil.rmtree(store_dir / "features")
    rebuilt = run(store_dir, groups=["seed", "alpha158", "risk"])
    assert rebuilt["skipped"] is False
    assert FeatureBuild.open(store).scan().collect().height == manifest["rows"]

    # one symbol gets a new bar: a new version replaces the old parts
    ko = store.read_parquet(layout.PRICES(symbol="KO"))
    extra = ko.tail(1).with_columns(pl.lit(dt.date(2018, 2, 8)).alias("date"))
    store.write_parquet(layout.PRICES(symbol="KO"), pl.concat([ko, extra]))
    third = run(store_dir, groups=["seed", "alpha158", "risk"])
    assert third["skipped"] is False and third["version"] != manifest["version"]
    assert all(
        k.startswith(f"features/{third['version']}/") or k == layout.FEATURES_MANIFEST()
        for k in store.list("features")
    )
    assert FeatureBuild.open(store).scan().filter(pl.col("symbol") == "KO").collect()[
        "date"
    ].max() == dt.date(2018, 2, 8)


def test_batches_give_the_same_table(store_dir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(store_dir, other)
    whole = run(store_dir, groups=["seed", "alpha158", "risk"])
    batched = run(other, groups=["seed", "alpha158", "risk"], symbols_per_task=7)
    assert len(whole["parts"]) == 1 and len(batched["parts"]) == 6
    assert batched["version"] == whole["version"]  # same content, whatever the batching
    batched_table = FeatureBuild.open(Store(str(other))).scan().collect()
    assert_frames_close(
        batched_table,
        FeatureBuild.open(Store(str(store_dir))).scan().collect(),
        rtol=1e-6,
        atol=1e-7,
    )
    # batching is not part of the content: a rebuild with another batch size is skipped
    assert run(other, groups=["seed", "alpha158", "risk"], symbols_per_task=3)["skipped"] is True


def test_horizon_changes_target_and_windows(store_dir):
    doc = run(store_dir, groups=["seed"], horizon=5)
    assert doc["windows"]["short"] == 15 and doc["warmup_rows"] == 51
    table = FeatureBuild.open(Store(str(store_dir))).scan().collect()
    assert table.group_by("symbol").agg(pl.col("y").is_null().sum())["y"].unique().to_list() == [5]


def test_features_on_s3(tmp_path, s3_bucket, s3_endpoint, monkeypatch, collected):
    monkeypatch.setenv("SMA_S3__ENDPOINT_URL", s3_endpoint)
    url = f"s3://{s3_bucket}/prod"
    s3 = Store(url, endpoint_url=s3_endpoint)
    local = Store(str(collected))
    usable = list(price_keys(local).values())[:6]  # none the ingestion table leaves out
    for key in [*usable, layout.INGESTION()]:
        s3.write_bytes(key, local.read_bytes(key))
    doc = run(url, groups=["seed"])
    assert doc["symbols"] == 6 and s3.exists(layout.FEATURES_MANIFEST())
    assert FeatureBuild.open(s3).scan().collect().height == doc["rows"]


def test_cli_errors_exit_2(tmp_path, capsys):
    assert COMMAND.main(["--store", str(tmp_path / "empty")]) == 2
    assert "no prices in" in capsys.readouterr().err
    assert COMMAND.main(["--store", str(tmp_path), "--groups", "seed,magic"]) == 2
    assert "unknown feature group 'magic'" in capsys.readouterr().err
    assert not (tmp_path / "empty").exists()


def test_too_little_data_is_a_clear_error_at_the_first_step_that_can_tell(tmp_path, capsys):
    """2 symbols x 100 days: too short for the risk group's warm-up (exit 2, nothing
    written); long enough for seed features, then too short to train (exit 2, the
    shortfall named)."""
    import datetime as dt

    from flows.collect import collect
    from flows.train import COMMAND as TRAIN

    store = tmp_path / "store"
    tickers = tmp_path / "tickers.csv"
    tickers.write_text("Symbol\nAAA\nBBB\n")
    collect(
        tickers=str(tickers),
        source="synthetic",
        store=str(store),
        start=dt.date(2024, 1, 1),
        end=dt.date(2024, 5, 17),
    )
    assert COMMAND.main(["--store", str(store), "--groups", "seed,risk"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: no symbol has more rows than the 127 rows of warm-up that groups seed, risk need "
        "(rows: AAA (100), BBB (100)): collect a longer history"
    )
    assert not (store / "features").exists()
    assert COMMAND.main(["--store", str(store), "--groups", "seed"]) == 0
    capsys.readouterr()
    assert TRAIN.main(["--store", str(store), "--model", "ewma"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "error: too little data to train (each segment needs 20 dates and 100 rows): train "
    )
    assert "rows on" in err and "collect a longer history" in err
    assert not (store / "models").exists()


def digests(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) -> its sha256."""
    import hashlib

    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_full_disk_is_one_line_exit_1_and_the_store_is_left_as_it_was(
    featured, tmp_path, monkeypatch, capsys
):
    """A new build (seed only, six batches on threads) whose third Parquet write meets a full
    disk (Polars' ComputeError, as it wraps the OS error, after a few bytes): one line on
    stderr naming the part's file, exit 1; the parts the build wrote (by every batch) are
    deleted, every other file is byte-identical and the previous build still verifies."""
    import re
    import threading

    store_dir = tmp_path / "store"
    shutil.copytree(featured, store_dir)
    before = digests(store_dir)
    previous = FeatureBuild.open(Store(str(store_dir))).manifest
    real = pl.DataFrame.write_parquet
    lock, calls = threading.Lock(), []

    def write_parquet(self, file, *args, **kwargs):
        with lock:
            calls.append(file)
            n = len(calls)
        if n != 3:
            return real(self, file, *args, **kwargs)
        file.write(b"PAR1 a few bytes")
        raise pl.exceptions.ComputeError(
            "parquet: File out of specification: underlying IO error: No space left on "
            "device (os error 28)"
        )

    monkeypatch.setattr(pl.DataFrame, "write_parquet", write_parquet)
    code = COMMAND.main(["--store", str(store_dir), "--groups", "seed", "--symbols-per-task", "7"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(calls) >= 3
    assert len(err) == 1 and re.fullmatch(
        rf"error: no space left on device writing {re.escape(str(store_dir))}/features/"
        r"[0-9a-f]{16}/part-\d{5}-\d{3}\.parquet: free space or move the store \(SMA_STORE\)",
        err[0],
    ), err
    assert digests(store_dir) == before
    assert sorted(p.name for p in (store_dir / "features").iterdir()) == sorted(
        [previous.version, "manifest.json"]
    )
    after = FeatureBuild.open(Store(str(store_dir))).manifest
    assert after == previous
