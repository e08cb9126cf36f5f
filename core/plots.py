"""PNG plots of a training run (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import polars as pl

METHOD_COLUMNS = {
    "raw": ("lo_raw", "hi_raw"),
    "cqr": ("lo_cqr", "hi_cqr"),
    "cqr_aci": ("lo_cqr_aci", "hi_cqr_aci"),
}


def calibration(metrics: dict[str, Any], path: Path) -> None:
    """Nominal vs empirical coverage of each quantile, per method."""
    quantiles = metrics["quantiles"]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="ideal")
    for method in ("raw", "cqr"):
        emp = [metrics["test"][method][f"coverage_{q}"] for q in quantiles]
        ax.plot(quantiles, emp, marker="o", label=method)
    ax.set(
        xlabel="nominal quantile",
        ylabel="share of outcomes below",
        title="Quantile calibration (test)",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def rolling_coverage(preds: pl.DataFrame, target: float, path: Path, window: int = 20) -> None:
    """Daily interval coverage, rolling mean over `window` dates, per method."""
    daily = (
        preds.group_by("date")
        .agg(
            [
                ((pl.col("y") >= pl.col(lo)) & (pl.col("y") <= pl.col(hi))).mean().alias(m)
                for m, (lo, hi) in METHOD_COLUMNS.items()
            ]
        )
        .sort("date")
    )
    fig, ax = plt.subplots(figsize=(8, 4))
    for method in METHOD_COLUMNS:
        ax.plot(
            daily["date"].to_list(),
            daily[method].rolling_mean(window, min_samples=1).to_list(),
            label=method,
        )
    ax.axhline(target, color="grey", linestyle="--", label=f"target {target:.0%}")
    ax.set(ylabel=f"coverage ({window}-day mean)", title="Rolling coverage over the test period")
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def fan_chart(preds: pl.DataFrame, symbol: str, quantiles: list[float], path: Path) -> None:
    """Outcomes against the calibrated interval and the raw quantiles of one symbol."""
    one = preds.filter(pl.col("symbol") == symbol).sort("date")
    dates = one["date"].to_list()
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.fill_between(
        dates,
        one["lo_cqr_aci"].to_list(),
        one["hi_cqr_aci"].to_list(),
        alpha=0.2,
        label="CQR+ACI interval",
    )
    inner = [q for q in quantiles[1:-1]]
    if len(inner) >= 2:
        ax.fill_between(
            dates,
            one[f"q_{inner[0]}"].to_list(),
            one[f"q_{inner[-1]}"].to_list(),
            alpha=0.3,
            label="inner quantiles",
        )
    mid = quantiles[len(quantiles) // 2]
    ax.plot(dates, one[f"q_{mid}"].to_list(), label=f"q {mid}")
    ax.scatter(dates, one["y"].to_list(), s=6, color="black", label="outcome")
    ax.set(title=f"{symbol}: h-day log return forecasts (test)")
    ax.legend(fontsize=7)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def importance(values: dict[str, float], path: Path, top: int = 20) -> None:
    items = sorted(values.items(), key=lambda kv: kv[1], reverse=True)[:top]
    fig, ax = plt.subplots(figsize=(6, 0.3 * max(len(items), 1) + 1))
    ax.barh([k for k, _ in reversed(items)], [v for _, v in reversed(items)])
    ax.set(title="Feature importance")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run_plots(
    metrics: dict[str, Any], preds: pl.DataFrame, importances: dict[str, float], folder: Path
) -> list[Path]:
    """All plots of a run into `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "calibration.png", folder / "rolling_coverage.png"]
    calibration(metrics, paths[0])
    rolling_coverage(preds, metrics["target_coverage"], paths[1])
    busiest = (
        preds.group_by("symbol")
        .len()
        .sort(["len", "symbol"], descending=[True, False])["symbol"]
        .head(3)
        .to_list()
    )
    for symbol in busiest:
        path = folder / f"fan_{symbol}.png"
        fan_chart(preds, symbol, metrics["quantiles"], path)
        paths.append(path)
    if importances:
        paths.append(folder / "feature_importance.png")
        importance(importances, paths[-1])
    return paths


def backtest_plots(
    months: pl.DataFrame, target: float, baselines: list[str], folder: Path
) -> list[Path]:
    """A backtest's months: coverage with the target band (+/- 0.05), the pinball ratio to
    each baseline (below 1: the model is better), and the mean interval width."""
    folder.mkdir(parents=True, exist_ok=True)
    x = list(range(months.height))
    ticks = x[:: max(len(x) // 12, 1)]
    labels = [months["month"][i] for i in ticks]
    paths = []

    def save(fig: Any, ax: Any, name: str) -> None:
        ax.set_xticks(ticks, labels, rotation=45, ha="right")
        fig.tight_layout()
        path = folder / f"{name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.axhspan(target - 0.05, target + 0.05, color="green", alpha=0.15, label="target +/- 0.05")
    ax.axhline(target, color="green", linestyle="--")
    ax.plot(x, months["coverage"].to_list(), marker=".", label="CQR+ACI coverage")
    ax.set(ylabel="coverage", title="Backtest: interval coverage by month")
    ax.legend(loc="lower left")
    save(fig, ax, "coverage_by_month")

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.axhline(1.0, color="grey", linestyle="--")
    for name in baselines:
        ratio = (months["pinball"] / months[f"pinball_{name}"]).to_list()
        ax.plot(x, ratio, marker=".", label=f"vs {name}")
    ax.set(ylabel="pinball ratio (model / baseline)", title="Backtest: pinball ratio by month")
    ax.legend(loc="upper left")
    save(fig, ax, "pinball_ratio_by_month")

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(x, months["width"].to_list(), marker=".")
    ax.set(ylabel="mean interval width (log return)", title="Backtest: CQR+ACI width by month")
    save(fig, ax, "width_by_month")
    return paths
