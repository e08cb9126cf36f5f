import datetime as dt
import random

import numpy as np
import polars as pl
import pytest

from core.config import QualitySettings
from core.data.collectors.local import LocalCollector
from core.data.collectors.synthetic import SyntheticCollector
from core.data.quality import apply_rules
from core.features.build import build_features
from core.features.market import market_frame
from core.features.registry import GROUPS, code_version, feature_names, output_columns, warmup_rows
from core.features.schema import non_finite_columns, schema_problems
from tests.factories import SAMPLE, assert_frames_close
from tests.unit import feature_reference as ref

H = 3


def valid_bars(folder, symbols) -> pl.DataFrame:
    raw = LocalCollector(folder).fetch(symbols, dt.date(1960, 1, 1), dt.date(2024, 1, 1)).bars
    return apply_rules(raw, QualitySettings(), dt.date(2024, 1, 1)).valid


@pytest.fixture(scope="module")
def sample() -> pl.DataFrame:
    return valid_bars(SAMPLE / "prices", ["AOS", "KO", "NVDA", "DHR"])


def arrays(
    frame: pl.DataFrame, symbol: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    one = frame.filter(pl.col("symbol") == symbol).sort("date")
    o, h, lo, c, v = (
        one[k].to_numpy().astype(float) for k in ("open", "high", "low", "close", "volume")
    )
    return o, h, lo, c, v


def matches_reference(
    got: pl.DataFrame, expected: dict[str, np.ndarray], warm: int, atol: float, label: str
) -> None:
    """Each reference column, past the warm-up rows, equals the built column."""
    for name, values in expected.items():
        np.testing.assert_allclose(
            got[name].to_numpy(), values[warm:], rtol=1e-6, atol=atol, err_msg=f"{label} {name}"
        )


def test_feature_counts():
    names = feature_names(["seed", "alpha158"])
    assert len(names["seed"]) == 48 and names["seed"][0] == "symbol"
    assert len(names["alpha158"]) == 158
    assert len(set(names["seed"]) | set(names["alpha158"])) == 206
    risk = feature_names(["risk"])["risk"]
    assert len(risk) == 19 and not set(risk) & (set(names["seed"]) | set(names["alpha158"]))


@pytest.mark.parametrize("mode", ["over", "masked"])
def test_seed_features_match_numpy_reference(sample, mode):
    out = build_features(sample.lazy(), ["seed"], H, mode).collect()
    expected = ref.seed(*arrays(sample, "AOS"), H)
    got = out.filter(pl.col("symbol") == "AOS")
    warm = warmup_rows(["seed"], H)
    assert got.height == sample.filter(pl.col("symbol") == "AOS").height - warm
    assert set(expected) | {"month", "day_of_week", "day_of_year", "symbol"} == set(
        feature_names(["seed"])["seed"]
    )
    for name, values in expected.items():
        np.testing.assert_allclose(
            got[name].to_numpy(), values[warm:], rtol=1e-6, atol=1e-9, err_msg=name
        )
    dates = got["date"]
    assert (got["day_of_week"].to_numpy() == dates.dt.weekday().to_numpy()).all()
    assert (got["month"].to_numpy() == dates.dt.month().to_numpy()).all()


@pytest.mark.parametrize("mode", ["over", "masked"])
@pytest.mark.parametrize("d", [5, 20, 60])
def test_alpha158_operators_match_numpy_reference(sample, d, mode):
    out = build_features(sample.lazy(), ["alpha158"], H, mode).collect()
    for symbol in ("KO", "NVDA"):
        expected = ref.alpha158_sample(*arrays(sample, symbol), d)
        got = out.filter(pl.col("symbol") == symbol)
        matches_reference(got, expected, warmup_rows(["alpha158"], H), 1e-8, symbol)


@pytest.mark.parametrize("mode", ["over", "masked"])
def test_risk_features_match_numpy_reference(sample, mode):
    """Every risk feature, the market series included (built from all four symbols)."""
    out = build_features(sample.lazy(), ["risk"], H, mode).collect()
    one = {
        s: sample.filter(pl.col("symbol") == s).sort("date") for s in ("AOS", "KO", "NVDA", "DHR")
    }
    days = {s: f["date"].cast(pl.Int32).to_numpy() for s, f in one.items()}
    mkt = ref.market({s: (days[s], f["close"].to_numpy().astype(float)) for s, f in one.items()})
    warm = warmup_rows(["risk"], H)
    for symbol in ("KO", "NVDA"):
        o, h, lo, c, _ = arrays(sample, symbol)
        expected = ref.risk(o, h, lo, c, days[symbol], mkt)
        assert set(expected) == set(feature_names(["risk"])["risk"])
        got = out.filter(pl.col("symbol") == symbol)
        assert got.height == len(c) - warm
        matches_reference(got, expected, warm, 1e-10, symbol)


def test_risk_features_of_a_batch_use_the_universe_market(sample):
    """A batch built with the whole universe's market series equals the whole build's rows;
    without it, its market features would describe the batch alone."""
    whole = build_features(sample.lazy(), ["risk"], H).collect()
    market = market_frame(sample.lazy())
    batch = sample.filter(pl.col("symbol").is_in(["KO", "DHR"]))
    got = build_features(batch.lazy(), ["risk"], H, market=market).collect()
    assert_frames_close(
        got, whole.filter(pl.col("symbol").is_in(["KO", "DHR"])), rtol=1e-9, atol=1e-15
    )
    alone = build_features(batch.lazy(), ["risk"], H).collect()
    assert not np.allclose(alone["mkt_vol_ewm"].to_numpy(), got["mkt_vol_ewm"].to_numpy())


def test_target_and_prediction_rows(sample):
    out = build_features(sample.lazy(), ["seed"], H).collect().filter(pl.col("symbol") == "KO")
    close = sample.filter(pl.col("symbol") == "KO").sort("date")["close"].to_numpy()
    warm = warmup_rows(["seed"], H)
    y = out["y"].to_numpy()
    np.testing.assert_allclose(y[:-H], np.log(close[warm + H :] / close[warm:-H]), rtol=1e-12)
    assert out["y"].tail(H).is_null().all() and out["y"].head(out.height - H).is_not_null().all()


def test_no_lookahead(sample):
    """Changing prices after date t changes no feature at or before t; the target does."""
    t = dt.date(2016, 6, 1)
    later = pl.col("date") > t
    shocked = sample.with_columns(
        [
            pl.when(later).then(pl.col(c) * 1.7).otherwise(pl.col(c)).alias(c)
            for c in ("open", "high", "low", "close")
        ]
        + [pl.when(later).then(pl.col("volume") * 3).otherwise(pl.col("volume")).alias("volume")]
    )
    groups = ["seed", "alpha158", "risk"]
    a = build_features(sample.lazy(), groups, H).collect().filter(pl.col("date") <= t)
    b = build_features(shocked.lazy(), groups, H).collect().filter(pl.col("date") <= t)
    features = [c for c in a.columns if c not in ("symbol", "date", "y")]
    # Equal up to float rounding of sliding sums (a real leak of a 1.7x shock is far larger).
    np.testing.assert_allclose(
        a.select(features).to_numpy(), b.select(features).to_numpy(), rtol=1e-7, atol=1e-9
    )
    changed = a.join(b, on=["symbol", "date"]).filter(pl.col("y") != pl.col("y_right"))
    assert changed.height == 4 * H  # the last h targets of each symbol look past t
    assert changed.select((pl.col("date") >= t - dt.timedelta(days=7)).all()).item()


@pytest.mark.parametrize(("mode", "rtol"), [("over", 1e-9), ("masked", 1e-6)])
def test_row_order_and_interleaving_do_not_matter(sample, mode, rtol):
    """Same rows in any order give the same table; other symbols' neighbours change nothing
    beyond float rounding (masked windows run sliding sums across the whole panel)."""
    groups = ["seed", "alpha158"]
    base = build_features(sample.lazy(), groups, H, mode).collect()
    rows = list(range(sample.height))
    random.Random(1).shuffle(rows)
    assert build_features(sample[rows].lazy(), groups, H, mode).collect().equals(base)

    def close_to_base(other: pl.DataFrame, symbols: list[str]) -> None:
        assert_frames_close(
            other, base.filter(pl.col("symbol").is_in(symbols)), rtol=rtol, atol=1e-9
        )

    renamed = sample.with_columns(pl.col("symbol").replace({"AOS": "ZZZ", "NVDA": "AAA"}))
    again = build_features(renamed.lazy(), groups, H, mode).collect()
    close_to_base(
        again.with_columns(pl.col("symbol").replace({"ZZZ": "AOS", "AAA": "NVDA"})),
        ["AOS", "KO", "NVDA", "DHR"],
    )
    alone = build_features(
        sample.filter(pl.col("symbol") == "KO").lazy(), groups, H, mode
    ).collect()
    close_to_base(alone, ["KO"])


def _validate(frame: pl.DataFrame, groups: list[str]) -> None:
    assert schema_problems(frame, output_columns(groups, H)) == []


def messy_panel() -> pl.DataFrame:
    """Bars with what the stooq set holds after its quality rules (the whole set is checked
    by benchmarks/stooq_quality.py): penny prices, runs of zero volume and of flat
    o=h=l=c bars, an unadjusted 1:10 reverse split, huge volumes, a tiny history."""
    walk = (
        SyntheticCollector(seed=11)
        .fetch(["PENNY", "SPLIT", "HALT", "BIG"], dt.date(2010, 1, 1), dt.date(2011, 12, 31))
        .bars
    )
    day = pl.col("date").rank("dense").over("symbol")
    prices = ["open", "high", "low", "close", "adj_close"]
    messy = walk.with_columns(
        *[
            pl.when(pl.col("symbol") == "PENNY")
            .then(pl.col(c) * 1e-4)
            .when((pl.col("symbol") == "SPLIT") & (day > 250))
            .then(pl.col(c) * 10)
            .when((pl.col("symbol") == "HALT") & day.is_between(100, 160))
            .then(pl.lit(7.25))
            .otherwise(pl.col(c))
            .alias(c)
            for c in prices
        ],
        pl.when((pl.col("symbol") == "HALT") & day.is_between(90, 200))
        .then(0.0)
        .when(pl.col("symbol") == "BIG")
        .then(pl.col("volume") * 1e7)
        .otherwise(pl.col("volume"))
        .alias("volume"),
    )
    tiny = (
        walk.filter(pl.col("symbol") == "BIG").head(30).with_columns(pl.lit("TINY").alias("symbol"))
    )
    return apply_rules(pl.concat([messy, tiny]), QualitySettings(), dt.date(2024, 1, 1)).valid


@pytest.mark.parametrize("mode", ["over", "masked"])
def test_messy_bars_after_quality_rules_give_finite_features(mode):
    bars = messy_panel()
    # the halt's 61 flat zero-volume bars are a stale run (quarantined); 50 zero-volume bars
    # that still move are kept
    assert bars.filter(pl.col("symbol") == "HALT")["volume"].eq(0).sum() == 50
    out = build_features(bars.lazy(), list(GROUPS), H, mode).collect()
    assert set(out["symbol"].unique()) == {"PENNY", "SPLIT", "HALT", "BIG"}  # TINY: warm-up only
    _validate(out, list(GROUPS))


def test_code_version_covers_every_module_of_the_package(tmp_path):
    """A changed formula in any module of the package changes the version (a rebuild)."""
    import shutil
    from pathlib import Path

    import core.features

    package = tmp_path / "features"
    shutil.copytree(Path(core.features.__file__).parent, package)
    assert code_version(package) == code_version()
    for module in ("risk.py", "context.py", "build.py"):
        copy = tmp_path / module
        shutil.copytree(package, copy)
        (copy / module).write_text((copy / module).read_text() + "\n# changed\n")
        assert code_version(copy) != code_version(), module


def test_flat_bars_zero_volume_and_short_histories_are_finite():
    days = pl.date_range(dt.date(2020, 1, 1), dt.date(2020, 12, 31), eager=True)
    days = days.filter(days.dt.weekday() <= 5)
    flat = pl.DataFrame(
        {
            "symbol": "FLAT",
            "date": days,
            "open": 5.0,
            "high": 5.0,
            "low": 5.0,
            "close": 5.0,
            "adj_close": 5.0,
            "volume": 0.0,
        }
    )
    short = flat.head(40).with_columns(pl.lit("SHORT").alias("symbol"), pl.col("close") * 2)
    for mode in ("over", "masked"):
        groups = ["seed", "alpha158", "risk"]
        out = build_features(pl.concat([flat, short]).lazy(), groups, H, mode).collect()
        assert out["symbol"].unique().to_list() == ["FLAT"]  # SHORT never leaves its warm-up
        _validate(out, groups)


def test_schema_rejects_non_finite_output(sample):
    out = build_features(sample.lazy(), ["seed"], H).collect()
    broken = out.with_columns(
        pl.when(pl.col("date") == pl.col("date").max())
        .then(float("inf"))
        .otherwise(pl.col("atr"))
        .alias("atr")
    )
    columns = output_columns(["seed"], H)
    assert schema_problems(broken, columns) == ["non-finite values in {'atr': 4}"]
    assert schema_problems(broken.drop("cmo").with_columns(pl.lit(1).alias("x")), columns) == [
        "missing columns ['cmo']",
        "unexpected columns ['x']",
    ]
    assert schema_problems(broken.with_columns(pl.col("atr").cast(pl.Float32)), columns) == [
        "wrong types {'atr': 'Float32'}"
    ]
    assert non_finite_columns(broken, ["atr", "cmo"]) == {"atr": 4}  # last date of 4 symbols
    assert non_finite_columns(broken, ["symbol", "atr"]) == {"atr": 4}  # keys are not checked
