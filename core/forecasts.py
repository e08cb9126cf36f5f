"""The Python read API: a store's forecasts as Polars frames, for a risk engine, a dashboard
or a notebook (the HTTP service will serve the same calls).

    from core.forecasts import Forecasts

    fc = Forecasts.open("s3://bucket/prod")              # or a local folder
    fc.deployed_run()                                     # DeployedRun(run_id=..., ...)
    fc.latest(symbols=["AAPL"], levels=[0.05, 0.95])      # the newest forecasts
    fc.history("AAPL", start=dt.date(2018, 6, 1))         # its forecasts with their outcomes
    fc.calibration()                                      # the monitor's rolling figures

Read-only: nothing here writes to the store. Every problem is a ``ReadError`` subclass
naming what is missing (a symbol, a horizon, a level, the files not yet written) and the
command that writes it; a damaged file is the store's own ``DamagedFileError``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from core import layout
from core.errors import InputError
from core.features.build import target_expr
from core.monitoring.monitor import prediction_dates
from core.runs import MissingRunError, read_run, resolve
from core.storage import Store, sha256

LEVEL = re.compile(r"^q_(0\.\d+|1\.0|0)$")  # a calibrated quantile column, not a `_raw` one


class ReadError(InputError):
    """What was asked for is not in the store; the message names it and what writes it."""


class NoForecastsError(ReadError):
    """The store holds no forecast yet (or no trained run)."""


class UnknownSymbolError(ReadError):
    """A symbol the forecasts do not cover."""


class UnknownHorizonError(ReadError):
    """A horizon the store holds no forecasts for."""


class UnknownLevelError(ReadError):
    """A quantile level the forecasts do not carry."""


class NoCalibrationError(ReadError):
    """The monitor has not scored any forecast yet."""


@dataclass(frozen=True)
class DeployedRun:
    """The run ``models/latest.json`` names, as a downstream system needs it."""

    run_id: str
    horizon: int
    model: str  # the learner trained
    method: str  # the method deployed (the learner, a baseline, or their aggregation)
    quantiles: tuple[float, ...]
    created_at: str
    git_commit: str


def levels_of(frame: pl.DataFrame) -> list[float]:
    """The quantile levels a forecast frame carries (its ``q_<level>`` columns)."""
    return sorted(float(c[2:]) for c in frame.columns if LEVEL.match(c))


class Forecasts:
    """Read access to one store (every horizon it holds)."""

    def __init__(self, store: Store):
        self.store = store
        self._home: int | None = None  # the home horizon, once known (it never changes)

    @classmethod
    def open(cls, url: str, endpoint_url: str | None = None) -> Forecasts:
        """The store at ``url`` (a folder or ``s3://bucket/prefix``): an S3 store's bucket is
        checked at once, a local store must be a folder (it need not be writable)."""
        store = Store(url, endpoint_url=endpoint_url)
        if store.is_s3:
            store.check()
        return cls.over(store)

    @classmethod
    def over(cls, store: Store) -> Forecasts:
        """Read access to an opened store; a local one must be a folder (an S3 one is
        reached by its reads: a service starts while S3 is down, and answers 503)."""
        if not store.is_s3 and not Path(store.root).is_dir():
            raise ReadError(f"no store at {store.url}: not a folder")
        return cls(store)

    def horizons(self) -> list[int]:
        """The horizons with forecasts or a run, the store's home horizon first (that of
        its root feature build, else that of its root forecasts)."""
        home = self._home = self._home or self.store.home_horizon()
        files = prediction_dates(self.store) if home is None else {}
        if files:  # no feature build here (a copy of a store's forecasts): they tell
            newest = self.store.read_parquet(files[max(files)])
            home = self._home = int(newest["horizon"][0]) if "horizon" in newest.columns else None
        others = set(layout.horizons_in(self.store.list("horizons")))
        return ([home] if home is not None else []) + sorted(others - {home})

    def _view(self, horizon: int | None) -> tuple[int, Store]:
        """A horizon (default: the home one) and the store as it sees it (its keys under
        ``horizons/h=<h>/`` off the home horizon)."""
        horizons = self.horizons()
        if not horizons:
            raise NoForecastsError(
                f"store {self.store.url} holds no forecasts: run `python -m flows.train` "
                "then `python -m flows.predict`"
            )
        horizon = horizons[0] if horizon is None else horizon
        if horizon not in horizons:
            raise UnknownHorizonError(
                f"store {self.store.url} holds no horizon {horizon} (it holds "
                f"{', '.join(map(str, horizons))})"
            )
        return horizon, self.store.for_horizon(horizon, horizons[0])

    def deployed_run(self, horizon: int | None = None) -> DeployedRun:
        """The deployed run of ``horizon`` (default: the home horizon)."""
        _, view = self._view(horizon)
        try:
            manifest = read_run(view, resolve(view, "latest"))
        except MissingRunError as exc:
            raise NoForecastsError(f"{exc}; run `python -m flows.train`") from None
        metrics = manifest.metrics(view)
        return DeployedRun(
            run_id=manifest.run_id,
            horizon=manifest.horizon,
            model=metrics["model"],
            method=metrics.get("deployed", metrics["model"]),
            quantiles=tuple(metrics["quantiles"]),
            created_at=manifest.created_at,
            git_commit=manifest.git_commit,
        )

    def _predictions(self, view: Store) -> dict[dt.date, str]:
        files = prediction_dates(view)
        if not files:
            raise NoForecastsError(
                f"no forecasts in {view.uri(layout.PREDICTIONS.prefix)}: run `python -m flows.predict`"
            )
        return files

    def _newest_files(self, horizons: Sequence[int] | None) -> dict[int, tuple[Store, str]]:
        """Per horizon asked (default: every one), the newest prediction file: its horizon's
        view of the store and its key."""
        out = {}
        for asked in horizons or self.horizons() or [None]:
            horizon, view = self._view(asked)
            files = self._predictions(view)
            out[horizon] = (view, files[max(files)])
        return out

    def latest_versioned(
        self,
        symbols: Sequence[str] | None = None,
        horizons: Sequence[int] | None = None,
        levels: Sequence[float] | None = None,
    ) -> tuple[pl.DataFrame, str]:
        """``latest``, and the version of what it read: the sha256 of the prediction files'
        sha256s (each file read once), which changes exactly when one of them does."""
        frames, digests = [], []
        for horizon, (view, key) in self._newest_files(horizons).items():
            data = view.read_bytes(key)
            digests.append(sha256(data))
            frame = view.parse_parquet(key, data)
            frames.append(frame.with_columns(pl.lit(horizon, pl.Int64).alias("horizon")))
        table = _only_symbols(pl.concat(frames, how="diagonal_relaxed"), symbols)
        version = sha256("|".join(digests).encode())
        return _with_levels(table, levels).sort("horizon", "symbol"), version

    def latest(
        self,
        symbols: Sequence[str] | None = None,
        horizons: Sequence[int] | None = None,
        levels: Sequence[float] | None = None,
    ) -> pl.DataFrame:
        """The newest forecasts of each horizon asked (default: every horizon), one row per
        (horizon, symbol): ``symbol, date, target_date, horizon, method``, the ``q_<level>``
        columns (all, or ``levels``), the VaR and ES columns and ``run_id``."""
        return self.latest_versioned(symbols, horizons, levels)[0]

    def history(
        self,
        symbol: str,
        start: dt.date | None = None,
        end: dt.date | None = None,
        horizon: int | None = None,
    ) -> pl.DataFrame:
        """Every forecast of ``symbol`` at ``horizon`` (default: the home horizon) made from
        ``start`` to ``end`` (forecast dates, inclusive), oldest first, with ``y``: the
        realized target on the forecasts' scale (null until its horizon has passed)."""
        horizon, view = self._view(horizon)
        files = self._predictions(view)
        one = pl.col("symbol") == symbol
        keys = [k for d, k in files.items() if start is None or d >= start] or [files[max(files)]]
        window = (pl.col("date") >= (start or dt.date.min)) & (
            pl.col("date") <= (end or dt.date.max)
        )
        table = (
            pl.concat([_rows_of(view, k, one) for k in keys], how="diagonal_relaxed")
            .filter(window)
            .unique(["symbol", "date"], keep="last")  # a date forecast again: the newest file's
            .sort("date")
        )
        if table.is_empty():  # a symbol never forecast: named
            _only_symbols(view.read_parquet(files[max(files)]), [symbol])
        key = layout.PRICES(symbol=symbol)
        prices = self.store.read_parquet(key) if self.store.exists(key) else None
        if prices is None:
            return table.with_columns(pl.lit(None, pl.Float64).alias("y"))
        realized = prices.sort("date").select("symbol", "date", target_expr(horizon).alias("y"))
        return table.join(realized, on=["symbol", "date"], how="left")

    def calibration(self, horizon: int | None = None) -> pl.DataFrame:
        """The monitor's rolling figures at ``horizon`` (default: the home horizon), one row
        per window (in forecast dates): ``as_of, window, days, rows, first_date, last_date,
        coverage, pinball_ratio_ewma`` and ``exceedance_<level>`` per level."""
        _, view = self._view(horizon)
        key = layout.MONITOR_SUMMARY()
        if not view.exists(key):
            raise NoCalibrationError(
                f"no monitoring figures in {view.uri(key)}: run `python -m flows.monitor`"
            )
        summary = view.read_json(key)
        rows = [
            {
                "as_of": dt.date.fromisoformat(summary["as_of"]),
                "window": int(window),
                "days": figures["days"],
                "rows": figures["rows"],
                "first_date": dt.date.fromisoformat(figures["dates"][0]),
                "last_date": dt.date.fromisoformat(figures["dates"][1]),
                **{
                    k: v
                    for k, v in figures.items()
                    if k == "coverage" or k == "pinball_ratio_ewma" or k.startswith("exceedance_")
                },
            }
            for window, figures in summary["rolling"].items()
            if figures
        ]
        if not rows:
            raise NoCalibrationError(
                f"the monitor has scored no forecast yet ({view.uri(key)}): their outcomes are "
                "not known yet, or run `python -m flows.monitor --backfill`"
            )
        return pl.DataFrame(rows).sort("window")


def _rows_of(view: Store, key: str, rows: pl.Expr) -> pl.DataFrame:
    """The ``rows`` of one prediction file, scanned (only those rows are read); a file that
    cannot be scanned is read whole, which names a damaged one (``DamagedFileError``)."""
    try:
        return view.scan_parquet([key]).filter(rows).collect()
    except (pl.exceptions.PolarsError, OSError):
        return view.read_parquet(key).filter(rows)


def _only_symbols(table: pl.DataFrame, symbols: Sequence[str] | None) -> pl.DataFrame:
    """The rows of ``symbols`` (all when None); an unknown one is ``UnknownSymbolError``."""
    if symbols is None:
        return table
    known = set(table["symbol"].to_list())
    missing = [s for s in symbols if s not in known]
    if missing:
        raise UnknownSymbolError(
            f"no forecast for {', '.join(missing)} (the forecasts cover {len(known)} symbols)"
        )
    return table.filter(pl.col("symbol").is_in(list(symbols)))


def _with_levels(table: pl.DataFrame, levels: Sequence[float] | None) -> pl.DataFrame:
    """The table with only the ``q_<level>`` columns of ``levels`` (all when None)."""
    if levels is None:
        return table
    have = levels_of(table)
    missing = [q for q in levels if not any(abs(q - h) < 1e-9 for h in have)]
    if missing:
        raise UnknownLevelError(
            f"no level {', '.join(map(str, missing))} in the forecasts (they carry "
            f"{', '.join(map(str, have))})"
        )
    drop = [f"q_{h}" for h in have if not any(abs(q - h) < 1e-9 for q in levels)]
    return table.drop(drop)
