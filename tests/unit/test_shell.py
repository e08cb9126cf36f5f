"""The flow shell: one command line for every flow, answered before Prefect starts."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from core.errors import EXIT_CODES, DamagedArtifactError, InputError, NothingUsableError
from flows.shell import Arg, Command, csv_list
from tests.factories import ROOT, value_at

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
    assert set(EXIT_CODES) == {0, 1, 2, 3, 130, 143}


def renamed_flags() -> list[tuple[str, str, Arg]]:
    """(flow, old name, the flag replacing it) for every renamed flag of every flow."""
    import importlib

    return [
        (name, old, arg)
        for name in FLOWS
        for old, arg in importlib.import_module(f"flows.{name}").COMMAND.renamed().items()
    ]


RENAMED_FLAGS = renamed_flags()
RENAMED_IDS = [f"{name}-{old}" for name, old, _ in RENAMED_FLAGS]


def test_the_renamed_flags_are_the_collect_features_and_prune_ones():
    assert sorted((name, old, arg.flag) for name, old, arg in RENAMED_FLAGS) == [
        ("collect", "batch_size", "--symbols-per-task"),
        ("features", "batch_size", "--symbols-per-task"),
        ("prune", "quarantine_days", "--quarantine-keep-days"),
    ]


@pytest.mark.parametrize(("name", "old", "arg"), RENAMED_FLAGS, ids=RENAMED_IDS)
def test_an_old_flag_still_works_with_a_warning_naming_the_new_one(
    fresh, monkeypatch, caplog, name, old, arg
):
    """``--batch-size 7`` through ``COMMAND.main``: the flow gets ``symbols_per_task=7``
    (the new flag wins over the old one); the old flag is hidden from --help."""
    import importlib

    module = importlib.import_module(f"flows.{name}")
    calls: list[dict] = []
    monkeypatch.setattr(module, name, lambda **params: calls.append(params) or "ran")
    monkeypatch.setattr(module, "report", str, raising=False)
    monkeypatch.setattr(module, "report_text", str, raising=False)
    flag = "--" + old.replace("_", "-")
    with caplog.at_level("WARNING", logger="stock_market_analytics.config"):
        assert module.COMMAND.main(["--debug", flag, "7"]) == 0
        assert module.COMMAND.main(["--debug", flag, "7", arg.flag, "8"]) == 0
    assert [c[arg.dest] for c in calls] == [7, 8] and not any(old in c for c in calls)
    assert [r.getMessage() for r in caplog.records] == [f"{flag} is renamed: use {arg.flag}"]
    assert flag not in module.COMMAND.parser(renamed=True).format_help()
    assert arg.flag in module.COMMAND.parser().format_help()


@pytest.mark.parametrize(("name", "old", "arg"), RENAMED_FLAGS, ids=RENAMED_IDS)
def test_an_old_flow_parameter_still_works_with_a_warning_naming_the_new_one(
    fresh, caplog, name, old, arg
):
    """A deployment's ``parameters: {batch_size: 7}``: the flow function still takes the
    old keyword, and its settings read it under the new name."""
    import importlib
    import inspect

    module = importlib.import_module(f"flows.{name}")
    flow_parameters = inspect.signature(getattr(module, name).fn).parameters
    assert flow_parameters[old].default is None and arg.dest in flow_parameters
    with caplog.at_level("WARNING", logger="stock_market_analytics.config"):
        settings = module.COMMAND.settings(**{old: 7})
        both = module.COMMAND.settings(**{old: 7, arg.dest: 8})
    assert (value_at(settings, arg.setting), value_at(both, arg.setting)) == (7, 8)
    assert [r.getMessage() for r in caplog.records] == [
        f"parameter {old} of flow {name} is renamed: use {arg.dest}"
    ]


def test_an_old_flag_on_the_command_line_warns_and_runs(tmp_path):
    """In a process of its own: the warning reaches the terminal, the value the settings
    (a bad value of the old flag fails like one of the new, before Prefect starts)."""
    done = run_module("collect", "--batch-size", "0", "--store", str(tmp_path / "s"))
    lines = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert done.returncode == 2
    assert lines == [
        "--batch-size is renamed: use --symbols-per-task",
        "error: invalid settings: collect.symbols_per_task: Input should be greater than or equal to 1",
    ]
    assert "prefect" not in imported(done.stderr)


def test_a_full_disk_outside_the_store_is_named_not_unexpected():
    """A library's own write (LightGBM, a temporary folder) on a full disk: one line naming
    the file, not 'unexpected'."""
    import errno

    from flows.shell import _unexpected

    full = OSError(errno.ENOSPC, "No space left on device", "/tmp/sma-run-x/model.txt")
    assert _unexpected(full) == (
        "no space left on device writing /tmp/sma-run-x/model.txt: free space there (or set TMPDIR)"
    )
    assert _unexpected(KeyError("x")).endswith("(unexpected: rerun with --debug for the traceback)")


@pytest.mark.parametrize("value", ["1.5", "abc", "0"])
def test_a_bad_start_up_limit_is_exit_2_before_prefect_reads_it(fresh, monkeypatch, capsys, value):
    """Prefect reads the limit as whole seconds and would fail on it with a validation
    error ('unexpected'); the command checks it first."""
    from flows.prune import COMMAND as PRUNE

    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", value)
    assert PRUNE.main(["--store", str(fresh / "store"), "--dry-run"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS={value!r} is not a whole "
        "number of seconds of at least 1"
    ]
    assert not (fresh / "store").exists()


def test_an_empty_start_up_limit_is_the_default_and_unset_before_prefect_reads_it():
    from deployments.temporary import DEFAULT_LIMIT, STARTUP_LIMIT, startup_limit

    env = {STARTUP_LIMIT: " "}
    assert startup_limit(env) == DEFAULT_LIMIT and env == {}
    assert startup_limit({STARTUP_LIMIT: "45"}) == 45
