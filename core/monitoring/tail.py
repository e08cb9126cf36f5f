"""The 99 % VaR watched as a risk desk watches it (issue 23), over the last 250 forecast
dates of the monitored series: per symbol its exceptions and Basel zone, and the pooled
exceedance of each tail with a band clustered by date. Pure: ``core.monitoring.monitor``
turns the figures into alert conditions.

Zones: at h = 1 the Basel traffic light (250 dates: 0-4 green, 5-9 yellow, 10+ red); at h > 1
the same binomial rule (95 % and 99.99 % cumulative probability) at the window's
non-overlapping outcomes (every h-th date), since overlapping h-day outcomes are not
independent trials.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from core.modeling.distribution_scores import newey_west_variance
from core.modeling.risk_backtests import BASEL_DATES, BASEL_LEVEL, zone_limits

BAND_Z = 1.96  # the pooled exceedance's band: alpha +- 1.96 date-clustered standard errors
TAIL_COLUMNS = {"long": f"q_{BASEL_LEVEL}", "short": f"q_{round(1 - BASEL_LEVEL, 10)}"}


def tail_hits(rows: pl.DataFrame) -> pl.DataFrame:
    """symbol, date and ``long`` / ``short``: the outcome beyond the 99 % VaR of that tail."""
    y = pl.col("y")
    return rows.select(
        "symbol",
        "date",
        (y < pl.col(TAIL_COLUMNS["long"])).alias("long"),
        (y > pl.col(TAIL_COLUMNS["short"])).alias("short"),
    )


def zones(hits: pl.DataFrame, dates: pl.Series, horizon: int) -> pl.DataFrame:
    """Per symbol with every window date on its every h-th date: symbol, outcomes, exceptions
    and zone of each tail."""
    kept = dates.gather_every(horizon, offset=(len(dates) - 1) % horizon)
    rows = hits.filter(pl.col("date").is_in(kept.implode()))
    green, yellow = zone_limits(len(kept), BASEL_LEVEL)

    def zone(count: pl.Expr) -> pl.Expr:
        return (
            pl.when(count <= green)
            .then(pl.lit("green"))
            .when(count <= yellow)
            .then(pl.lit("yellow"))
            .otherwise(pl.lit("red"))
        )

    per = rows.group_by("symbol").agg(
        pl.len().alias("outcomes"),
        pl.col("long").sum().alias("long_exceptions"),
        pl.col("short").sum().alias("short_exceptions"),
    )
    return (
        per.filter(pl.col("outcomes") == len(kept))
        .with_columns(
            zone(pl.col("long_exceptions")).alias("long_zone"),
            zone(pl.col("short_exceptions")).alias("short_zone"),
        )
        .sort("symbol")
    )


def pooled_band(hits: pl.DataFrame, tail: str, horizon: int) -> dict[str, Any]:
    """The window's exceedance of a tail (the mean of the daily cross-sectional rates) and
    its band alpha +- 1.96 standard errors, Newey-West over the daily rates (2h lags: the
    rows of one date move together, overlapping outcomes for h lags)."""
    daily = hits.group_by("date").agg(pl.col(tail).mean()).sort("date")[tail].to_numpy()
    rate = float(np.mean(daily))
    # at least a calibrated forecaster's binomial error over these rows: a window with (nearly)
    # no exception has almost no observed variance, which must not shrink the band to a point
    floor = BASEL_LEVEL * (1 - BASEL_LEVEL) / max(hits.height, 1)
    se = math.sqrt(max(newey_west_variance(daily, max(2 * horizon, 5)), floor))
    band = (max(BASEL_LEVEL - BAND_Z * se, 0.0), BASEL_LEVEL + BAND_Z * se)
    return {"exceedance": rate, "band": list(band), "outside": not band[0] <= rate <= band[1]}


def tail_watch(
    series: pl.DataFrame, horizon: int, quantiles: list[float], partial: bool = False
) -> dict[str, Any]:
    """The last ``BASEL_DATES`` forecast dates' 99 % VaR figures: per-symbol zones, the red
    symbols of each tail and each tail's pooled exceedance against its band; ``checked`` is
    False (with why) until the window is full (``partial``: the figures over the dates there
    are, for a report, still unchecked) or when the grid lacks the 1 % levels."""
    if not set(TAIL_COLUMNS.values()) <= {f"q_{q}" for q in quantiles}:
        return {"checked": False, "note": f"the grid {quantiles} has no 1 % and 99 % levels"}
    dates = series["date"].unique().sort()
    full = len(dates) >= BASEL_DATES
    if not full and not (partial and len(dates) >= 2 * horizon):
        return {
            "checked": False,
            "note": f"{len(dates)} scored forecast dates: the 99 % VaR is watched over {BASEL_DATES}",
        }
    window = dates.tail(BASEL_DATES)
    hits = tail_hits(series.filter(pl.col("date").is_in(window.implode())))
    table = zones(hits, window, horizon)
    return {
        "checked": full,
        "note": ""
        if full
        else f"only {len(window)} scored forecast dates (alerts need {BASEL_DATES})",
        "dates": [str(window[0]), str(window[-1])],
        "outcomes_per_symbol": len(window.gather_every(horizon)),
        "symbols": table.height,
        "zones": table.to_dicts(),
        "red": {
            tail: table.filter(pl.col(f"{tail}_zone") == "red")["symbol"].to_list()
            for tail in TAIL_COLUMNS
        },
        "pooled": {tail: pooled_band(hits, tail, horizon) for tail in TAIL_COLUMNS},
    }


def conditions(watch: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Alert conditions: ``red:<symbol>`` per symbol in the red zone of either tail (one
    memory each, so a symbol alerts when it enters) and ``var99_<tail>`` when a tail's pooled
    exceedance is outside its band."""
    if not watch.get("checked"):
        return {}
    now: dict[str, dict[str, Any]] = {}
    counts = {z["symbol"]: z for z in watch["zones"]}
    for tail, symbols in watch["red"].items():
        for symbol in symbols:
            entry = now.setdefault(f"red:{symbol}", {"symbol": symbol, "tails": {}})
            entry["tails"][tail] = counts[symbol][f"{tail}_exceptions"]
    for entry in now.values():
        entry["reason"] = (
            f"{entry['symbol']} in the red zone of the 99 % VaR ("
            + ", ".join(f"{tail}: {n} exceptions" for tail, n in entry["tails"].items())
            + f" in {watch['outcomes_per_symbol']} outcomes, {watch['dates'][0]} .. {watch['dates'][1]})"
        )
    for tail, pooled in watch["pooled"].items():
        if pooled["outside"]:
            low, high = pooled["band"]
            now[f"var99_{tail}"] = {
                "reason": f"the {tail} 99 % VaR's pooled exceedance over {BASEL_DATES} dates, "
                f"{pooled['exceedance']:.4f}, is outside its date-clustered band [{low:.4f}, {high:.4f}]",
                "exceedance": pooled["exceedance"],
            }
    return now


def grouped(fired: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The fired conditions with every ``red:<symbol>`` folded into one ``red_zone`` alert
    listing the symbols that entered (the memory stays per symbol)."""
    red = {k: v for k, v in fired.items() if k.startswith("red:")}
    if not red:
        return fired
    others = {k: v for k, v in fired.items() if k not in red}
    symbols = sorted(v["symbol"] for v in red.values())
    return others | {
        "red_zone": {
            "reason": f"{len(symbols)} symbol(s) entered the red zone of the 99 % VaR: "
            + "; ".join(red[f"red:{s}"]["reason"] for s in symbols),
            "symbols": symbols,
        }
    }
