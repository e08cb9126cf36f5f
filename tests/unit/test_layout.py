"""The store layout: one module holds every key (the site's layout page is generated from it),
and a store carries its layout version."""

from __future__ import annotations

import pytest

from core import layout
from core.errors import InputError
from core.storage import Store


def test_keys_format_and_match_back():
    key = layout.PRICES(symbol="BRK-B")
    assert key == "raw/prices/symbol=BRK-B/data.parquet"
    assert layout.PRICES.match(key) == {"symbol": "BRK-B"}
    assert layout.PRICES.match("raw/prices/symbol=BRK-B/other.parquet") is None
    assert layout.PRICES.prefix == "raw/prices"
    part = layout.FEATURE_PART(version="abc", index=3, chunk=1)
    assert part == "features/abc/part-00003-001.parquet"
    assert layout.FEATURE_PART.match(part) == {"version": "abc", "index": "00003", "chunk": "001"}
    assert layout.FEATURE_PART.shown == "features/<version>/part-<index>-<chunk>.parquet"
    assert layout.run_key("r1", "model/params.json") == layout.RUN_MODEL(
        run_id="r1", file="params.json"
    )


def test_first_write_records_the_layout_version_and_reads_write_nothing(tmp_path):
    store = Store(str(tmp_path / "s"))
    assert layout.check_layout(store) == 1  # unmarked, as a store older than store.json is
    assert not (tmp_path / "s").exists()  # checking an empty store writes nothing
    store.write_json("a/b.json", {"x": 1})
    meta = store.read_json(layout.STORE_META())
    assert meta["layout_version"] == layout.LAYOUT_VERSION and "created_at" in meta
    assert layout.check_layout(store) == layout.LAYOUT_VERSION
    store.write_json(layout.STORE_META(), meta | {"layout_version": layout.LAYOUT_VERSION + 1})
    newer = layout.LAYOUT_VERSION + 1
    with pytest.raises(
        InputError, match=rf"layout version {newer}, newer than this code's {layout.LAYOUT_VERSION}"
    ):
        layout.check_layout(Store(str(tmp_path / "s")))


def test_a_store_without_version_is_layout_1_and_keeps_its_marker(tmp_path):
    store = Store(str(tmp_path / "old"))
    (tmp_path / "old" / "raw").mkdir(parents=True)
    assert layout.check_layout(store) == 1
    store.write_json("raw/x.json", {})
    first = store.read_bytes(layout.STORE_META())
    Store(str(tmp_path / "old")).write_json("raw/y.json", {})  # a later writer keeps it as it is
    assert store.read_bytes(layout.STORE_META()) == first


def test_a_store_marked_by_an_older_version_is_upgraded_on_the_first_write(tmp_path):
    """Older code must refuse the files this code writes: the marker goes up, keeping when
    the store was created."""
    store = Store(str(tmp_path / "v1"))
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "store.json").write_text('{"layout_version": 1, "created_at": "then"}')
    assert layout.check_layout(store) == 1
    store.write_json("raw/x.json", {})
    meta = store.read_json(layout.STORE_META())
    assert meta["layout_version"] == layout.LAYOUT_VERSION and meta["created_at"] == "then"
    assert "upgraded_at" in meta


def test_each_horizon_has_its_own_keys_and_shares_the_prices(tmp_path):
    """Layout 3: the root feature build's horizon keeps the root keys; another horizon's live
    under horizons/h=<h>/, but for the shared ones (prices, store.json)."""
    from core.config import StoreRef

    root = Store(str(tmp_path))
    assert root.for_horizon(10, home=3).root.endswith("horizons/h=10")  # no build: home 3
    assert root.for_horizon(3, home=3) is root
    root.write_json(layout.FEATURES_MANIFEST(), {"horizon": 1})  # the first build was h = 1
    assert root.for_horizon(1, home=3) is root and root.home_horizon() == 1
    ten = Store.open(StoreRef(url=str(tmp_path), horizon=10, first_horizon=3))
    ten.write_json(layout.LATEST_RUN(), {"run_id": "r10"})
    ten.write_json(layout.PRICES(symbol="AAPL").replace(".parquet", ".json"), {"shared": True})
    assert (tmp_path / "horizons/h=10/models/latest.json").is_file()
    assert not (tmp_path / "models/latest.json").exists()
    assert (tmp_path / "raw/prices/symbol=AAPL/data.json").is_file()  # shared, at the root
    assert ten.list("raw/prices") == ["raw/prices/symbol=AAPL/data.json"]
    assert ten.list("models") == ["models/latest.json"]
    assert ten.read_json(layout.STORE_META())["layout_version"] == layout.LAYOUT_VERSION
    assert ten.uri(layout.LATEST_RUN()).endswith("horizons/h=10/models/latest.json")
    assert ten.home_horizon() is None  # a view has no home of its own


def test_a_damaged_root_build_never_lets_another_horizon_take_the_root(tmp_path):
    """Which horizon owns the root keys is read from the root feature build; a manifest that
    cannot say is refused, naming it, instead of guessing (another horizon would write over
    the root's runs and forecasts)."""
    from core.storage import DamagedFileError

    (tmp_path / "features").mkdir()
    (tmp_path / "features/manifest.json").write_text("{")
    with pytest.raises(DamagedFileError, match=r"features/manifest\.json"):
        Store(str(tmp_path)).for_horizon(10, home=10)
