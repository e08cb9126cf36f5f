"""Collector over a folder of per-symbol files (Yahoo, Kaggle/IEX and stooq CSVs, Parquet)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from core.data.collectors.base import FetchResult
from core.data.prices import SourceFormatError, empty_prices, normalize_bars
from core.data.tickers import to_yahoo
from core.errors import first_line

SUFFIXES = (".csv", ".parquet")
# Kaggle's S&P 500 set names its files TICKER_data.csv.
_STEM_TAILS = ("", "_data")


def _index_folder(folder: Path) -> dict[str, Path]:
    """Map upper-cased symbol -> file, case-insensitively, under the file's own name and its
    Yahoo spelling (stooq's preferred share ``EPR_C.csv`` is ``EPR-PC``)."""
    index: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in SUFFIXES or not path.is_file():
            continue
        stem = path.stem.upper()
        for tail in _STEM_TAILS:
            if tail and stem.endswith(tail.upper()):
                stem = stem[: -len(tail)]
        index.setdefault(stem, path)
        index.setdefault(to_yahoo(stem), path)
    return index


def read_bars_file(path: Path, symbol: str) -> pl.DataFrame:
    """Read one per-symbol file into the canonical schema (all columns read as text first)."""
    if path.suffix.lower() == ".parquet":
        raw = pl.read_parquet(path)
    else:
        raw = pl.read_csv(path, infer_schema=False, truncate_ragged_lines=True)
    return normalize_bars(raw, symbol, str(path))


class LocalCollector:
    """Reads ``<SYMBOL>.csv`` / ``<SYMBOL>.parquet`` (any case) from a folder."""

    name = "local"

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"local source folder not found: {self.folder}")
        self._index = _index_folder(self.folder)

    def fetch(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> FetchResult:
        frames: list[pl.DataFrame] = []
        failures: dict[str, str] = {}
        for symbol in symbols:
            path = self._index.get(symbol.upper())
            if path is None:
                failures[symbol] = f"no file for {symbol} in {self.folder}"
                continue
            try:
                bars = read_bars_file(path, symbol)
            except (SourceFormatError, pl.exceptions.PolarsError, OSError) as exc:
                failures[symbol] = f"unreadable {path.name}: {first_line(str(exc))}"
                continue
            # Rows with an unparsable date are kept for the quality rules to quarantine.
            in_range = pl.col("date").is_between(start, end) | pl.col("date").is_null()
            frames.append(bars.filter(in_range))
        bars = pl.concat(frames, how="vertical") if frames else empty_prices()
        return FetchResult(bars=bars, failures=failures)
