"""GET /api/v1/devices (with staleness, sighting counts and last status) and revoking a device."""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

import time
from typing import Annotated

import orjson
from fastapi import APIRouter, Query
from sqlalchemy import func, select
from sqlmodel import Session, col

from console.server import auth
from console.server.deps import AdminCaller, Caller, SessionDep, StateDep, refuse
from console.server.models import Device, DevicePublic, DevicesPublic, Sighting, iso
from console.server.routes import API
from endpoint.protocol import DeviceStatus

router = APIRouter(prefix=API, tags=["devices"])


@router.get("/devices")
def list_devices(
    session: SessionDep,
    caller: Caller,
    state: StateDep,
    stale: bool | None = None,
    skip: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DevicesPublic:
    """Devices by hostname; ``stale`` = not seen within the stale window (24 h unless configured)."""
    cutoff = time.time() - state.settings.stale_after_seconds
    conditions = []
    if stale is not None:
        fresh = col(Device.last_seen) >= cutoff
        conditions.append(~fresh | col(Device.last_seen).is_(None) if stale else fresh)
    count = session.scalar(select(func.count()).select_from(Device).where(*conditions)) or 0
    rows = list(session.scalars(select(Device).where(*conditions)
                                .order_by(col(Device.hostname), col(Device.id)).offset(skip).limit(limit)))
    counts = _sighting_counts(session, [r.id for r in rows])
    return DevicesPublic(data=[public(r, counts.get(r.id, 0), cutoff) for r in rows], count=count)


@router.post("/devices/{device_id}/revoke", responses={404: {"description": "no such device, or already revoked"}})
def revoke_device(device_id: str, caller: AdminCaller, state: StateDep) -> DevicePublic:
    """Revoke a device: its key stops working now and it cannot enroll again."""
    with state.db.write_session() as session:
        row = session.get(Device, device_id)
        key_id = row.key_id if row else None
        if not auth.revoke_device(session, device_id):
            raise refuse(404, "device_not_found")
        state.forget_device_key(key_id)
        revoked = session.get(Device, device_id)
        assert revoked is not None
        cutoff = time.time() - state.settings.stale_after_seconds
        return public(revoked, _sighting_counts(session, [device_id]).get(device_id, 0), cutoff)


def public(row: Device, sightings: int, cutoff: float) -> DevicePublic:
    return DevicePublic(
        id=row.id, host_identifier=row.host_identifier, hostname=row.hostname, os=row.os,
        os_version=row.os_version, arch=row.arch, agentroster_version=row.agentroster_version,
        enrolled_at=iso(row.enrolled_at), last_seen=iso(row.last_seen), revoked=row.revoked_at is not None,
        stale=row.last_seen is None or row.last_seen < cutoff, sightings=sightings,
        status=DeviceStatus.model_validate(orjson.loads(row.status or "{}")),
    )  # fmt: skip


def _sighting_counts(session: Session, device_ids: list[str]) -> dict[str, int]:
    if not device_ids:
        return {}
    query = (select(Sighting.device_id, func.count()).where(col(Sighting.device_id).in_(device_ids),
                                                            col(Sighting.gone).is_(False))
             .group_by(col(Sighting.device_id)))
    return {device_id: n for device_id, n in session.execute(query)}
