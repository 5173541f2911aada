"""Registrations: an employee's device registers one of its own sightings (``POST /api/v1/registrations``
with its device key); admins and viewers list them; admins approve or reject them.

A pending registration gives its sighting the ``pending`` flag instead of ``unregistered``; an approved
one governs it unless the sighting does more than was declared (``drift``, decided by
``console.governance``). An admin may ask a question instead (``POST /registrations/{id}/ask``: the
registration becomes ``more_information`` and the question goes to the employee through the device
inbox); the lifecycle (``review_due`` after the policy's re-attestation period) is console/server/lifecycle.py.
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

import time
from typing import Annotated, Literal, cast

from fastapi import APIRouter, HTTPException, Path, Query
from sqlalchemy import func, select
from sqlmodel import Session, col

from console.server import auth, inbox, ingest_store, lifecycle, triage
from console.server.deps import DeviceKey, Reader, SessionDep, StateDep, refuse
from console.server.models import (
    Device,
    Registration,
    RegistrationCreate,
    RegistrationDecision,
    RegistrationPublic,
    RegistrationQuestion,
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
    status: Literal["pending", "approved", "rejected", "superseded", "more_information", "review_due"] | None = None,
    device: Annotated[str | None, Query(max_length=32)] = None,
    sighting: Annotated[str | None, Query(max_length=128)] = None,
    skip: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> RegistrationsPublic:
    """Registrations, newest first: every device's for admins and viewers, its own for a device key.
    ``status=review_due``: the approved ones whose re-attestation period has passed."""
    settings = lifecycle.settings(session.connection())
    wanted = (lifecycle.review_due_condition(settings, time.time(), col(Registration.status),
                                             col(Registration.decided_at))
              if status == "review_due" else col(Registration.status) == status if status else None)
    conditions = [c for c in (wanted,
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
    return RegistrationsPublic(data=[public(r, settings) for r in rows], count=count)


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


@router.post("/registrations/{registration_id}/ask",
             responses={404: {"description": "no such registration"}, 409: {"description": "not pending"}})
def ask_registration(registration_id: RegistrationId, body: RegistrationQuestion, caller: Triager,
                     state: StateDep) -> RegistrationPublic:
    """Ask the employee for more information about a pending registration: it becomes
    ``more_information`` and the question reaches them through their device's inbox; their next
    registration of the agent answers it (and supersedes this one)."""
    try:
        with state.db.writing() as conn:
            triage.lock(conn, ingest_store.POLICY_LOCK_ID)
            device_id, sighting_id = triage.ask(conn, registration_id, actor_of(caller), body.question)
            inbox.ask(conn, device_id, sighting_id, body.question, actor_of(caller))
    except triage.TriageError as exc:
        raise HTTPException(exc.status, detail=exc.detail) from None
    return _read(state, registration_id)


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
        return public(row, lifecycle.settings(session.connection()))


def public(row: Registration, settings: lifecycle.Settings | None = None,
           now: float | None = None) -> RegistrationPublic:
    """A registration as the API shows it; ``settings``: the policy's, for when it comes up for review."""
    assert row.id is not None  # a stored row
    due = lifecycle.review_due_at(settings, row.status, row.decided_at) if settings else None
    now = time.time() if now is None else now
    return RegistrationPublic(
        id=row.id, device_id=row.device_id, sighting_id=row.sighting_id, owner=row.owner, purpose=row.purpose,
        business_process=row.business_process, providers=row.providers, tools=row.tools,
        data_systems=row.data_systems, autonomy=row.autonomy, status=cast(RegistrationStatus, row.status), created_at=iso(row.created_at),
        decided_at=iso(row.decided_at), decided_by=row.decided_by, decision_note=row.decision_note,
        question=row.question, asked_at=iso(row.asked_at), asked_by=row.asked_by, review_due_at=iso(due),
        review_due=due is not None and due <= now,
    )  # fmt: skip
