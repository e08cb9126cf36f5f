"""Model quality benchmark: collect -> features -> train on the whole Yahoo S&P 500 set.

    python -m benchmarks.model_quality [--models catboost,lightgbm] [--groups seed|seed,alpha158 ...]

Runs the real flows in one process on ../shared/data/yahoo_sp500_2005_2021 (249 tickers)
with default settings, then prints, per model and feature groups, the test-period metrics
of the raw model, CQR and CQR+ACI against the baselines, and the fit time.
Targets: CQR+ACI coverage of the 80% interval within 0.80 +/- 0.015 overall and +/- 0.05
in each volatility tercile; mean pinball >= 3% below `ewma` and >= 7% below `historical`;
fit on 2 cores: catboost <= 3 min, lightgbm <= 1 min (seed group).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
YAHOO = ROOT.parent / "shared" / "data" / "yahoo_sp500_2005_2021"


def row(model: str, groups: str, metrics: dict[str, Any], fit_s: float) -> str:
    t, b = metrics["test"], metrics["baselines"]
    aci = t["cqr_aci"]
    terciles = " / ".join(
        f"{aci['coverage_by_vol_tercile'][k]:.3f}" for k in sorted(aci["coverage_by_vol_tercile"])
    )
    vs_ewma = 1 - aci["pinball_mean"] / b["ewma"]["pinball_mean"]
    vs_hist = 1 - aci["pinball_mean"] / b["historical"]["pinball_mean"]
    return (
        f"| {model} | {groups} | {fit_s:.0f} | {t['raw']['coverage']:.3f} | {t['cqr']['coverage']:.3f} | {aci['coverage']:.3f} | "
        f"{terciles} | {aci['mean_width']:.4f} | {aci['pinball_mean']:.5f} | {vs_ewma:+.1%} | {vs_hist:+.1%} | "
        f"{aci['rank_ic_mean']:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="catboost,lightgbm")
    parser.add_argument("--groups", nargs="+", default=["seed", "seed,alpha158"])
    ns = parser.parse_args()
    if not YAHOO.is_dir():
        raise SystemExit(f"missing {YAHOO}")
    os.environ.setdefault("SMA_WANDB_MODE", "disabled")
    from flows.collect import collect
    from flows.features import features
    from flows.train import train

    with tempfile.TemporaryDirectory(prefix="sma-bench-quality-") as tmp:
        store = str(Path(tmp) / "store")
        tickers = Path(tmp) / "tickers.csv"
        tickers.write_text(
            "Symbol\n" + "\n".join(sorted(p.stem for p in YAHOO.glob("*.csv"))) + "\n"
        )
        started = time.perf_counter()
        collect(tickers=str(tickers), source="local", source_path=str(YAHOO), store=store,
                start=dt.date(2005, 1, 1), end=dt.date(2021, 2, 5))  # fmt: skip
        print(f"collect: {time.perf_counter() - started:.0f} s")
        lines = [
            "| model | groups | fit s | raw cov | CQR cov | CQR+ACI cov | ACI cov by vol tercile (low/mid/high) | "
            "ACI width | ACI pinball | vs ewma | vs historical | rank IC |",
            "|---" * 12 + "|",
        ]
        baselines = None
        for groups in ns.groups:
            started = time.perf_counter()
            features(store=store, groups=groups.split(","))
            print(f"features {groups}: {time.perf_counter() - started:.0f} s", flush=True)
            for model in ns.models.split(","):
                result: dict[str, Any] = train(store=store, model=model)  # pyright: ignore[reportAssignmentType]
                metrics = result["metrics"]
                lines.append(row(model, groups, metrics, result["manifest"]["seconds"]["fit"]))
                baselines = metrics["baselines"]
                print(lines[-1], flush=True)
        print("\n".join(lines))
        if baselines:
            print("\nbaselines (test period):")
            for name, m in baselines.items():
                print(
                    f"  {name}: coverage {m['coverage']:.3f}, width {m['mean_width']:.4f}, pinball {m['pinball_mean']:.5f}"
                )


if __name__ == "__main__":
    main()
