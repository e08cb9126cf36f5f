"""End to end against a real Prefect server: set-up, deployments, a process worker, S3
(moto) as the store, and a local HTTP server standing in for Slack's webhook."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from benchmarks.servers import prefect_server
from core.storage import Store
from deployments.server import PREFECT
from tests.factories import ROOT, SAMPLE, SECRET, frozen_model_store

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server() -> Iterator[dict[str, str]]:
    """`prefect server start` on 127.0.0.1 (free port, fresh home); yields the env to talk to it."""
    with prefect_server() as env:
        env = env | {"PYTHONPATH": str(ROOT)}
        env.pop("PREFECT_LOCAL_STORAGE_PATH", None)
        yield env


IMAGE = "registry.example/sma:e2e"


def without_image_steps(path: Path) -> dict:
    """prefect.yaml with the -ecs deployments' build and push steps (Docker) checked, then
    left out; their image is IMAGE, as the build step's output would be."""
    config = yaml.safe_load(path.read_text())
    ecs = [d for d in config["deployments"] if d["name"].endswith("-ecs")]
    assert ecs
    for deployment in ecs:
        (build,) = deployment["build"]
        (push,) = deployment["push"]
        step = build["prefect_docker.deployments.steps.build_docker_image"]
        assert step["id"] == "build-image" and step["image_name"] == "{{ $SMA_IMAGE }}"
        assert step["dockerfile"] == "Dockerfile" and step["pull"] is False
        assert push["prefect_docker.deployments.steps.push_docker_image"]["tag"] == (
            "{{ build-image.tag }}"
        )
        assert deployment["work_pool"]["job_variables"]["image"] == "{{ build-image.image }}"
        deployment["build"] = deployment["push"] = None
        deployment["work_pool"] = deployment["work_pool"] | {
            "job_variables": deployment["work_pool"]["job_variables"] | {"image": IMAGE}
        }
    return config


def run(
    cmd: list[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def flow_run_state(env: dict[str, str], deployment: str, params: list[str]) -> tuple[str, str]:
    """Run a deployment through a process worker; returns (final state name, all output)."""
    started = run([PREFECT, "deployment", "run", deployment, *params], env)
    assert started.returncode == 0, started.stderr
    run_id = next(line.split()[-1] for line in started.stdout.splitlines() if "UUID" in line)
    worker = run([PREFECT, "worker", "start", "--pool", "local", "--run-once"], env, timeout=400)
    state = run(
        [
            sys.executable,
            "-c",
            f"""
from prefect.client.orchestration import get_client
with get_client(sync_client=True) as c:
    print(c.read_flow_run('{run_id}').state.name)
""",
        ],
        env,
    )
    return state.stdout.strip(), worker.stdout + worker.stderr


def test_deployments_run_on_a_real_server_with_s3_and_slack(
    server, s3_bucket, s3_endpoint, slack, tmp_path
):
    url, received = slack
    env = server | {
        "SMA_STORE": f"s3://{s3_bucket}/e2e",
        "SMA_S3__ENDPOINT_URL": s3_endpoint,
        "SMA_SLACK_WEBHOOK_URL": url,
        "SMA_SOURCE": "local",
        "SMA_SOURCE_PATH": str(SAMPLE / "prices"),
        "SMA_TICKERS": str(SAMPLE / "tickers.csv"),
        "SMA_START": "2013-01-01",
        "SMA_END": "2018-02-07",
        "SMA_TRACKING__WANDB_MODE": "disabled",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    setup = run([sys.executable, "-m", "deployments.setup"], env)
    assert setup.returncode == 0, setup.stderr
    assert "s3-bucket/sma-results" in setup.stdout and "automation" in setup.stdout
    assert SECRET not in setup.stdout + setup.stderr and "testing" not in setup.stdout

    # The -ecs deployments build and push the image (prefect-docker) first; without Docker
    # here, they are registered from a copy of prefect.yaml without those steps.
    prefect_file = tmp_path / "prefect.yaml"
    prefect_file.write_text(yaml.safe_dump(without_image_steps(ROOT / "prefect.yaml")))
    deploy = run(
        [PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)], env
    )
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]

    check = run(
        [
            sys.executable,
            "-c",
            """
import json
from prefect.client.orchestration import get_client
with get_client(sync_client=True) as c:
    out = {}
    for name in ["collect/collect", "features/features", "train/train", "tune/tune", "predict/predict",
                 "pipeline/pipeline", "collect/collect-ecs"]:
        d = c.read_deployment_by_name(name)
        out[name] = {"pool": d.work_pool_name, "image": d.job_variables.get("image"),
                     "pull": d.pull_steps,
                     "schedules": [{"cron": s.schedule.cron, "tz": s.schedule.timezone,
                                    "day_or": s.schedule.day_or} for s in d.schedules]}
    out["automations"] = [a.name for a in c.read_automations()]
print(json.dumps(out))
""",
        ],
        env,
    )
    assert check.returncode == 0, check.stderr
    import json

    got = json.loads(check.stdout.strip().splitlines()[-1])
    assert got["collect/collect"]["schedules"] == [
        {"cron": "30 18 * * 1-5", "tz": "America/New_York", "day_or": True}
    ]
    assert got["train/train"]["schedules"][0]["cron"] == "0 8 * * 6"
    assert got["tune/tune"]["schedules"] == [
        {"cron": "0 6 1-7 * 0", "tz": "America/New_York", "day_or": False}
    ]
    assert got["predict/predict"]["schedules"][0]["cron"] == "0 20 * * 1-5"
    assert (
        got["pipeline/pipeline"]["schedules"] == [] and got["collect/collect-ecs"]["pool"] == "ecs"
    )
    assert got["collect/collect-ecs"]["image"] == IMAGE  # the build step's output
    assert got["collect/collect-ecs"]["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "/app"}}
    ]  # the image's code
    assert "sma-flow-run-failed" in got["automations"]
    assert any(
        name.startswith("features") for name in got["automations"]
    )  # the trigger on collect's completion

    state, output = flow_run_state(env, "collect/collect", [])
    assert state == "Completed", output[-3000:]
    store = Store(f"s3://{s3_bucket}/e2e", endpoint_url=s3_endpoint)
    assert store.exists("raw/prices/symbol=AOS/data.parquet")
    assert store.exists("raw/ingestion.parquet")
    assert store.list("prefect-results"), "task results should persist to the S3 block"

    received.clear()
    state, output = flow_run_state(
        env, "collect/collect", ["--param", f"tickers={tmp_path / 'missing.csv'}"]
    )
    assert state == "Failed"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(received) < 2:
        time.sleep(1)
    texts = [r["json"]["text"] for r in received]
    hook = [t for t in texts if t.startswith(":rotating_light:")]
    assert len(hook) == 1 and "Flow *collect*" in hook[0] and "tickers file not found" in hook[0]
    assert "Deployment: collect" in hook[0]
    assert any("ended Failed" in t for t in texts if t not in hook), (
        texts
    )  # the server's automation
    assert all(SECRET not in t for t in texts) and SECRET not in output


def test_a_monitor_alert_reaches_slack_once_through_the_automation(server, slack, tmp_path):
    """A regime shift the frozen model does not see: the monitor's event goes through the
    server's automation to the webhook, once; the next pass of a lasting condition is silent."""
    url, received = slack
    root, dates = frozen_model_store(
        tmp_path / "store", symbols=10, days=200, shift_at=120, forecast_days=90
    )
    env = server | {
        "SMA_SLACK_WEBHOOK_URL": url,
        "SMA_STORE": str(root),
        "SMA_TRACKING__WANDB_MODE": "disabled",
    }
    setup = run([sys.executable, "-m", "deployments.setup"], env)
    assert setup.returncode == 0 and "sma-monitor-alert" in setup.stdout, setup.stderr
    received.clear()
    args = [sys.executable, "-m", "flows.monitor", "--as-of", str(dates[-1]), "--backfill"]
    first = run(args, env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "alert: 60-day coverage" in first.stdout

    def alerts() -> list[str]:
        return [r["json"]["text"] for r in received if "monitor alert" in r["json"]["text"]]

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not alerts():
        time.sleep(1)
    assert len(alerts()) == 1, [r["json"] for r in received]
    text = alerts()[0]
    assert "60-day coverage" in text and str(dates[-1]) in text and str(root) in text
    assert SECRET not in text

    again = run(args[:-1], env)  # the same day again, the condition still there
    assert again.returncode == 0 and "alert:" not in again.stdout
    assert "active conditions: coverage_60" in again.stdout
    time.sleep(15)
    assert len(alerts()) == 1
