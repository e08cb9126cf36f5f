"""A damaged store: each damaged file is named with the command that rebuilds it (exit 3),
repaired where the pipeline can repair it, and no other file changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core import layout
from core.storage import Store
from flows.collect import collect
from flows.features import COMMAND as FEATURES
from flows.predict import COMMAND as PREDICT
from flows.train import train
from tests.factories import SAMPLE_COLLECT, store_files

pytestmark = pytest.mark.usefixtures("prefect_server", "clean_env")
FAST = {"num_boost_round": 60, "min_data_in_leaf": 50}


def truncate(path: Path, size: int = 20) -> None:
    path.write_bytes(path.read_bytes()[:size])


@pytest.fixture()
def trained(store_dir: Path) -> tuple[Path, str]:
    result: dict[str, Any] = train(store=str(store_dir), model="lightgbm", params=FAST)  # pyright: ignore[reportAssignmentType]
    return store_dir, result["run_id"]


def test_damaged_run_files_are_named_with_the_rebuild_command(trained, capsys):
    store_dir, run_id = trained
    manifest = store_dir / layout.RUN_MANIFEST(run_id=run_id)
    kept = manifest.read_bytes()
    truncate(manifest)
    before = store_files(store_dir)
    assert PREDICT.main(["--store", str(store_dir), "--run", run_id]) == 3
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: damaged file {manifest}: not valid JSON (")
    assert err.endswith("; to rebuild it: python -m flows.train (a new run)")
    assert store_files(store_dir) == before  # nothing written
    manifest.write_bytes(kept)

    scale = store_dir / layout.RUN_MODEL(run_id=run_id, file="scale.json")
    scale.unlink()
    assert PREDICT.main(["--store", str(store_dir)]) == 3
    err = capsys.readouterr().err
    assert f"run {run_id}: model/scale.json is missing (its manifest lists it)" in err


def test_a_damaged_latest_pointer_falls_back_to_the_newest_complete_run(trained, caplog):
    store_dir, run_id = trained
    truncate(store_dir / layout.LATEST_RUN(), 5)
    assert PREDICT.main(["--store", str(store_dir)]) == 0
    assert any(
        "latest.json is damaged" in r.getMessage() and run_id in r.getMessage()
        for r in caplog.records
    )


def test_a_damaged_feature_manifest_is_named_then_rebuilt(trained, capsys):
    store_dir, _ = trained
    truncate(store_dir / layout.FEATURES_MANIFEST())
    assert PREDICT.main(["--store", str(store_dir)]) == 3
    err = capsys.readouterr().err
    assert "damaged file" in err and "features/manifest.json" in err
    assert "to rebuild it: python -m flows.features" in err
    assert FEATURES.main(["--store", str(store_dir)]) == 0  # the named command repairs it
    capsys.readouterr()
    assert PREDICT.main(["--store", str(store_dir)]) == 0


def test_a_damaged_ingestion_table_is_named_then_rebuilt_from_the_prices(store_dir, capsys):
    key = layout.INGESTION()
    damaged = store_dir / key
    truncate(damaged, 100)
    assert FEATURES.main(["--store", str(store_dir), "--horizon", "5"]) == 3
    err = capsys.readouterr().err
    assert f"damaged file {damaged}: not readable Parquet" in err
    assert "python -m flows.collect (it rebuilds the table from the price files)" in err
    prices = {k: v for k, v in store_files(store_dir).items() if k.startswith("raw/prices/")}
    broken = damaged.read_bytes()
    summary: dict[str, Any] = collect(store=str(store_dir), **SAMPLE_COLLECT)  # pyright: ignore[reportAssignmentType]
    assert summary["failed"] == 0
    table = Store(str(store_dir)).read_parquet(key)
    assert table.height == 40 and (table["attempts"] == 1).all()  # counted from the rebuilt 0
    aside = store_dir / layout.CORRUPT(run_id=summary["run_id"], key=key)
    assert aside.read_bytes() == broken
    assert {
        k: v for k, v in store_files(store_dir).items() if k.startswith("raw/prices/")
    } == prices
    assert FEATURES.main(["--store", str(store_dir), "--horizon", "5"]) == 0


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_bytes_in_a_feature_part_are_caught_by_its_checksum(trained, capsys):
    store_dir, _ = trained
    doc = Store(str(store_dir)).read_json(layout.FEATURES_MANIFEST())
    assert set(doc["checksums"]) == {*doc["parts"], layout.MARKET(version=doc["version"])}
    part = store_dir / doc["parts"][0]
    flip_byte(part)
    assert PREDICT.main(["--store", str(store_dir)]) == 3
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: damaged file {part}: does not match the sha256 in the feature manifest; "
        "to rebuild it: python -m flows.features"
    )
    # The named command rebuilds the damaged build although its inputs are unchanged.
    assert FEATURES.main(["--store", str(store_dir)]) == 0
    assert "nothing rebuilt" not in capsys.readouterr().out
    assert PREDICT.main(["--store", str(store_dir)]) == 0


def test_a_damaged_market_series_is_rebuilt_not_skipped(store_dir, capsys):
    doc = Store(str(store_dir)).read_json(layout.FEATURES_MANIFEST())
    market = store_dir / layout.MARKET(version=doc["version"])
    flip_byte(market)
    assert FEATURES.main(["--store", str(store_dir)]) == 0
    assert "nothing rebuilt" not in capsys.readouterr().out
    assert FEATURES.main(["--store", str(store_dir)]) == 0
    assert "nothing rebuilt" in capsys.readouterr().out  # intact now (its new sha256): skipped


def test_a_damaged_price_file_is_named_by_the_features_flow(store_dir, capsys):
    key = layout.PRICES(symbol="KO")
    truncate(store_dir / key, 500)
    assert FEATURES.main(["--store", str(store_dir), "--horizon", "5"]) == 3
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: damaged file {store_dir / key}: not readable Parquet")
    assert err.endswith(
        "to rebuild it: python -m flows.collect (it sets a damaged price file aside and refetches the symbol)"
    )
