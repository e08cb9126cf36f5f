"""Idempotent bootstrap of the current Prefect API (local server or Prefect Cloud).

    python -m deployments.setup

Creates what the deployments in prefect.yaml rely on, from the environment:
- work pools `local` (process) and `ecs` (prefect-aws ECS worker);
- when the store is on S3: AwsCredentials `sma-aws` and S3Bucket `sma-results` (task
  results, so caching works across workers) from the AWS_* variables;
- with SMA_SLACK_WEBHOOK_URL: a webhook notification block `sma-slack` and two automations
  posting to it: when any flow run of this project ends Failed or Crashed (this catches
  crashes that kill a process before its own hooks run), and each ``sma.monitor.alert``
  event of the monitor flow (its reasons and figures);
- the global concurrency limits that collect tasks hold while they call a rate-limited
  source (`yahoo-requests` for yfinance; ``core.data.collectors.COLLECTORS``).
Nothing secret is printed.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from core.config import ConfigError
from core.data.collectors import COLLECTORS
from core.settings import load_settings
from core.storage import Store
from tasks.caching import RESULTS_BLOCK
from tasks.monitor import ALERT_EVENT

FLOWS = (
    "collect",
    "features",
    "train",
    "tune",
    "predict",
    "backtest",
    "monitor",
    "report",
    "prune",
    "pipeline",
)
AUTOMATION = "sma-flow-run-failed"
MONITOR_AUTOMATION = "sma-monitor-alert"
SLACK_BLOCK = "sma-slack"


def ensure_pools(client) -> list[str]:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    made = []
    for name, kind in (("local", "process"), ("ecs", "ecs")):
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type=kind))
            made.append(f"work pool {name} ({kind}) created")
        except ObjectAlreadyExists:
            made.append(f"work pool {name} ({kind}) exists")
    return made


def ensure_s3_blocks(settings) -> list[str]:
    store = Store.open(settings.root_ref)
    if not store.is_s3:
        return ["store is local: task results stay local"]
    from prefect_aws import AwsClientParameters, AwsCredentials, S3Bucket

    endpoint = settings.s3.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    credentials = AwsCredentials(
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),  # pyright: ignore[reportArgumentType]
        region_name=store.region or "us-east-1",
        aws_client_parameters=AwsClientParameters(endpoint_url=endpoint)
        if endpoint
        else AwsClientParameters(),
    )
    credentials.save("sma-aws", overwrite=True)
    bucket, _, prefix = store.root.partition("/")
    S3Bucket(
        bucket_name=bucket,
        bucket_folder=f"{prefix}/prefect-results".strip("/"),
        credentials=credentials,
    ).save(RESULTS_BLOCK, overwrite=True)
    return [
        f"blocks sma-aws and s3-bucket/{RESULTS_BLOCK} saved (results under s3://{bucket}/{prefix}/prefect-results)"
    ]


def ensure_alerts(client, settings) -> list[str]:
    if settings.slack_webhook_url is None:
        return ["no SMA_SLACK_WEBHOOK_URL: no Slack automation (flow hooks only log)"]
    from prefect.automations import Automation
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    block = CustomWebhookNotificationBlock(  # pyright: ignore[reportCallIssue]
        name=SLACK_BLOCK,
        url="{{webhook_url}}",
        json_data={"text": "{{body}}"},
        secrets={"webhook_url": settings.slack_webhook_url.get_secret_value()},  # pyright: ignore[reportArgumentType]
        allow_private_urls=True,
    )
    block_id: Any = block.save(SLACK_BLOCK, overwrite=True)
    actions: Any = [
        SendNotification(
            block_document_id=block_id,
            subject="Prefect flow run {{ flow_run.state.name }}",
            body="Flow run {{ flow.name }}/{{ flow_run.name }} ended {{ flow_run.state.name }}: "
            "{{ flow_run.state.message }}",
        )
    ]
    for name in (AUTOMATION, MONITOR_AUTOMATION):
        for old in client.read_automations_by_name(name):
            client.delete_automation(old.id)
    Automation(
        name=MONITOR_AUTOMATION,
        description="Slack alert for each condition the monitor flow finds starting",
        trigger=EventTrigger(
            expect={ALERT_EVENT},
            match={"prefect.resource.id": "sma.store.*"},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[
            SendNotification(
                block_document_id=block_id,
                subject="Forecast monitor alert",
                body=":warning: Forecast monitor alert for {{ event.resource.name }} as of "
                "{{ event.payload.as_of }}: {{ event.payload.reasons | join('; ') }}",
            )
        ],
    ).create()
    Automation(
        name=AUTOMATION,
        description="Slack alert when a flow run of the pipeline ends Failed or Crashed",
        trigger=EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": list(FLOWS)},
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=actions,
    ).create()
    return [
        f"notification block {SLACK_BLOCK} and automations {AUTOMATION}, {MONITOR_AUTOMATION} saved"
    ]


def ensure_concurrency(client) -> list[str]:
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists

    done = []
    for limit in sorted({c.concurrency_limit for c in COLLECTORS.values() if c.concurrency_limit}):
        try:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=limit, limit=2)
            )
            done.append(f"global concurrency limit {limit} (2) created")
        except ObjectAlreadyExists:
            done.append(f"global concurrency limit {limit} exists")
    return done


def main() -> int:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not PREFECT_API_URL.value():
        print(
            "error: no PREFECT_API_URL: start `prefect server start` or log in to Prefect Cloud first",
            file=sys.stderr,
        )
        return 2
    with get_client(sync_client=True) as client:
        done = (
            ensure_pools(client)
            + ensure_s3_blocks(settings)
            + ensure_concurrency(client)
            + ensure_alerts(client, settings)
        )
    for line in done:
        print(f"- {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
