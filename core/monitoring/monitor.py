"""One monitor pass over a store: score what matured, roll the figures up, compare the
recent features with the training run's reference, check data health, and decide which
alerts start (pure decisions in the sibling modules; this one reads and writes the store).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from core import layout
from core.backtests import backtest_ids, read_backtest
from core.config import MonitorSettings
from core.errors import DamagedArtifactError, InputError
from core.features.registry import drift_exempt
from core.features.table import FeatureBuild, MissingInputError, price_panel
from core.modeling.scorecard import as_method, metrics_interval
from core.monitoring import alerts, drift, health, scores, tail
from core.runs import MissingRunError, RunManifest, read_run
from core.storage import DamagedFileError, Store

LIVE_LOOKBACK_DAYS = 30  # a daily pass rescoring files newer than the last live score minus this


class NoPredictionsError(InputError):
    """Nothing to monitor yet."""


@dataclass
class MonitorResult:
    """What a pass found; ``alert_state`` is saved after the alert is sent."""

    summary: dict[str, Any]
    scores: pl.DataFrame
    drift: pl.DataFrame | None
    fired: dict[str, dict[str, Any]]
    alert_state: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def prediction_dates(store: Store) -> dict[dt.date, str]:
    """The stored prediction files by their as-of date."""
    found = {}
    for key in store.list(layout.PREDICTIONS.prefix):
        parts = layout.PREDICTIONS.match(key)
        try:  # a file not named by a date is not a prediction file
            found[dt.date.fromisoformat(parts["as_of"])] = key  # pyright: ignore[reportOptionalSubscript]
        except (TypeError, ValueError):
            continue
    return dict(sorted(found.items()))


def newest_backtest(store: Store) -> tuple[str, pl.DataFrame, dict[str, Any]] | None:
    """(id, predictions, metrics) of the newest complete backtest (its manifest written),
    each file checked against the manifest's sha256."""
    ids = backtest_ids(store)
    if not ids:
        return None
    manifest = read_backtest(store, ids[-1])
    frame = manifest.predictions(store).with_columns(pl.lit(ids[-1]).alias("run_id"))
    return ids[-1], frame, manifest.metrics(store)


def live_forecasts(
    store: Store, as_of: dt.date, since: dt.date | None
) -> tuple[pl.DataFrame | None, int]:
    """The forecasts of every prediction file dated ``since`` .. ``as_of`` for its own date
    (and how many files). A symbol without a new bar is repeated in later files with its
    older date: that copy is not a new forecast, and is left out."""
    files = {
        d: k
        for d, k in prediction_dates(store).items()
        if d <= as_of and (since is None or d >= since)
    }
    if not files:
        return None, 0
    frames = [store.read_parquet(k).filter(pl.col("date") == d) for d, k in files.items()]
    return pl.concat(frames, how="diagonal_relaxed"), len(files)


def same_target(
    store: Store, forecasts: pl.DataFrame, horizon: int, quantiles: list[float]
) -> tuple[pl.DataFrame, list[str]]:
    """The forecasts of runs with the latest run's horizon and quantiles (the score table's);
    a note for each run left out."""
    notes, other = [], []
    for run in sorted(forecasts["run_id"].unique().to_list()):
        try:
            doc = read_run(store, run).metrics(store)
        except MissingRunError:  # pruned, or incomplete: its forecasts are not scored
            doc = {}
        if (doc.get("horizon"), doc.get("quantiles")) != (horizon, quantiles):
            other.append(run)
            notes.append(
                f"forecasts of run {run} (another horizon or quantiles, or no metrics): not scored"
            )
    return forecasts.filter(~pl.col("run_id").is_in(other)), notes


def check_prices(forecasts: pl.DataFrame, prices: pl.DataFrame, store: Store) -> None:
    missing = sorted(set(forecasts["symbol"].unique()) - set(prices["symbol"].unique()))
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise InputError(
            f"no prices in {store.uri(layout.PRICES.prefix)} for {len(missing)} predicted "
            f"symbol(s): {shown}; run `python -m flows.collect` for them"
        )


def score_pass(
    store: Store,
    as_of: dt.date,
    backfill: bool,
    horizon: int,
    quantiles: list[float],
    interval: tuple[float, float],
    method: str,
) -> tuple[pl.DataFrame, dict[str, Any], list[str]]:
    """(the merged score table, counts, notes): live forecasts (all with ``backfill``, else
    those since the newest live score minus LIVE_LOOKBACK_DAYS) and, with ``backfill``, the
    newest backtest's forecasts of the deployed ``method``, scored against the prices known
    on ``as_of``."""
    notes: list[str] = []
    existing = None
    if store.exists(layout.MONITOR_SCORES()):
        try:
            existing = store.read_parquet(layout.MONITOR_SCORES())
        except DamagedFileError as exc:
            if not backfill:
                raise
            notes.append(f"{exc.problem}: the backfill rebuilds the score table from scratch")
    since = None
    if not backfill and existing is not None:
        live = existing.filter(pl.col("source") == "live")
        newest: Any = live["date"].max()
        if newest is not None:  # (a pass as of an earlier day looks back from that day)
            since = min(newest, as_of) - dt.timedelta(days=LIVE_LOOKBACK_DAYS)
    forecasts, files = live_forecasts(store, as_of, since)
    batches: list[tuple[str, pl.DataFrame]] = []
    if forecasts is not None:
        forecasts, skipped = same_target(store, forecasts, horizon, quantiles)
        notes += skipped
        batches.append(("live", forecasts))
    if backfill:
        found = newest_backtest(store)
        if found is None:
            notes.append("no backtest in the store: the backfill scores live forecasts only")
        elif found[2]["horizon"] != horizon or found[2]["quantiles"] != quantiles:
            notes.append(
                f"backtest {found[0]} forecasts another horizon or quantiles than the latest "
                "run: not scored"
            )
        elif (deployed := as_method(found[1], method, found[2]["model"], quantiles)) is None:
            notes.append(
                f"backtest {found[0]} has no forecasts of the deployed method {method}: not scored"
            )
        else:
            batches.append(("backtest", deployed.filter(pl.col("date") <= as_of)))
            notes.append(f"backtest {found[0]}: {found[1].height} forecasts considered")
    if not batches:
        raise NoPredictionsError(
            f"no predictions in {store.uri(layout.PREDICTIONS.prefix)} up to {as_of}: "
            "run `python -m flows.predict` first"
        )
    prices = price_panel(store).filter(pl.col("date") <= as_of)
    known = scores.outcomes(prices, horizon, quantiles)
    table = existing
    counts = {"prediction_files": files, "scored": 0, "pending": 0}
    for source, frame in batches:
        check_prices(frame, prices, store)
        scored = scores.score(frame, known, quantiles, interval, source)
        counts["scored"] += scored.height
        counts["pending"] += frame.height - scored.height
        table = scores.merge(table, scored)
    assert table is not None
    return table, counts, notes


def recent_features(build: FeatureBuild, as_of: dt.date, days: int) -> pl.DataFrame | None:
    table = build.scan().filter(pl.col("date") <= as_of)
    dates = table.select(pl.col("date").unique().sort().tail(days)).collect()["date"]
    return table.filter(pl.col("date").is_in(dates.implode())).collect() if len(dates) else None


def drift_pass(
    store: Store, run: RunManifest, as_of: dt.date, cfg: MonitorSettings
) -> tuple[pl.DataFrame | None, str]:
    """(the drift table, a note): None with the reason when it cannot be computed."""
    if layout.DRIFT_REFERENCE_FILE not in run.files:
        return None, (
            f"run {run.run_id} has no drift reference "
            f"({layout.RUN_DRIFT_REFERENCE(run_id=run.run_id)}): it was trained before monitoring "
            "existed; `python -m flows.train` makes a run that has one"
        )
    try:
        reference = run.file(store, layout.DRIFT_REFERENCE_FILE)
    except DamagedArtifactError as exc:
        return None, f"the drift reference of run {run.run_id} is damaged ({exc}): no drift figures"
    try:
        build = FeatureBuild.open(store)
    except MissingInputError:
        return None, "no feature table: no drift figures"
    recent = recent_features(build, as_of, cfg.drift_days)
    if recent is None:
        return None, "no feature rows up to the as-of date: no drift figures"
    table = drift.drift_table(
        reference, recent, drift_exempt(build.manifest.groups), cfg.top_features, cfg.psi_alert
    )
    note = f"{recent['date'].n_unique()} recent dates against {reference['window']}"
    if not reference["importance"]:
        note += "; the model reports no feature importance (it forecasts from prices): drift is shown, never alerted"
    return table, note


def health_pass(store: Store, as_of: dt.date, cfg: MonitorSettings) -> dict[str, Any]:
    """Fresh bars on the latest session (from the ingestion table) and quarantine rates."""
    out: dict[str, Any] = {}
    if store.exists(layout.INGESTION()):
        ingestion = store.read_parquet(layout.INGESTION())
        session = health.latest_session(as_of, cfg.calendar)
        out["freshness"] = health.freshness(ingestion.select("symbol", "last_date"), session)
    oldest = as_of - dt.timedelta(days=cfg.quarantine_window_days + 1)
    reports = [
        store.read_json(key) for day, key in health.quality_reports(store) if oldest <= day <= as_of
    ]
    out["quarantine"] = health.quarantine_rates(reports, as_of, cfg.quarantine_window_days)
    return out


def monitor(
    store: Store, cfg: MonitorSettings, as_of: dt.date | None = None, backfill: bool = False
) -> MonitorResult:
    """One monitor pass (nothing written: ``save`` writes scores and summary)."""
    started = time.perf_counter()
    as_of = as_of or dt.datetime.now(dt.UTC).date()
    run = read_run(store, "latest")
    run_id = run.run_id
    run_metrics = run.metrics(store)
    horizon, quantiles = run_metrics["horizon"], run_metrics["quantiles"]
    interval = metrics_interval(run_metrics)
    method = run_metrics.get("deployed", run_metrics["model"])
    table, counts, notes = score_pass(store, as_of, backfill, horizon, quantiles, interval, method)
    series = scores.monitored(table.filter(pl.col("date") <= as_of))
    rolled = scores.rolling(series, cfg.windows, quantiles)
    drift_table, drift_note = drift_pass(store, run, as_of, cfg)
    data_health = health_pass(store, as_of, cfg)
    now, checked = alerts.conditions(rolled, drift_table, data_health.get("freshness"), cfg)
    watch = tail.tail_watch(series, horizon, quantiles)
    now |= tail.conditions(watch)
    checked |= {"red", "var99"} if watch["checked"] else set()
    previous = (
        store.read_json(layout.MONITOR_ALERTS()) if store.exists(layout.MONITOR_ALERTS()) else None
    )
    state, fired = alerts.advance(previous, now, str(as_of), checked)
    fired = tail.grouped(fired)
    summary = {
        "as_of": str(as_of),
        "run_id": run_id,
        "horizon": horizon,
        "quantiles": quantiles,
        "interval": list(interval),
        "method": method,
        "backfill": backfill,
        **counts,
        "scores_rows": table.height,
        "scores_by_source": dict(table.group_by("source").len().iter_rows()),
        "rolling": rolled,
        "drift": {
            "note": drift_note,
            "features": drift_table.to_dicts() if drift_table is not None else None,
        },
        "health": data_health,
        "tail": watch,
        "alerts": {"active": state["active"], "fired": fired},
        "notes": notes,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return MonitorResult(summary, table, drift_table, fired, state, notes)


def save(store: Store, result: MonitorResult) -> None:
    """Scores (one atomic write of the whole table), then the summary."""
    store.write_parquet(layout.MONITOR_SCORES(), result.scores)
    store.write_json(layout.MONITOR_SUMMARY(), result.summary)


def save_alert_state(store: Store, result: MonitorResult) -> None:
    """After the alert went out: from now on these conditions are known."""
    store.write_json(layout.MONITOR_ALERTS(), result.alert_state)
