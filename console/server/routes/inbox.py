"""The device inbox: requests, decisions and questions travel back to the employee whose agent it is.

- ``GET /inbox?ack=N`` (device key): acknowledges this device's items up to id N (the highest the device
  has stored), and answers the ones after it, oldest first; until acknowledged an item is answered again.
  ``notify`` says whether the device's users are to be shown notifications (not when the policy's ladder
  only reports): the daemon keeps it, and the companion stays quiet while it is false.
- ``POST /inbox/questions`` (admin): ask the user of one sighting a question; it is delivered with the rest.
- ``GET /inbox/sent?device=…`` (admin or viewer): what was sent to a device, and whether it arrived.

Requests (``request_registration``), decisions on registrations, reviews due and the ladder's nudges are
gathered from the triage actions, registrations and sightings when the device asks
(``console/server/inbox.py``). A policy save that flips an agent's verdict writes a ``policy`` item for
its user itself (``console/server/routes/policy.py``).
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import ConfigDict, StringConstraints
from sqlalchemy import select
from sqlmodel import SQLModel, col

from console.server import inbox, triage
from console.server.deps import Caller, DeviceKey, StateDep, refuse
from console.server.models import Device, iso
from console.server.routes import API
from console.server.routes.triage import Triager, actor_of
from contract.bounds import NO_NUL
from contract.validation import SightingId

router = APIRouter(prefix=API, tags=["inbox"])
ItemId = Annotated[int, Query(ge=0, le=2**63 - 1)]
Question = Annotated[str, StringConstraints(min_length=1, max_length=4000, pattern=NO_NUL, strip_whitespace=True)]


class InboxItemPublic(SQLModel):
    """One message for the user of a sighting on this device."""

    id: int
    kind: Literal["request", "decision", "question", "notify", "remind", "review", "policy"]
    sighting_id: str
    sighting_name: str
    user: str | None  # the sighting's user as the collector holds it; the device checks it against its own
    # a decision's: approved or rejected; a nudge's: the ladder's rung when sent; review_due; a policy
    # change's: governed (the policy now covers the agent) or ungoverned (it no longer does)
    status: str | None
    text: str | None  # the admin's note, comment or question
    sent_by: str
    created_at: datetime


class InboxPublic(SQLModel):
    data: list[InboxItemPublic]
    acked: int  # items this request acknowledged
    more: bool  # more items wait after these: ask again, acknowledging these
    notify: bool = True  # show this device's users notifications (false: the policy's ladder only reports)


class InboxItemSent(InboxItemPublic):
    device_id: str
    delivered_at: datetime | None


class InboxSent(SQLModel):
    data: list[InboxItemSent]


class QuestionCreate(SQLModel):
    """An admin's question to the user of one sighting (``Which data systems does it touch?``)."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    device_id: Annotated[str, StringConstraints(max_length=32, pattern=NO_NUL)]
    sighting_id: Annotated[SightingId, StringConstraints(pattern=NO_NUL)]
    question: Question


@router.get("/inbox")
def read_inbox(key: DeviceKey, state: StateDep, ack: ItemId = 0,
               limit: Annotated[int, Query(ge=1, le=inbox.MAX_PAGE)] = inbox.MAX_PAGE) -> InboxPublic:
    """This device's items after ``ack``, having acknowledged those up to it."""
    # Devices ask after every report: read first, and take the store's write lock (one writer on
    # SQLite, shared with ingest) only when there is something to acknowledge or to gather.
    with state.db.engine.connect() as conn:
        device_id = conn.execute(select(col(Device.id)).where(col(Device.key_id) == key.key_id,
                                                              col(Device.revoked_at).is_(None))).scalar()
        if device_id is None:
            raise refuse(401, "invalid_device_key", reenroll=True)
        new = inbox.gatherable(conn, device_id)
        to_ack = inbox.unacknowledged(conn, device_id, ack)
        notify = inbox.notifies(conn)
    acked = 0
    if new or to_ack:
        with state.db.writing() as conn:
            acked = inbox.acknowledge(conn, device_id, ack)
            inbox.gather(conn, device_id)  # again, inside the write: what another request added is not added twice
    with state.db.engine.connect() as conn:
        rows = inbox.waiting(conn, device_id, ack, limit + 1)
    return InboxPublic(data=[_public(r) for r in rows[:limit]], acked=acked, more=len(rows) > limit, notify=notify)


@router.post("/inbox/questions", status_code=201,
             responses={404: {"description": "no such sighting on that device"}})
def ask_question(body: QuestionCreate, caller: Triager, state: StateDep) -> InboxItemSent:
    """Ask the user of a sighting a question; it reaches their device with its next inbox request."""
    with state.db.writing() as conn:
        item_id = inbox.ask(conn, body.device_id, body.sighting_id, body.question, actor_of(caller))
        if item_id is None:
            raise HTTPException(404, detail=triage.not_found(body.device_id, body.sighting_id).detail)
        row = inbox.items_of(conn, body.device_id, body.sighting_id, 1)[0]
    return _sent(row)


@router.get("/inbox/sent")
def list_sent(caller: Caller, state: StateDep, device: Annotated[str, Query(max_length=32, pattern=NO_NUL)],
              sighting: Annotated[str | None, Query(max_length=128, pattern=NO_NUL)] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 100) -> InboxSent:
    """What was sent to a device (about one sighting), newest first, and when each arrived."""
    with state.db.engine.connect() as conn:
        rows = inbox.items_of(conn, device, sighting, limit)
    return InboxSent(data=[_sent(r) for r in rows])


def _public(row: dict[str, Any]) -> InboxItemPublic:
    return InboxItemPublic(id=row["id"], kind=row["kind"], sighting_id=row["sighting_id"],
                           sighting_name=row["sighting_name"], user=row["user"], status=row["status"],
                           text=row["text"], sent_by=row["sent_by"], created_at=iso(row["created_at"]))


def _sent(row: dict[str, Any]) -> InboxItemSent:
    return InboxItemSent(**_public(row).model_dump(), device_id=row["device_id"],
                         delivered_at=iso(row["delivered_at"]))

