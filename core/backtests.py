"""Backtests in the store (keys in ``core.layout``): each refit's forecasts and calibration
(keyed by what they depend on, so a rerun reuses them), then a backtest folder whose
manifest, holding the sha256 of every file, is written last."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import polars as pl
from pydantic import Field

from core import layout
from core.features.manifest import DataFingerprint
from core.modeling.calibration import LevelCalibration
from core.modeling.risk_scorecard import risk_markdown
from core.modeling.scorecard import method_table, tests_markdown
from core.modeling.timeline import Window
from core.runs import git_commit
from core.storage import DamagedFileError, Manifest, Store, json_bytes


class RefitRecord(Manifest):
    """``backtests/refits/<fit_key>/<refit>_<until>.json``, written after the refit's
    forecasts: their key and sha256, the window, every method's calibration and the fits
    that fell back. Records of layout 1 hold a CQR calibration (``cqr``) instead."""

    LABEL: ClassVar[str] = "its refit record"

    key: str
    sha256: str = ""  # set by ``publish``
    window: Window
    cqr: dict[str, Any] = Field(default_factory=dict)  # layout 1's CQR calibration
    calibrations: dict[str, dict[str, Any]] = Field(default_factory=dict)  # method -> levels
    fallbacks: dict[str, dict[str, str]] = Field(default_factory=dict)  # method -> symbol -> why
    rows: int

    def hashed(self) -> dict[str, str]:
        return {self.key: self.sha256}

    def with_hashes(self, written: Mapping[str, str]) -> RefitRecord:
        return self.model_copy(update={"sha256": written.get(self.key, self.sha256)})

    @property
    def levels(self) -> dict[str, LevelCalibration]:
        """Every method's per-level calibration."""
        return {name: LevelCalibration.from_dict(c) for name, c in self.calibrations.items()}


def write_refit(
    store: Store,
    fit_key: str,
    window: Window,
    frame: pl.DataFrame,
    calibrations: dict[str, LevelCalibration],
    fallbacks: dict[str, dict[str, str]],
) -> RefitRecord:
    """Store one refit: its forecasts, then the record naming their sha256."""
    refit, until = str(window.refit), str(window.until)
    key = layout.BACKTEST_REFIT(fit_key=fit_key, refit=refit, until=until)
    record = RefitRecord(
        key=key,
        window=window,
        calibrations={name: c.to_dict() for name, c in calibrations.items()},
        fallbacks=fallbacks,
        rows=frame.height,
    )
    return record.publish(
        store,
        layout.BACKTEST_REFIT_CALIBRATION(fit_key=fit_key, refit=refit, until=until),
        {key: frame},
    )


def refit_stored(store: Store, record: RefitRecord) -> bool:
    """Whether a refit's forecasts are still in the store as written (a cached task result
    is trusted only then)."""
    try:
        return not record.problems(store)
    except (DamagedFileError, OSError):
        return False


def read_refit(
    store: Store, record: RefitRecord
) -> tuple[pl.DataFrame, dict[str, LevelCalibration]]:
    """A refit's forecasts (checked against the sha256 recorded with them) and calibrations."""
    return record.read_parquet(store, record.key), record.levels


class BacktestManifest(Manifest):
    """``backtests/<id>/manifest.json``, written after the backtest's files, with their
    sha256 keyed by store key: the monitor and the report read the files through it."""

    LABEL: ClassVar[str] = "its backtest manifest"

    backtest_id: str
    created_at: str
    git_commit: str = "unknown"
    model: str
    settings: dict[str, Any]  # the settings as recorded (secrets masked)
    params_source: str = "settings"
    data_fingerprint: DataFingerprint
    fit_key: str
    refits_reused: int = 0
    files: dict[str, str] = Field(default_factory=dict)  # store key -> sha256

    def hashed(self) -> dict[str, str]:
        return self.files

    def with_hashes(self, written: Mapping[str, str]) -> BacktestManifest:
        return self.model_copy(update={"files": self.files | dict(written)})

    def predictions(self, store: Store) -> pl.DataFrame:
        return self.read_parquet(store, layout.BACKTEST_PREDICTIONS(backtest_id=self.backtest_id))

    def metrics(self, store: Store) -> dict[str, Any]:
        return self.read_json(store, layout.BACKTEST_METRICS(backtest_id=self.backtest_id))


def backtest_record(
    backtest_id: str,
    model: str,
    settings_doc: dict[str, Any],
    params_source: str | None,
    fingerprint: DataFingerprint,
    fit_key: str,
    refits_reused: int,
) -> BacktestManifest:
    """What a backtest's manifest says of it (its files are added by ``write_backtest``)."""
    return BacktestManifest(
        backtest_id=backtest_id,
        created_at=dt.datetime.now(dt.UTC).isoformat(),
        git_commit=git_commit(),
        model=model,
        settings=settings_doc,
        params_source=params_source or "settings",
        data_fingerprint=fingerprint,
        fit_key=fit_key,
        refits_reused=refits_reused,
    )


def write_backtest(
    store: Store,
    record: BacktestManifest,
    predictions: pl.DataFrame,
    metrics: dict[str, Any],
    plots: list[Path],
) -> BacktestManifest:
    """Write the backtest folder, then its manifest with the sha256 of every file."""
    bid = record.backtest_id
    files: dict[str, bytes | pl.DataFrame] = {
        layout.BACKTEST_PREDICTIONS(backtest_id=bid): predictions,
        layout.BACKTEST_METRICS(backtest_id=bid): json_bytes(metrics),
    } | {layout.BACKTEST_PLOT(backtest_id=bid, name=p.stem): p.read_bytes() for p in plots}
    return record.publish(store, layout.BACKTEST_MANIFEST(backtest_id=bid), files)


def backtest_ids(store: Store) -> list[str]:
    """The backtests whose manifest (written last) is there, oldest first."""
    return sorted(
        parts["backtest_id"]
        for key in store.list("backtests")
        if (parts := layout.BACKTEST_MANIFEST.match(key)) is not None
    )


def read_backtest(store: Store, backtest_id: str) -> BacktestManifest:
    return BacktestManifest.read(store, layout.BACKTEST_MANIFEST(backtest_id=backtest_id))


def summary_markdown(metrics: dict[str, Any]) -> str:
    """The backtest's summary artifact: every method calibrated alike (raw beside), the
    tests, coverage by year and tercile, the monthly track record and the crash months."""
    model, target = metrics["model"], metrics["target_coverage"]
    lines = [
        f"# Backtest `{metrics['backtest_id']}`",
        "",
        f"{model}, horizon {metrics['horizon']}, forecasts {metrics['forecasts'][0]} .. "
        f"{metrics['forecasts'][1]}, {len(metrics['refits'])} refits every {metrics['refit_every']} trading days, "
        f"target interval {metrics['interval'][0]}-{metrics['interval'][1]} ({target:.0%})",
        "",
        *method_table(metrics),
        *tests_markdown(metrics, model),
        *risk_markdown(metrics, model),
        "",
    ]
    for group in ("year", "vol_tercile", "sector"):
        values = metrics["groups"][model].get(group)
        if values:
            lines.append(
                f"{model} coverage by {group.replace('_', ' ')}: "
                + ", ".join(f"{g[group]} {g['coverage']:.3f}" for g in values)
            )
    record = metrics["track_record"]
    lines += [
        "",
        f"Months: {record['months']}; coverage within 0.05 of the target in {record['months_within_0.05']:.0%}; "
        "CRPS below the other method's in "
        + ", ".join(f"{b} {v:.0%}" for b, v in record["months_beating"].items()),
    ]
    if record["crash_months"]["table"]:
        lines.append(
            f"Crash months {' .. '.join(record['crash_months']['months'])}: "
            + "; ".join(
                f"{m['month']} coverage {m['coverage']:.3f}"
                + (f", CRPS / ewma {m['crps'] / m['crps_ewma']:.3f}" if m.get("crps_ewma") else "")
                for m in record["crash_months"]["table"]
            )
        )
    return "\n".join(lines)
