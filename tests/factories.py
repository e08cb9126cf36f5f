"""What tests share, besides fixtures: paths of the bundled data, frame builders and checks.

Tests import from here (and from the project), never from another test file.
"""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

import numpy as np
import polars as pl

from core.data.prices import PRICE_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"  # the bundled Kaggle sample (40 tickers)
DATA = Path(__file__).resolve().parent / "data"
KAGGLE = DATA / "kaggle"  # slices of the Kaggle set around its real defects (tests/data/README.md)
STORE_V1 = DATA / "store_v1"  # a small store written by the main of 2026-11-29 (layout version 1)
SECRET = "T000/B000/XXsecretXXtoken"
# The collect flow's parameters for the whole bundled sample through the local source.
SAMPLE_COLLECT = {
    "tickers": str(SAMPLE / "tickers.csv"),
    "source": "local",
    "source_path": str(SAMPLE / "prices"),
    "start": dt.date(2013, 1, 1),
    "end": dt.date(2018, 2, 7),
}  # the path of a fake Slack webhook: must never leak


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
