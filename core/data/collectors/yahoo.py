"""Collector over Yahoo Finance through yfinance: one ``yf.download`` call per batch.

yfinance swallows per-ticker errors (it logs them and returns NaN columns, or an empty
frame when offline), so this collector listens to yfinance's logger during the call:
rate limits and network errors become ``RetryableCollectorError`` for the task to retry,
and a symbol that comes back without rows is a failure with yfinance's own reason.
"""

from __future__ import annotations

import ast
import datetime as dt
import logging
import re
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import polars as pl

from core.data.collectors.base import FetchResult, RetryableCollectorError
from core.data.prices import empty_prices, normalize_bars

_RATE_LIMIT = re.compile(r"YFRateLimitError|Too Many Requests|Rate limited", re.IGNORECASE)
_NETWORK = re.compile(
    r"DNSError|Could not resolve host|ConnectionError|Connection (refused|reset|aborted)|"
    r"timed? ?out|Timeout|curl: \(\d+\)|SSLError|Failed to perform",
    re.IGNORECASE,
)
_FAILED = re.compile(r"^\[(?P<symbols>[^\]]*)\]: (?P<error>.*)$", re.DOTALL)
_cache_lock = threading.Lock()
_cache_set = False


class _Capture(logging.Handler):
    """Collects yfinance's 'Failed download' lines: ``['A', 'B']: Error(...)``."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.errors: dict[str, str] = {}
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.lines.append(message)
        match = _FAILED.match(message.strip())
        if not match:
            return
        try:
            symbols = ast.literal_eval(f"[{match['symbols']}]")
        except (ValueError, SyntaxError):
            return
        for symbol in symbols:
            self.errors[str(symbol).upper()] = match["error"].strip()


def split_download(raw: pd.DataFrame | None, symbols: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Per-symbol frames out of ``yf.download``'s output (either ``group_by`` layout)."""
    if raw is None or raw.empty:
        return {}
    wanted = {s.upper(): s for s in symbols}
    if not isinstance(raw.columns, pd.MultiIndex):
        return {symbols[0]: raw} if len(symbols) == 1 else {}
    for level in range(raw.columns.nlevels):
        present = {str(v).upper() for v in raw.columns.get_level_values(level)}
        if present & wanted.keys():
            return {
                wanted[str(v).upper()]: raw.xs(v, axis=1, level=level)
                for v in raw.columns.unique(level=level)
                if str(v).upper() in wanted
            }
    return {}


def _to_bars(frame: pd.DataFrame, symbol: str) -> pl.DataFrame:
    """One symbol's pandas frame (DatetimeIndex 'Date') -> canonical bars, padding rows dropped."""
    frame = frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    frame.index = (
        pd.DatetimeIndex(frame.index).tz_localize(None)
        if getattr(frame.index, "tz", None)
        else frame.index
    )
    flat = pl.from_pandas(frame.rename_axis("Date").reset_index())
    bars = normalize_bars(flat, symbol, f"yfinance {symbol}")
    # download() reindexes every ticker onto the union of dates: all-NaN rows are padding.
    return bars.filter(~pl.all_horizontal(pl.col("open", "high", "low", "close").is_null()))


class YFinanceCollector:
    """Daily bars from Yahoo: unadjusted OHLC (split-adjusted by Yahoo) plus Adj Close."""

    name = "yfinance"

    def __init__(
        self,
        timeout: float = 30.0,
        threads: int = 8,
        download: Callable[..., pd.DataFrame | None] | None = None,
    ):
        import yfinance as yf

        global _cache_set
        with _cache_lock:
            if not _cache_set:
                cache = Path(tempfile.gettempdir()) / "sma-yfinance-cache"
                cache.mkdir(parents=True, exist_ok=True)
                yf.set_tz_cache_location(str(cache))
                _cache_set = True
        self.timeout = timeout
        self.threads = threads
        self._download = download or yf.download

    def fetch(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> FetchResult:
        symbols = list(symbols)
        if not symbols:
            return FetchResult(bars=empty_prices())
        capture = _Capture()
        logger = logging.getLogger("yfinance")
        logger.addHandler(capture)
        try:
            raw = self._download(
                symbols,
                start=start.isoformat(),
                end=(end + dt.timedelta(days=1)).isoformat(),  # yfinance's end is exclusive
                group_by="ticker",
                auto_adjust=False,
                actions=False,
                progress=False,
                threads=min(self.threads, len(symbols)),  # pyright: ignore[reportArgumentType]
                timeout=self.timeout,  # pyright: ignore[reportArgumentType]
                multi_level_index=True,
            )
        except Exception as exc:  # yfinance raises little, but a session error can escape
            if _RATE_LIMIT.search(repr(exc)) or _NETWORK.search(repr(exc)):
                raise RetryableCollectorError(f"yfinance: {exc!r}") from exc
            raise
        finally:
            logger.removeHandler(capture)
        return self._result(raw, symbols, capture)

    @staticmethod
    def _result(raw: pd.DataFrame | None, symbols: list[str], capture: _Capture) -> FetchResult:
        errors = {s: capture.errors.get(s.upper(), "") for s in symbols}
        text = "\n".join([*capture.lines, *errors.values()])
        if _RATE_LIMIT.search(text):
            raise RetryableCollectorError(
                f"yfinance rate limit: {_first_match(capture, _RATE_LIMIT)}"
            )
        per_symbol = split_download(raw, symbols)
        frames: list[pl.DataFrame] = []
        failures: dict[str, str] = {}
        for symbol in symbols:
            bars = _to_bars(per_symbol[symbol], symbol) if symbol in per_symbol else empty_prices()
            if bars.height:
                frames.append(bars)
            else:
                reason = errors[symbol] or "no rows returned (delisted, renamed or not on Yahoo?)"
                failures[symbol] = f"yfinance returned no data: {reason}"
        if not frames and _NETWORK.search("\n".join([*capture.lines, *failures.values()])):
            # Offline, yf.download returns an empty frame instead of raising.
            raise RetryableCollectorError(
                f"yfinance network error: {_first_match(capture, _NETWORK)}"
            )
        return FetchResult(bars=pl.concat(frames) if frames else empty_prices(), failures=failures)


def _first_match(capture: _Capture, pattern: re.Pattern[str]) -> str:
    for line in [*capture.errors.values(), *capture.lines]:
        if pattern.search(line):
            return line.splitlines()[0][:300]
    return "unknown"
