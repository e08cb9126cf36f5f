"""PNG plots of a training run (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import polars as pl


def calibration(metrics: dict[str, Any], path: Path) -> None:
    """Nominal level vs the share of outcomes at or below it, raw and calibrated, of the
    deployed method."""
    quantiles, method = metrics["quantiles"], metrics["deployed"]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="ideal")
    for kind in ("raw", "calibrated"):
        emp = [metrics[kind][method][f"exceedance_{q}"] for q in quantiles]
        ax.plot(quantiles, emp, marker="o", label=f"{method} {kind}")
    ax.set(
        xlabel="nominal level",
        ylabel="share of outcomes at or below",
        title="Quantile calibration (test)",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def rolling_coverage(
    preds: pl.DataFrame, metrics: dict[str, Any], path: Path, window: int = 20
) -> None:
    """Daily coverage of the target interval, rolling mean over ``window`` dates, of every
    method calibrated (and the model raw)."""
    lo, hi = (f"q_{t}" for t in metrics["interval"])
    columns = {"model raw": (f"{lo}_raw", f"{hi}_raw")} | {
        name: (
            (f"{name}_" if name != metrics["model"] else "") + lo,
            (f"{name}_" if name != metrics["model"] else "") + hi,
        )
        for name in metrics["methods"]
    }
    daily = (
        preds.filter(pl.col("y").is_not_null())
        .group_by("date")
        .agg(
            [
                ((pl.col("y") >= pl.col(a)) & (pl.col("y") <= pl.col(b))).mean().alias(m)
                for m, (a, b) in columns.items()
            ]
        )
        .sort("date")
    )
    fig, ax = plt.subplots(figsize=(8, 4))
    for method in columns:
        ax.plot(
            daily["date"].to_list(),
            daily[method].rolling_mean(window, min_samples=1).to_list(),
            label=method,
        )
    target = metrics["target_coverage"]
    ax.axhline(target, color="grey", linestyle="--", label=f"target {target:.0%}")
    ax.set(ylabel=f"coverage ({window}-day mean)", title="Rolling coverage over the test period")
    ax.legend(fontsize=7)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def fan_chart(preds: pl.DataFrame, symbol: str, metrics: dict[str, Any], path: Path) -> None:
    """Outcomes against the model's calibrated quantiles of one symbol: the target interval
    and the outermost levels."""
    quantiles = metrics["quantiles"]
    one = preds.filter(pl.col("symbol") == symbol).sort("date")
    dates = one["date"].to_list()
    fig, ax = plt.subplots(figsize=(8, 4))
    lo, hi = (f"q_{t}" for t in metrics["interval"])
    ax.fill_between(dates, one[f"q_{quantiles[0]}"].to_list(), one[f"q_{quantiles[-1]}"].to_list(),
                    alpha=0.12, label=f"q {quantiles[0]} .. q {quantiles[-1]}")  # fmt: skip
    ax.fill_between(dates, one[lo].to_list(), one[hi].to_list(), alpha=0.25,
                    label=f"{lo} .. {hi} (target interval)")  # fmt: skip
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
    rolling_coverage(preds, metrics, paths[1])
    busiest = (
        preds.group_by("symbol")
        .len()
        .sort(["len", "symbol"], descending=[True, False])["symbol"]
        .head(3)
        .to_list()
    )
    for symbol in busiest:
        path = folder / f"fan_{symbol}.png"
        fan_chart(preds, symbol, metrics, path)
        paths.append(path)
    if importances:
        paths.append(folder / "feature_importance.png")
        importance(importances, paths[-1])
    return paths


def backtest_plots(
    months: pl.DataFrame, target: float, baselines: list[str], folder: Path
) -> list[Path]:
    """A backtest's months: coverage with the target band (+/- 0.05), the CRPS ratio to
    each other method, all calibrated alike (below 1: the model is better), and the mean
    interval width."""
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
    ax.plot(x, months["coverage"].to_list(), marker=".", label="calibrated coverage")
    ax.set(ylabel="coverage", title="Backtest: interval coverage by month")
    ax.legend(loc="lower left")
    save(fig, ax, "coverage_by_month")

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.axhline(1.0, color="grey", linestyle="--")
    for name in baselines:
        ratio = (months["crps"] / months[f"crps_{name}"]).to_list()
        ax.plot(x, ratio, marker=".", label=f"vs {name}")
    ax.set(ylabel="CRPS ratio (model / method)", title="Backtest: CRPS ratio by month")
    ax.legend(loc="upper left")
    save(fig, ax, "crps_ratio_by_month")

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(x, months["width"].to_list(), marker=".")
    ax.set(
        ylabel="mean interval width (log return)", title="Backtest: target interval width by month"
    )
    save(fig, ax, "width_by_month")
    return paths
