"""The whole pipeline as one flow: collect -> features -> train -> predict -> the HTML
report, as subflows (the report as a task).

    python -m flows.pipeline [--store URL]

Every step takes its settings from the environment (``SMA_*``), as its own flow does;
one Prefect start serves them all.
"""

from __future__ import annotations

from flows.shell import STORE, Command

COMMAND = Command(
    "pipeline",
    __doc__,
    (STORE,),
)
if __name__ == "__main__":
    raise SystemExit(COMMAND.main())

from typing import Any

from prefect import flow

from core import layout
from core.storage import Store
from flows import collect, features, predict, train
from flows.report import render_report
from tasks.hooks import ALERT_HOOKS


@flow(name="pipeline", log_prints=True, **ALERT_HOOKS)
def pipeline(store: str | None = None) -> dict[str, Any]:
    """Run every step in order; a failing step fails the pipeline (and alerts)."""
    return {
        "store": COMMAND.start(store=store).store,
        "collect": collect.collect(store=store),
        "features": features.features(store=store),
        "train": train.train(store=store),
        "predict": predict.predict(store=store),
        "report": render_report(COMMAND.start(store=store)),
    }


def report(result: dict[str, Any]) -> str:
    """Every step's own report, then where each artifact is."""
    steps = [m.report(result[m.COMMAND.name]) for m in (collect, features, train, predict)]
    store = Store(result["store"])
    run = result["train"]["run_id"]
    where = {
        "valid prices": store.uri(layout.PRICES.prefix),
        "quarantined rows": store.uri(layout.QUARANTINE.prefix),
        "ingestion table": store.uri(layout.INGESTION()),
        "quality report": result["collect"]["quality_report"],
        "feature table": store.uri(layout.FEATURES_MANIFEST()),
        "model run": store.uri(layout.RUN_MANIFEST(run_id=run)).rsplit("/", 1)[0],
        "model card, plots": store.uri(layout.RUN_PLOT(run_id=run, name="calibration")).rsplit(
            "/", 1
        )[0],
        "predictions": result["predict"]["key"],
        "HTML report": result["report"],
        f"W&B ({result['train']['wandb_mode']})": result["train"]["wandb_dir"] or "not kept",
    }
    width = max(map(len, where))
    lines = ["## Where everything is", ""] + [f"  {k:<{width}}  {v}" for k, v in where.items()]
    return "\n\n".join(steps) + "\n\n" + "\n".join(lines)
