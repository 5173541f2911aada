"""Intent over time (console/server/timeline.py) over the API:

- ``GET /agents/{device_id}/{sighting_id}/timeline`` (admin or viewer): the sighting's behaviour facts
  (provider; mcp_server present in its config and mcp_server_used by a tool server of its chain; mcp_tool and
  tool; system; autonomy; first seen, last seen, gone) and its drift events, newest first.
- ``GET /drift?since=…`` (admin or viewer): the fleet's drift events that began at or after ``since`` (an
  ISO 8601 time), newest first; ``status=open`` for those still waiting.
- ``POST /agents/{device_id}/{sighting_id}/drift/{event_id}/accept`` (admin): accept what the agent now
  does; its declaration is widened to cover it (audited as ``accept_drift``) and it is governed again.
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from sqlalchemy import select
from sqlmodel import SQLModel, col

from console.server import ingest_store, timeline, triage
from console.server.deps import Caller, StateDep, refuse
from console.server.models import Sighting, iso
from console.server.routes import API
from console.server.routes.triage import DeviceId, SightingId, Triager, actor_of

router = APIRouter(prefix=API, tags=["timeline"])
EventId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class FactPublic(SQLModel):
    # mcp_server: present in its config; mcp_server_used: run or called; mcp_tool: server/tool a config names;
    # tool: a tool its code declares
    kind: Literal["provider", "mcp_server", "mcp_server_used", "mcp_tool", "tool", "system", "autonomy"]
    value: str
    first_seen: datetime
    last_seen: datetime  # for a present fact, when its sighting was last seen
    gone_at: datetime | None  # when a report first no longer showed it
    sighting_id: str | None = None  # mcp_server_used: the tool server sighting that shows it used


class DriftAdded(SQLModel):
    """Exactly what the sighting does beyond its declaration."""

    providers: list[str]
    mcp_servers: list[str]
    tools: list[str] = []  # server/tool or a tool of its code, where the declaration names tools (older events: none)
    systems: list[str]
    autonomy: bool  # runs autonomously, declared supervised
    via: list[str] = []  # the sub-agents or tool servers of its chain that do it (empty: the sighting itself)


class DriftEventPublic(SQLModel):
    id: int
    device_id: str
    sighting_id: str
    began_at: datetime
    added: DriftAdded
    summary: str  # the difference in one line
    status: Literal["open", "accepted", "resolved"]
    ended_at: datetime | None
    ended_by: str | None  # who accepted it


class TimelinePublic(SQLModel):
    facts: list[FactPublic]
    events: list[DriftEventPublic]


class DriftEventsPublic(SQLModel):
    data: list[DriftEventPublic]


@router.get("/agents/{device_id}/{sighting_id}/timeline", responses={404: {"description": "no such sighting"}})
def read_timeline(device_id: DeviceId, sighting_id: SightingId, caller: Caller, state: StateDep) -> TimelinePublic:
    """The sighting's behaviour facts, oldest first, and its drift events, newest first."""
    with state.db.engine.connect() as conn:
        seen = conn.execute(select(col(Sighting.last_seen)).where(col(Sighting.device_id) == device_id,
                                                                  col(Sighting.id) == sighting_id)).first()
        if seen is None:
            raise refuse(404, "sighting_not_found")
        facts = timeline.facts(conn, (device_id, sighting_id))
        events = timeline.events(conn, (device_id, sighting_id))
    return TimelinePublic(facts=[_fact(f, seen[0]) for f in facts], events=[_event(e) for e in events])


@router.get("/drift")
def list_drift(caller: Caller, state: StateDep, since: datetime | None = None,
               status: Literal["open", "accepted", "resolved"] | None = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> DriftEventsPublic:
    """The fleet's drift events that began at or after ``since``, newest first."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)  # a time without a zone is the collector's: UTC, never its local time
    with state.db.engine.connect() as conn:
        events = timeline.events(conn, since=since.timestamp() if since else None, status=status, limit=limit)
    return DriftEventsPublic(data=[_event(e) for e in events])


@router.post("/agents/{device_id}/{sighting_id}/drift/{event_id}/accept",
             responses={404: {"description": "no such drift event on that sighting"},
                        409: {"description": "the event is closed, or nothing is declared to widen"}})
def accept_drift(device_id: DeviceId, sighting_id: SightingId, event_id: EventId, caller: Triager,
                 state: StateDep) -> DriftEventPublic:
    """Accept the new behaviour: the declaration covers it from now on, and the sighting is governed again."""
    try:
        with state.db.writing() as conn:
            triage.lock(conn, ingest_store.POLICY_LOCK_ID)
            event = timeline.accept(conn, (device_id, sighting_id), event_id, actor_of(caller))
    except triage.TriageError as exc:  # raised inside the transaction: rolled back, nothing stored
        raise HTTPException(exc.status, detail=exc.detail) from None
    return _event(event)


def _fact(row: dict[str, Any], sighting_seen: float) -> FactPublic:
    seen = row.get("seen", sighting_seen)  # a tool server's use: that sighting's own last_seen
    last = row["last_seen"] if row["gone_at"] is not None else max(row["last_seen"], seen)
    return FactPublic(kind=row["kind"], value=row["value"], first_seen=iso(row["first_seen"]), last_seen=iso(last),
                      gone_at=iso(row["gone_at"]), sighting_id=row["sighting_id"] if "seen" in row else None)


def _event(row: dict[str, Any]) -> DriftEventPublic:
    return DriftEventPublic(id=row["id"], device_id=row["device_id"], sighting_id=row["sighting_id"],
                            began_at=iso(row["began_at"]), added=DriftAdded(**row["added"]),
                            summary=timeline.describe(row["added"]), status=row["status"],
                            ended_at=iso(row["ended_at"]), ended_by=row["ended_by"])
