import datetime as dt

import pytest

from core.config import ConfigError, load_settings


def test_defaults_and_env_and_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.store == "data/store" and s.batch_size == 50 and s.collect.overlap_days == 5
    assert s.quality.bad_tick_factor == 1.9 and s.quality.min_rows == 60
    monkeypatch.setenv("SMA_STORE", "s3://bucket/prefix")
    monkeypatch.setenv("SMA_BATCH_SIZE", "7")
    monkeypatch.setenv("SMA_QUALITY__MIN_ROWS", "10")
    s = load_settings()
    assert (s.store, s.batch_size, s.quality.min_rows) == ("s3://bucket/prefix", 7, 10)
    # flags / flow parameters win; None means "not given"
    s = load_settings(batch_size=3, store=None)
    assert (s.store, s.batch_size) == ("s3://bucket/prefix", 3)


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SMA_SOURCE=synthetic\nSMA_COLLECT__RETRIES=1\n")
    s = load_settings()
    assert s.source == "synthetic" and s.collect.retries == 1


def test_invalid_settings_name_the_problem(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="batch_size"):
        load_settings(batch_size=0)
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
