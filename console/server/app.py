"""The collector's FastAPI app: ``create_app(settings)`` wires the routers, limits, errors and metrics.

Every error answer is JSON with a reason: ``{"detail": {"reason": "...", ...}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

import contract
from console.server import messages, search, trend
from console.server.db import Database, migrate
from console.server.deps import State
from console.server.limits import BodyLimit, RateLimiter
from console.server.metrics import LatencyMiddleware, Metrics
from console.server.routes import (
    API,
    admin,
    agents,
    devices,
    enroll,
    fleet,
    health,
    inbox,
    me,
    overview,
    policy,
    registrations,
    reports,
    timeline,
    triage,
)
from console.server.settings import Settings
from console.server.writer import Writer
from contract.validation import REPORT

log = logging.getLogger("agentroster.server")
MAX_ERRORS_SHOWN = 20
CHECKPOINT_SECONDS = 0.2  # SQLite: how often the WAL is checkpointed, off the write path


def create_app(settings: Settings, *, run_migrations: bool = True) -> FastAPI:
    """The app on ``settings.database_url``; migrations run at start-up unless the caller ran them."""
    db = Database(settings.database_url, pool_size=settings.pool_size)
    writer = Writer(db)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        db.start_checkpoints(CHECKPOINT_SECONDS)
        if run_migrations:
            await run_in_threadpool(migrate, db)
        await run_in_threadpool(_prepare_search, db)
        writer.start()
        counting = asyncio.create_task(_count_trend(db))
        yield
        counting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await counting
        writer.stop()
        db.dispose()

    # /openapi.json is published without a token (it holds no data); the interactive pages are off:
    # they would load their scripts from a CDN and are one more unauthenticated page.
    app = FastAPI(title="agentroster collector", version=contract.__version__, lifespan=lifespan,
                  summary="Enrolls devices, ingests their reports of AI agents, serves the console.",
                  docs_url=None, redoc_url=None)
    metrics = Metrics()
    app.state.collector = State(settings=settings, db=db, metrics=metrics,
                                limiter=RateLimiter(settings.report_rate_per_second, settings.report_burst),
                                writer=writer,
                                enroll_limiter=RateLimiter(settings.enroll_rate_per_second, settings.enroll_burst),
                                failure_limiter=RateLimiter(settings.auth_failure_rate_per_second,
                                                            settings.auth_failure_burst))
    for router in (enroll.router, reports.router, fleet.router, agents.router, devices.router, overview.router,
                   policy.router, admin.router, health.router, triage.router, registrations.router, me.router):
        app.include_router(router)
    app.include_router(inbox.router)
    app.include_router(timeline.router)
    app.add_middleware(BodyLimit, report_path=f"{API}/reports", report_limit=settings.max_report_bytes,
                       default_limit=settings.max_body_bytes)
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _prepare_search(db: Database) -> None:
    try:
        with db.writing() as conn:
            search.prepare(conn)
    except SQLAlchemyError as exc:  # e.g. another collector building the same index: serve, searching as before
        log.warning("the free-text search index was not prepared: %s", type(exc).__name__)


async def _count_trend(db: Database) -> None:
    """Rewrite the current hour's trend row now and every ``trend.TREND_SECONDS``."""
    while True:
        try:
            await run_in_threadpool(trend.record, db)
        except SQLAlchemyError as exc:  # the database is away: the next round tries again
            log.warning("the ungoverned trend was not counted: %s", type(exc).__name__)
        await asyncio.sleep(trend.TREND_SECONDS)


def create_app_from_env() -> FastAPI:
    """The factory uvicorn workers call (``--factory``): settings come from AGENTROSTER_SERVER_*."""
    return create_app(Settings.from_env(), run_migrations=False)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail: Any = exc.detail
    if not isinstance(detail, dict):  # Starlette's own 404/405: give them a reason too
        detail = {"reason": str(detail).lower().replace(" ", "_"), "message": str(detail)}
    return JSONResponse({"detail": detail}, exc.status_code, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with a reason and a sentence; submitted values are not echoed (an enroll secret could be among
    them), nor names the API lacks (``messages.invalid``)."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse({"detail": {"reason": "invalid_json"}}, 400)
    names = getattr(request.app.state, "field_names", None)
    if names is None:  # read from the API's own schema once
        names = request.app.state.field_names = messages.field_names(request.app.openapi())
    return JSONResponse({"detail": messages.invalid(errors, names, shown=MAX_ERRORS_SHOWN)}, 422)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated schema, plus the Report body that the reports route reads by itself."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        report = REPORT.json_schema(ref_template="#/components/schemas/{model}")
        components.update(report.pop("$defs", {}))
        components["Report"] = report
        app.openapi_schema = schema
    return app.openapi_schema
