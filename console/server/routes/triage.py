"""POST /api/v1/agents/{device_id}/{sighting_id}/actions and POST /api/v1/agents/actions: admins triage.

An action (approve, assign_owner, request_registration, false_positive, note) is stored with who took
it and when, and applied in the same transaction: approving governs the sighting (unless it drifts
from what it did when approved), a false positive is hidden from the roster, ``assign_owner`` sets
its owner. A bulk request is all or nothing: one unknown target and nothing is stored.
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path

from console.server import ingest_store, triage
from console.server.deps import Caller, StateDep, refuse
from console.server.models import (
    ApiToken,
    TriageActionCreate,
    TriageActionPublic,
    TriageApplied,
    TriageBulkCreate,
    iso,
)
from console.server.routes import API

router = APIRouter(prefix=API, tags=["triage"])
DeviceId = Annotated[str, Path(max_length=32)]
SightingId = Annotated[str, Path(max_length=128)]


def get_triager(caller: Caller) -> ApiToken:
    if caller.role != "admin":
        raise refuse(403, "viewers_cannot_triage", message="viewers cannot triage", role=caller.role)
    return caller


Triager = Annotated[ApiToken, Depends(get_triager)]


def actor_of(caller: ApiToken) -> str:
    return caller.name or f"token {caller.id}"


@router.post("/agents/actions", status_code=201,
             responses={404: {"description": "a target is unknown; nothing was stored"}})
def triage_many(body: TriageBulkCreate, caller: Triager, state: StateDep) -> TriageApplied:
    """One action on up to 1,000 sightings, all or nothing."""
    action = TriageActionCreate(action=body.action, owner=body.owner, note=body.note)
    records = _apply(state, [(t.device_id, t.sighting_id) for t in body.targets], action, actor_of(caller))
    return TriageApplied(applied=len(records), actions=[public(r) for r in records])


@router.post("/agents/{device_id}/{sighting_id}/actions", status_code=201,
             responses={404: {"description": "no such sighting"}})
def triage_one(device_id: DeviceId, sighting_id: SightingId, body: TriageActionCreate, caller: Triager,
               state: StateDep) -> TriageActionPublic:
    """One action on one sighting."""
    return public(_apply(state, [(device_id, sighting_id)], body, actor_of(caller))[0])


def _apply(state: StateDep, keys: list[triage.Key], body: TriageActionCreate, actor: str) -> list[dict[str, Any]]:
    _check(body)
    try:
        with state.db.writing() as conn:
            triage.lock(conn, ingest_store.POLICY_LOCK_ID)
            return triage.apply_actions(conn, keys, body, actor)
    except triage.TriageError as exc:  # raised inside the transaction: rolled back, nothing stored
        raise HTTPException(exc.status, detail=exc.detail) from None


def _check(body: TriageActionCreate) -> None:
    if body.action == "assign_owner" and not body.owner:
        raise refuse(422, "owner_required", message="assign_owner needs an owner")
    if body.action != "assign_owner" and body.owner:
        raise refuse(422, "owner_not_allowed", message="only assign_owner takes an owner")
    if body.action == "note" and not (body.note or "").strip():
        raise refuse(422, "note_required", message="a note needs its text")


def public(record: dict[str, Any]) -> TriageActionPublic:
    return TriageActionPublic(**{**record, "at": iso(record["at"])})
