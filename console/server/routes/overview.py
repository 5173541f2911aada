"""GET /api/v1/overview: the fleet in numbers, counted by the database (no rows loaded into Python)."""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

import time

from fastapi import APIRouter
from sqlalchemy import func, select
from sqlmodel import col

from console.server.deps import Caller, SessionDep, StateDep
from console.server.models import CountBy, Device, DeviceCount, OverviewPublic, Sighting, SightingTag
from console.server.routes import API

router = APIRouter(prefix=API, tags=["overview"])
TOP = 10
DAY = 24 * 3600.0


@router.get("/overview")
def overview(session: SessionDep, caller: Caller, state: StateDep) -> OverviewPublic:
    """Counts by type and by governed, sightings new in the last day, top providers, top ungoverned devices."""
    now = time.time()
    present = col(Sighting.gone).is_(False)
    devices = col(Device.revoked_at).is_(None)
    cutoff = now - state.settings.stale_after_seconds
    return OverviewPublic(
        sightings=session.scalar(select(func.count()).select_from(Sighting).where(present)) or 0,
        devices=session.scalar(select(func.count()).select_from(Device).where(devices)) or 0,
        stale_devices=session.scalar(select(func.count()).select_from(Device).where(
            devices, (col(Device.last_seen) < cutoff) | col(Device.last_seen).is_(None))) or 0,
        by_type=_count_by(session, col(Sighting.type), present),
        by_governed=[CountBy(key="governed" if k else "ungoverned", count=n)
                     for k, n in session.execute(select(Sighting.governed, func.count()).where(present)
                                                 .group_by(col(Sighting.governed)))],
        new_last_day=session.scalar(select(func.count()).select_from(Sighting)
                                    .where(present, col(Sighting.recorded_at) >= now - DAY)) or 0,
        top_providers=_top_providers(session),
        top_ungoverned_devices=_top_ungoverned(session),
    )  # fmt: skip


def _count_by(session: SessionDep, column: object, *where: object) -> list[CountBy]:
    query = select(column, func.count()).where(*where).group_by(column).order_by(func.count().desc())  # type: ignore[call-overload]
    return [CountBy(key=str(k), count=n) for k, n in session.execute(query)]


def _top_providers(session: SessionDep) -> list[CountBy]:
    n = func.count().label("n")
    query = (select(SightingTag.value, n)
             .join(Sighting, (col(Sighting.device_id) == col(SightingTag.device_id))
                   & (col(Sighting.id) == col(SightingTag.sighting_id)))
             .where(col(SightingTag.kind) == "provider", col(Sighting.gone).is_(False))
             .group_by(col(SightingTag.value)).order_by(n.desc(), col(SightingTag.value)).limit(TOP))
    return [CountBy(key=k, count=c) for k, c in session.execute(query)]


def _top_ungoverned(session: SessionDep) -> list[DeviceCount]:
    n = func.count().label("n")
    query = (select(Sighting.device_id, func.max(Sighting.hostname), n)
             .where(col(Sighting.gone).is_(False), col(Sighting.governed).is_(False))
             .group_by(col(Sighting.device_id)).order_by(n.desc(), col(Sighting.device_id)).limit(TOP))
    return [DeviceCount(device_id=d, hostname=h, count=c) for d, h, c in session.execute(query)]
