"""Scoring a set of forecasts the same way in train and backtest: every method (the model and
each baseline), calibrated and raw, on the same rows: CRPS from the grid, pinball, per-level
exceedance, the target interval's coverage and interval score, the PIT histogram, each per
month, year, volatility tercile, sector and symbol; the tests a forecaster of distributions
expects: per-level exceedance clustered by date, the per-symbol Kupiec pass share beside a
perfect forecaster's, pairwise Diebold-Mariano and the Model Confidence Set on daily CRPS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from core.config import interval_levels
from core.errors import InsufficientDataError
from core.modeling.distribution_scores import (
    clustered_exceedance_test,
    crps_rows,
    grid_weights,
    interval_score,
    model_confidence_set,
    pinball_rows,
    pit_histogram,
    pit_values,
    qcols,
    reference_pass_share,
)
from core.modeling.metrics import christoffersen, daily_losses, kupiec, pairwise_dm, rank_ic
from core.modeling.models.prices import daily_log_returns
from core.modeling.risk_scorecard import risk_markdown, risk_scorecard

PASS_LEVEL = 0.05  # significance of every test here
MCS_SIZE = 0.10  # the Model Confidence Set's size: it holds the best method with 90 % confidence
MCS_SEED = 0  # the MCS bootstrap's seed: the same forecasts give the same set
CRPS_RULE = (
    "CRPS ~ 2 sum_k w_k pinball_tau_k(y - q_k), w_k = (tau_(k+1) - tau_(k-1)) / 2, "
    "tau_0 = 0, tau_(K+1) = 1 (the grid's Riemann sum of 2 x the integral of the pinball loss)"
)
GROUPS = ("month", "year", "vol_tercile", "sector", "symbol")


VOL_DAYS = 20  # the trailing volatility behind the terciles


def trailing_volatility(prices: pl.DataFrame) -> pl.DataFrame:
    """symbol, date, vol20: the standard deviation of the last 20 daily log returns."""
    return daily_log_returns(prices).select(
        "symbol", "date", pl.col("r").rolling_std(VOL_DAYS).over("symbol").alias("vol20")
    )


def terciles(vol: pl.Series) -> np.ndarray:
    """Tercile (1 low .. 3 high) of each value, cut over these values (nulls at the median)."""
    v = vol.fill_null(vol.median()).to_numpy()
    cuts = np.quantile(v, [1 / 3, 2 / 3]) if len(v) else np.zeros(2)
    return 1 + (v > cuts[0]).astype(int) + (v > cuts[1]).astype(int)


def volatility_terciles(rows: pl.DataFrame, prices: pl.DataFrame) -> np.ndarray:
    """Tercile of each row's trailing 20-day volatility, cut over ``rows``."""
    vol = rows.select("symbol", "date").join(
        trailing_volatility(prices), on=["symbol", "date"], how="left", maintain_order="left"
    )
    return terciles(vol["vol20"])


def with_sectors(frame: pl.DataFrame, sectors: dict[str, str] | None) -> pl.DataFrame:
    """Add each row's ``sector`` (from the tickers file) when the file has one."""
    if not sectors:
        return frame
    return frame.with_columns(
        pl.col("symbol")
        .replace_strict(sectors, default=None, return_dtype=pl.String)
        .alias("sector")
    )


def pinball_expr(cols: list[str], quantiles: list[float]) -> pl.Expr:
    """Each row's pinball loss averaged over quantiles (as an expression, for losses grouped
    by date or month)."""
    y = pl.col("y")
    return pl.mean_horizontal(
        [pl.max_horizontal(q * (y - pl.col(c)), (q - 1) * (y - pl.col(c))) for q, c in zip(quantiles, cols, strict=True)]
    )  # fmt: skip


def crps_expr(cols: list[str], quantiles: list[float]) -> pl.Expr:
    """Each row's CRPS from the grid (``CRPS_RULE``) as an expression."""
    y, weights = pl.col("y"), grid_weights(quantiles)
    return 2 * pl.sum_horizontal(
        [float(w) * pl.max_horizontal(q * (y - pl.col(c)), (q - 1) * (y - pl.col(c))) for w, q, c in zip(weights, quantiles, cols, strict=True)]
    )  # fmt: skip


def dm_lags(dates: int, horizon: int) -> int:
    """HAC lags of a Diebold-Mariano test: Newey-West's rule of thumb, and at least 2h
    (overlapping h-day targets make losses autocorrelated up to lag h - 1, and Bartlett
    weights would under-count those at only h - 1 lags)."""
    return max(2 * horizon, int(4 * (dates / 100) ** (2 / 9)))


def every_hth_date(frame: pl.DataFrame, horizon: int) -> pl.DataFrame:
    """The rows of every h-th date: h-day targets that do not overlap."""
    dates = frame["date"].unique().sort()
    return frame.filter(pl.col("date").is_in(dates.gather_every(horizon).implode()))


def interval_columns(quantiles: list[float], alpha: float, prefix: str = "") -> tuple[str, str]:
    """The target interval's two columns, named by their levels (``q_0.1``, ``q_0.9``)."""
    cols = qcols(quantiles, prefix)
    lo, hi = interval_levels(alpha)
    return cols[quantiles.index(lo)], cols[quantiles.index(hi)]


def with_interval(frame: pl.DataFrame, interval: tuple[float, float]) -> pl.DataFrame:
    """``lo`` and ``hi``: the emitted target interval, the columns of its two levels. Files
    written before layout 2 carry their own (the online-calibrated interval, which differs
    from their quantiles; in a frame of both kinds, the new rows' are null and taken from
    their levels)."""
    lo, hi = pl.col(f"q_{interval[0]}"), pl.col(f"q_{interval[1]}")
    if {"lo", "hi"} <= set(frame.columns):
        return frame.with_columns(
            pl.coalesce("lo", lo).alias("lo"), pl.coalesce("hi", hi).alias("hi")
        )
    return frame.with_columns(lo.alias("lo"), hi.alias("hi"))


def as_method(
    frame: pl.DataFrame, method: str, model: str, quantiles: list[float]
) -> pl.DataFrame | None:
    """A scored frame (held-out or backtest predictions, where ``q_*`` are ``model``'s) with
    ``method``'s calibrated quantiles as ``q_*``: what the deployed method forecast. None when
    the frame has none of that method."""
    if method == model:
        return frame
    cols = qcols(quantiles, method)
    if not set(cols) <= set(frame.columns):
        return None
    return frame.drop(qcols(quantiles)).rename(dict(zip(cols, qcols(quantiles), strict=True)))


def metrics_interval(metrics: dict[str, Any]) -> tuple[float, float]:
    """The target interval's levels of a run or backtest (layout 1: its outer quantiles)."""
    levels = metrics.get("interval") or (metrics["quantiles"][0], metrics["quantiles"][-1])
    return float(levels[0]), float(levels[1])


def group_keys(frame: pl.DataFrame) -> dict[str, pl.Expr]:
    """The groups every figure is also given per: month, year, volatility tercile (cut per
    date), sector (when the tickers file has one) and symbol."""
    keys = {
        "month": pl.col("date").dt.strftime("%Y-%m"),
        "year": pl.col("date").dt.year().cast(pl.String),
        "vol_tercile": pl.col("vol_tercile").cast(pl.String),
        "symbol": pl.col("symbol"),
    }
    if "sector" in frame.columns and frame["sector"].drop_nulls().len():
        keys["sector"] = pl.col("sector").fill_null("unknown")
    return {k: keys[k] for k in GROUPS if k in keys}


@dataclass(frozen=True)
class RowScores:
    """One method's per-row scores on the frame's rows."""

    crps: np.ndarray
    pinball: np.ndarray  # (rows, levels)
    below: np.ndarray  # (rows, levels): y <= q_k
    interval_score: np.ndarray
    hit: np.ndarray  # y inside the target interval
    width: np.ndarray
    preds: np.ndarray


def row_scores(
    frame: pl.DataFrame, cols: list[str], quantiles: list[float], alpha: float
) -> RowScores:
    """Every per-row score of the method whose quantile columns are ``cols``."""
    y, preds = frame["y"].to_numpy(), frame.select(cols).to_numpy()
    lo_i, hi_i = (quantiles.index(t) for t in interval_levels(alpha))
    lo, hi = preds[:, lo_i], preds[:, hi_i]
    return RowScores(
        crps=crps_rows(y, preds, quantiles),
        pinball=pinball_rows(y, preds, quantiles),
        below=y[:, None] <= preds,
        interval_score=interval_score(y, lo, hi, alpha),
        hit=(y >= lo) & (y <= hi),
        width=hi - lo,
        preds=preds,
    )


def summary(frame: pl.DataFrame, scores: RowScores, quantiles: list[float]) -> dict[str, Any]:
    """A method's figures over every row: CRPS, pinball (mean and per level), exceedance per
    level (the share of outcomes at or below it), the target interval's coverage, width and
    interval score, the median's rank IC, the PIT histogram."""
    y = frame["y"].to_numpy()
    out: dict[str, Any] = {
        "crps": float(scores.crps.mean()),
        "pinball_mean": float(scores.pinball.mean()),
        "coverage": float(scores.hit.mean()),
        "mean_width": float(scores.width.mean()),
        "interval_score": float(scores.interval_score.mean()),
    }
    for k, q in enumerate(quantiles):
        out[f"pinball_{q}"] = float(scores.pinball[:, k].mean())
        out[f"exceedance_{q}"] = float(scores.below[:, k].mean())
    out["max_exceedance_error"] = max(abs(out[f"exceedance_{q}"] - q) for q in quantiles)
    out |= rank_ic(frame["date"].to_numpy(), y, scores.preds[:, len(quantiles) // 2])
    out["pit_histogram"] = pit_histogram(pit_values(y, scores.preds, quantiles))
    return out


def by_group(
    frame: pl.DataFrame, scores: RowScores, quantiles: list[float]
) -> dict[str, list[dict[str, Any]]]:
    """Per group (``group_keys``): rows, CRPS, coverage, width, interval score and the
    exceedance of every level."""
    rows = frame.select(**group_keys(frame)).with_columns(
        pl.Series("crps", scores.crps),
        pl.Series("coverage", scores.hit),
        pl.Series("width", scores.width),
        pl.Series("interval_score", scores.interval_score),
        *[pl.Series(f"exceedance_{q}", scores.below[:, k]) for k, q in enumerate(quantiles)],
    )
    figures = [c for c in rows.columns if c not in GROUPS]
    return {
        key: rows.group_by(key)
        .agg(pl.len().alias("rows"), *[pl.col(c).cast(pl.Float64).mean() for c in figures])
        .sort(key)
        .to_dicts()
        for key in group_keys(frame)
    }


def level_tests(
    frame: pl.DataFrame, scores: RowScores, quantiles: list[float], horizon: int, lags: int
) -> dict[str, Any]:
    """Per level: the pooled exceedance tested with the dates as the independent units (HAC
    on the daily exceedance rates), and on every h-th date (non-overlapping targets) the
    share of symbols passing Kupiec's and Christoffersen's tests beside the share a
    perfectly calibrated forecaster passes at each symbol's number of dates (exact binomial)."""
    dates = frame["date"].to_numpy()
    keep = every_hth_date(frame.with_row_index("_row"), horizon).sort("symbol", "date")
    index, symbols = keep["_row"].to_numpy(), keep["symbol"].to_numpy()
    starts = np.flatnonzero(np.r_[True, symbols[1:] != symbols[:-1]])
    ends = np.r_[starts[1:], len(symbols)]
    out: dict[str, Any] = {
        "clustered": "HAC on the daily cross-sectional exceedance rate "
        f"({lags} lags): the dates, not the rows, are the independent units",
        "per_symbol": "every h-th date (non-overlapping targets), Kupiec and Christoffersen at 5 %",
    }
    for k, q in enumerate(quantiles):
        hits = scores.below[:, k]
        sym_hits = hits[index]
        per = [
            (kupiec(sym_hits[a:b], q), christoffersen(sym_hits[a:b]))
            for a, b in zip(starts, ends, strict=True)
        ]
        out[f"q_{q}"] = {
            "exceedance": float(hits.mean()),
            "clustered_test": clustered_exceedance_test(dates, hits, q, lags),
            "kupiec_pass_share": float(np.mean([t["p_value"] >= PASS_LEVEL for t, _ in per])),
            "reference_pass_share": reference_pass_share((ends - starts).tolist(), q, PASS_LEVEL),
            "christoffersen_pass_share": float(
                np.mean([c["p_value"] >= PASS_LEVEL for _, c in per])
            ),
            "symbols": len(per),
        }
    return out


def scorecard(
    frame: pl.DataFrame,
    quantiles: list[float],
    alpha: float,
    horizon: int,
    methods: dict[str, str],
    crash: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Every method (name -> column prefix), calibrated (``<prefix>q_*``) and raw
    (``<prefix>q_*_raw``), on the rows of ``frame`` with a known outcome: figures overall
    and per group, per-level tests of the calibrated forecasts, pairwise Diebold-Mariano
    and the Model Confidence Set on daily CRPS (calibrated; raw beside), and the risk
    section (``core.modeling.risk_scorecard``: VaR and ES backtests, ``crash`` months apart).

    ``frame``: symbol, date, y, vol_tercile, [sector] and the methods' columns."""
    frame = frame.filter(pl.col("y").is_not_null() & pl.col("y").is_not_nan()).sort(
        "date", "symbol"
    )
    if frame["date"].n_unique() < 2:
        raise InsufficientDataError(
            f"only {frame['date'].n_unique()} forecast date(s) have a known outcome yet: nothing to "
            "score; start the forecasts earlier"
        )
    lags = dm_lags(frame["date"].n_unique(), horizon)
    out: dict[str, Any] = {"methods": list(methods), "crps_rule": CRPS_RULE}
    daily: dict[str, dict[str, np.ndarray]] = {"calibrated": {}, "raw": {}}
    out["calibrated"], out["raw"], out["groups"], tests = {}, {}, {}, {}
    for name, p in methods.items():
        for kind, suffix in (("calibrated", ""), ("raw", "_raw")):
            cols = [f"{c}{suffix}" for c in qcols(quantiles, p)]
            scores = row_scores(frame, cols, quantiles, alpha)
            out[kind][name] = summary(frame, scores, quantiles)
            daily[kind][name] = daily_losses(frame, scores.crps)
            if kind == "calibrated":
                out["groups"][name] = by_group(frame, scores, quantiles)
                tests[name] = level_tests(frame, scores, quantiles, horizon, lags)
    mcs = (
        model_confidence_set(daily["calibrated"], MCS_SIZE, max(2 * horizon, 2), seed=MCS_SEED)
        if len(methods) > 1
        else None
    )
    out["tests"] = {
        "levels": tests,
        "diebold_mariano": {
            "calibrated": pairwise_dm(daily["calibrated"], lags),
            "raw": pairwise_dm(daily["raw"], lags),
            "lags": lags,
            "loss": "daily cross-sectional mean CRPS",
        },
        "mcs": mcs,
    }
    out["risk"] = risk_scorecard(frame, quantiles, horizon, methods, lags, crash)
    return out


def monthly(
    frame: pl.DataFrame, quantiles: list[float], alpha: float, methods: dict[str, str], model: str
) -> pl.DataFrame:
    """Per month: the model's target-interval coverage and mean width, and every method's
    mean CRPS (``crps`` the model's, ``crps_<name>`` the others'), all calibrated."""
    frame = frame.filter(pl.col("y").is_not_null() & pl.col("y").is_not_nan())
    y = pl.col("y")
    lo, hi = interval_columns(quantiles, alpha, methods[model])
    return (
        frame.group_by(pl.col("date").dt.strftime("%Y-%m").alias("month"))
        .agg(
            pl.len().alias("rows"),
            ((y >= pl.col(lo)) & (y <= pl.col(hi))).mean().alias("coverage"),
            (pl.col(hi) - pl.col(lo)).mean().alias("width"),
            *[
                crps_expr(qcols(quantiles, p), quantiles)
                .mean()
                .alias("crps" if name == model else f"crps_{name}")
                for name, p in methods.items()
            ],
        )
        .sort("month")
    )


def track_record(
    months: pl.DataFrame, target: float, others: list[str], crash: tuple[str, str]
) -> dict[str, Any]:
    """What a user asks of a backtest's months: how many kept coverage within 0.05 of the
    target, how often the model's CRPS beat each other method's, and the crash months apart."""
    out: dict[str, Any] = {
        "months": months.height,
        "months_within_0.05": float(
            np.mean(np.abs(months["coverage"].to_numpy() - target) <= 0.05)
        ),
        "months_beating": {
            b: float(np.mean(months["crps"].to_numpy() < months[f"crps_{b}"].to_numpy()))
            for b in others
        },
    }
    apart = months.filter(pl.col("month").is_between(pl.lit(crash[0]), pl.lit(crash[1])))
    out["crash_months"] = {"months": list(crash), "table": apart.to_dicts()}
    return out


SUMMARY_COLUMNS = (
    "crps",
    "pinball_mean",
    "coverage",
    "mean_width",
    "interval_score",
    "max_exceedance_error",
)


def method_table(metrics: dict[str, Any], reference: str = "ewma") -> list[str]:
    """Markdown rows: every method calibrated, then raw, with its CRPS relative to the
    reference baseline treated alike."""
    lines = [
        "| method | " + " | ".join(SUMMARY_COLUMNS) + f" | CRPS / {reference} |",
        "|---|" + "---|" * (len(SUMMARY_COLUMNS) + 1),
    ]
    for kind in ("calibrated", "raw"):
        ref = metrics[kind].get(reference, {}).get("crps")
        for name, values in metrics[kind].items():
            ratio = f"{values['crps'] / ref:.4f}" if ref else "-"
            lines.append(
                f"| {name} ({kind}) | "
                + " | ".join(f"{values[k]:.5f}" for k in SUMMARY_COLUMNS)
                + f" | {ratio} |"
            )
    return lines


def tests_markdown(metrics: dict[str, Any], focus: str) -> list[str]:
    """Markdown lines of a scorecard's tests for the method ``focus``: Diebold-Mariano
    against every other method, the Model Confidence Set, and per level the exceedance,
    its date-clustered test and the per-symbol Kupiec pass share beside a perfect
    forecaster's."""
    tests = metrics["tests"]
    dm = tests["diebold_mariano"]
    lines = [
        "",
        f"{metrics['crps_rule']}.",
        "",
        f"Diebold-Mariano of {focus} (calibrated) against each method calibrated alike ({dm['loss']}, "
        f"{dm['lags']} HAC lags; beats = lower CRPS with p < 0.05): "
        + ", ".join(
            f"{name} {'beaten' if t['beats'] else 'not beaten'} (p {t['p_value']:.3g}, "
            f"{'lower' if t['mean_diff'] < 0 else 'higher'} CRPS)"
            for name, t in dm["calibrated"].get(focus, {}).items()
        ),
    ]
    mcs = tests.get("mcs")
    if mcs:
        lines.append(
            f"Model Confidence Set ({1 - mcs['size']:.0%}, {mcs['bootstrap']} bootstrap, block "
            f"{mcs['block_size']}, seed {mcs['seed']}): holds {', '.join(mcs['included'])}; "
            "p-values " + ", ".join(f"{k} {v:.3g}" for k, v in mcs["pvalues"].items())
        )
    levels = tests["levels"].get(focus, {})
    lines += [
        "",
        f"Per level, {focus} calibrated ({levels.get('clustered', '')}; {levels.get('per_symbol', '')}):",
        "",
    ]
    lines += [
        "| level | exceedance | clustered p | Kupiec pass share | perfect forecaster's |",
        "|---|---|---|---|---|",
    ]
    for key, t in ((k, v) for k, v in levels.items() if k.startswith("q_")):
        lines.append(
            f"| {key[2:]} | {t['exceedance']:.4f} | {t['clustered_test']['p_value']:.3g} | "
            f"{t['kupiec_pass_share']:.1%} | {t['reference_pass_share']:.1%} |"
        )
    return lines


def model_card(metrics: dict[str, Any], run_id: str) -> str:
    """Markdown: every candidate calibrated alike (raw beside), which one is deployed and why,
    and the tests of the deployed one."""
    deployed = metrics.get("deployed", metrics["model"])
    lines = [
        f"# Model card: `{run_id}`",
        "",
        f"Deployed: **{deployed}**. {metrics.get('deployed_because', '')}".rstrip(),
        "",
        f"{metrics['model']}{' (volatility-scaled targets)' if metrics.get('volatility_scaled') else ''} "
        f"and every baseline, horizon {metrics['horizon']} trading days, levels {metrics['quantiles']}, "
        f"target interval {metrics['interval'][0]}-{metrics['interval'][1]} "
        f"(coverage {metrics['target_coverage']:.0%}), test {metrics['splits']['test'][0]} .. "
        f"{metrics['splits']['test'][1]} ({metrics['rows']['test']} rows); every method calibrated "
        "alike (per-level conformal shift on its own spread, then its own per-level and "
        "per-symbol trackers).",
        "",
        *method_table(metrics),
    ]
    terciles = {g["vol_tercile"]: g["coverage"] for g in metrics["groups"][deployed]["vol_tercile"]}
    lines += [
        "",
        f"{deployed} coverage by volatility tercile: "
        + ", ".join(f"{k}: {v:.3f}" for k, v in sorted(terciles.items())),
    ]
    fallbacks = metrics.get("fallbacks") or {}
    if fallbacks:
        lines.append(
            "Fits that fell back: "
            + "; ".join(
                f"{m}: {len(s)} symbol(s) ({', '.join(sorted(s)[:5])})"
                for m, s in fallbacks.items()
            )
        )
    return "\n".join(lines + tests_markdown(metrics, deployed) + risk_markdown(metrics, deployed))
