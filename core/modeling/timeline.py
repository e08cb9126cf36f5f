"""Time, cut one way: the fit segments (train / validation / calibration), the forecast
period after them, the embargo between them, and the lookback every fit reads.

A target at date t spans (t, t+h], so no fit row's target may reach into the next
segment: h trading dates separate consecutive segments, and the newest row a fit learns
from is h trading days before its first forecast (the refit date T).

Two kinds of ``Window`` come out of here, one type:
- the held-out split of ``flows.train`` (``holdout_window``): the labelled dates of the
  last ``model.lookback_days`` cut by ``model.split_fractions``; its forecast period is the
  test segment;
- a refit window (``window_at``): forecasts from T to ``until``; before T come the
  calibration window (``refit.calibration_days``), an h-day gap, the validation window
  (``refit.validation_days``, for early stopping), another h-day gap, and training back to
  ``model.lookback_days`` calendar days before T. A history too short for those windows
  shrinks calibration and validation in the proportions of ``model.split_fractions``. The
  backtest plans one every ``backtest.refit_every`` trading days (``plan_refits``); the fit
  ``flows.train`` deploys is one at the newest date (``deployment_window``).
"""

from __future__ import annotations

import datetime as dt
from itertools import pairwise

import polars as pl
from pydantic.dataclasses import dataclass as pydantic_dataclass

from core.config import BacktestSettings, ModelSettings, RefitSettings
from core.errors import InsufficientDataError

SEGMENTS = ("train", "val", "cal", "test")
FIT_SEGMENTS = SEGMENTS[:3]
Span = tuple[dt.date, dt.date]


@pydantic_dataclass(frozen=True)
class Window:
    """One fit and what it forecasts: the first and last forecast date (``refit``,
    ``until``: the test segment) and the fit segments, each inclusive."""

    refit: dt.date
    until: dt.date
    train: Span
    val: Span
    cal: Span

    @property
    def test(self) -> Span:
        return (self.refit, self.until)

    def span(self, name: str) -> Span:
        """A segment by name (``train``, ``val``, ``cal`` or ``test``)."""
        return self.test if name == "test" else getattr(self, name)

    def as_dict(self) -> dict[str, str | list[str]]:
        """As a refit records it: ``refit``, ``until`` and the fit segments."""
        return {"refit": str(self.refit), "until": str(self.until)} | {
            name: [str(d) for d in self.span(name)] for name in FIT_SEGMENTS
        }

    def splits_dict(self) -> dict[str, list[str]]:
        """As a held-out split records it: every segment, ``test`` included."""
        return {name: [str(d) for d in self.span(name)] for name in SEGMENTS}


def trading_dates(table: pl.DataFrame) -> list[dt.date]:
    return table["date"].unique().sort().to_list()


def holdout_window(
    dates: pl.Series,
    embargo: int,
    lookback_days: int = 1960,
    fractions: tuple[float, float, float, float] = (0.6, 0.1, 0.2, 0.1),
) -> Window:
    """Split the labelled trading dates of the last ``lookback_days`` calendar days into
    train / validation / calibration / test by ``fractions``; the first ``embargo`` dates of
    every segment after the first are dropped."""
    if abs(sum(fractions) - 1) > 1e-9 or min(fractions) <= 0:
        raise ValueError(f"split fractions must be positive and sum to 1, got {fractions}")
    days = dates.drop_nulls().unique().sort()
    if days.is_empty():
        raise InsufficientDataError(
            "no labelled rows to split (every target is still unknown): collect a longer history"
        )
    last: dt.date = days[-1]
    days = days.filter(days >= last - dt.timedelta(days=lookback_days)).to_list()
    n = len(days)
    cuts = [0]
    for f in fractions:
        cuts.append(cuts[-1] + round(f * n))
    cuts[-1] = n
    spans = []
    for i, (a, b) in enumerate(pairwise(cuts)):
        start = a + (embargo if i else 0)
        if b - start < 1:
            raise InsufficientDataError(
                f"too few dates ({n}) for the {SEGMENTS[i]} segment after an embargo of {embargo}"
            )
        spans.append((days[start], days[b - 1]))
    train, val, cal, test = spans
    return Window(refit=test[0], until=test[1], train=train, val=val, cal=cal)


def model_holdout(dates: pl.Series, horizon: int, cfg: ModelSettings) -> Window:
    """The held-out split a model's settings ask for (train's metrics, tune's folds)."""
    return holdout_window(dates, horizon, cfg.lookback_days, cfg.split_fractions)


def segment_expr(window: Window) -> pl.Expr:
    """The segment name of each row by its date (null: outside, or embargoed)."""
    expr = pl.lit(None, dtype=pl.String)
    for name in reversed(SEGMENTS):
        expr = (
            pl.when(pl.col("date").is_between(*window.span(name)))
            .then(pl.lit(name))
            .otherwise(expr)
        )
    return expr.alias("segment")


def check_segments(
    segments: dict[str, pl.DataFrame],
    min_dates: int,
    min_rows: int,
    window: Window,
    names: tuple[str, ...] = SEGMENTS,
) -> None:
    """Every segment holds at least ``min_dates`` dates and ``min_rows`` rows, or an error
    names each short segment, what it holds, and its date span."""
    short = []
    for name in names:
        frame = segments[name]
        dates = frame["date"].n_unique()
        if dates < min_dates or frame.height < min_rows:
            a, b = window.span(name)
            short.append(f"{name} {a}..{b}: {frame.height} rows on {dates} dates")
    if short:
        raise InsufficientDataError(
            f"too little data to train (each segment needs {min_dates} dates and {min_rows} rows): "
            + "; ".join(short)
            + ": collect a longer history or more symbols, or raise model.lookback_days"
        )


def window_at(
    dates: list[dt.date],
    refit: int,
    until: int,
    horizon: int,
    model: ModelSettings,
    cfg: RefitSettings,
) -> Window:
    """The refit window forecasting ``dates[refit..until]`` (indexes into the sorted trading dates)."""
    last = refit - horizon  # newest row whose outcome is known at the refit's close
    earliest = dates[refit] - dt.timedelta(days=model.lookback_days)
    first = next(i for i, d in enumerate(dates) if d >= earliest)
    available = last - first + 1
    f_train, f_val, f_cal, _ = model.split_fractions
    share = f_train + f_val + f_cal
    n_cal = min(cfg.calibration_days, round(available * f_cal / share))
    n_val = min(cfg.validation_days, round(available * f_val / share))
    cal_start = last - n_cal + 1
    val_end = cal_start - horizon - 1
    val_start = val_end - n_val + 1
    train_end = val_start - horizon - 1
    if min(n_cal, n_val, train_end - first + 1) < model.min_segment_dates:
        raise InsufficientDataError(
            f"too little history before {dates[refit]} to refit: {available} trading days from "
            f"{dates[first]} give train {max(train_end - first + 1, 0)}, validation {n_val} and "
            f"calibration {n_cal} dates (each needs {model.min_segment_dates}): collect a longer history"
        )
    return Window(
        refit=dates[refit],
        until=dates[until],
        train=(dates[first], dates[train_end]),
        val=(dates[val_start], dates[val_end]),
        cal=(dates[cal_start], dates[last]),
    )


def plan_refits(
    dates: list[dt.date],
    horizon: int,
    model: ModelSettings,
    refit: RefitSettings,
    cfg: BacktestSettings,
) -> list[Window]:
    """Refit windows every ``refit_every`` trading days over the forecast dates in
    [start, end]; the first refit waits for ``min_history_days`` of history."""
    enough = dates[0] + dt.timedelta(days=cfg.min_history_days)
    chosen = [
        i
        for i, d in enumerate(dates)
        if d >= enough
        and (cfg.start is None or d >= cfg.start)
        and (cfg.end is None or d <= cfg.end)
    ]
    if not chosen:
        raise InsufficientDataError(
            f"no forecast date to backtest: the dates run {dates[0]} .. {dates[-1]}, the first refit "
            f"needs {cfg.min_history_days} calendar days of history (backtest.min_history_days)"
            + (
                f", and the range asked is {cfg.start or '...'} .. {cfg.end or '...'}"
                if cfg.start or cfg.end
                else ""
            )
        )
    starts = chosen[:: cfg.refit_every]
    ends = [s - 1 for s in starts[1:]] + [chosen[-1]]
    return [
        window_at(dates, s, e, horizon, model, refit) for s, e in zip(starts, ends, strict=True)
    ]


def deployment_window(
    dates: list[dt.date], horizon: int, model: ModelSettings, cfg: RefitSettings
) -> Window:
    """The window of a refit at the newest date: the fit ``flows.train`` saves for predict."""
    return window_at(dates, len(dates) - 1, len(dates) - 1, horizon, model, cfg)


def segments(table: pl.DataFrame, window: Window, horizon: int) -> dict[str, pl.DataFrame]:
    """The labelled rows of each fit segment, sorted by date then symbol. A row whose target
    ends after the refit date (a symbol with missing days spans more calendar days in h
    rows) is left out: the embargo holds per symbol, not only on the panel's calendar."""
    target_end = pl.col("date").shift(-horizon).over("symbol", order_by="date")
    # a mask, not a filtered copy: at 5,000 symbols a copy of the table is gigabytes
    labelled = table.select(pl.col("y").is_not_null() & (target_end <= window.refit)).to_series()
    return {
        name: table.filter(labelled & table["date"].is_between(*window.span(name))).sort(
            "date", "symbol"
        )
        for name in FIT_SEGMENTS
    }


def every_nth_date(frame: pl.DataFrame, step: int) -> pl.DataFrame:
    """The rows of every ``step``-th date of ``frame``, counted back from its newest (which is
    always kept): a fit's training rows thinned where h-day targets overlap."""
    if step <= 1:
        return frame
    back = pl.col("date").rank("dense", descending=True) - 1
    return frame.filter(back % step == 0)


def lookback_start(built_to: dt.date, lookback_days: int, horizon: int) -> dt.date:
    """The first date a fit on the newest ``lookback_days`` can read, from the newest stored
    date: the held-out split and the deployed window both count back from the newest
    *labelled* date, up to h trading days (about ``2 h + 10`` calendar days) earlier."""
    return built_to - dt.timedelta(lookback_days + 2 * horizon + 10)
