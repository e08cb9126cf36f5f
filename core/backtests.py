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
from core.modeling.conformal import CQR
from core.modeling.scorecard import risk_test_lines
from core.modeling.timeline import Window
from core.runs import git_commit
from core.storage import DamagedFileError, Manifest, Store, json_bytes


class RefitRecord(Manifest):
    """``backtests/refits/<fit_key>/<refit>_<until>.json``, written after the refit's
    forecasts: their key and sha256, the window and the CQR calibration."""

    LABEL: ClassVar[str] = "its refit record"

    key: str
    sha256: str = ""  # set by ``publish``
    window: Window
    cqr: dict[str, Any]  # CQR.to_dict()
    rows: int

    def hashed(self) -> dict[str, str]:
        return {self.key: self.sha256}

    def with_hashes(self, written: Mapping[str, str]) -> RefitRecord:
        return self.model_copy(update={"sha256": written.get(self.key, self.sha256)})

    @property
    def calibration(self) -> CQR:
        return CQR.from_dict(self.cqr)


def write_refit(
    store: Store, fit_key: str, window: Window, frame: pl.DataFrame, cqr: CQR
) -> RefitRecord:
    """Store one refit: its forecasts, then the record naming their sha256."""
    refit, until = str(window.refit), str(window.until)
    key = layout.BACKTEST_REFIT(fit_key=fit_key, refit=refit, until=until)
    record = RefitRecord(key=key, window=window, cqr=cqr.to_dict(), rows=frame.height)
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


def read_refit(store: Store, record: RefitRecord) -> tuple[pl.DataFrame, CQR]:
    """A refit's forecasts (checked against the sha256 recorded with them) and calibration."""
    return record.read_parquet(store, record.key), record.calibration


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
    """The backtest's summary artifact: the whole period per method and baseline, the tests,
    coverage by year and tercile, the monthly track record and the crash months."""
    test, base = metrics["test"], metrics["baselines"]
    target = metrics["target_coverage"]
    ewma = base.get("ewma", {}).get("pinball_mean")
    names = ["pinball_mean", "coverage", "mean_width", "winkler"]
    rows = [(m, test[m]) for m in ("raw", "cqr", "cqr_aci")] + [
        (f"baseline {b}", v) for b, v in base.items()
    ]
    lines = [
        f"# Backtest `{metrics['backtest_id']}`",
        "",
        f"{metrics['model']}, horizon {metrics['horizon']}, forecasts {metrics['forecasts'][0]} .. "
        f"{metrics['forecasts'][1]}, {len(metrics['refits'])} refits every {metrics['refit_every']} trading days, "
        f"target coverage {target:.0%}",
        "",
        "| method | " + " | ".join(names) + " | pinball / ewma |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    for name, values in rows:
        ratio = f"{values['pinball_mean'] / ewma:.4f}" if ewma else "-"
        lines.append(
            f"| {name} | " + " | ".join(f"{values[k]:.5f}" for k in names) + f" | {ratio} |"
        )
    lines += risk_test_lines(metrics)
    aci = test["cqr_aci"]
    for group in ("year", "vol_tercile", "sector"):
        values = aci.get(f"coverage_by_{group}")
        if values:
            lines.append(
                f"CQR+ACI coverage by {group.replace('_', ' ')}: "
                + ", ".join(f"{k} {v:.3f}" for k, v in values.items())
            )
    record = metrics["track_record"]
    lines += [
        "",
        f"Months: {record['months']}; coverage within 0.05 of the target in {record['months_within_0.05']:.0%}; "
        "pinball below the baseline in "
        + ", ".join(f"{b} {v:.0%}" for b, v in record["months_beating"].items()),
    ]
    if record["crash_months"]["table"]:
        lines.append(
            f"Crash months {' .. '.join(record['crash_months']['months'])}: "
            + "; ".join(
                f"{m['month']} coverage {m['coverage']:.3f}"
                + (
                    f", pinball / ewma {m['pinball'] / m['pinball_ewma']:.3f}"
                    if "pinball_ewma" in m
                    else ""
                )
                for m in record["crash_months"]["table"]
            )
        )
    return "\n".join(lines)
