"""Property: random damage to any one file the pipeline reads (truncated, a flipped byte,
deleted), then the pipeline flow: it repairs the damage or exits with one line naming that
file, and no other input file changes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.pipeline import COMMAND as PIPELINE
from tests.factories import SAMPLE_COLLECT

pytestmark = pytest.mark.usefixtures("prefect_server", "clean_env")


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "delete":
        path.unlink()
    elif how == "truncate":
        path.write_bytes(data[: len(data) // 3])
    else:  # a flipped byte in the middle
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(flipped))


def read_by_pipeline(root: Path) -> list[str]:
    """The files a pipeline run reads: prices, the ingestion table, the feature build."""
    keys = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    return sorted(k for k in keys if k.startswith(("raw/prices/", "raw/ingestion", "features/")))


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), how=st.sampled_from(["truncate", "flip", "delete"]))
def test_damage_is_repaired_or_named(featured, tmp_path_factory, monkeypatch, capsys, data, how):
    sample = {f"SMA_{k.upper()}": str(v) for k, v in SAMPLE_COLLECT.items()}
    for name, value in (
        sample | {"SMA_MODEL__NAME": "ewma", "SMA_TRACKING__WANDB_MODE": "disabled"}
    ).items():
        monkeypatch.setenv(name, value)
    root = tmp_path_factory.mktemp("damaged") / "store"
    shutil.copytree(featured, root)
    key = data.draw(st.sampled_from(read_by_pipeline(root)), label="file")
    prices = {
        k: (root / k).read_bytes() for k in read_by_pipeline(root) if k.startswith("raw/prices/")
    }
    damage(root / key, how)
    capsys.readouterr()
    code = PIPELINE.main(["--store", str(root)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    if code:  # a damaged file the pipeline cannot repair: exit 3, naming it
        assert code == 3 and len(err) == 1 and key in err[0], (code, err)
    else:
        assert not err
    for other, content in prices.items():
        if other != key:
            assert (root / other).read_bytes() == content, other
