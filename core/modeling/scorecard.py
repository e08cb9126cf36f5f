"""Scoring a set of forecasts the same way in train and backtest: the metric set of every
method and baseline on the same rows, coverage by period, volatility tercile and sector,
and the risk field's tests (Diebold-Mariano against each baseline, Kupiec and
Christoffersen on the outer quantiles)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from core.errors import InsufficientDataError
from core.modeling.metrics import (
    christoffersen,
    coverage_by,
    diebold_mariano,
    interval_metrics,
    kupiec,
    pinball,
    quantile_coverage,
    rank_ic,
)
from core.modeling.models.prices import daily_log_returns

METHODS = ("raw", "cqr", "cqr_aci")
PASS_LEVEL = 0.05  # significance of every test here


def qcols(quantiles: list[float], prefix: str = "") -> list[str]:
    """Quantile column names: ``q_0.1`` ..., or ``<prefix>_q_0.1`` for a baseline's."""
    return [f"{prefix}_q_{q}" if prefix else f"q_{q}" for q in quantiles]


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


def method_columns(quantiles: list[float]) -> dict[str, tuple[list[str], str, str]]:
    """Per method: (its quantile columns, its interval's lower and upper column)."""
    raw = [f"{c}_raw" for c in qcols(quantiles)]
    return {
        "raw": (raw, raw[0], raw[-1]),
        "cqr": (qcols(quantiles), "lo_cqr", "hi_cqr"),
        "cqr_aci": (qcols(quantiles), "lo", "hi"),
    }


def _groups(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    groups = {
        "year": frame["date"].dt.year().cast(pl.String).to_numpy(),
        "month": frame["date"].dt.strftime("%Y-%m").to_numpy(),
        "vol_tercile": frame["vol_tercile"].cast(pl.String).to_numpy(),
    }
    if "sector" in frame.columns and frame["sector"].drop_nulls().len():
        groups["sector"] = frame["sector"].fill_null("unknown").to_numpy()
    return groups


def evaluate(
    frame: pl.DataFrame, cols: list[str], lo: str, hi: str, quantiles: list[float], alpha: float
) -> dict[str, Any]:
    """The metric set of one method: pinball, quantile and interval coverage, width, Winkler,
    rank IC, and interval coverage by year, month, volatility tercile (and sector)."""
    y, preds = frame["y"].to_numpy(), frame.select(cols).to_numpy()
    lo_v, hi_v = frame[lo].to_numpy(), frame[hi].to_numpy()
    out: dict[str, Any] = pinball(y, preds, quantiles) | quantile_coverage(y, preds, quantiles)
    out |= interval_metrics(y, lo_v, hi_v, alpha)
    out |= rank_ic(frame["date"].to_numpy(), y, preds[:, len(quantiles) // 2])
    for name, values in _groups(frame).items():
        out[f"coverage_by_{name}"] = coverage_by(y, lo_v, hi_v, values)
    return out


def pinball_expr(cols: list[str], quantiles: list[float]) -> pl.Expr:
    """Each row's pinball loss averaged over quantiles (``metrics.pinball`` as an expression,
    for losses grouped by date or month)."""
    y = pl.col("y")
    return pl.mean_horizontal(
        [pl.max_horizontal(q * (y - pl.col(c)), (q - 1) * (y - pl.col(c))) for q, c in zip(quantiles, cols, strict=True)]
    )  # fmt: skip


def daily_pinball(frame: pl.DataFrame, cols: list[str], quantiles: list[float]) -> pl.DataFrame:
    """date, loss: the cross-sectional mean of each row's pinball loss averaged over quantiles."""
    loss = pinball_expr(cols, quantiles).mean().alias("loss")
    return frame.group_by("date").agg(loss).sort("date")


def dm_lags(dates: int, horizon: int) -> int:
    """HAC lags of a Diebold-Mariano test: Newey-West's rule of thumb, and at least 2h
    (overlapping h-day targets make losses autocorrelated up to lag h - 1, and Bartlett
    weights would under-count those at only h - 1 lags)."""
    return max(2 * horizon, int(4 * (dates / 100) ** (2 / 9)))


def every_hth_date(frame: pl.DataFrame, horizon: int) -> pl.DataFrame:
    """The rows of every h-th date: h-day targets that do not overlap."""
    dates = frame["date"].unique().sort()
    return frame.filter(pl.col("date").is_in(dates.gather_every(horizon).implode()))


def coverage_tests(
    frame: pl.DataFrame, lo: str, hi: str, quantiles: list[float], horizon: int
) -> dict[str, Any]:
    """Kupiec (unconditional coverage) and Christoffersen (independence) tests of the lower
    and upper quantile, on non-overlapping dates: pooled, and the share of symbols passing."""
    rows = every_hth_date(frame, horizon).sort("symbol", "date")
    out: dict[str, Any] = {"dates_used": "every h-th date (non-overlapping targets)"}
    for side, col, q in (("lower", lo, quantiles[0]), ("upper", hi, quantiles[-1])):
        hit = (pl.col("y") < pl.col(col)) if side == "lower" else (pl.col("y") > pl.col(col))
        hits = rows.select("symbol", hit.alias("hit"))
        p = q if side == "lower" else 1 - q
        per_symbol = [
            (kupiec(g["hit"].to_numpy(), p), christoffersen(g["hit"].to_numpy()))
            for _, g in hits.group_by("symbol", maintain_order=True)
        ]
        pooled_ind = christoffersen(hits["hit"].to_numpy(), groups=hits["symbol"].to_numpy())
        out[f"q_{q}"] = {
            "nominal_exceedance": p,
            "kupiec": kupiec(hits["hit"].to_numpy(), p),
            "christoffersen": pooled_ind,
            "kupiec_pass_share": float(
                np.mean([k["p_value"] >= PASS_LEVEL for k, _ in per_symbol])
            ),
            "christoffersen_pass_share": float(
                np.mean([c["p_value"] >= PASS_LEVEL for _, c in per_symbol])
            ),
            "symbols": len(per_symbol),
        }
    return out


def scorecard(
    frame: pl.DataFrame, quantiles: list[float], alpha: float, horizon: int, baselines: list[str]
) -> dict[str, Any]:
    """Every method and baseline on the rows of ``frame`` (those with a known outcome), with
    Diebold-Mariano tests of each method against each baseline and coverage tests.

    ``frame``: symbol, date, y, vol_tercile, [sector], the methods' columns
    (``method_columns``) and each baseline's ``<name>_q_<q>``."""
    frame = frame.filter(pl.col("y").is_not_null() & pl.col("y").is_not_nan())
    if frame["date"].n_unique() < 2:
        raise InsufficientDataError(
            f"only {frame['date'].n_unique()} forecast date(s) have a known outcome yet: nothing to "
            "score; start the forecasts earlier"
        )
    methods = {
        name: evaluate(frame, cols, lo, hi, quantiles, alpha)
        for name, (cols, lo, hi) in method_columns(quantiles).items()
    }
    base = {}
    for name in baselines:
        cols = qcols(quantiles, name)
        base[name] = evaluate(frame, cols, cols[0], cols[-1], quantiles, alpha)
    daily = {
        name: daily_pinball(frame, cols, quantiles)
        for name, (cols, _, _) in method_columns(quantiles).items()
    }
    daily |= {name: daily_pinball(frame, qcols(quantiles, name), quantiles) for name in baselines}
    lags = dm_lags(frame["date"].n_unique(), horizon)
    dm: dict[str, Any] = {}
    for method in ("raw", "cqr_aci"):  # cqr has the same quantiles as cqr_aci
        dm[method] = {}
        for name in baselines:
            test = diebold_mariano(
                daily[method]["loss"].to_numpy(), daily[name]["loss"].to_numpy(), lags
            )
            test["beats"] = bool(test["mean_diff"] < 0 and test["p_value"] < PASS_LEVEL)
            dm[method][name] = test
    tests: dict[str, Any] = {
        "diebold_mariano": dm | {"lags": lags, "loss": "daily cross-sectional mean pinball"}
    }
    tests["coverage"] = {
        name: coverage_tests(frame, lo, hi, quantiles, horizon)
        for name, (_, lo, hi) in method_columns(quantiles).items()
    } | {
        name: coverage_tests(
            frame, qcols(quantiles, name)[0], qcols(quantiles, name)[-1], quantiles, horizon
        )
        for name in baselines
    }
    return {"test": methods, "baselines": base, "tests": tests}


def monthly(frame: pl.DataFrame, quantiles: list[float], baselines: list[str]) -> pl.DataFrame:
    """Per month: CQR+ACI coverage and mean width, its mean pinball and each baseline's."""
    frame = frame.filter(pl.col("y").is_not_null() & pl.col("y").is_not_nan())
    y = pl.col("y")

    def loss(cols: list[str]) -> pl.Expr:
        return pinball_expr(cols, quantiles).mean()

    return (
        frame.group_by(pl.col("date").dt.strftime("%Y-%m").alias("month"))
        .agg(
            pl.len().alias("rows"),
            ((y >= pl.col("lo")) & (y <= pl.col("hi"))).mean().alias("coverage"),
            (pl.col("hi") - pl.col("lo")).mean().alias("width"),
            loss(qcols(quantiles)).alias("pinball"),
            *[loss(qcols(quantiles, b)).alias(f"pinball_{b}") for b in baselines],
        )
        .sort("month")
    )


def track_record(
    months: pl.DataFrame, target: float, baselines: list[str], crash: tuple[str, str]
) -> dict[str, Any]:
    """What a user asks of a backtest's months: how many kept coverage within 0.05 of the
    target, how often the model beat each baseline, and the crash months apart."""
    out: dict[str, Any] = {
        "months": months.height,
        "months_within_0.05": float(
            np.mean(np.abs(months["coverage"].to_numpy() - target) <= 0.05)
        ),
        "months_beating": {
            b: float(np.mean(months["pinball"].to_numpy() < months[f"pinball_{b}"].to_numpy()))
            for b in baselines
        },
    }
    apart = months.filter(pl.col("month").is_between(pl.lit(crash[0]), pl.lit(crash[1])))
    out["crash_months"] = {
        "months": list(crash),
        "table": apart.to_dicts(),
    }
    return out


def risk_test_lines(metrics: dict[str, Any]) -> list[str]:
    """Markdown lines of a scorecard's tests, for the model card and the backtest summary:
    Diebold-Mariano against each baseline, Kupiec and Christoffersen on the outer quantiles
    (runs written before these tests have none)."""
    tests = metrics.get("tests")
    if not tests:
        return []
    dm = tests["diebold_mariano"]
    lines = [
        "",
        f"Diebold-Mariano, calibrated quantiles against each baseline ({dm['loss']}, "
        f"{dm['lags']} HAC lags; beats = lower pinball with p < 0.05): "
        + ", ".join(
            f"{name} {'beaten' if t['beats'] else 'not beaten'} (p {t['p_value']:.3g})"
            for name, t in dm["cqr_aci"].items()
        ),
    ]
    coverage = tests["coverage"]["cqr_aci"]
    for q, t in ((k, v) for k, v in coverage.items() if k.startswith("q_")):
        lines.append(
            f"{q} of the CQR+ACI interval ({coverage['dates_used']}): exceedance "
            f"{t['kupiec']['rate']:.3f} (nominal {t['nominal_exceedance']:.2f}), Kupiec p "
            f"{t['kupiec']['p_value']:.3g}, Christoffersen p {t['christoffersen']['p_value']:.3g}, "
            f"symbols passing Kupiec {t['kupiec_pass_share']:.0%}, Christoffersen "
            f"{t['christoffersen_pass_share']:.0%}"
        )
    return lines


def model_card(metrics: dict[str, Any], run_id: str) -> str:
    """Markdown: the test metrics of each method against the baselines."""
    names = ["pinball_mean", "coverage", "mean_width", "winkler", "rank_ic_mean"]
    rows = [(m, metrics["test"][m]) for m in METHODS] + [
        (f"baseline {b}", v) for b, v in metrics["baselines"].items()
    ]
    lines = [
        f"# Model card: `{run_id}`",
        "",
        f"{metrics['model']}{' (volatility-scaled targets)' if metrics.get('volatility_scaled') else ''}, "
        f"horizon {metrics['horizon']} trading days, target coverage {metrics['target_coverage']:.0%}, "
        f"test {metrics['splits']['test'][0]} .. {metrics['splits']['test'][1]} ({metrics['rows']['test']} rows)",
        "",
        "| method | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    lines += [
        f"| {name} | " + " | ".join(f"{values[k]:.5f}" for k in names) + " |"
        for name, values in rows
    ]
    terciles = metrics["test"]["cqr_aci"]["coverage_by_vol_tercile"]
    lines += [
        "",
        "CQR + online calibration (cqr_aci) coverage by volatility tercile: "
        + ", ".join(f"{k}: {v:.3f}" for k, v in sorted(terciles.items())),
    ]
    return "\n".join(lines + risk_test_lines(metrics))
