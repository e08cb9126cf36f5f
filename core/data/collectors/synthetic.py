"""Synthetic daily bars: seeded random walks with volatility regimes and jumps.

Each symbol's path depends only on (seed, symbol) and starts at a fixed origin, so any
date range of it is the same slice of one history: incremental runs see consistent data,
and any number of symbols and years can be produced for load tests.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Sequence

import numpy as np
import polars as pl

from core.data.collectors.base import FetchResult
from core.data.prices import PRICE_COLUMNS, empty_prices

ORIGIN = dt.date(1980, 1, 1)
_VOL = (0.010, 0.028)  # daily volatility of the calm and the turbulent regime
_SWITCH_Z = 2.576  # a draw beyond this switches regime (about 1 day in 200)
_JUMP_Z = 2.878  # a draw beyond this adds a jump (about 1 day in 500)


def _business_days(end: dt.date) -> np.ndarray:
    days = pl.date_range(ORIGIN, end, "1d", eager=True)
    return days.filter(days.dt.weekday() <= 5).to_numpy()


def _path(symbol: str, seed: int, n: int, start_price: float) -> dict[str, np.ndarray]:
    """n days of OHLCV for one symbol; the first k days never depend on n."""
    rng = np.random.default_rng([seed, zlib.crc32(symbol.encode())])
    z = rng.standard_normal((n, 6))  # one row of draws per day keeps prefixes stable
    switches = np.cumsum(z[:, 1] > _SWITCH_Z) % 2
    vol = np.where(switches == 1, _VOL[1], _VOL[0])
    jumps = np.where(z[:, 2] > _JUMP_Z, 0.08 * z[:, 3], 0.0)
    log_ret = 0.0002 + vol * z[:, 0] + jumps
    close = start_price * np.exp(np.cumsum(log_ret))
    prev = np.concatenate([[start_price], close[:-1]])
    open_ = prev * np.exp(0.3 * vol * z[:, 4])
    spread = np.abs(z[:, 5]) * vol * 0.5
    high = np.maximum(open_, close) * np.exp(spread)
    low = np.minimum(open_, close) * np.exp(-spread)
    volume = np.round(1e6 * np.exp(0.5 * z[:, 3] + 10 * vol))
    return {
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "adj_close": close,
        "volume": volume,
    }


class SyntheticCollector:
    """Any symbol exists; prices are deterministic per (seed, symbol)."""

    name = "synthetic"

    def __init__(self, seed: int = 7, start_price: float = 50.0):
        self.seed = seed
        self.start_price = start_price

    def fetch(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> FetchResult:
        days = _business_days(end)
        if not len(days) or not symbols:
            return FetchResult(bars=empty_prices())
        keep = days >= np.datetime64(start)
        frames = [
            pl.DataFrame(
                {"symbol": symbol, "date": days[keep]}
                | {
                    k: v[keep]
                    for k, v in _path(symbol, self.seed, len(days), self.start_price).items()
                }
            )
            for symbol in symbols
        ]
        bars = pl.concat(frames).with_columns(pl.col("date").cast(pl.Date)).select(PRICE_COLUMNS)
        return FetchResult(bars=bars)
