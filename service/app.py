"""The HTTP forecast service (FastAPI): the read API's calls under ``/v1``, ``/health`` and
the latest report at ``/report``; OpenAPI docs at ``/docs``.

JSON (NaN as null) or Parquet (``Accept: application/vnd.apache.parquet``). The latest
forecasts carry an ETag (the newest prediction files' sha256) and ``Cache-Control``. With
``SMA_API__TOKEN`` every route but ``/health`` needs ``Authorization: Bearer <token>``
(compared in constant time, never logged). Every error is a status and a one-line JSON
``{"error": ...}``; a store slower than ``SMA_API__TIMEOUT_SECONDS`` is 503.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import hmac
import io
import json
import logging
import threading
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import polars as pl
from botocore.exceptions import BotoCoreError, ClientError
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from core import layout
from core.config import Settings
from core.errors import InputError, UserFacingError, first_line
from core.forecasts import (
    Forecasts,
    NoCalibrationError,
    NoForecastsError,
    ReadError,
    UnknownHorizonError,
    UnknownSymbolError,
)
from core.storage import Store, StoreError

PARQUET = "application/vnd.apache.parquet"
CACHE = "private, max-age=60, must-revalidate"  # forecasts change once a trading day
MAX_LIMIT = 5000
BEARER = HTTPBearer(auto_error=False, description="The token of SMA_API__TOKEN.")
MAX_READS = 32  # store reads that may be outstanding at once (a stuck store holds them)
T = TypeVar("T")
logger = logging.getLogger("service")


class Unavailable(Exception):
    """The store did not answer in time, or cannot be reached."""


def status_of(exc: Exception) -> int:
    """The HTTP status of an error the read API raised."""
    if isinstance(
        exc, UnknownSymbolError | UnknownHorizonError | NoForecastsError | NoCalibrationError
    ):
        return 404
    if isinstance(exc, StoreError | Unavailable):
        return 503
    if isinstance(exc, InputError):
        return 400
    return 500  # a damaged artifact (its line names it), a fault


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": first_line(message, 500)}, status_code=status, headers=headers)


def rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """JSON rows: dates as ISO strings, NaN as null."""
    clean = frame.with_columns(pl.col(pl.Float32, pl.Float64).fill_nan(None))
    return json.loads(clean.write_json())


def wants_parquet(request: Request) -> bool:
    """Whether ``Accept`` asks for Parquet."""
    return PARQUET in request.headers.get("accept", "")


def matches(if_none_match: str, tag: str) -> bool:
    """Whether an ``If-None-Match`` header (``*``, a list, weak tags) names ``tag``."""
    given = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in given or tag in given


def respond(request: Request, frame: pl.DataFrame, name: str, **meta: Any) -> Response:
    """The frame as Parquet when asked for (``Accept``), else as JSON ``{name: rows, **meta}``."""
    if wants_parquet(request):
        buffer = io.BytesIO()
        frame.write_parquet(buffer)
        return Response(buffer.getvalue(), media_type=PARQUET)
    return JSONResponse({name: rows(frame), **meta})


def encode_cursor(date: dt.date) -> str:
    return base64.urlsafe_b64encode(date.isoformat().encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> dt.date:
    try:
        return dt.date.fromisoformat(
            base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        )
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InputError(f"cursor {cursor!r} is not one this service gave") from None


def symbol_of(name: str) -> str:
    """A symbol as the store spells it (upper case); letters that upper-case into others
    (``ß`` into ``SS``) are refused first, as in a tickers file."""
    if not name.isascii():
        raise UnknownSymbolError(f"unknown symbol {name!r}: symbols are ASCII")
    return name.upper()


def csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def create_app(settings: Settings) -> FastAPI:
    """The service over ``settings.store`` (every horizon it holds)."""
    try:
        forecasts = Forecasts.over(Store.open(settings.root_ref))
    except ReadError as exc:
        raise ReadError(f"{exc} (SMA_STORE, --store)") from None
    api = settings.api
    secret = api.token.get_secret_value().encode() if api.token is not None else None
    app = FastAPI(
        title="Stock market forecasts",
        description="Calibrated quantile forecasts of short-horizon returns, read-only.",
        version="1",
    )
    if api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=api.cors_origins,
            allow_methods=["GET"],
            allow_headers=["Authorization"],
            expose_headers=["ETag"],
        )

    slots = threading.BoundedSemaphore(MAX_READS)

    async def read(call: Callable[[], T]) -> T:
        """A blocking store read on its own daemon thread, ``Unavailable`` past the timeout.
        A read that never returns (a stuck mount) holds only its own thread, never a shared
        pool's: the other routes keep answering; past ``MAX_READS`` such reads, 503 at once."""
        if not slots.acquire(blocking=False):
            raise Unavailable(
                f"store {forecasts.store.url} is not answering: {MAX_READS} reads still wait on it"
            )
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()

        def settle(result: Any, exc: BaseException | None) -> None:
            if done.done():  # the request gave up (timeout) before the read returned
                return
            if exc is None:
                done.set_result(result)
            else:
                done.set_exception(exc)

        def run() -> None:
            try:
                result, exc = call(), None
            except BaseException as caught:  # handed to the request that waits for it
                result, exc = None, caught
            finally:
                slots.release()
            loop.call_soon_threadsafe(settle, result, exc)

        threading.Thread(target=run, name="store-read", daemon=True).start()
        try:
            return await asyncio.wait_for(done, api.timeout_seconds)
        except TimeoutError:
            raise Unavailable(
                f"store {forecasts.store.url} did not answer within {api.timeout_seconds:g} s"
            ) from None
        except (OSError, BotoCoreError, ClientError) as exc:  # unreachable S3, a vanished folder
            raise Unavailable(f"store {forecasts.store.url} cannot be read: {exc}") from None

    def authorized(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> None:
        if secret is None:
            return
        given = credentials.credentials.encode() if credentials is not None else b""
        if not hmac.compare_digest(given, secret):
            raise PermissionError("a bearer token is needed (Authorization: Bearer <token>)")

    # the errors this service expects, each its status and its one line (no traceback in
    # the log either); any other is a 500 that names only its type (its traceback logged)
    async def on_expected(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, PermissionError):
            return error(401, str(exc), {"WWW-Authenticate": "Bearer"})
        return error(status_of(exc), str(exc))

    for expected in (UserFacingError, Unavailable, PermissionError):
        app.add_exception_handler(expected, on_expected)

    @app.exception_handler(Exception)
    async def on_fault(request: Request, exc: Exception) -> JSONResponse:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error(500, f"internal error: {type(exc).__name__}")

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

    @app.exception_handler(RequestValidationError)
    async def on_bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem.get("loc", ())[1:]) or "request"
        return error(400, f"{where}: {problem.get('msg', 'invalid')}")

    guarded = [Depends(authorized)]

    @app.head("/health", include_in_schema=False)
    @app.get("/health")
    async def health() -> JSONResponse:
        """The store reachable, and the newest forecast's date against the exchange's
        latest closed session (fresh: at most one session behind)."""
        from core.monitoring.health import latest_session

        try:
            newest = await read(
                lambda: max(forecasts.latest(horizons=forecasts.horizons()[:1])["date"])
            )
        except ReadError as exc:  # reachable, but nothing to serve: not healthy
            return error(503, str(exc))
        session = await read(lambda: latest_session(dt.date.today(), settings.monitor.calendar))
        behind = await read(lambda: _sessions_between(newest, session, settings.monitor.calendar))
        return JSONResponse(
            {
                "status": "ok" if behind <= 1 else "stale",
                "store": forecasts.store.url,
                "newest_forecast": newest.isoformat(),
                "latest_session": session.isoformat(),
                "sessions_behind": behind,
            }
        )

    @app.get("/v1/forecasts/latest", dependencies=guarded)
    async def latest(
        request: Request,
        symbols: Annotated[
            str | None, Query(description="Comma-separated symbols (default: all).")
        ] = None,
        horizon: Annotated[
            int | None, Query(ge=1, description="One horizon (default: every one).")
        ] = None,
        levels: Annotated[
            str | None, Query(description="Comma-separated quantile levels (default: all).")
        ] = None,
    ) -> Response:
        """The newest forecasts, one row per (horizon, symbol)."""
        asked = [horizon] if horizon is not None else None
        try:
            wanted = [float(q) for q in csv(levels) or []] or None
        except ValueError:
            raise InputError(f"levels {levels!r}: not numbers") from None
        names = [symbol_of(name) for name in csv(symbols) or []] or None
        frame, version = await read(lambda: forecasts.latest_versioned(names, asked, wanted))
        asked_for = f"{request.query_params}|{PARQUET if wants_parquet(request) else 'json'}"
        tag = f'"{hashlib.sha256(version.encode() + asked_for.encode()).hexdigest()[:32]}"'
        headers = {"ETag": tag, "Cache-Control": CACHE, "Vary": "Accept"}
        if matches(request.headers.get("if-none-match", ""), tag):
            return Response(status_code=304, headers=headers)
        response = respond(request, frame, "forecasts")
        response.headers.update(headers)
        return response

    @app.get("/v1/forecasts/{symbol}", dependencies=guarded)
    async def symbol_history(
        request: Request,
        symbol: str,
        start: Annotated[dt.date | None, Query(description="First forecast date (ISO).")] = None,
        end: Annotated[dt.date | None, Query(description="Last forecast date (ISO).")] = None,
        horizon: Annotated[int | None, Query(ge=1)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 500,
        cursor: Annotated[
            str | None, Query(description="next_cursor of the previous page.")
        ] = None,
    ) -> Response:
        """A symbol's forecasts with their realized outcomes (``y``), oldest first, a page
        of ``limit`` at a time."""
        if start is not None and end is not None and start > end:
            raise InputError(f"start {start} is after end {end}")
        after = decode_cursor(cursor) if cursor else None
        name = symbol_of(symbol)
        frame = await read(lambda: forecasts.history(name, start, end, horizon))
        if after is not None:
            frame = frame.filter(pl.col("date") > after)
        page = frame.head(limit)
        more = frame.height > limit
        return respond(
            request,
            page,
            "forecasts",
            next_cursor=encode_cursor(page["date"][-1]) if more else None,
        )

    @app.get("/v1/calibration", dependencies=guarded)
    async def calibration(
        request: Request, horizon: Annotated[int | None, Query(ge=1)] = None
    ) -> Response:
        """The monitor's rolling figures, one row per window of forecast dates."""
        return respond(request, await read(lambda: forecasts.calibration(horizon)), "windows")

    @app.get("/report", dependencies=guarded, response_class=HTMLResponse)
    async def report() -> HTMLResponse:
        """The latest HTML report (``python -m flows.report``)."""
        key = layout.REPORT_LATEST()
        if not await read(lambda: forecasts.store.exists(key)):
            raise NoForecastsError(
                f"no report in {forecasts.store.uri(key)}: run `python -m flows.report`"
            )
        return HTMLResponse(await read(lambda: forecasts.store.read_bytes(key)))

    # the exchange calendar takes seconds to import: loaded while the service starts
    threading.Thread(target=_warm_calendar, daemon=True).start()
    return app


def _warm_calendar() -> None:
    import exchange_calendars  # noqa: F401


def _sessions_between(newest: dt.date, session: dt.date, calendar: str) -> int:
    """Closed sessions of ``calendar`` after ``newest`` up to ``session``."""
    import exchange_calendars as xc

    if newest >= session:
        return 0
    cal = xc.get_calendar(calendar, start=newest, end=session)
    return len(cal.sessions_in_range(newest, session)) - 1
