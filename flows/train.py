"""Train flow: feature table -> split -> fit -> conformal calibration -> evaluation -> run folder.

    python -m flows.train [--store URL] [--horizon H] [--model NAME] [--params FILE|best]

Writes the run folder (model in its native format, calibration, metrics, test
predictions, plots, a manifest with the sha256 of every file), then the latest-run pointer.
"""

from __future__ import annotations

from typing import Any

from flows.shell import HORIZON, MODEL, PARAMS, STORE, Command

COMMAND = Command(
    "train",
    __doc__,
    (STORE, HORIZON, MODEL, PARAMS),
)
if __name__ == "__main__":
    raise SystemExit(COMMAND.main())

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from core.data.tickers import sectors_of
from core.runs import new_run_id
from flows.shell import each_horizon, with_params
from tasks.hooks import ALERT_HOOKS
from tasks.train import fit_task, load_training_data, publish_model_card, write_run_task


@flow(name="train", log_prints=True, **ALERT_HOOKS)
def train(
    store: str | None = None,
    model: str | None = None,
    params: dict[str, Any] | str | None = None,
    horizon: int | None = None,
) -> dict[str, Any]:
    """Train, calibrate and evaluate a model; parameters left as None come from settings.

    ``params="best"`` takes the best parameters of the model's tuning study from the store."""
    logger = get_run_logger()
    settings, source = with_params(COMMAND.start(store=store, model=model, horizon=horizon), params)
    several = each_horizon(
        settings, horizon, lambda h: train(store=store, model=model, params=params, horizon=h)
    )
    if several is not None:
        return several
    if source:
        logger.info("parameters from %s: %s", source, settings.model.params)
    data = load_training_data(settings.store_ref, settings.model.lookback_days)
    run_id = new_run_id(flow_run.get_id())
    logger.info(
        "run %s: %s on %d rows, %d features",
        run_id,
        settings.model.name,
        data.table.height,
        len(data.features),
    )
    result = fit_task(
        data.table,
        data.prices,
        data.features,
        settings.model,
        data.horizon,
        settings.refit,
        sectors_of(settings.tickers),
    )
    manifest, wandb_dir, wandb_mode = write_run_task(
        result,
        settings.store_ref,
        run_id,
        data.build,
        settings.model_dump(mode="json"),
        settings.tracking,
        params_source=source,
    )
    card = publish_model_card(result.metrics, run_id)
    logger.info("run %s written to %s", run_id, settings.store)
    return {
        "run_id": run_id,
        "metrics": result.metrics,
        "model_card": card,
        "manifest": manifest.model_dump(mode="json"),
        "wandb_dir": wandb_dir,
        "wandb_mode": wandb_mode,
    }


def report(result: dict[str, Any]) -> str:
    lines = [result["model_card"]]
    if result.get("wandb_dir"):
        sync = "; upload with `wandb sync` on it" if result["wandb_mode"] == "offline" else ""
        lines += ["", f"W&B run ({result['wandb_mode']}) in {result['wandb_dir']}{sync}"]
    return "\n".join(lines)
