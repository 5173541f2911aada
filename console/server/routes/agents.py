"""GET /api/v1/agents (filtered, sorted, keyset-paged on the server) and one agent's detail.

Every filter is a bound parameter: free text goes through ``LIKE ... ESCAPE`` with ``%`` and ``_``
escaped, so "' OR 1=1 --" is looked for literally. Pages are keyset pages over (sort column,
device_id, id), each with its index, so page 1,000 costs what page 1 costs.
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

import base64
import binascii
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query
from sqlalchemy import ColumnElement, and_, exists, func, or_, select, tuple_
from sqlmodel import col

from console.server.deps import Caller, SessionDep, refuse
from console.server.models import (
    Sighting,
    SightingDetail,
    SightingHistory,
    SightingHistoryPublic,
    SightingPublic,
    SightingsPublic,
    SightingTag,
    iso,
)
from console.server.routes import API
from endpoint.protocol import Flag, SightingType

router = APIRouter(prefix=API, tags=["agents"])

SortKey = Literal["name", "type", "user", "device", "last_seen", "first_seen", "confidence"]
_SORT_COLUMN = {"name": "name", "type": "type", "user": "user", "device": "hostname", "last_seen": "last_seen",
                "first_seen": "first_seen", "confidence": "confidence"}  # fmt: skip
MAX_LIMIT = 500
HISTORY_SHOWN = 200
Text = Annotated[str | None, Query(max_length=256)]


@router.get("/agents")
def list_agents(
    session: SessionDep,
    caller: Caller,
    type: SightingType | None = None,
    flag: Flag | None = None,
    governed: bool | None = None,
    device: Text = None,
    user: Annotated[str | None, Query(max_length=256, description='"" for machine-wide installs')] = None,
    provider: Text = None,
    signature: Text = None,
    q: Annotated[str | None, Query(max_length=256, description="free text: name, signature, user, hostname")] = None,
    state: Literal["present", "gone", "all"] = "present",
    sort: SortKey = "last_seen",
    order: Literal["asc", "desc"] = "desc",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> SightingsPublic:
    """The roster, one page at a time; ``next_cursor`` fetches the next page with the same filters."""
    conditions = _conditions(type=type, flag=flag, governed=governed, device=device, user=user,
                             provider=provider, signature=signature, q=q, state=state)
    count = session.scalar(select(func.count()).select_from(Sighting).where(*conditions)) or 0
    sort_col = getattr(Sighting, _SORT_COLUMN[sort])
    keys = (sort_col, col(Sighting.device_id), col(Sighting.id))
    query = select(Sighting).where(*conditions)
    if cursor:
        position = tuple_(*_decode(cursor, sort, order))
        query = query.where(tuple_(*keys) > position if order == "asc" else tuple_(*keys) < position)
    query = query.order_by(*(k.asc() if order == "asc" else k.desc() for k in keys)).limit(limit + 1)
    rows = list(session.scalars(query))
    next_cursor = _encode(rows[limit - 1], sort, order) if len(rows) > limit else None
    return SightingsPublic(data=[public(r) for r in rows[:limit]], count=count, next_cursor=next_cursor)


@router.get("/agents/{device_id}/{sighting_id}", responses={404: {"description": "no such sighting"}})
def get_agent(device_id: str, sighting_id: str, session: SessionDep, caller: Caller) -> SightingDetail:
    """One sighting with its evidence, processes, configs, MCP servers, endpoints, credentials and history."""
    row = session.get(Sighting, (device_id, sighting_id))
    if row is None:
        raise refuse(404, "sighting_not_found")
    history = session.scalars(select(SightingHistory)
                              .where(SightingHistory.device_id == device_id,
                                     SightingHistory.sighting_id == sighting_id)
                              .order_by(col(SightingHistory.id).desc()).limit(HISTORY_SHOWN))
    detail = orjson.loads(row.detail)
    return SightingDetail(**public(row).model_dump(), **detail,
                          history=[SightingHistoryPublic(epoch=h.epoch, seq=h.seq, at=iso(h.at), change=h.change,
                                                         fields=[f for f in h.fields.split(",") if f])
                                   for h in history])  # fmt: skip


def public(row: Sighting) -> SightingPublic:
    return SightingPublic(
        device_id=row.device_id, id=row.id, signature=row.signature, name=row.name, vendor=row.vendor,
        type=row.type, user=row.user or None, running=row.running, confidence=row.confidence, parent=row.parent,
        hostname=row.hostname, governed=row.governed, flags=orjson.loads(row.flags),
        providers=orjson.loads(row.providers), first_seen=iso(row.first_seen), last_seen=iso(row.last_seen),
        recorded_at=iso(row.recorded_at), gone=row.gone,
    )  # fmt: skip


def _conditions(*, type: str | None, flag: str | None, governed: bool | None, device: str | None,
                user: str | None, provider: str | None, signature: str | None, q: str | None,
                state: str) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if state != "all":
        conditions.append(col(Sighting.gone).is_(state == "gone"))
    for column, value in ((Sighting.type, type), (Sighting.governed, governed), (Sighting.device_id, device),
                          (Sighting.user, user), (Sighting.signature, signature)):
        if value is not None:
            conditions.append(col(column) == value)
    for kind, value in (("flag", flag), ("provider", provider)):
        if value is not None:
            conditions.append(_tagged(kind, value))
    if q:
        conditions.append(or_(*(col(c).icontains(q, autoescape=True)
                                for c in (Sighting.name, Sighting.signature, Sighting.user, Sighting.hostname))))
    return conditions


def _tagged(kind: str, value: str) -> ColumnElement[bool]:
    return exists(select(1).where(and_(col(SightingTag.device_id) == col(Sighting.device_id),
                                       col(SightingTag.sighting_id) == col(Sighting.id),
                                       col(SightingTag.kind) == kind, col(SightingTag.value) == value)))


def _encode(row: Sighting, sort: str, order: str) -> str:
    value = getattr(row, _SORT_COLUMN[sort])
    raw = orjson.dumps([sort, order, value, row.device_id, row.id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, sort: str, order: str) -> tuple[Any, str, str]:
    """The cursor's position; 400 when it is not one of ours or was made for another sort."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_sort, made_order, value, device_id, sighting_id = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise refuse(400, "invalid_cursor") from None
    numeric = sort in ("last_seen", "first_seen", "confidence")
    if ((made_sort, made_order) != (sort, order) or not isinstance(device_id, str)
            or not isinstance(sighting_id, str) or not isinstance(value, (int, float) if numeric else str)):
        raise refuse(400, "invalid_cursor", hint="a cursor is valid only with the sort and order it came from")
    return value, device_id, sighting_id
