"""Training runs in the store: a run folder with a hashed manifest, and the latest-run
pointer updated only after a run folder is complete (keys in ``core.layout``)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, Field

from core import layout
from core.errors import DamagedArtifactError, InputError, InsufficientDataError
from core.features.manifest import DataFingerprint, FeaturesManifest
from core.storage import DamagedFileError, Manifest, Store

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


def member_folder(result: TrainResult, name: str) -> str:
    """Where a member predict runs is saved in the run folder: ``model/`` for the first (the
    deployed method itself, or the aggregation's first member), ``members/<name>/`` else."""
    return layout.MODEL_DIR if name == result.members[0] else f"{layout.MEMBERS_DIR}/{name}"


def run_folder(result: TrainResult, folder: Path) -> list[Path]:
    """Write a run's files into a local folder: the deployed fit of every method predict runs
    (``model/``, and ``members/<name>/`` under the aggregation), the held-out fit
    (``holdout/model/``), calibration, metrics, test predictions, plots; returns the plots'
    paths."""
    from core.plots import run_plots

    deployed = result.deployed.methods
    missing = [m for m in result.members if m not in deployed]
    if missing:
        raise InsufficientDataError(
            f"the deployed refit could not fit {', '.join(missing)} on the newest data "
            f"({result.deployed.skipped}): retrain with another model.name"
        )
    members: dict[str, Any] = {}
    for name in result.members:
        deployed[name].save(folder / member_folder(result, name))
        members[name] = {
            "folder": member_folder(result, name),
            "levels": result.deployed.calibrations[name].to_dict(),
            "holdout_levels": result.calibrations[name].to_dict(),
            "tracker": result.trackers[name].to_dict(),
        }
    calibration: dict[str, Any] = {"method": result.method, "members": members}
    if result.aggregation is not None:
        calibration["aggregation"] = result.aggregation.to_dict()
    result.model.save(folder / layout.HOLDOUT_DIR / layout.MODEL_DIR)
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


class FitRecord(BaseModel):
    """One saved fit of a run: what it is for and the windows it was fitted on."""

    purpose: str
    windows: Mapping[str, str | list[str]]


class RunManifest(Manifest):
    """``models/<run>/manifest.json``, written after every file of the run folder, with their
    sha256 keyed by their path inside the folder. Runs written before the deployed refit
    existed have no ``fits``."""

    LABEL: ClassVar[str] = "its run manifest"

    run_id: str
    git_commit: str = "unknown"
    created_at: str
    model: str
    settings: dict[str, Any]  # the settings as recorded (secrets masked)
    features: list[str]
    horizon: int
    data_fingerprint: DataFingerprint
    seconds: dict[str, float]
    params_source: str = "settings"
    fits: dict[str, FitRecord] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict)  # path in the run folder -> sha256

    def hashed(self) -> dict[str, str]:
        return {layout.run_key(self.run_id, rel): digest for rel, digest in self.files.items()}

    def with_hashes(self, written: Mapping[str, str]) -> RunManifest:
        folder = layout.run_key(self.run_id, "")
        added = {key.removeprefix(folder): digest for key, digest in written.items()}
        return self.model_copy(update={"files": self.files | added})

    def damage(self, store: Store, key: str, problem: str) -> Exception:
        rel = key.removeprefix(layout.run_key(self.run_id, ""))
        if problem == "missing":
            return TamperedRunError(
                f"run {self.run_id}: {rel} is missing (its manifest lists it); refusing to load "
                f"the run; to rebuild: {layout.rebuild_hint(key)}"
            )
        if problem.startswith("does not match"):
            problem = "does not match its manifest hash"
        return TamperedRunError(f"run {self.run_id}: {rel} {problem}; refusing to load it")

    def file(self, store: Store, rel: str) -> Any:
        """A JSON file of the run folder (``metrics.json``, ...), checked against its hash."""
        return self.read_json(store, layout.run_key(self.run_id, rel))

    def metrics(self, store: Store) -> dict[str, Any]:
        """The run's ``metrics.json``, checked against its hash (a run without one is
        incomplete: ``MissingRunError``)."""
        if layout.METRICS_FILE not in self.files:
            key = layout.RUN_METRICS(run_id=self.run_id)
            raise MissingRunError(f"run {self.run_id} has no {key}: its folder is incomplete")
        return self.file(store, layout.METRICS_FILE)


def fits(result: TrainResult) -> dict[str, FitRecord]:
    """The manifest's account of which saved fit is which, with their windows."""
    purpose = "held-out evaluation: metrics.json, the model card, test_predictions.parquet"
    deployed = "deployed: refitted on the newest data (as a backtest refit at the newest date); predict uses it"
    records = {
        member_folder(result, name): FitRecord(
            purpose=f"{deployed} ({name})", windows=result.window.as_dict()
        )
        for name in result.members
    }
    held = FitRecord(purpose=purpose, windows=result.splits.splits_dict())
    return records | {f"{layout.HOLDOUT_DIR}/{layout.MODEL_DIR}": held}


def run_manifest(
    result: TrainResult,
    run_id: str,
    build: FeaturesManifest,
    settings_doc: dict[str, Any],
    params_source: str | None,
) -> RunManifest:
    """What a run's manifest says of it (its files are added by ``write_run``)."""
    return RunManifest(
        run_id=run_id,
        git_commit=git_commit(),
        created_at=dt.datetime.now(dt.UTC).isoformat(),
        model=result.metrics["model"],
        settings=settings_doc,
        features=result.model.features,
        horizon=result.metrics["horizon"],
        data_fingerprint=build.data_fingerprint,
        seconds=result.seconds,
        params_source=params_source or "settings",
        fits=fits(result),
    )


def write_run(store: Store, folder: Path, manifest: RunManifest) -> RunManifest:
    """Upload every file of ``folder``, then the manifest with their hashes, then latest.json."""
    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    files = {
        layout.run_key(manifest.run_id, p.relative_to(folder).as_posix()): p.read_bytes()
        for p in paths
    }
    done = manifest.publish(store, layout.RUN_MANIFEST(run_id=manifest.run_id), files)
    store.write_json(layout.LATEST_RUN(), {"run_id": manifest.run_id})
    return done


def newest_complete_run(store: Store) -> str | None:
    """The newest run whose manifest (written last) is there and valid."""
    runs = sorted(
        {parts["run_id"] for k in store.list("models") if (parts := layout.RUN_MANIFEST.match(k))},
        reverse=True,
    )
    for run_id in runs:  # run ids sort by time
        try:
            RunManifest.read(store, layout.RUN_MANIFEST(run_id=run_id))
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


def read_run(store: Store, run: str) -> RunManifest:
    """The manifest of run ``run`` (``latest`` or an id): what every reader of a run's files
    goes through, so each file is checked against its hash."""
    run_id = resolve(store, run)
    key = layout.RUN_MANIFEST(run_id=run_id)
    if not store.exists(key):
        raise MissingRunError(f"no run {run_id!r}: {store.uri(key)} not found")
    return RunManifest.read(store, key)


def fetch_run(store: Store, run: str, dest: Path) -> RunManifest:
    """Download a run into ``dest``, refusing any file whose hash differs from the manifest."""
    manifest = read_run(store, run)
    for rel in manifest.files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(manifest.read_file(store, layout.run_key(manifest.run_id, rel)))
    return manifest
