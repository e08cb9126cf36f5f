"""Training runs in the store: ``models/<run_id>/`` with a hashed manifest, and
``models/latest.json`` updated only after a run folder is complete."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

from core.storage import Store

LATEST_KEY = "models/latest.json"
MANIFEST = "manifest.json"


class TamperedRunError(RuntimeError):
    """A run file does not match the sha256 in its manifest."""


class MissingRunError(RuntimeError):
    """No such run (or no run at all) in the store."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)  # fmt: skip
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_run(store: Store, run_id: str, folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Upload every file of ``folder``, then the manifest with their hashes, then latest.json."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        data = path.read_bytes()
        store.write_bytes(f"models/{run_id}/{rel}", data)
        files[rel] = sha256(data)
    doc = manifest | {"run_id": run_id, "git_commit": git_commit(), "files": files}
    store.write_json(f"models/{run_id}/{MANIFEST}", doc)
    store.write_json(LATEST_KEY, {"run_id": run_id})
    return doc


def resolve(store: Store, run: str) -> str:
    if run != "latest":
        return run
    if not store.exists(LATEST_KEY):
        raise MissingRunError(
            f"no trained model in {store.uri('models')}: run `python -m flows.train` first"
        )
    return store.read_json(LATEST_KEY)["run_id"]


def fetch_run(store: Store, run: str, dest: Path) -> dict[str, Any]:
    """Download a run into ``dest``, refusing any file whose hash differs from the manifest."""
    run_id = resolve(store, run)
    key = f"models/{run_id}/{MANIFEST}"
    if not store.exists(key):
        raise MissingRunError(f"no run {run_id!r} in {store.uri('models')}")
    manifest = store.read_json(key)
    for rel, digest in manifest["files"].items():
        data = store.read_bytes(f"models/{run_id}/{rel}")
        if sha256(data) != digest:
            raise TamperedRunError(
                f"run {run_id}: {rel} does not match its manifest hash; refusing to load it"
            )
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return manifest
