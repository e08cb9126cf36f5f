"""Tuning benchmark: trials per hour and tuned vs default test pinball, both regressors.

    python -m benchmarks.tuning [--trials lightgbm=8,catboost=4]

On ../shared/data/yahoo_sp500_2005_2021 (249 tickers, seed features): for each regressor,
a fresh study of N trials (3 folds each, pruning on), then `train` with the default and
with the tuned parameters, comparing the test-period pinball of CQR+ACI. Reports what it
finds, including when tuning does not help.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", default="lightgbm=8,catboost=4")
    ns = parser.parse_args()
    plan = {k: int(v) for k, v in (item.split("=") for item in ns.trials.split(","))}
    if not YAHOO.is_dir():
        raise SystemExit(f"missing {YAHOO}")
    os.environ.setdefault("SMA_TRACKING__WANDB_MODE", "disabled")
    from flows.collect import collect
    from flows.features import features
    from flows.train import train
    from flows.tune import tune

    with tempfile.TemporaryDirectory(prefix="sma-bench-tuning-") as tmp:
        os.environ["SMA_OPTUNA_STORAGE"] = f"sqlite:///{Path(tmp) / 'optuna.db'}"
        store = str(Path(tmp) / "store")
        tickers = Path(tmp) / "tickers.csv"
        tickers.write_text(
            "Symbol\n" + "\n".join(sorted(p.stem for p in YAHOO.glob("*.csv"))) + "\n"
        )
        collect(
            tickers=str(tickers),
            source="local",
            source_path=str(YAHOO),
            store=store,
            start=dt.date(2005, 1, 1),
            end=dt.date(2021, 2, 5),
        )
        features(store=store, groups=["seed"])
        lines = [
            "| model | trials (pruned) | wall s | trials per hour | best fold pinball | test pinball default | test pinball tuned | change |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for model, n in plan.items():
            started = time.perf_counter()
            doc: dict[str, Any] = tune(store=store, model=model, trials=n, study=f"bench-{model}")  # pyright: ignore[reportAssignmentType]
            wall = time.perf_counter() - started
            import optuna

            study = optuna.load_study(
                study_name=f"bench-{model}", storage=os.environ["SMA_OPTUNA_STORAGE"]
            )
            pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
            default: dict[str, Any] = train(store=store, model=model)  # pyright: ignore[reportAssignmentType]
            os.environ["SMA_TUNING__STUDY"] = f"bench-{model}"
            tuned: dict[str, Any] = train(store=store, model=model, params="best")  # pyright: ignore[reportAssignmentType]
            d = default["metrics"]["calibrated"][model]["crps"]
            t = tuned["metrics"]["calibrated"][model]["crps"]
            lines.append(
                f"| {model} | {n} ({pruned}) | {wall:.0f} | {3600 * n / wall:.0f} | {doc['score']:.6f} | {d:.6f} | {t:.6f} | {t / d - 1:+.2%} |"
            )
            print(lines[-1], flush=True)
            print(f"  best params: {doc['params']}", flush=True)
        print("\n".join(lines))


if __name__ == "__main__":
    main()
