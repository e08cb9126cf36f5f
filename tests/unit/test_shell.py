"""The flow shell: one command line for every flow, answered before Prefect starts."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from core.errors import EXIT_CODES, DamagedArtifactError, InputError, NothingUsableError
from flows.shell import Arg, Command, csv_list
from tests.factories import ROOT

FLOWS = sorted(p.stem for p in (ROOT / "flows").glob("*.py") if p.stem not in ("__init__", "shell"))
# --help answers in well under a second: not even numpy or Polars is imported for it
HEAVY = (
    "prefect",
    "catboost",
    "lightgbm",
    "wandb",
    "optuna",
    "matplotlib",
    "pandera",
    "pandas",
    "numpy",
    "polars",
)


def run_module(
    name: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -X importtime -m flows.<name> ...``: stderr lists every module imported."""
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", f"flows.{name}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("SMA_")}
        | {"PYTHONPATH": str(ROOT)}
        | (env or {}),
    )


def imported(stderr: str) -> set[str]:
    return {m.group(1).split(".")[0] for m in re.finditer(r"\|\s+(\S+)\s*$", stderr, re.MULTILINE)}


@pytest.mark.parametrize("name", FLOWS)
def test_help_lists_flags_and_exit_codes_without_heavy_imports(name):
    done = run_module(name, "--help")
    assert done.returncode == 0
    assert f"python -m flows.{name}" in done.stdout and "--store" in done.stdout
    assert all(f"{code}  {text}" in done.stdout for code, text in EXIT_CODES.items())
    assert not imported(done.stderr) & set(HEAVY)


def test_bad_settings_exit_2_in_one_line_before_prefect_starts(tmp_path):
    done = run_module(
        "features", "--store", str(tmp_path / "s"), env={"SMA_FEATURES__HORIZON": "0"}
    )
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert errors == [
        "error: invalid settings: features.horizon: Input should be greater than or equal to 1"
    ]
    assert "prefect" not in imported(done.stderr) and not (tmp_path / "s").exists()


def test_overrides_follow_the_declared_settings_paths():
    command = Command(
        "demo",
        "Demo.",
        (
            Arg("--store", "s", setting="store"),
            Arg("--groups", "g", setting="features.groups", type=csv_list),
            Arg("--run", "r", default="latest"),
        ),
    )
    args = command.parser().parse_args(["--groups", "seed, risk", "--store", "x"])
    params = {a.dest: getattr(args, a.dest) for a in command.args}
    assert params == {"store": "x", "groups": ["seed", "risk"], "run": "latest"}
    assert command.overrides(params) == {"store": "x", "features": {"groups": ["seed", "risk"]}}
    assert command.overrides({"store": None}) == {}


def test_error_classes_carry_the_exit_code_table():
    assert (NothingUsableError.exit_code, InputError.exit_code, DamagedArtifactError.exit_code) == (
        1,
        2,
        3,
    )
    assert set(EXIT_CODES) == {0, 1, 2, 3}
