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

from typing import TYPE_CHECKING, Any

from prefect import flow

from core import layout
from core.storage import Store
from flows import collect, features, predict, train
from flows.report import render_report
from flows.shell import per_horizon
from tasks.hooks import ALERT_HOOKS

if TYPE_CHECKING:
    from core.config import Settings


@flow(name="pipeline", log_prints=True, **ALERT_HOOKS)
def pipeline(store: str | None = None) -> dict[str, Any]:
    """Run every step in order (each for every configured horizon); a failing step fails the
    pipeline (and alerts)."""
    settings = COMMAND.start(store=store)
    result = {
        "store": settings.store,
        "collect": collect.collect(store=store),
        "features": features.features(store=store),
        "train": train.train(store=store),
        "predict": predict.predict(store=store),
        "report": {
            str(h): render_report(settings.at_horizon(h)) for h in settings.features.horizons
        },
    }
    return result | {"where": where(settings, result)}


def by_horizon(result: dict[str, Any], horizons: list[int]) -> dict[int, dict[str, Any]]:
    """A step's result per horizon (it ran for several, or for the one there is)."""
    if set(result) == {"horizons"}:
        return {int(h): r for h, r in result["horizons"].items()}
    return {horizons[0]: result}


def where(settings: Settings, result: dict[str, Any]) -> dict[str, str]:
    """Where each artifact is, per horizon when there are several."""
    root = Store(settings.store)
    out = {
        "valid prices": root.uri(layout.PRICES.prefix),
        "quarantined rows": root.uri(layout.QUARANTINE.prefix),
        "ingestion table": root.uri(layout.INGESTION()),
        "quality report": result["collect"]["quality_report"],
    }
    horizons = settings.features.horizons
    trains, predicts = (
        by_horizon(result["train"], horizons),
        by_horizon(result["predict"], horizons),
    )
    for h, trained in trains.items():
        tag = f" (h={h})" if len(horizons) > 1 else ""
        store, run = Store.open(settings.at_horizon(h).store_ref), trained["run_id"]
        out |= {
            f"feature table{tag}": store.uri(layout.FEATURES_MANIFEST()),
            f"model run{tag}": store.uri(layout.RUN_MANIFEST(run_id=run)).rsplit("/", 1)[0],
            f"model card, plots{tag}": store.uri(layout.RUN_PLOT(run_id=run, name="x")).rsplit(
                "/", 1
            )[0],
            f"predictions{tag}": predicts[h]["key"],
            f"HTML report{tag}": result["report"][str(h)],
            f"W&B ({trained['wandb_mode']}){tag}": trained["wandb_dir"] or "not kept",
        }
    return out


def report(result: dict[str, Any]) -> str:
    """Every step's own report, then where each artifact is."""
    steps = [
        per_horizon(m.report, result[m.COMMAND.name]) for m in (collect, features, train, predict)
    ]
    width = max(map(len, result["where"]))
    lines = ["## Where everything is", ""] + [
        f"  {k:<{width}}  {v}" for k, v in result["where"].items()
    ]
    return "\n\n".join(steps) + "\n\n" + "\n".join(lines)
