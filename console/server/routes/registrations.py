"""Registrations: an employee's device registers one of its own sightings (``POST /api/v1/registrations``
with its device key); admins and viewers list them; admins approve or reject them.

A pending registration gives its sighting the ``pending`` flag instead of ``unregistered``; an approved
one governs it unless the sighting does more than was declared (``drift``, decided by
``console.governance``).
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

from typing import Annotated, Literal, cast

from fastapi import APIRouter, HTTPException, Path, Query
from sqlalchemy import func, select
from sqlmodel import Session, col

from console.server import auth, ingest_store, triage
from console.server.deps import DeviceKey, Reader, SessionDep, StateDep, refuse
from console.server.models import (
    Device,
    Registration,
    RegistrationCreate,
    RegistrationDecision,
    RegistrationPublic,
    RegistrationsPublic,
    RegistrationStatus,
    iso,
)
from console.server.routes import API
from console.server.routes.triage import Triager, actor_of

router = APIRouter(prefix=API, tags=["registrations"])
RegistrationId = Annotated[int, Path(ge=1, le=2**31 - 1)]  # an INTEGER column on PostgreSQL
MAX_LIMIT = 500


@router.post("/registrations", status_code=201,
             responses={404: {"description": "no such sighting on this device"}})
def create_registration(body: RegistrationCreate, key: DeviceKey, state: StateDep) -> RegistrationPublic:
    """Register an agent of this device (a device registers only its own sightings)."""
    with state.db.writing() as conn:
        device_id = conn.execute(select(col(Device.id)).where(col(Device.key_id) == key.key_id,
                                                         col(Device.revoked_at).is_(None))).scalar()
        if device_id is None:
            raise refuse(401, "invalid_device_key", reenroll=True)
        triage.lock(conn, ingest_store.POLICY_LOCK_ID)
        try:
            new_id = triage.register(conn, device_id, body.model_dump())
        except triage.TriageError as exc:
            raise HTTPException(exc.status, detail=exc.detail) from None
    return _read(state, new_id)


@router.get("/registrations")
def list_registrations(
    session: SessionDep,
    reader: Reader,
    status: Literal["pending", "approved", "rejected", "superseded"] | None = None,
    device: Annotated[str | None, Query(max_length=32)] = None,
    sighting: Annotated[str | None, Query(max_length=128)] = None,
    skip: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> RegistrationsPublic:
    """Registrations, newest first: every device's for admins and viewers, its own for a device key."""
    conditions = [c for c in (col(Registration.status) == status if status else None,
                              col(Registration.device_id) == device if device else None,
                              col(Registration.sighting_id) == sighting if sighting else None) if c is not None]
    if isinstance(reader, auth.Presented):
        own = session.scalar(select(col(Device.id)).where(col(Device.key_id) == reader.key_id,
                                                     col(Device.revoked_at).is_(None)))
        if own is None:
            raise refuse(401, "invalid_device_key", reenroll=True)
        conditions.append(col(Registration.device_id) == own)
    count = session.scalar(select(func.count()).select_from(Registration).where(*conditions)) or 0
    rows = session.scalars(select(Registration).where(*conditions).order_by(col(Registration.id).desc())
                           .offset(skip).limit(limit))
    return RegistrationsPublic(data=[public(r) for r in rows], count=count)


@router.post("/registrations/{registration_id}/approve",
             responses={404: {"description": "no such registration"}, 409: {"description": "not pending"}})
def approve_registration(registration_id: RegistrationId, caller: Triager, state: StateDep,
                         body: RegistrationDecision | None = None) -> RegistrationPublic:
    return _decide(state, registration_id, True, actor_of(caller), body)


@router.post("/registrations/{registration_id}/reject",
             responses={404: {"description": "no such registration"}, 409: {"description": "not pending"}})
def reject_registration(registration_id: RegistrationId, caller: Triager, state: StateDep,
                        body: RegistrationDecision | None = None) -> RegistrationPublic:
    return _decide(state, registration_id, False, actor_of(caller), body)


def _decide(state: StateDep, registration_id: int, approve: bool, actor: str,
            body: RegistrationDecision | None) -> RegistrationPublic:
    try:
        with state.db.writing() as conn:
            triage.lock(conn, ingest_store.POLICY_LOCK_ID)
            triage.decide(conn, registration_id, approve, actor, body.note if body else None)
    except triage.TriageError as exc:
        raise HTTPException(exc.status, detail=exc.detail) from None
    return _read(state, registration_id)


def _read(state: StateDep, registration_id: int) -> RegistrationPublic:
    with Session(state.db.engine) as session:
        row = session.get(Registration, registration_id)
        assert row is not None
        return public(row)


def public(row: Registration) -> RegistrationPublic:
    assert row.id is not None  # a stored row
    return RegistrationPublic(
        id=row.id, device_id=row.device_id, sighting_id=row.sighting_id, owner=row.owner, purpose=row.purpose,
        business_process=row.business_process, providers=row.providers, tools=row.tools,
        data_systems=row.data_systems, autonomy=row.autonomy, status=cast(RegistrationStatus, row.status), created_at=iso(row.created_at),
        decided_at=iso(row.decided_at), decided_by=row.decided_by, decision_note=row.decision_note,
    )  # fmt: skip
