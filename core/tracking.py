"""Experiment tracking with Weights & Biases.

Mode: ``SMA_TRACKING__WANDB_MODE`` (online | offline | disabled); unset means online when
``WANDB_API_KEY`` is set and offline otherwise, so a run never blocks on the network.
Offline runs land under the tracking directory for a later ``wandb sync``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import layout
from core.config import TrackingSettings

if TYPE_CHECKING:
    from core.storage import Store


def resolve_mode(cfg: TrackingSettings) -> str:
    if cfg.wandb_mode:
        return cfg.wandb_mode
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


class Tracker:
    """One W&B run (a no-op when disabled)."""

    def __init__(self, cfg: TrackingSettings, name: str, config: dict[str, Any], job_type: str):
        self.mode = resolve_mode(cfg)
        self.run: Any = None
        if self.mode == "disabled":
            return
        os.environ.setdefault("WANDB_SILENT", "true")  # W&B's own terminal lines, artifacts' too
        import wandb

        Path(cfg.directory).mkdir(parents=True, exist_ok=True)
        # Silent: W&B's banners and run history stay out of the terminal; its files are
        # still written (offline runs under `directory`, for `wandb sync`).
        self.run = wandb.init(
            project=cfg.project,
            name=name,
            config=config,
            job_type=job_type,
            mode=self.mode,  # pyright: ignore[reportArgumentType]
            dir=cfg.directory,
            reinit="finish_previous",
            settings=wandb.Settings(silent=True),
        )

    def record(self, run_id: str) -> dict[str, str] | None:
        """What ``layout.RUN_WANDB`` holds for model run ``run_id``: the W&B run's id, its
        local folder's name (``offline-run-<time>-<id>``, ``run-<time>-<id>``) and the mode;
        None when disabled."""
        if self.run is None:
            return None
        folder = Path(self.run.dir).parent.name  # <directory>/wandb/<folder>/files
        return {"run_id": run_id, "wandb_id": self.run.id, "folder": folder, "mode": self.mode}

    def link(self, store: Store, run_id: str) -> None:
        """Record in the store that this W&B run logged model run ``run_id``
        (``layout.RUN_WANDB``): prune removes the run's local W&B folder with the run, and
        never a folder no run of the store names. Written as soon as W&B has started, so a
        run killed before ``finish`` is recorded too; nothing when disabled."""
        record = self.record(run_id)
        if record is not None:
            store.write_json(layout.RUN_WANDB(run_id=run_id), record)

    def log(self, values: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.log(values)

    def log_images(self, paths: list[Path]) -> None:
        if self.run is not None:
            import wandb

            self.run.log({p.stem: wandb.Image(str(p)) for p in paths})

    def log_folder(self, name: str, folder: Path, kind: str = "model") -> None:
        if self.run is not None:
            import wandb

            artifact = wandb.Artifact(name, type=kind)
            artifact.add_dir(str(folder))
            self.run.log_artifact(artifact)

    def finish(self) -> str | None:
        """Close the run; returns its local directory (for `wandb sync` when offline)."""
        if self.run is None:
            return None
        directory = str(Path(self.run.dir).parent)
        self.run.finish()
        return directory


def flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested numeric metrics as 'a/b/c' keys."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= flatten(value, f"{name}/")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out
