"""Admins triage: one sighting (``POST /agents/{device_id}/{sighting_id}/actions``), a list of up to 1,000
(``POST /agents/actions``) or every sighting a roster filter matches (``POST /agents/actions/filter``,
with a dry run that only counts); ``POST /agents/actions/undo`` undoes the last action and
``GET /agents/actions`` lists the actions, newest first (the audit log).

An action (approve, assign_owner, request_registration, false_positive, note) is stored with who took
it and when, and applied in the same transaction: approving governs the sighting (unless it drifts
from what it did when approved), a false positive is hidden from the roster, ``assign_owner`` sets
its owner. Each request is all or nothing (one unknown target and nothing is stored) and is audited as
one action with its count (``triage_batch``), keeping each sighting's triage from before for the undo.
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

import time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import ConfigDict, Field
from sqlmodel import Session, SQLModel

from console.server import ingest, ingest_store, roster, triage
from console.server.deps import Caller, StateDep, refuse
from console.server.models import (
    ApiToken,
    TriageActionCreate,
    TriageActionPublic,
    TriageApplied,
    TriageBatchPublic,
    TriageBulkCreate,
    TriageFilterApplied,
    TriageUndone,
    iso,
)
from console.server.routes import API
from contract.bounds import NO_NUL

router = APIRouter(prefix=API, tags=["triage"])
# no NUL: PostgreSQL text cannot hold one (a 500 there, where a 422 with a sentence is right)
DeviceId = Annotated[str, Path(max_length=32, pattern=NO_NUL)]
SightingId = Annotated[str, Path(max_length=128, pattern=NO_NUL)]


def get_triager(caller: Caller) -> ApiToken:
    if caller.role != "admin":
        raise refuse(403, "viewers_cannot_triage", message="viewers cannot triage", role=caller.role)
    return caller


Triager = Annotated[ApiToken, Depends(get_triager)]


def actor_of(caller: ApiToken) -> str:
    return caller.name or f"token {caller.id}"


class TriageFilterCreate(TriageActionCreate):
    """One action on every sighting ``filter`` matches (the roster's filters, as ``GET /agents`` takes them).
    ``dry_run``: only count them, for the confirmation. ``expected``: the count the person confirmed; if
    the filter matches another number now, nothing is done (409) and the answer says how many it matches."""

    model_config = ConfigDict(extra="forbid")

    filter: roster.RosterFilter = Field(default_factory=roster.RosterFilter)
    dry_run: bool = False
    expected: int | None = Field(default=None, ge=0, le=100_000_000)


class UndoRequest(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    action_id: int | None = Field(default=None, ge=1, le=2**53)


@router.post("/agents/actions", status_code=201,
             responses={404: {"description": "a target is unknown; nothing was stored"}})
def triage_many(body: TriageBulkCreate, caller: Triager, state: StateDep) -> TriageApplied:
    """One action on up to 1,000 sightings, all or nothing."""
    action = TriageActionCreate(action=body.action, owner=body.owner, note=body.note)
    records = _apply(state, [(t.device_id, t.sighting_id) for t in body.targets], action, actor_of(caller))
    return TriageApplied(applied=len(records), actions=[public(r) for r in records],
                         action_id=records[0]["batch_id"] if records else None)


@router.post("/agents/actions/filter", responses={
    200: {"description": "applied, or (dry_run) counted"},
    409: {"description": "the filter matches another count than the one confirmed; nothing was done"}})
def triage_filter(body: TriageFilterCreate, caller: Triager, state: StateDep) -> TriageFilterApplied:
    """One action on every sighting the filter matches, in one transaction, audited as one action with its
    count; ``dry_run`` answers the count alone."""
    action = TriageActionCreate(action=body.action, owner=body.owner, note=body.note)
    if body.dry_run:
        with state.db.session() as session:
            count = roster.Plan(session, body.filter).count()
        return TriageFilterApplied(count=count, dry_run=True, action_id=None,
                                   message=f"{_asks(body.action, count)}? Confirm to go ahead.")
    _check(action)
    actor = actor_of(caller)
    try:
        with state.db.writing() as conn:
            triage.lock(conn, ingest_store.POLICY_LOCK_ID)
            session = Session(bind=conn)
            plan = roster.Plan(session, body.filter)
            if body.expected is not None:
                now_matching = plan.count()
                if now_matching != body.expected:
                    raise triage.TriageError(409, "count_changed", count=now_matching, expected=body.expected,
                                             message=f"The filter matches {_sightings(now_matching)} now, not "
                                                     f"{body.expected:,}: confirm the new count and try again.")
            # the audit keeps the filter scrubbed: a key typed into the free-text box is not stored
            filter_json = orjson.dumps(ingest.scrub(body.filter.params())).decode()
            batch_id = triage.open_batch(conn, action, actor, 0, time.time(), filter_json)
            count, touched = 0, list[triage.Key]()  # re-assessed once for the whole action, chains and all
            for keys in plan.chunks():
                count += len(triage.apply_actions(conn, keys, action, actor, batch_id=batch_id, checked=True,
                                                  deferred=touched))
            triage.reassess(conn, touched)
            triage.count_batch(conn, batch_id, count)
    except triage.TriageError as exc:  # raised inside the transaction: rolled back, nothing stored
        raise HTTPException(exc.status, detail=exc.detail) from None
    return TriageFilterApplied(count=count, dry_run=False, action_id=batch_id,
                               message=f"{_did(body.action, count)}. Undo is possible until the next action.")


@router.post("/agents/actions/undo", responses={409: {"description": "nothing to undo, or not the last action"}})
def undo_last(caller: Triager, state: StateDep, body: UndoRequest | None = None) -> TriageUndone:
    """Undo the last triage action: each sighting it changed gets back its state, owner and approval."""
    try:
        with state.db.writing() as conn:
            triage.lock(conn, ingest_store.POLICY_LOCK_ID)
            action_id, restored = triage.undo(conn, actor_of(caller), body.action_id if body else None)
    except triage.TriageError as exc:
        raise HTTPException(exc.status, detail=exc.detail) from None
    return TriageUndone(action_id=action_id, restored=restored,
                        message=f"Undid action #{action_id}: {_sightings(restored)} restored.")


@router.get("/agents/actions")
def list_actions(caller: Caller, state: StateDep,
                 limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[TriageBatchPublic]:
    """The triage actions, newest first, each with who took it, when, its count and its filter."""
    with state.db.engine.connect() as conn:
        rows = triage.batches(conn, limit)
    return [TriageBatchPublic(**{**r, "at": iso(r["at"]), "undone_at": iso(r["undone_at"]),
                                 "filter": orjson.loads(r["filter"]) if r["filter"] else None}) for r in rows]


def _sightings(n: int) -> str:
    return f"{n:,} sighting" + ("" if n == 1 else "s")


#: (what the confirmation asks, what was done), {n} the sightings
_SAYS = {"approve": ("Approve {n}", "Approved {n}"),
         "assign_owner": ("Assign an owner to {n}", "Assigned an owner to {n}"),
         "request_registration": ("Ask for a registration of {n}", "Asked for a registration of {n}"),
         "false_positive": ("Mark {n} as false positives", "Marked {n} as false positives"),
         "note": ("Add a note to {n}", "Added a note to {n}")}


def _asks(action: str, count: int) -> str:
    return _SAYS[action][0].format(n=_sightings(count))


def _did(action: str, count: int) -> str:
    return _SAYS[action][1].format(n=_sightings(count))


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
