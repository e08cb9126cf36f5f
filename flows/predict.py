"""Predict flow: the latest feature row of each symbol -> calibrated quantiles and interval.

    python -m flows.predict [--store URL] [--run latest|RUN_ID]

Loads the run (refusing files whose hash differs from its manifest), continues its
Adaptive Conformal Inference state with the outcomes known since, and writes
``predictions/<as_of_date>.parquet``. Exit code 0 on success, 2 when the run or the
features are missing, 3 when a run file was tampered with.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from prefect import flow

from core.config import ConfigError, load_settings
from core.feature_table import MissingInputError
from core.runs import MissingRunError, TamperedRunError
from tasks.hooks import ALERT_HOOKS
from tasks.train import predict_task


@flow(name="predict", log_prints=True, **ALERT_HOOKS)
def predict(store: str | None = None, run: str = "latest") -> dict[str, Any]:
    settings = load_settings(store=store)
    summary = predict_task(settings, run)
    print(
        f"predictions of run {summary['run_id']} as of {summary['as_of']} for {summary['symbols']} symbols -> "
        f"{summary['key']} (ACI alpha {summary['aci_alpha']:.4f}, {summary['outcomes_added']} new outcomes)"
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.predict", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--store", help="store root: a folder or s3://bucket/prefix")
    parser.add_argument("--run", default="latest", help="run id, or 'latest'")
    args = parser.parse_args(argv)
    try:
        load_settings(store=args.store)
        predict(store=args.store, run=args.run)
    except (ConfigError, MissingInputError, MissingRunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TamperedRunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
