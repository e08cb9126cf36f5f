"""Tickers files: the Nasdaq screener CSV or a plain one-symbol-per-line list."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from core.errors import InputError

SYMBOL_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9.^=-]{0,14}$")


class TickersFileError(InputError):
    """The tickers file is missing, empty or lacks a required column."""


@dataclass(frozen=True)
class Tickers:
    """Valid symbols in file order (deduplicated) and rejected entries with reasons."""

    symbols: list[str]
    rejected: dict[str, str] = field(default_factory=dict)
    sectors: dict[str, str] = field(default_factory=dict)  # from a 'Sector' column, when present


def to_yahoo(raw: str) -> str:
    """Yahoo spelling of a listed symbol: trimmed, upper-case, class 'BRK/B' -> 'BRK-B',
    preferred 'ABR^D' (Nasdaq) or 'MS_A' (stooq) -> 'ABR-PD', 'MS-PA' (a leading '^' marks
    an index and stays)."""
    symbol = raw.strip().upper().replace("/", "-")
    for mark in ("^", "_"):
        if mark in symbol and not symbol.startswith(mark):
            head, tail = symbol.split(mark, 1)
            symbol = f"{head}-P{tail}"
    return symbol


def _reason(raw: str, symbol: str) -> str | None:
    """Why a raw symbol is refused (None: it is valid). Checked on the raw text too: upper-
    casing turns some letters into other real tickers ('ß' -> 'SS', 'ﬁx' -> 'FIX')."""
    if not symbol:
        return "empty symbol"
    if not raw.strip().isascii() or not SYMBOL_PATTERN.match(symbol):
        return f"{raw.strip()!r} is not a valid symbol (allowed: {SYMBOL_PATTERN.pattern})"
    return None


def parse_symbols(values: list[str | None]) -> tuple[list[str], dict[str, str]]:
    """Normalize, validate and dedupe raw symbols, keeping first-seen order."""
    symbols: list[str] = []
    seen: set[str] = set()
    rejected: dict[str, str] = {}
    for value in values:
        raw = value or ""
        if not raw.strip():
            continue
        symbol = to_yahoo(raw)
        reason = _reason(raw, symbol)
        if reason:
            rejected[raw.strip()] = reason
        elif symbol not in seen:
            seen.add(symbol)
            symbols.append(symbol)
    return symbols, rejected


def no_valid_symbol(path: str | Path, rejected: dict[str, str]) -> str:
    """One short line for a tickers file without a single valid symbol (a binary or foreign
    file would otherwise fill the terminal): how many entries, and the first few, cut short."""
    shown = ", ".join(
        repr(raw[:20] + ("..." if len(raw) > 20 else "")) for raw in list(rejected)[:3]
    )
    return (
        f"no valid symbol in tickers file {path}: {len(rejected)} entries rejected"
        + (f" (first: {shown})" if shown else "")
        + "; expected a Nasdaq screener CSV or one symbol per line"
    )


def unparsable(path: Path, text: str, exc: Exception) -> str:
    """One line naming the file and the line of the first record that is not valid CSV (a
    quote never closed, text after a closing quote), never the file's content."""
    reader = csv.reader(io.StringIO(text), strict=True)
    start = 1
    try:
        for _ in reader:
            start = reader.line_num + 1
    except csv.Error as error:
        return (
            f"tickers file {path} is not valid CSV: the record starting on line {start} ({error})"
        )
    return f"tickers file {path} is not valid CSV ({type(exc).__name__})"


def load_tickers(path: str | Path) -> Tickers:
    """Read a tickers file; raise ``TickersFileError`` naming the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise TickersFileError(f"tickers file not found: {path}")
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    lines = [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise TickersFileError(f"tickers file is empty: {path}")
    header = [h.strip() for h in lines[0].split(",")]
    if len(header) > 1 or header[0].lower() in ("symbol", "ticker"):
        try:
            frame = pl.read_csv(
                path, infer_schema=False, truncate_ragged_lines=True, comment_prefix="#"
            )
        except pl.exceptions.PolarsError as exc:  # its message quotes the rest of the file
            raise TickersFileError(unparsable(path, text, exc)) from None
        frame = frame.rename({c: c.strip() for c in frame.columns})
        column = next((c for c in frame.columns if c.lower() in ("symbol", "ticker")), None)
        if column is None:
            raise TickersFileError(
                f"tickers file {path} has no 'Symbol' column (columns: {', '.join(frame.columns)})"
            )
        symbols, rejected = parse_symbols(frame[column].to_list())
        sector = next((c for c in frame.columns if c.lower() == "sector"), None)
        sectors = {}
        if sector is not None:
            for raw, value in zip(frame[column].to_list(), frame[sector].to_list(), strict=True):
                if raw and value and value.strip() and to_yahoo(raw) in symbols:
                    sectors[to_yahoo(raw)] = value.strip()
        return Tickers(symbols=symbols, rejected=rejected, sectors=sectors)
    symbols, rejected = parse_symbols([line.split(",")[0] for line in lines])
    return Tickers(symbols=symbols, rejected=rejected)


def sectors_of(path: str | Path) -> dict[str, str]:
    """Symbol -> sector from a tickers file's ``Sector`` column; empty when the file is not
    readable here or has no such column (scores are then not broken down by sector)."""
    try:
        return load_tickers(path).sectors
    except TickersFileError:
        return {}
