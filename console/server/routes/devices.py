"""GET /api/v1/devices (with staleness, sighting counts, users, last status and identity conflicts), revoking
a device, and accepting a device that enrolled as an identity conflict."""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

import time
from typing import Annotated

import orjson
from fastapi import APIRouter, Query
from sqlalchemy import ColumnElement, func, select
from sqlmodel import Session, SQLModel, col

from console.server import auth
from console.server.deps import AdminCaller, Caller, SessionDep, StateDep, refuse
from console.server.models import Device, DevicePublic, DevicesPublic, Sighting, iso
from console.server.routes import API
from contract.validation import DEVICE_STATUS

router = APIRouter(prefix=API, tags=["devices"])
USERS_SHOWN = 20  # users listed per device row


def incomplete_scan() -> ColumnElement[bool]:
    """Its last report said some units of its scan could not be processed (the overview counts these)."""
    return (col(Device.units_failed) > 0) | (col(Device.degraded) != "")


@router.get("/devices")
def list_devices(
    session: SessionDep,
    caller: Caller,
    state: StateDep,
    stale: bool | None = None,
    incomplete: bool | None = None,
    skip: Annotated[int, Query(ge=0, le=10_000_000)] = 0,  # an OFFSET; far beyond any fleet, within BIGINT
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DevicesPublic:
    """Devices by hostname; ``stale`` = not seen within the stale window (24 h unless configured);
    ``incomplete`` = its last report said some units of its scan could not be processed."""
    cutoff = time.time() - state.settings.stale_after_seconds
    conditions = []
    if stale is not None:
        fresh = col(Device.last_seen) >= cutoff
        conditions.append(~fresh | col(Device.last_seen).is_(None) if stale else fresh)
    if incomplete is not None:
        conditions.append(incomplete_scan() if incomplete else ~incomplete_scan())
    count = session.scalar(select(func.count()).select_from(Device).where(*conditions)) or 0
    rows = list(session.scalars(select(Device).where(*conditions)
                                .order_by(col(Device.hostname), col(Device.id)).offset(skip).limit(limit)))
    ids = [r.id for r in rows]
    counts, users = _sighting_counts(session, ids), users_of(session, ids)
    return DevicesPublic(data=[public(r, counts.get(r.id, 0), cutoff, users.get(r.id, [])) for r in rows],
                         count=count)


class DeviceCompletion(SQLModel):
    id: str
    hostname: str


@router.get("/devices/complete")
def complete_devices(
    session: SessionDep,
    caller: Caller,
    prefix: Annotated[str, Query(min_length=1, max_length=256, pattern=r"^[^\x00]*$")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[DeviceCompletion]:
    """Devices whose hostname starts with ``prefix`` (in any case; ``%`` and ``_`` are themselves), by
    hostname, for completing a device filter; revoked devices are left out. A fleet has thousands of
    devices: the device table is read whole, a few milliseconds."""
    rows = session.execute(select(col(Device.id), col(Device.hostname))
                           .where(col(Device.hostname).istartswith(prefix, autoescape=True),
                                  col(Device.revoked_at).is_(None))
                           .order_by(col(Device.hostname), col(Device.id)).limit(limit))
    return [DeviceCompletion(id=i, hostname=h) for i, h in rows]


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


@router.post("/devices/{device_id}/accept-identity",
             responses={404: {"description": "no such device, or it is no identity conflict"}})
def accept_identity(device_id: str, caller: AdminCaller, state: StateDep) -> DevicePublic:
    """Accept a device flagged as an identity conflict: it takes the identity it claimed (reports keep
    coming under its own key), and the device that held the identity is revoked."""
    with state.db.write_session() as session:
        accepted = auth.accept_identity(session, device_id)
        if accepted is None:
            raise refuse(404, "no_identity_conflict")
        row, revoked_key = accepted
        state.forget_device_key(revoked_key)
        cutoff = time.time() - state.settings.stale_after_seconds
        return public(row, _sighting_counts(session, [device_id]).get(device_id, 0), cutoff)


def public(row: Device, sightings: int, cutoff: float, users: list[str] | None = None) -> DevicePublic:
    return DevicePublic(
        id=row.id, host_identifier=row.host_identifier, hardware_id=row.hardware_id,
        identity_conflict=row.identity_conflict, hostname=row.hostname, os=row.os,
        os_version=row.os_version, arch=row.arch, agentroster_version=row.agentroster_version,
        enrolled_at=iso(row.enrolled_at), last_seen=iso(row.last_seen), revoked=row.revoked_at is not None,
        stale=row.last_seen is None or row.last_seen < cutoff, sightings=sightings, users=users or [],
        status=DEVICE_STATUS.validate_python(orjson.loads(row.status or "{}")),
    )  # fmt: skip


def users_of(session: Session, device_ids: list[str]) -> dict[str, list[str]]:
    """Per device, the distinct users its present sightings run under, sorted, at most ``USERS_SHOWN``
    (a machine-wide install's "" is left out)."""
    if not device_ids:
        return {}
    query = (select(col(Sighting.device_id), col(Sighting.user)).distinct()
             .where(col(Sighting.device_id).in_(device_ids), col(Sighting.gone).is_(False), col(Sighting.user) != "")
             .order_by(col(Sighting.device_id), col(Sighting.user)))
    users: dict[str, list[str]] = {}
    for device_id, user in session.execute(query):
        shown = users.setdefault(device_id, [])
        if len(shown) < USERS_SHOWN:
            shown.append(user)
    return users


def _sighting_counts(session: Session, device_ids: list[str]) -> dict[str, int]:
    if not device_ids:
        return {}
    query = (select(col(Sighting.device_id), func.count()).where(col(Sighting.device_id).in_(device_ids),
                                                            col(Sighting.gone).is_(False))
             .group_by(col(Sighting.device_id)))
    return {device_id: n for device_id, n in session.execute(query)}
