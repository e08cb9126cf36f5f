"""Flow state hooks: Slack alerts when a flow run fails or crashes; a run stopped by a
signal is marked Cancelled instead (``flows.shell``), with no alert.

Attached to every flow as ``on_failure`` and ``on_crashed``. A Slack outage is logged and
never masks the run's own failure; without a webhook configured the hook only logs.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from core.config import ConfigError
from core.errors import first_line
from core.notify import AlertError, failure_text, post_slack
from core.settings import load_settings

logger = logging.getLogger("stock_market_analytics.alerts")


def _deployment_name(flow_run: Any) -> str | None:
    if not getattr(flow_run, "deployment_id", None):
        return None
    try:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            return client.read_deployment(flow_run.deployment_id).name
    except Exception:  # the alert matters more than the name
        return str(flow_run.deployment_id)


def _run_url(flow_run: Any) -> str | None:
    ui = os.environ.get("PREFECT_UI_URL")
    return f"{ui.rstrip('/')}/runs/flow-run/{flow_run.id}" if ui else None


# how Prefect words a crash by SIGINT or SIGTERM (prefect.states.exception_to_crashed_state)
STOPPED_BY = ("aborted by an interrupt signal", "aborted by a termination signal")


def stopped(state: Any) -> bool:
    """Whether a crashed state is a run stopped by SIGINT or SIGTERM."""
    return any(words in (state.message or "") for words in STOPPED_BY)


CANCELLED: list[str] = []  # the runs of this process marked Cancelled (the shell's last line)


def cancel_stopped(flow: Any, flow_run: Any, state: Any) -> None:
    """Mark a run that a stop signal ended Cancelled (Prefect marks it Crashed)."""
    if not stopped(state):
        return
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled

    try:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(
                flow_run.id, Cancelled(message=f"Stopped: {state.message}"), force=True
            )
        CANCELLED.append(flow_run.name)
    except Exception as exc:  # the API may be going down with the run
        logger.warning("run %s not marked Cancelled: %s", flow_run.name, first_line(str(exc)))


def notify_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Post the failure to Slack (flow, run, deployment, first error line, link); a run
    stopped by a signal is not a failure."""
    if stopped(state):
        return
    text = failure_text(
        flow_name=flow.name,
        run_name=flow_run.name,
        state_name=state.name,
        error=first_line(state.message),
        deployment=_deployment_name(flow_run),
        url=_run_url(flow_run),
    )
    try:
        settings = load_settings()
    except ConfigError as exc:
        logger.warning("failure alert not sent: %s", exc)
        return
    if settings.slack_webhook_url is None:
        logger.info(
            "no Slack webhook configured (SMA_SLACK_WEBHOOK_URL); failure alert only logged:\n%s",
            text,
        )
        return
    try:
        post_slack(
            settings.slack_webhook_url.get_secret_value(), text, settings.slack_timeout_seconds
        )
        logger.info("failure alert sent to Slack for run %s", flow_run.name)
    except AlertError as exc:
        logger.warning("failure alert not delivered (%s); the run's own failure stands", exc)


ALERT_HOOKS: dict[str, Any] = {
    "on_failure": [notify_failure],
    "on_crashed": [cancel_stopped, notify_failure],
}
