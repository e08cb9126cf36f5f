"""Backtests in the store (keys in ``core.layout``): each refit's forecasts and calibration
(keyed by what they depend on, so a rerun reuses them), then a backtest folder whose
manifest, holding the sha256 of every file, is written last."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from pathlib import Path
from typing import Any

import polars as pl

from core import layout
from core.modeling.conformal import CQR
from core.modeling.scorecard import risk_test_lines
from core.modeling.walkforward import Window
from core.runs import git_commit
from core.storage import DamagedFileError, Store


def write_refit(
    store: Store, fit_key: str, window: Window, frame: pl.DataFrame, cqr: CQR
) -> dict[str, Any]:
    """Store one refit: its forecasts, then the calibration JSON naming their sha256."""
    refit, until = str(window.refit), str(window.until)
    key = layout.BACKTEST_REFIT(fit_key=fit_key, refit=refit, until=until)
    sha = store.write_parquet(key, frame)
    doc = {
        "key": key,
        "sha256": sha,
        "window": window.as_dict(),
        "cqr": cqr.to_dict(),
        "rows": frame.height,
    }
    store.write_json(
        layout.BACKTEST_REFIT_CALIBRATION(fit_key=fit_key, refit=refit, until=until), doc
    )
    return doc


def refit_stored(store: Store, doc: dict[str, Any]) -> bool:
    """Whether a refit's forecasts are still in the store as written (a cached task result
    is trusted only then)."""
    try:
        return store.exists(doc["key"]) and store.sha256(doc["key"]) == doc["sha256"]
    except (DamagedFileError, OSError):
        return False


def read_refit(store: Store, doc: dict[str, Any]) -> tuple[pl.DataFrame, CQR]:
    """A refit's forecasts (checked against the sha256 recorded with them) and calibration."""
    data = store.read_bytes(doc["key"])
    if hashlib.sha256(data).hexdigest() != doc["sha256"]:
        raise DamagedFileError(
            store.uri(doc["key"]), doc["key"], "does not match the sha256 recorded with it"
        )
    return pl.read_parquet(io.BytesIO(data)), CQR.from_dict(doc["cqr"])


def write_backtest(
    store: Store,
    backtest_id: str,
    predictions: pl.DataFrame,
    metrics: dict[str, Any],
    plots: list[Path],
    manifest: dict[str, Any],
) -> dict[str, Any]:
    """Write the backtest folder, then its manifest with the sha256 of every file."""
    files = {}
    key = layout.BACKTEST_PREDICTIONS(backtest_id=backtest_id)
    files[key] = store.write_parquet(key, predictions)
    key = layout.BACKTEST_METRICS(backtest_id=backtest_id)
    store.write_json(key, metrics)
    files[key] = store.sha256(key)
    for path in plots:
        data = path.read_bytes()
        key = layout.BACKTEST_PLOT(backtest_id=backtest_id, name=path.stem)
        store.write_bytes(key, data)
        files[key] = hashlib.sha256(data).hexdigest()
    doc = manifest | {
        "backtest_id": backtest_id,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "git_commit": git_commit(),
        "files": files,
    }
    store.write_json(layout.BACKTEST_MANIFEST(backtest_id=backtest_id), doc)
    return doc


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
