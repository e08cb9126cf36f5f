"""Training runs in the store: a run folder with a hashed manifest, and the latest-run
pointer updated only after a run folder is complete (keys in ``core.layout``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import subprocess
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import layout
from core.errors import DamagedArtifactError, InputError
from core.storage import DamagedFileError, Store, StoreError

if TYPE_CHECKING:
    from core.modeling.training import TrainResult


logger = logging.getLogger("stock_market_analytics.runs")


class TamperedRunError(DamagedArtifactError):
    """A run file does not match the sha256 in its manifest."""


class MissingRunError(InputError):
    """No such run (or no run at all) in the store."""


def new_run_id(flow_run_id: str | None = None) -> str:
    """Sortable, unique: UTC time plus the flow run's short id (a random one without a run)."""
    run = (flow_run_id or uuid.uuid4().hex).replace("-", "")
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{run[:8]}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_folder(result: TrainResult, folder: Path) -> list[Path]:
    """Write a run's files into a local folder: the deployed model (``model/``, what predict
    loads) and the held-out one (``holdout/model/``), calibration, metrics, test
    predictions, plots; returns the plots' paths."""
    from core.plots import run_plots

    deployed = result.deployed
    (deployed.model if deployed else result.model).save(folder / layout.MODEL_DIR)
    calibration: dict[str, Any] = {
        "cqr": (deployed.cqr if deployed else result.cqr).to_dict(),
        "aci": result.aci.to_dict(),
    }
    if deployed:
        result.model.save(folder / layout.HOLDOUT_DIR / layout.MODEL_DIR)
        calibration["holdout"] = {"cqr": result.cqr.to_dict()}
    (folder / layout.CALIBRATION_FILE).write_text(json.dumps(calibration, indent=2))
    (folder / layout.METRICS_FILE).write_text(json.dumps(result.metrics, indent=2, default=str))
    result.test_predictions.write_parquet(folder / layout.TEST_PREDICTIONS_FILE)
    if result.drift is not None:
        (folder / layout.DRIFT_REFERENCE_FILE).write_text(json.dumps(result.drift))
    return run_plots(
        result.metrics,
        result.test_predictions,
        result.model.feature_importance(),
        folder / layout.PLOTS_DIR,
    )


def fits(result: TrainResult) -> dict[str, Any]:
    """The manifest's account of which saved fit is which, with their windows."""
    splits = result.splits.as_dict()
    holdout = {
        "purpose": "held-out evaluation: metrics.json, the model card, test_predictions.parquet",
        "windows": {k: splits[k] for k in ("train", "val", "cal", "test")},
    }
    if result.deployed is None or result.window is None:
        return {layout.MODEL_DIR: holdout | {"purpose": holdout["purpose"] + "; predict uses it"}}
    return {
        layout.MODEL_DIR: {
            "purpose": "deployed: refitted on the newest data (as a backtest refit at the newest date); predict uses it",
            "windows": result.window.as_dict(),
        },
        f"{layout.HOLDOUT_DIR}/{layout.MODEL_DIR}": holdout,
    }


def write_run(store: Store, run_id: str, folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Upload every file of ``folder``, then the manifest with their hashes, then latest.json."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        data = path.read_bytes()
        store.write_bytes(layout.run_key(run_id, rel), data)
        files[rel] = sha256(data)
    doc = manifest | {"run_id": run_id, "git_commit": git_commit(), "files": files}
    store.write_json(layout.RUN_MANIFEST(run_id=run_id), doc)
    store.write_json(layout.LATEST_RUN(), {"run_id": run_id})
    return doc


def newest_complete_run(store: Store) -> str | None:
    """The newest run whose manifest (written last) is there and readable."""
    runs = sorted(
        {parts["run_id"] for k in store.list("models") if (parts := layout.RUN_MANIFEST.match(k))},
        reverse=True,
    )
    for run_id in runs:  # run ids sort by time
        try:
            store.read_json(layout.RUN_MANIFEST(run_id=run_id))
            return run_id
        except DamagedFileError:
            continue
    return None


def resolve(store: Store, run: str) -> str:
    """A run id: ``run`` itself, or for ``latest`` the run the latest-run pointer names (when
    the pointer is damaged, the newest complete run, with a warning)."""
    if run != "latest":
        return run
    key = layout.LATEST_RUN()
    if not store.exists(key):
        raise MissingRunError(
            f"no trained model in {store.uri(key)}: run `python -m flows.train` first"
        )
    try:
        return store.read_json(key)["run_id"]
    except (DamagedFileError, KeyError, TypeError) as exc:
        found = newest_complete_run(store)
        if found is None:
            raise
        logger.warning(
            "%s is damaged (%s); using the newest complete run %s",
            store.uri(key),
            getattr(exc, "problem", "no run_id"),
            found,
        )
        return found


def fetch_run(store: Store, run: str, dest: Path) -> dict[str, Any]:
    """Download a run into ``dest``, refusing any file whose hash differs from the manifest."""
    run_id = resolve(store, run)
    key = layout.RUN_MANIFEST(run_id=run_id)
    if not store.exists(key):
        raise MissingRunError(f"no run {run_id!r}: {store.uri(key)} not found")
    manifest = store.read_json(key)
    for rel, digest in manifest["files"].items():
        try:
            data = store.read_bytes(layout.run_key(run_id, rel))
        except StoreError:
            raise TamperedRunError(
                f"run {run_id}: {rel} is missing (its manifest lists it); refusing to load the run; "
                f"to rebuild: {layout.rebuild_hint(layout.run_key(run_id, rel))}"
            ) from None
        if sha256(data) != digest:
            raise TamperedRunError(
                f"run {run_id}: {rel} does not match its manifest hash; refusing to load it"
            )
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return manifest
