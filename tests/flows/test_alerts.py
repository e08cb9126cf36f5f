"""Slack failure alerts from the flows' hooks, received by a local HTTP server."""

from __future__ import annotations

import logging

import pytest

from core.data.tickers import TickersFileError
from flows.collect import collect
from tests.factories import SECRET, free_port

pytestmark = pytest.mark.usefixtures("prefect_server", "clean_env")


def run_failing_collect(tmp_path) -> None:
    with pytest.raises(TickersFileError, match="tickers file not found"):
        collect(tickers=str(tmp_path / "missing.csv"), store=str(tmp_path / "store"))


def test_failure_posts_one_slack_message_without_secrets(slack, tmp_path, monkeypatch, caplog):
    url, received = slack
    monkeypatch.setenv("SMA_SLACK_WEBHOOK_URL", url)
    monkeypatch.setenv("PREFECT_UI_URL", "http://127.0.0.1:4200")
    caplog.set_level(logging.DEBUG)
    run_failing_collect(tmp_path)
    assert len(received) == 1
    text = received[0]["json"]["text"]
    assert "Flow *collect*" in text and "ended *Failed*" in text
    assert "tickers file not found" in text and "missing.csv" in text
    assert "Deployment: none (run by hand)" in text
    assert "Run: http://127.0.0.1:4200/runs/flow-run/" in text
    assert SECRET not in text and SECRET not in caplog.text


def test_slack_outage_never_masks_the_failure(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SMA_SLACK_WEBHOOK_URL", f"http://127.0.0.1:{free_port()}/services/{SECRET}")
    caplog.set_level(logging.INFO)
    run_failing_collect(tmp_path)  # still the original error
    assert "failure alert not delivered (Slack webhook unreachable" in caplog.text
    assert SECRET not in caplog.text


def test_without_webhook_the_hook_only_logs(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    run_failing_collect(tmp_path)
    assert "no Slack webhook configured" in caplog.text
