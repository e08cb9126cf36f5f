"""``python -m service``: the read-only forecast service (FastAPI on uvicorn) over the store.

Settings come from the environment (SMA_STORE, SMA_API__HOST, SMA_API__PORT, SMA_API__TOKEN,
SMA_API__CORS_ORIGINS, SMA_API__TIMEOUT_SECONDS); the flags override them. Bad settings are
one line, exit 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core.errors import UserFacingError, first_line


def parser() -> argparse.ArgumentParser:
    """The command line: ``--help`` answers without importing the service's libraries."""
    command = argparse.ArgumentParser(
        prog="python -m service",
        description="The read-only forecast service (FastAPI on uvicorn) over the store.",
        epilog=(__doc__ or "").strip().split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument("--store", help="store root: a folder or s3://bucket/prefix (SMA_STORE)")
    command.add_argument("--host", help="address to listen on (SMA_API__HOST, default 127.0.0.1)")
    command.add_argument("--port", type=int, help="port to listen on (SMA_API__PORT, default 8000)")
    return command


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from core.settings import load_settings

    overrides: dict[str, Any] = {"store": args.store} if args.store is not None else {}
    api = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if api:
        overrides["api"] = api
    try:
        settings = load_settings(**overrides)
        from service.app import create_app

        app = create_app(settings)
    except UserFacingError as exc:
        print(f"error: {first_line(str(exc), 2000)}", file=sys.stderr)
        return exc.exit_code
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host=settings.api.host, port=settings.api.port, log_level="warning")
    )
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn stops on Ctrl-C, then raises it again
        return 130
    except SystemExit as exc:  # uvicorn's start-up failure: the address (its line printed)
        return 1 if exc.code == STARTUP_FAILURE else int(exc.code or 0)
    return 0 if server.started else 1


STARTUP_FAILURE = 3  # uvicorn's exit code when it cannot listen (the port taken, ...)


if __name__ == "__main__":
    raise SystemExit(main())
