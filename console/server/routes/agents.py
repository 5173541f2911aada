"""GET /api/v1/agents (filtered, sorted, keyset-paged on the server) and one agent's detail.

Each row carries its triage (``owner``, ``triage_state``); false positives are left out unless
``include_hidden=true`` (or ``triage_state=false_positive``). The detail adds the triage actions,
newest first, the newest registration, and a one-line reason per collector flag.

Every filter is a bound parameter: free text goes through ``LIKE ... ESCAPE`` with ``%`` and ``_``
escaped, so "' OR 1=1 --" is looked for literally; a trigram index narrows the rows it is checked on
(``console.server.search``). Pages are keyset pages over (sort column,
device_id, id), each with its index, so page 1,000 costs what page 1 costs.
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

import base64
import binascii
from collections.abc import Callable
from typing import Annotated, Any, Literal, cast

import orjson
from fastapi import APIRouter, Query
from sqlalchemy import ColumnElement, Select, and_, exists, func, literal_column, or_, select, tuple_
from sqlmodel import col

from console import governance
from console.server import search, triage
from console.server.deps import Caller, SessionDep, refuse
from console.server.models import (
    Registration,
    Sighting,
    SightingDetail,
    SightingHistory,
    SightingHistoryPublic,
    SightingPublic,
    SightingsPublic,
    SightingTag,
    SightingTriage,
    TriageState,
    iso,
)
from console.server.planning import unindexed
from console.server.routes import API, registrations
from console.server.routes import triage as triage_routes
from contract.scan import Flag, SightingType

router = APIRouter(prefix=API, tags=["agents"])

SortKey = Literal["name", "type", "user", "device", "last_seen", "first_seen", "confidence"]
_SORT_COLUMN = {"name": "name", "type": "type", "user": "user", "device": "hostname", "last_seen": "last_seen",
                "first_seen": "first_seen", "confidence": "confidence"}  # fmt: skip
MAX_LIMIT = 500
HISTORY_SHOWN = 200
_TRIAGE = SightingTriage.__table__  # type: ignore[attr-defined]
ACTIONS_SHOWN = 200
NO_NUL = r"^[^\x00]*$"  # neither PostgreSQL text nor an FTS5 query can hold a NUL
Text = Annotated[str | None, Query(max_length=256, pattern=NO_NUL)]


@router.get("/agents")
def list_agents(
    session: SessionDep,
    caller: Caller,
    type: SightingType | None = None,
    flag: Flag | None = None,
    governed: bool | None = None,
    device: Text = None,
    user: Annotated[str | None, Query(max_length=256, pattern=NO_NUL, description='"" for machine-wide installs')] = None,
    provider: Text = None,
    signature: Text = None,
    q: Annotated[str | None, Query(max_length=256, pattern=NO_NUL,
                                   description="free text: name, signature, user, hostname")] = None,
    parent: Annotated[str | None, Query(max_length=256, pattern=NO_NUL,
                                        description="the sighting id of the agent that spawned it")] = None,
    state: Literal["present", "gone", "all"] = "present",
    owner: Annotated[str | None, Query(max_length=256, pattern=NO_NUL)] = None,
    triage_state: TriageState | None = None,
    include_hidden: bool = False,
    sort: SortKey = "last_seen",
    order: Literal["asc", "desc"] = "desc",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
    count: Annotated[bool | None, Query(description="count the matches (default: on the first page only)")] = None,
) -> SightingsPublic:
    """The roster, one page at a time; ``next_cursor`` fetches the next page with the same filters. The
    page without a cursor carries ``count``, the matches over all pages; later pages carry null unless
    ``count=true`` (the count is the costly part of a page, and the filters have not changed)."""
    text = search.Text(q, indexed=search.indexed(session)) if q else None

    def conditions(fenced: bool, seek: bool = False, listed: bool = True) -> list[ColumnElement[bool]]:
        return _conditions(type=type, flag=flag, governed=governed, device=device, user=user, provider=provider,
                           signature=signature, text=text, parent=parent, state=state, fenced=fenced, seek=seek,
                           listed=listed) \
            + _triage_conditions(owner=owner, triage_state=triage_state, fenced=fenced)

    hide = not include_hidden and triage_state != "false_positive"
    picked = triage_state not in (None, "new") or owner is not None  # the triage side finds them
    # an index of its own finds them (free text: the search index, where the store has one)
    by_index = picked or device is not None or signature is not None or bool(text and text.narrowed)
    # counts read the covering roster index, unless a filter names columns it lacks or finds rows by itself
    tagged = flag is not None or provider is not None
    roster = not (by_index or user is not None or parent is not None or q)
    counted = None
    wanted = cursor is None if count is None else count
    if wanted:
        # SQLite counts tagged sightings by looking each one the tag index lists up in the roster index, by
        # (gone, governed, device_id, id), reading no wide row; a tag on most of the fleet is cheaper checked
        # along the roster index instead. PostgreSQL plans its semi-join from statistics.
        listed = not (roster and tagged and session.get_bind().dialect.name == "sqlite") or _few(
            session, (("flag", flag), ("provider", provider)))
        seek = roster and tagged and listed and session.get_bind().dialect.name == "sqlite"
        counted = _count(session, conditions(fenced=False, seek=seek, listed=listed), hide, roster,
                         hidden_conditions=conditions(fenced=False) if seek else None)
    if counted == 0:  # nothing to look for along the sort index (which would walk all of it)
        return SightingsPublic(data=[], count=0, next_cursor=None)
    # the page's conditions are checked row by row along the sort index, and stop after limit + 1 rows;
    # whether a row is hidden is read from the triage row the page joins anyway
    on_page = conditions(fenced=True) + ([_not_hidden_joined()] if hide else [])
    sort_col = getattr(Sighting, _SORT_COLUMN[sort])
    keys = (sort_col, col(Sighting.device_id), col(Sighting.id))
    query = (select(Sighting, col(SightingTriage.owner), col(SightingTriage.state))
             .outerjoin(SightingTriage, _triage_of_sighting()).where(*on_page))
    if not by_index:
        query = query.with_hint(Sighting, f"INDEXED BY ix_sighting_sort_{_SORT_COLUMN[sort]}", "sqlite")
    if cursor:
        position = tuple_(*_decode(cursor, sort, order))
        query = query.where(tuple_(*keys) > position if order == "asc" else tuple_(*keys) < position)
    query = query.order_by(*(k.asc() if order == "asc" else k.desc() for k in keys)).limit(limit + 1)
    rows = list(session.execute(query))
    next_cursor = _encode(rows[limit - 1][0], sort, order) if len(rows) > limit else None
    return SightingsPublic(data=[public(r, o, t) for r, o, t in rows[:limit]], count=counted, next_cursor=next_cursor)


@router.get("/agents/{device_id}/{sighting_id}", responses={404: {"description": "no such sighting"}})
def get_agent(device_id: str, sighting_id: str, session: SessionDep, caller: Caller) -> SightingDetail:
    """One sighting with its evidence, processes, configs, MCP servers, endpoints, credentials and history."""
    row = session.get(Sighting, (device_id, sighting_id))
    if row is None:
        raise refuse(404, "sighting_not_found")
    history = session.scalars(select(SightingHistory)
                              .where(col(SightingHistory.device_id) == device_id,
                                     col(SightingHistory.sighting_id) == sighting_id)
                              .order_by(col(SightingHistory.id).desc()).limit(HISTORY_SHOWN))
    detail = orjson.loads(row.detail)
    conn = session.connection()
    key = (device_id, sighting_id)
    state = triage.triage_of(conn, key)
    newest = triage.newest_registration(conn, key)
    standing = triage.standing_of(state["approval"], state["registration"]) if state else governance.NO_STANDING
    policy = triage.load_policy(conn)
    servers = detail.get("mcp_servers", [])
    verdict = governance.assess(row.signature, orjson.loads(row.providers), orjson.loads(row.fingerprints),
                                orjson.loads(row.flags), policy, standing, governance.tools_of(servers),
                                governance.risky_tools(servers, policy.risky_tools))
    return SightingDetail(
        **public(row, state["owner"] if state else None, state["state"] if state else None).model_dump(), **detail,
        history=[SightingHistoryPublic(epoch=h.epoch, seq=h.seq, at=iso(h.at), change=h.change,
                                       fields=[f for f in h.fields.split(",") if f]) for h in history],
        actions=[triage_routes.public(a) for a in triage.actions_of(conn, key, ACTIONS_SHOWN)],
        registration=registrations.public(Registration(**newest)) if newest else None,
        reasons=dict(verdict.reasons),
    )  # fmt: skip


def public(row: Sighting, owner: str | None = None, triage_state: str | None = None) -> SightingPublic:
    return SightingPublic(
        device_id=row.device_id, id=row.id, signature=row.signature, name=row.name, vendor=row.vendor,
        type=row.type, user=row.user or None, running=row.running, confidence=row.confidence, parent=row.parent,
        hostname=row.hostname, governed=row.governed, flags=orjson.loads(row.flags),
        providers=orjson.loads(row.providers), first_seen=iso(row.first_seen), last_seen=iso(row.last_seen),
        recorded_at=iso(row.recorded_at), gone=row.gone, owner=owner,
        triage_state=cast(TriageState, triage_state or "new"),
    )  # fmt: skip


def _conditions(*, type: str | None, flag: str | None, governed: bool | None, device: str | None,
                user: str | None, provider: str | None, signature: str | None, text: "search.Text | None",
                parent: str | None = None, state: str, fenced: bool = False,
                seek: bool = False, listed: bool = True) -> list[ColumnElement[bool]]:
    """The filters. ``fenced``: for a page, each tag filter stays a per-row EXISTS (see ``_fence``);
    unfenced (a count), it is an IN over the tag index, read from the tag side (or, not ``listed``, an
    EXISTS checked along the roster index, for a tag on most of the fleet). ``seek``: ``gone`` and
    ``governed`` are both constrained, plainly, so that SQLite seeks the roster index on its first four
    columns (a count of tagged sightings)."""
    conditions: list[ColumnElement[bool]] = []
    if seek:
        gone, ruled = col(Sighting.gone), col(Sighting.governed)
        conditions.append(gone.in_((False, True)) if state == "all" else gone == (state == "gone"))
        conditions.append(ruled.in_((False, True)) if governed is None else ruled == governed)
    if state != "all" and not seek:
        # "=", not "IS" (PostgreSQL indexes "="); unindexed: SQLite would take any index on gone
        conditions.append(unindexed(col(Sighting.gone)) == (state == "gone"))
    if governed is not None and not seek:  # two values: an index on it is never worth reading (SQLite would)
        conditions.append(unindexed(col(Sighting.governed)) == governed)
    for column, value in ((Sighting.type, type), (Sighting.device_id, device), (Sighting.user, user),
                          (Sighting.signature, signature), (Sighting.parent, parent)):
        if value is not None:
            conditions.append(col(column) == value)
    for kind, value in (("flag", flag), ("provider", provider)):
        if value is not None:
            conditions.append(_tagged(kind, value, fenced, listed))
    if text is not None:
        conditions.append(text.condition())
    return conditions


def _triage_of_sighting() -> ColumnElement[bool]:
    return and_(col(SightingTriage.device_id) == col(Sighting.device_id),
                col(SightingTriage.sighting_id) == col(Sighting.id))


def _fence(query: Select[Any], fenced: bool) -> Select[Any]:
    """``OFFSET 0`` keeps PostgreSQL from turning an EXISTS into a join: it misjudges how many rows a join
    on (device_id, id) yields, then hashes the whole fleet and sorts it for one page, where walking the
    sort index and checking each row stops after the page (500 ms against 2 ms at 100,000 sightings)."""
    return query.offset(0) if fenced else query


def _triaged(where: Callable[[Any], ColumnElement[bool]], fenced: bool = False) -> ColumnElement[bool]:
    """EXISTS a triage row of the sighting meeting ``where`` (a function of the row's alias)."""
    t = _TRIAGE.alias("t")
    return exists(_fence(select(1).select_from(t).where(
        t.c.device_id == col(Sighting.device_id), t.c.sighting_id == col(Sighting.id), where(t),
    ).correlate(Sighting), fenced))


def _in_triage(where: Callable[[Any], ColumnElement[bool]]) -> ColumnElement[bool]:
    """The sighting is among those whose triage row meets ``where``: read from the triage side, through
    its owner or state index, rather than asked row by row."""
    t = _TRIAGE.alias("tf")
    return tuple_(col(Sighting.device_id), col(Sighting.id)).in_(
        select(t.c.device_id, t.c.sighting_id).where(where(t)).correlate(None))


def _triage_conditions(*, owner: str | None, triage_state: str | None,
                       fenced: bool = False) -> list[ColumnElement[bool]]:
    """Triage filters; a sighting without a triage row is ``new`` and has no owner."""
    conditions: list[ColumnElement[bool]] = []
    if owner is not None:
        conditions.append(_in_triage(lambda t: t.c.owner == owner))
    if triage_state == "new":
        conditions.append(~_triaged(lambda t: t.c.state != "new", fenced))
    elif triage_state is not None:
        conditions.append(_in_triage(lambda t: t.c.state == triage_state))
    return conditions


def _count(session: SessionDep, conditions: list[ColumnElement[bool]], hide: bool, roster: bool,
           hidden_conditions: list[ColumnElement[bool]] | None = None) -> int:
    """How many sightings meet the conditions; hidden ones are counted apart, from the triage side, and
    taken off (cheaper than asking, row by row, whether each of 100,000 sightings is hidden). The hidden
    ones are counted under ``hidden_conditions`` where given: the same filters, worded for that side."""
    query = select(func.count()).select_from(Sighting).where(*conditions)
    if roster:
        query = query.with_hint(Sighting, "INDEXED BY ix_sighting_roster", "sqlite")
    count = session.scalar(query) or 0
    if hide:
        count -= session.scalar(select(func.count()).select_from(_TRIAGE).join(Sighting, and_(
            _TRIAGE.c.device_id == col(Sighting.device_id), _TRIAGE.c.sighting_id == col(Sighting.id)))
            .where(_TRIAGE.c.state == "false_positive", *(conditions if hidden_conditions is None
                                                          else hidden_conditions))) or 0
    return count


def _not_hidden_joined() -> ColumnElement[bool]:
    """Not a false positive, from the outer-joined triage row (none: not hidden)."""
    return or_(col(SightingTriage.state).is_(None), col(SightingTriage.state) != "false_positive")


def hidden(fenced: bool = False) -> ColumnElement[bool]:
    """A sighting an admin marked a false positive."""
    return _triaged(lambda t: t.c.state == "false_positive", fenced)


def _few(session: SessionDep, tags: tuple[tuple[str, str | None], ...]) -> bool:
    """Whether a tag filter lists at most half the fleet (its rows counted from the tag index, the fleet
    bounded by the largest rowid: both cheap), so that looking its sightings up beats checking them all."""
    fleet = session.scalar(select(func.max(literal_column("rowid"))).select_from(Sighting)) or 0
    listed = [session.scalar(select(func.count()).select_from(SightingTag).where(
        col(SightingTag.kind) == kind, col(SightingTag.value) == value)) or 0 for kind, value in tags if value]
    return min(listed, default=0) * 2 <= fleet


def _tagged(kind: str, value: str, fenced: bool = False, listed: bool = True) -> ColumnElement[bool]:
    if not fenced and listed:  # a count: the sightings listed under the tag, through ix_sighting_tag_kind_value
        return tuple_(col(Sighting.device_id), col(Sighting.id)).in_(
            select(col(SightingTag.device_id), col(SightingTag.sighting_id))
            .where(col(SightingTag.kind) == kind, col(SightingTag.value) == value).correlate(None))
    return exists(_fence(select(1).where(and_(col(SightingTag.device_id) == col(Sighting.device_id),
                                              col(SightingTag.sighting_id) == col(Sighting.id),
                                              col(SightingTag.kind) == kind, col(SightingTag.value) == value)),
                         fenced))


def _encode(row: Sighting, sort: str, order: str) -> str:
    value = getattr(row, _SORT_COLUMN[sort])
    raw = orjson.dumps([sort, order, value, row.device_id, row.id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BIGINT_MAX = 2**63 - 1


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
    if isinstance(value, int | float) and numeric and not -BIGINT_MAX <= value <= BIGINT_MAX:
        raise refuse(400, "invalid_cursor", hint="a cursor's position is out of range")  # no store binds it
    return value, device_id, sighting_id
