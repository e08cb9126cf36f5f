"""``python -m service``: the forecast service on ``SMA_API__HOST``:``SMA_API__PORT`` over
``SMA_STORE``. Bad settings are one line, exit 2 (``core.errors.EXIT_CODES``)."""

from __future__ import annotations

import sys

from core.errors import UserFacingError, first_line


def main() -> int:
    from core.settings import load_settings

    try:
        settings = load_settings()
        from service.app import create_app

        app = create_app(settings)
    except UserFacingError as exc:
        print(f"error: {first_line(str(exc), 2000)}", file=sys.stderr)
        return exc.exit_code
    import uvicorn

    uvicorn.run(app, host=settings.api.host, port=settings.api.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
