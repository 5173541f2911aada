"""/healthz (no authentication: load balancers call it) and /metrics (admin or viewer token)."""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

import time

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col

from console.server import search
from console.server.deps import Caller, SessionDep, StateDep
from console.server.models import Device, Sighting

router = APIRouter(tags=["operations"])


@router.get("/healthz", responses={503: {"description": "the database does not answer"}})
def healthz(state: StateDep) -> JSONResponse:
    """200 when the database answers a query, 503 otherwise."""
    try:
        ok = state.db.ping()
        kind = search.kind(state.db.engine) if ok else ""
    except SQLAlchemyError:
        ok = False
    if ok:
        # what serves free text: "fts5_trigram", "pg_trgm", or "scan" (no trigram index on this store)
        return JSONResponse({"status": "ok", "database": "ok", "search": kind})
    return JSONResponse({"status": "error", "database": "unreachable", "reason": "database_unreachable"}, 503)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
def metrics(session: SessionDep, caller: Caller, state: StateDep) -> Response:
    """Reports by result, devices, sightings, request latency (Prometheus text format 0.0.4)."""
    enrolled = col(Device.revoked_at).is_(None)
    cutoff = time.time() - state.settings.stale_after_seconds
    devices = session.scalar(select(func.count()).select_from(Device).where(enrolled)) or 0
    stale = session.scalar(select(func.count()).select_from(Device).where(
        enrolled, (col(Device.last_seen) < cutoff) | col(Device.last_seen).is_(None))) or 0
    sightings = session.scalar(select(func.count()).select_from(Sighting).where(col(Sighting.gone).is_(False))) or 0
    text = state.metrics.render(devices=devices, stale_devices=stale, sightings=sightings)
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")
