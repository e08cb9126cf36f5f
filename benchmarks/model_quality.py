"""Model quality benchmark: collect -> features -> train on the whole Yahoo S&P 500 set.

    python -m benchmarks.model_quality [--models catboost,lightgbm] [--groups seed seed,risk ...]
                                       [--cv]

Runs the real flows in one process on ../shared/data/yahoo_sp500_2005_2021 (249 tickers)
with default settings, then prints, per model and feature groups, the test-period metrics
of the model raw and calibrated against the baselines calibrated alike, and the fit time.
Targets: calibrated coverage of the 80% interval within 0.80 +/- 0.015 overall and +/- 0.05
in each volatility tercile; mean CRPS >= 3% below `ewma` and >= 7% below `historical`;
fit on 2 cores: catboost <= 3 min, lightgbm <= 1 min (seed group).

It also prints what perfect foresight of volatility would score on the same test rows
(an upper bound for any volatility model, see ``foresight_bound``) and, with ``--cv``, the
time-series cross-validation before the test period that chose the inner parameters of
volatility-scaled models (``the models' inner_defaults (core.modeling.models)``).
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
    """One table row: the model raw and calibrated, against the baselines calibrated alike."""
    raw, cal = metrics["raw"][model], metrics["calibrated"][model]
    terciles = " / ".join(f"{g['coverage']:.3f}" for g in metrics["groups"][model]["vol_tercile"])
    vs_ewma = 1 - cal["crps"] / metrics["calibrated"]["ewma"]["crps"]
    vs_hist = 1 - cal["crps"] / metrics["calibrated"]["historical"]["crps"]
    return (
        f"| {model} | {groups} | {fit_s:.0f} | {raw['coverage']:.3f} | {cal['coverage']:.3f} | "
        f"{terciles} | {cal['mean_width']:.4f} | {cal['crps']:.5f} | {vs_ewma:+.2%} | {vs_hist:+.2%} | "
        f"{cal['rank_ic_mean']:.3f} |"
    )


QUANTILES = [0.1, 0.25, 0.5, 0.75, 0.9]
CV_CANDIDATES: dict[str, list[dict[str, Any]]] = {
    "lightgbm": [
        {"num_leaves": 31, "min_data_in_leaf": 200},
        {"num_leaves": 7, "min_data_in_leaf": 2000},
        {"num_leaves": 3, "min_data_in_leaf": 5000},
        {"num_leaves": 2, "min_data_in_leaf": 5000},
        {"num_leaves": 2, "min_data_in_leaf": 20000},
    ],
    "catboost": [{"depth": 5}, {"depth": 2}, {"depth": 1}],
}


def realized_scale(store: str, horizon: int) -> Any:
    """symbol, date, y and ``scale``: the realized Parkinson range volatility of each row's
    next h days (what perfect foresight of volatility knows), from the stored prices."""
    import numpy as np
    import polars as pl

    from core.features.table import price_keys
    from core.storage import Store

    st = Store(store)
    pk = (pl.col("high") / pl.col("low")).log().pow(2) / (4 * np.log(2))
    return (
        st.scan_parquet(list(price_keys(st).values()))
        .sort("symbol", "date")
        .with_columns(
            (pl.col("close").shift(-horizon) / pl.col("close")).log().over("symbol").alias("y"),
            pl.sum_horizontal([pk.shift(-k).over("symbol") for k in range(1, horizon + 1)])
            .sqrt()
            .alias("scale"),
        )
        .filter(pl.col("y").is_not_null() & (pl.col("scale") > 0))
        .select("symbol", "date", "y", "scale")
        .collect()
    )


def foresight_bound(store: str, metrics: dict[str, Any], horizon: int) -> dict[str, float]:
    """Pinball of quantiles built from the *realized* range volatility of each test row's next
    h days (Parkinson), times the empirical quantiles of y over that scale before the test
    period: what a perfect volatility forecast with a fixed shape would score."""
    import numpy as np
    import polars as pl

    from core.modeling.distribution_scores import pinball_rows

    rows = realized_scale(store, horizon)
    splits = {k: [dt.date.fromisoformat(d) for d in v] for k, v in metrics["splits"].items()}
    before = rows.filter(pl.col("date").is_between(splits["train"][0], splits["cal"][1]))
    test = rows.filter(pl.col("date").is_between(splits["test"][0], splits["test"][1]))
    shape = np.quantile((before["y"] / before["scale"]).to_numpy(), QUANTILES)
    preds = test["scale"].to_numpy()[:, None] * shape[None, :]
    loss = float(pinball_rows(test["y"].to_numpy(), preds, QUANTILES).mean())
    b = metrics["calibrated"]
    return {
        "pinball": loss,
        "vs_ewma": 1 - loss / b["ewma"]["pinball_mean"],
        "vs_historical": 1 - loss / b["historical"]["pinball_mean"],
    }


def cross_validate(store: str, models: list[str]) -> None:
    """Mean pinball of volatility-scaled models over the tuning flow's time-series folds on
    the train and validation segments (never the calibration or test rows)."""
    import numpy as np
    import polars as pl

    from core.config import ModelSettings
    from core.features.table import FeatureBuild
    from core.modeling.timeline import model_holdout, segment_expr
    from core.modeling.tuning import fold_score, time_folds
    from core.storage import Store

    build = FeatureBuild.open(Store(store))
    features = build.manifest.model_inputs
    table = build.scan().filter(pl.col("y").is_not_null()).collect()
    cfg, h = ModelSettings(), build.manifest.horizon
    splits = model_holdout(table["date"], h, cfg)
    before = table.with_columns(segment_expr(splits)).filter(
        pl.col("segment").is_in(["train", "val"])
    )
    cal_start = splits.cal[0]
    folds = time_folds(before["date"], 3, h)
    print(
        f"\ncross-validation of scaled inner parameters ({', '.join(build.manifest.groups)}; 3 folds before {cal_start}):"
    )
    for model in models:
        for params in CV_CANDIDATES[model]:
            scores = [
                fold_score(model, params, before, features, cfg.quantiles, h, f, True)
                for f in folds
            ]
            print(
                f"  {model} {params}: mean pinball {np.mean(scores):.6f}  folds {[round(x, 6) for x in scores]}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="catboost,lightgbm")
    parser.add_argument("--groups", nargs="+", default=["seed", "seed,risk", "seed,risk,alpha158"])
    parser.add_argument("--cv", action="store_true", help="also cross-validate scaled inner params")
    ns = parser.parse_args()
    if not YAHOO.is_dir():
        raise SystemExit(f"missing {YAHOO}")
    os.environ.setdefault("SMA_TRACKING__WANDB_MODE", "disabled")
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
        collect(
            tickers=str(tickers),
            source="local",
            source_path=str(YAHOO),
            store=store,
            start=dt.date(2005, 1, 1),
            end=dt.date(2021, 2, 5),
        )
        print(f"collect: {time.perf_counter() - started:.0f} s")
        lines = [
            "| model | groups | fit s | raw cov | calibrated cov | cov by vol tercile (low/mid/high) | "
            "width | CRPS | vs ewma | vs historical | rank IC |",
            "|---" * 11 + "|",
        ]
        last: dict[str, Any] | None = None
        for groups in ns.groups:
            started = time.perf_counter()
            features(store=store, groups=groups.split(","))
            print(f"features {groups}: {time.perf_counter() - started:.0f} s", flush=True)
            for model in ns.models.split(","):
                result: dict[str, Any] = train(store=store, model=model)  # pyright: ignore[reportAssignmentType]
                metrics = result["metrics"]
                lines.append(row(model, groups, metrics, result["manifest"]["seconds"]["fit"]))
                last = metrics
                print(lines[-1], flush=True)
        print("\n".join(lines))
        if last is not None:
            print("\nbaselines (test period):")
            for name, m in last["calibrated"].items():
                print(
                    f"  {name}: coverage {m['coverage']:.3f}, width {m['mean_width']:.4f}, pinball {m['pinball_mean']:.5f}"
                )
            bound = foresight_bound(store, last, last["horizon"])
            print(
                f"\nperfect foresight of the next {last['horizon']} days' range volatility: pinball "
                f"{bound['pinball']:.5f}, {bound['vs_ewma']:+.2%} vs ewma, {bound['vs_historical']:+.2%} vs historical"
            )
        if ns.cv:
            features(store=store, groups=["seed", "risk"])
            cross_validate(store, ns.models.split(","))


if __name__ == "__main__":
    main()
