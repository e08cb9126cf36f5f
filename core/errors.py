"""The errors a user can meet, by the exit code they end a command with.

One table for every flow (``flows.shell`` maps these classes to exit codes; the site's exit-code page
lists them). A module raises a subclass that names its own problem; the shell never needs
to know the subclass.
"""

from __future__ import annotations

EXIT_CODES: dict[int, str] = {
    0: "done",
    1: "ran, but nothing usable came out (every symbol failed, a runtime fault)",
    2: "bad or insufficient input (files, settings, too little data); nothing was written",
    3: "a damaged or tampered artifact",
    130: "stopped by SIGINT (Ctrl-C): the flow run is marked Cancelled, its processes stopped",
    143: "stopped by SIGTERM (ECS, systemd, timeout, a Prefect cancellation): as for SIGINT",
}


class UserFacingError(Exception):
    """An expected error: its message is one line that names the problem."""

    exit_code = 1


class NothingUsableError(UserFacingError):
    """The run completed but produced nothing usable."""

    exit_code = 1


class InputError(UserFacingError, ValueError):
    """Bad or insufficient input: a file, a setting, too little data."""

    exit_code = 2


class InsufficientDataError(InputError):
    """Too little data for a step; the message names the shortfall and what to do."""


class DamagedArtifactError(UserFacingError):
    """A stored artifact is damaged or does not match its manifest."""

    exit_code = 3


def first_line(message: str | None, limit: int = 500) -> str:
    """The first non-blank line of a message, cut to ``limit`` characters ('' when none)."""
    text = (message or "").strip()
    return text.splitlines()[0][:limit] if text else ""
