"""Settings: defaults, environment, .env and overrides; validation; old names (RENAMED)."""

import datetime as dt
import json
import re
from typing import Any

import pytest

from core.config import RENAMED, ConfigError, ModelSettings, unknown_variables, variable
from core.settings import load_settings
from tests.factories import value_at

CONFIG_LOGGER = "stock_market_analytics.config"


def test_defaults_and_env_and_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.store == "data/store" and s.collect.symbols_per_task == 50
    assert s.collect.overlap_days == 5 and s.features.symbols_per_task is None
    assert s.quality.bad_tick_factor == 1.9 and s.quality.min_rows == 60
    assert (s.refit.calibration_days, s.refit.validation_days) == (250, 125)
    monkeypatch.setenv("SMA_STORE", "s3://bucket/prefix")
    monkeypatch.setenv("SMA_COLLECT__SYMBOLS_PER_TASK", "7")
    monkeypatch.setenv("SMA_QUALITY__MIN_ROWS", "10")
    s = load_settings()
    assert (s.store, s.collect.symbols_per_task) == ("s3://bucket/prefix", 7)
    assert s.quality.min_rows == 10
    # flags / flow parameters win; None means "not given"
    s = load_settings(collect={"symbols_per_task": 3}, store=None)
    assert (s.store, s.collect.symbols_per_task) == ("s3://bucket/prefix", 3)
    assert s.quality.min_rows == 10  # the rest of the section still comes from the environment


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SMA_SOURCE=synthetic\nSMA_COLLECT__RETRIES=1\n")
    s = load_settings()
    assert s.source == "synthetic" and s.collect.retries == 1


def test_invalid_settings_name_the_problem(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"collect\.symbols_per_task"):
        load_settings(collect={"symbols_per_task": 0})
    with pytest.raises(ConfigError, match="source_path"):
        load_settings(source="local")
    with pytest.raises(ConfigError, match="before start"):
        load_settings(start=dt.date(2020, 1, 2), end=dt.date(2020, 1, 1))
    monkeypatch.setenv("SMA_QUALITY__BAD_TICK_FACTOR", "0.5")
    with pytest.raises(ConfigError, match=r"quality\.bad_tick_factor"):
        load_settings()


def test_list_settings_accept_commas_or_json(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMA_MODEL__QUANTILES", "0.1,0.9")
    monkeypatch.setenv("SMA_FEATURES__GROUPS", "seed, alpha158")
    monkeypatch.setenv("SMA_MODEL__SPLIT_FRACTIONS", "[0.5, 0.2, 0.2, 0.1]")
    s = load_settings()
    assert s.model.quantiles == [0.1, 0.9] and s.features.groups == ["seed", "alpha158"]
    assert s.model.split_fractions == (0.5, 0.2, 0.2, 0.1)
    monkeypatch.setenv("SMA_MODEL__QUANTILES", "[0.1, 0.9")
    with pytest.raises(ConfigError, match=r"model\.quantiles: Value error, not a JSON list"):
        load_settings()
    monkeypatch.setenv("SMA_MODEL__QUANTILES", "0.9,0.1")
    with pytest.raises(ConfigError, match="quantiles must be increasing"):
        load_settings()


def test_unknown_variables_are_named_with_the_closest_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path, caplog
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("core.config._warned", set())
    monkeypatch.setenv("SMA_MODEL__NAMEE", "lightgbm")
    monkeypatch.setenv("SMA_IMAGE", "registry/sma:1")  # read by prefect.yaml: known
    (tmp_path / ".env").write_text("SMA_STOR=s3://bucket\n")
    with caplog.at_level("WARNING", logger="stock_market_analytics.config"):
        s = load_settings()
        load_settings()  # once per process, not once per call
    assert s.model.name == "catboost" and s.store == "data/store"  # ignored, as said
    assert [r.getMessage() for r in caplog.records] == [
        "unknown setting SMA_MODEL__NAMEE is ignored; did you mean SMA_MODEL__NAME?",
        "unknown setting SMA_STOR is ignored; did you mean SMA_STORE?",
    ]


# two valid values of each renamed setting, neither its default: the old name's, the new's
NEW_VALUES = {
    "collect.symbols_per_task": 8,
    "features.symbols_per_task": 10,
    "monitor.quarantine_window_days": 20,
    "retention.quarantine_keep_days": 120,
    "tracking.wandb_mode": "offline",
    "refit.calibration_days": 200,
    "refit.validation_days": 60,
}
RENAMED_VALUES = {
    "collect.symbols_per_task": 7,
    "features.symbols_per_task": 9,
    "monitor.quarantine_window_days": 30,
    "retention.quarantine_keep_days": 90,
    "tracking.wandb_mode": "disabled",
    "refit.calibration_days": 300,
    "refit.validation_days": 100,
}


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == CONFIG_LOGGER]


def test_every_renamed_setting_exists_under_its_new_name_only(fresh):
    assert set(RENAMED_VALUES) == set(NEW_VALUES) == set(RENAMED.values())
    defaults = load_settings()
    for old, new in RENAMED.items():
        assert value_at(defaults, new) not in (RENAMED_VALUES[new], NEW_VALUES[new])
        with pytest.raises(AttributeError):
            value_at(defaults, old)


def override(path: str, value: Any) -> dict[str, Any]:
    """``load_settings`` keywords setting one dotted path."""
    section, _, leaf = path.rpartition(".")
    return {section: {leaf: value}} if section else {leaf: value}


@pytest.mark.parametrize("old", list(RENAMED))
@pytest.mark.parametrize("where", ["environment", ".env"])
def test_an_old_variable_sets_the_new_setting_with_a_warning(
    fresh, monkeypatch, caplog, old, where
):
    new = RENAMED[old]
    value = str(RENAMED_VALUES[new])
    if where == "environment":
        monkeypatch.setenv(variable(old), value)
    else:
        (fresh / ".env").write_text(f"{variable(old)}={value}\n")
    with caplog.at_level("WARNING", logger=CONFIG_LOGGER):
        s = load_settings()
        load_settings()  # once per process
    assert value_at(s, new) == RENAMED_VALUES[new]
    assert warnings_of(caplog) == [f"{variable(old)} is renamed: use {variable(new)}"]


@pytest.mark.parametrize("old", list(RENAMED))
def test_the_new_variable_wins_over_the_old_one(fresh, monkeypatch, caplog, old):
    new = RENAMED[old]
    monkeypatch.setenv(variable(old), str(RENAMED_VALUES[new]))
    (fresh / ".env").write_text(f"{variable(new)}={NEW_VALUES[new]}\n")
    with caplog.at_level("WARNING", logger=CONFIG_LOGGER):
        s = load_settings()
    assert value_at(s, new) == NEW_VALUES[new]
    assert warnings_of(caplog) == [
        f"{variable(old)} is renamed: use {variable(new)} (the new name is given too, and wins)"
    ]


def test_an_old_variable_fills_in_beside_new_ones_of_its_section(fresh, monkeypatch):
    monkeypatch.setenv("SMA_BACKTEST__CALIBRATION_DAYS", "300")
    monkeypatch.setenv("SMA_REFIT__VALIDATION_DAYS", "100")
    monkeypatch.setenv("SMA_BACKTEST__REFIT_EVERY", "5")
    s = load_settings()
    assert (s.refit.calibration_days, s.refit.validation_days) == (300, 100)
    assert s.backtest.refit_every == 5


@pytest.mark.parametrize("old", [o for o in RENAMED if "." in o])
def test_an_old_key_in_a_section_given_whole_as_json_is_read_too(fresh, monkeypatch, caplog, old):
    """``SMA_BACKTEST='{"calibration_days": 300, ...}'``: the old key inside its section's
    JSON sets the new setting (the section's other keys as before), with a warning."""
    new = RENAMED[old]
    section, leaf = old.split(".")
    monkeypatch.setenv(variable(section), json.dumps({leaf: RENAMED_VALUES[new]}))
    with caplog.at_level("WARNING", logger=CONFIG_LOGGER):
        s = load_settings()
    assert value_at(s, new) == RENAMED_VALUES[new]
    assert warnings_of(caplog) == [
        f"{variable(section)} key {leaf!r} is renamed: use {variable(new)}"
    ]


@pytest.mark.parametrize("old", list(RENAMED))
def test_an_old_path_in_the_overrides_sets_the_new_setting(fresh, caplog, old):
    new = RENAMED[old]
    with caplog.at_level("WARNING", logger=CONFIG_LOGGER):
        given = load_settings(**override(old, RENAMED_VALUES[new]))
        assert value_at(given, new) == RENAMED_VALUES[new]
        both = override(old, RENAMED_VALUES[new])
        section, leaf = new.split(".")
        both.setdefault(section, {})[leaf] = NEW_VALUES[new]
        assert value_at(load_settings(**both), new) == NEW_VALUES[new]  # the new name wins
    assert warnings_of(caplog) == [f"setting {old} is renamed: use {new}"]


def test_old_variables_are_known():
    assert unknown_variables([variable(path) for path in RENAMED]) == {}


def test_sections_built_in_code_are_not_checked_against_the_registries():
    """Only the loader knows the registries (core.config never imports them)."""
    assert ModelSettings(name="not-a-model").name == "not-a-model"
    with pytest.raises(ConfigError, match=r"model\.name: Value error, unknown model 'not-a-model'"):
        load_settings(model={"name": "not-a-model"})


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("SMA_MODEL__SPLIT_FRACTIONS", "1,0,0,0", "four positive shares"),
        ("SMA_MODEL__SPLIT_FRACTIONS", "0.6,0.1,0.2,0.2", "sum to 1"),
        ("SMA_MODEL__SPLIT_FRACTIONS", "0.7,-0.1,0.2,0.2", "four positive shares"),
        ("SMA_STORE", "ftp://host/store", "unsupported store URL 'ftp://host/store'"),
        ("SMA_API__TOKEN", "", "visible ASCII characters, not empty"),
        ("SMA_API__TOKEN", "caf\u00e9", "visible ASCII characters, not empty"),
        ("SMA_API__HOST", "", "at least 1 character"),
    ],
)
def test_contradictory_settings_are_refused_when_they_load(fresh, monkeypatch, name, value, says):
    """Refused with the settings, before Prefect starts or any data is read."""
    from core.settings import load_settings

    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=re.escape(says)):
        load_settings()


@pytest.mark.parametrize("grid", ["0.01,0.99", "0.2,0.5,0.8"])
def test_a_grid_without_the_target_intervals_levels_is_refused_before_prefect_starts(
    monkeypatch: pytest.MonkeyPatch, fresh, capsys, grid
):
    """Issue 24, case 4: such a grid was calibrated to the target coverage and written under
    other levels' names. Refused at load, on the command line before Prefect starts (exit 2,
    one line)."""
    from flows.train import COMMAND as TRAIN

    monkeypatch.setenv("SMA_MODEL__QUANTILES", grid)
    with pytest.raises(ConfigError, match=r"lack the target interval's level\(s\) \[0\.1, 0\.9\]"):
        load_settings()
    assert TRAIN.main(["--store", str(fresh / "store")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: invalid settings: model: Value error, model.quantiles [")
    assert not (fresh / "store").exists()
