"""What tests share, besides fixtures: paths of the bundled data, frame builders and checks.

Tests import from here (and from the project), never from another test file.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from core.data.prices import PRICE_COLUMNS
from deployments.server import free_port as free_port  # re-exported for the tests

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"  # the bundled Kaggle sample (40 tickers)
DATA = Path(__file__).resolve().parent / "data"
KAGGLE = DATA / "kaggle"  # slices of the Kaggle set around its real defects (tests/data/README.md)
STORE_V1 = DATA / "store_v1"  # a small store written by the main of 2026-11-29 (layout version 1)
STORE_1B5BF9E = DATA / "store_1b5bf9e"  # written by the main of 2026-12-06 (tests/data/README.md)
STORE_0ACB4E8 = DATA / "store_0acb4e8"  # the last main of layout 1 (tests/data/README.md)
STORE_V2 = DATA / "store_v2"  # written by the last main of layout 2, 7d589c7 (tests/data/README.md)
SECRET = "T000/B000/XXsecretXXtoken"
# The collect flow's parameters for the whole bundled sample through the local source.
SAMPLE_COLLECT = {
    "tickers": str(SAMPLE / "tickers.csv"),
    "source": "local",
    "source_path": str(SAMPLE / "prices"),
    "start": dt.date(2013, 1, 1),
    "end": dt.date(2018, 2, 7),
}  # the path of a fake Slack webhook: must never leak


def bars(rows: list[tuple], symbol: str = "T") -> pl.DataFrame:
    """Rows of (date, open, high, low, close, volume) as canonical bars (adj_close = close)."""
    return pl.DataFrame(
        [(symbol, d, o, h, lo, c, c, v) for d, o, h, lo, c, v in rows],
        schema={
            c: t
            for c, t in zip(PRICE_COLUMNS, [pl.String, pl.Date] + [pl.Float64] * 6, strict=True)
        },
        orient="row",
    )


def weekdays(n: int, start: dt.date = dt.date(2024, 1, 1)) -> list[dt.date]:
    days = pl.date_range(start, start + dt.timedelta(days=2 * n + 7), eager=True)
    return days.filter(days.dt.weekday() <= 5).head(n).to_list()


def clean(n: int = 10) -> list[tuple]:
    """n clean bars of one flat symbol."""
    return [(d, 10.0, 10.5, 9.5, 10.0, 1000.0) for d in weekdays(n)]


def assert_frames_close(got, expected, rtol: float = 1e-9, atol: float = 1e-10) -> None:
    """Same keys in the same order, numeric columns equal up to float rounding."""
    keys = ["symbol", "date"]
    got, expected = got.sort(keys), expected.sort(keys)
    assert got.columns == expected.columns
    assert got.select(keys).equals(expected.select(keys))
    cols = [c for c in got.columns if c not in keys]
    np.testing.assert_allclose(
        got.select(cols).to_numpy(), expected.select(cols).to_numpy(), rtol=rtol, atol=atol
    )


FROZEN_RUN = "20230101T000000Z-frozen00"
FROZEN_QUANTILES = [0.1, 0.25, 0.5, 0.75, 0.9]


def frozen_model_store(
    root: Path,
    symbols: int = 30,
    days: int = 260,
    shift_at: int = 180,
    forecast_days: int = 120,
    seed: int = 7,
    levels: list[float] = FROZEN_QUANTILES,
) -> tuple[Path, list[dt.date]]:
    """A store where the truth is known: daily returns with volatility 1 % that triples on
    day ``shift_at``, and a frozen model's forecasts of the 3-day return for the last
    ``forecast_days`` days (normal quantiles at the first regime's volatility), as the
    predict flow writes them, with the run they name (``levels``: its grid, which holds 0.1
    and 0.9). Returns (store folder, trading days)."""
    from statistics import NormalDist

    from core import layout
    from core.data.ingestion import INGESTION_SCHEMA
    from core.storage import Store

    rng = np.random.default_rng(seed)
    dates = weekdays(days, dt.date(2023, 1, 2))
    store = Store(str(root))
    sigma = np.where(np.arange(days) < shift_at, 0.01, 0.03)
    names = [f"S{i:02d}" for i in range(symbols)]
    for name in names:
        r = rng.normal(0, sigma)
        close = 100 * np.exp(np.cumsum(r))
        spread = np.abs(rng.normal(0, sigma)) * close
        frame = bars(
            [
                (d, c, c + s, c - s, c, 1e6)
                for d, c, s in zip(dates, close.tolist(), spread.tolist(), strict=True)
            ],
            name,
        )
        store.write_parquet(layout.PRICES(symbol=name), frame)
    store.write_parquet(
        layout.INGESTION(),
        pl.DataFrame(
            {
                "symbol": names,
                "status": ["ok"] * symbols,
                "first_date": [dates[0]] * symbols,
                "last_date": [dates[-1]] * symbols,
                "rows": [days] * symbols,
                "attempts": [1] * symbols,
            }
        ).with_columns(
            pl.lit(None, INGESTION_SCHEMA["last_attempt_at"]).alias("last_attempt_at"),
            pl.lit(None, INGESTION_SCHEMA["last_success_at"]).alias("last_success_at"),
            pl.lit(None, pl.String).alias("error"),
        ),
    )
    scale = 0.01 * np.sqrt(3)
    quantiles = {q: NormalDist().inv_cdf(q) * scale for q in levels}
    for d in dates[-forecast_days:]:
        store.write_parquet(
            layout.PREDICTIONS(as_of=d),
            pl.DataFrame({"symbol": names, "date": [d] * symbols}).with_columns(
                *[pl.lit(v).alias(f"q_{q}") for q, v in quantiles.items()],
                pl.lit(quantiles[0.1]).alias("lo"),
                pl.lit(quantiles[0.9]).alias("hi"),
                pl.lit(FROZEN_RUN).alias("run_id"),
            ),
        )
    write_frozen_run(store, metrics=FROZEN_METRICS | {"quantiles": levels})
    return root, dates


FROZEN_METRICS = {
    "model": "frozen",
    "horizon": 3,
    "quantiles": FROZEN_QUANTILES,
    "target_coverage": 0.8,
}


def write_frozen_run(store: Any, **files: Any) -> None:
    """The frozen model's run as train writes one (its files, then a manifest with their
    sha256, then latest.json): ``metrics.json`` and the JSON ``files`` given by name
    (``drift_reference=...``)."""
    import json
    import tempfile

    from core import layout
    from core.features.manifest import DataFingerprint
    from core.runs import RunManifest, write_run

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, doc in {"metrics": FROZEN_METRICS, **files}.items():
            (folder / f"{name}.json").write_text(json.dumps(doc))
        record = RunManifest(
            run_id=FROZEN_RUN,
            created_at="2023-01-01T00:00:00+00:00",
            model="frozen",
            settings={},
            features=[],
            horizon=3,
            data_fingerprint=DataFingerprint(features_version="frozen", inputs="frozen"),
            seconds={},
        )
        write_run(store, folder, record)
    assert store.exists(layout.RUN_METRICS(run_id=FROZEN_RUN))


def value_at(settings: Any, path: str) -> Any:
    """A setting by its dotted path (``collect.symbols_per_task``)."""
    node = settings
    for part in path.split("."):
        node = getattr(node, part)
    return node


# A GJR-GARCH(1,1)-t in percent units (``core.modeling.models.garch``'s parameters).
GJR_TRUE = {"mu": 0.02, "omega": 0.05, "alpha": 0.04, "gamma": 0.10, "beta": 0.85, "nu": 6.0}


def simulate_gjr(n: int, params: dict[str, float] = GJR_TRUE, seed: int = 11) -> np.ndarray:
    """Daily log returns (fractions) of a GJR-GARCH(1,1) with unit-variance t innovations."""
    rng = np.random.default_rng(seed)
    p = params
    z = rng.standard_t(p["nu"], n) * np.sqrt((p["nu"] - 2) / p["nu"])
    var = p["omega"] / (1 - p["alpha"] - p["gamma"] / 2 - p["beta"])
    out = np.empty(n)
    for t in range(n):
        e = np.sqrt(var) * z[t]
        out[t] = p["mu"] + e
        var = p["omega"] + (p["alpha"] + p["gamma"] * (e < 0)) * e**2 + p["beta"] * var
    return out / 100  # percent to fractions


def return_bars(symbol: str, dates: list[dt.date], returns: np.ndarray) -> pl.DataFrame:
    """OHLCV bars whose close-to-close log returns are ``returns`` (volume 0 on flat days)."""
    close = 40 * np.exp(np.cumsum(returns))
    return pl.DataFrame(
        {
            "symbol": symbol,
            "date": dates,
            "open": close,
            "high": close * np.exp(np.abs(returns) / 2),
            "low": close * np.exp(-np.abs(returns) / 2),
            "close": close,
            "adj_close": close,
            "volume": np.where(returns == 0, 0, 1_000_000),
        }
    )


OLD_STORE_SYMBOLS = ["AAPL", "JPM", "KO", "LNT", "XOM"]  # the stores in tests/data


def collect_into_old_store(store: Path, tmp_path: Path) -> dict[str, Any]:
    """Collect the old stores' five symbols from the bundled sample into ``store``, to
    2018-01-31: a month past what they hold (their own collect ran to 2017-12-29)."""
    from flows.collect import collect

    tickers = tmp_path / "tickers.csv"
    tickers.write_text("Symbol\n" + "\n".join(OLD_STORE_SYMBOLS) + "\n")
    return collect(  # pyright: ignore[reportReturnType]
        tickers=str(tickers),
        source="local",
        source_path=str(SAMPLE / "prices"),
        store=str(store),
        start=dt.date(2015, 6, 1),
        end=dt.date(2018, 1, 31),
    )


def store_files(root: Path) -> dict[str, bytes]:
    """Every file of a local store, by key, but its locks (a run that took one leaves the
    file behind, released): what "every other file unchanged" compares."""
    from core import layout

    found = {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}
    return {k: p.read_bytes() for k, p in found.items() if layout.LOCK.match(k) is None}


FORECAST_DATES = (dt.date(2017, 12, 12), dt.date(2017, 12, 29))  # the second: STORE_V2's own


def forecast_store(root: Path) -> Path:
    """A copy of ``STORE_V2`` at ``root`` with an older prediction file (its forecasts of
    2017-12-12, whose 3-day outcomes are known) and a horizon-1 file beside the newest: what
    the read API and the service read."""
    import shutil

    from core import layout
    from core.storage import Store

    shutil.copytree(STORE_V2, root)
    opened = Store(str(root))
    older, newest_date = FORECAST_DATES
    newest = opened.read_parquet(layout.PREDICTIONS(as_of=newest_date.isoformat()))
    opened.write_parquet(
        layout.PREDICTIONS(as_of=older.isoformat()),
        newest.with_columns(pl.lit(older).alias("date")),
    )
    opened.for_horizon(1, 3).write_parquet(
        layout.PREDICTIONS(as_of=newest_date.isoformat()),
        newest.with_columns(pl.lit(1).alias("horizon")),
    )
    return root
