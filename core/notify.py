"""Failure alerts to a Slack incoming webhook (plain HTTPS POST of ``{"text": ...}``).

The webhook URL is a secret: it is never logged or put into a message, and a failed post
raises ``AlertError`` whose message names the problem but not the URL.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request


class AlertError(RuntimeError):
    """The alert could not be delivered."""


def failure_text(
    flow_name: str,
    run_name: str,
    state_name: str,
    error: str,
    deployment: str | None,
    url: str | None,
) -> str:
    """The Slack message of a failed or crashed flow run."""
    lines = [
        f":rotating_light: Flow *{flow_name}* run *{run_name}* ended *{state_name}*",
        f"Deployment: {deployment or 'none (run by hand)'}",
        f"Error: {error or 'no message'}",
    ]
    if url:
        lines.append(f"Run: {url}")
    return "\n".join(lines)


def post_slack(webhook_url: str, text: str, timeout: float = 10.0) -> None:
    """POST the message; AlertError on any failure (without the URL in it)."""
    request = urllib.request.Request(
        webhook_url,
        data=json.dumps({"text": text}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if response.status >= 300:
                raise AlertError(f"Slack webhook answered HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        raise AlertError(f"Slack webhook answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AlertError(f"Slack webhook unreachable: {type(reason).__name__}") from None
