"""The whole pipeline as one flow: collect -> features -> train -> predict, as subflows.

    python -m flows.pipeline [--store URL]

Every step takes its settings from the environment (``SMA_*``), as its own flow does.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from prefect import flow

from flows.collect import collect
from flows.features import features
from flows.predict import predict
from flows.train import train
from tasks.hooks import ALERT_HOOKS


@flow(name="pipeline", log_prints=True, **ALERT_HOOKS)
def pipeline(store: str | None = None) -> dict[str, Any]:
    """Run every step in order; a failing step fails the pipeline (and alerts)."""
    collected = collect(store=store)
    built = features(store=store)
    trained = train(store=store)
    predicted = predict(store=store)
    return {
        "collect": collected,
        "features": built,
        "train": trained["run_id"],
        "predict": predicted,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.pipeline", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--store")
    args = parser.parse_args(argv)
    result: dict[str, Any] = pipeline(store=args.store)  # pyright: ignore[reportAssignmentType]
    print(f"pipeline done: model {result['train']}, predictions {result['predict']['key']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
