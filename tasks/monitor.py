"""Prefect tasks of the monitor flow: one pass (``core.monitoring.monitor``), its table
artifact, and the ``sma.monitor.alert`` event the Slack automation forwards."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.logging import get_run_logger

from core.config import MonitorSettings, StoreRef
from core.locks import store_lock
from core.monitoring.monitor import monitor, save, save_alert_state
from core.storage import Store

ALERT_EVENT = "sma.monitor.alert"


def alert_event(store_uri: str, as_of: str, fired: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The event's resource (the store) and payload (reasons and figures): nothing secret,
    since a store's URI names a folder or a bucket, never a credential."""
    return {
        "event": ALERT_EVENT,
        "resource": {"prefect.resource.id": f"sma.store.{store_uri}", "prefect.resource.name": store_uri},
        "payload": {
            "as_of": as_of,
            "reasons": [v["reason"] for v in fired.values()],
            "figures": {k: {f: x for f, x in v.items() if f not in ("reason", "since")} for k, v in fired.items()},
        },
    }  # fmt: skip


@task(name="monitor", cache_policy=NO_CACHE)
def monitor_task(
    store: StoreRef, cfg: MonitorSettings, as_of: dt.date | None, backfill: bool
) -> dict[str, Any]:
    """Score, roll up, check drift and health, write them; emit the alerts that start today
    (then remember them, so a lasting condition alerts once); under the store's ``monitor``
    lock, so that a second monitor neither loses these scores nor alerts again."""
    opened = Store.open(store)
    logger = get_run_logger()
    # scores and alert state are read, updated and written under the lock; the alert goes
    # out before its state is saved (a crash between them alerts again, never never)
    with store_lock(opened, "monitor"):
        result = monitor(opened, cfg, as_of, backfill)
        save(opened, result)
        if result.fired:
            event = alert_event(opened.url, result.summary["as_of"], result.fired)
            emit_event(**event)
            for reason in event["payload"]["reasons"]:
                logger.warning("alert: %s", reason)
        save_alert_state(opened, result)
    for note in [*result.notes, result.summary["drift"]["note"]]:
        logger.info(note)
    rows = [
        {
            "window": f"{w} days",
            **{k: v for k, v in figures.items() if not isinstance(v, dict | list)},
        }
        for w, figures in result.summary["rolling"].items()
        if figures
    ]
    if rows:
        create_table_artifact(
            key="monitor-rolling",
            table=rows,
            description=f"Rolling forecast quality as of {result.summary['as_of']}",
        )
    return result.summary
