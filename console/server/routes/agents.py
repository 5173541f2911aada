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
import time
from typing import Annotated, Any, Literal, cast

import orjson
from fastapi import APIRouter, Query
from sqlalchemy import select, tuple_
from sqlmodel import col

from console import governance
from console.server import chains, lifecycle, roster, triage
from console.server.deps import Caller, SessionDep, refuse
from console.server.models import (
    ChainCover,
    Registration,
    RiskReason,
    Sighting,
    SightingDetail,
    SightingHistory,
    SightingHistoryPublic,
    SightingPublic,
    SightingsPublic,
    SightingTriage,
    TriageState,
    iso,
)
from console.server.routes import API, registrations
from console.server.routes import triage as triage_routes
from contract.scan import FLAG_NEXT_STEPS

router = APIRouter(prefix=API, tags=["agents"])

#: sort keys (``-key``: descending) -> the sighting's column; each has an index (column, device_id, id)
_SORT_COLUMN = {"name": "name", "type": "type", "user": "user", "device": "hostname", "hostname": "hostname",
                "last_seen": "last_seen", "first_seen": "first_seen", "confidence": "confidence", "risk": "risk"}  # fmt: skip
#: roster columns that have no sort of their own, and what to do instead
_UNSORTABLE = {
    "flags": "sort by risk, which weighs the flags, or filter on a flag",
    "governed": "filter on governed=true or governed=false instead",
    "providers": "filter on a provider instead",
    "provider": "filter on a provider instead",
    "signature": "sort by name, or filter on a signature",
    "owner": "filter on an owner instead",
    "triage_state": "filter on a triage state instead",
    "vendor": "sort by name instead",
    "running": "sort by last_seen instead",
    "servers": "sort by risk instead",
    "recorded_at": "sort by first_seen instead",
}  # fmt: skip
NUMERIC_SORTS = ("last_seen", "first_seen", "confidence", "risk", "overdue")
#: ``sort=overdue``: the longest-ungoverned first, so the most overdue on the nudge ladder lead
_SORT_COLUMN["overdue"] = "ungoverned_since"
MAX_LIMIT = 500
HISTORY_SHOWN = 200
ACTIONS_SHOWN = 200
NO_NUL = roster.NO_NUL


def sort_of(sort: str, order: Literal["asc", "desc"]) -> tuple[str, Literal["asc", "desc"]]:
    """The sort key and order asked for (``-risk`` is risk, descending); 400 with a sentence otherwise."""
    key = sort[1:] if sort.startswith("-") else sort
    if sort.startswith("-"):
        order = "desc"
    elif sort.startswith("+"):
        key, order = sort[1:], "asc"
    if key == "overdue":
        return key, "asc"
    if key in _SORT_COLUMN:
        return key, order
    if key in _UNSORTABLE:
        raise refuse(400, "unsortable", sort=key,
                     message=f"The roster cannot be sorted by {key}: {_UNSORTABLE[key]}.")
    raise refuse(400, "unknown_sort", sortable=sorted(_SORT_COLUMN),  # what was asked is not echoed
                 message="Sort by one of " + ", ".join(sorted(_SORT_COLUMN)) + " (a leading - sorts descending).")


@router.get("/agents", responses={400: {"description": "a sort the roster does not have, or a bad cursor"}})
def list_agents(
    session: SessionDep,
    caller: Caller,
    f: roster.Filter,
    sort: Annotated[str, Query(max_length=64, description="name, type, user, device, last_seen, first_seen, "
                                                          "confidence, risk; -key sorts descending")] = "last_seen",
    order: Literal["asc", "desc"] = "desc",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
    count: Annotated[bool | None, Query(description="count the matches (default: on the first page only)")] = None,
    ladder: Annotated[lifecycle.LadderFilter | None,
                      Query(description="ungoverned sightings on this rung of the nudge ladder, or overdue")] = None,
) -> SightingsPublic:
    """The roster, one page at a time; ``next_cursor`` fetches the next page with the same filters. The
    page without a cursor carries ``count``, the matches over all pages; later pages carry null unless
    ``count=true`` (the count is the costly part of a page, and the filters have not changed)."""
    sort, order = sort_of(sort, order)
    plan = roster.Plan(session, f)
    settings, now = lifecycle.settings(session.connection()), time.time()
    if ladder is not None:
        plan.extra.append(lifecycle.condition(settings, ladder, now))
    counted = None
    wanted = cursor is None if count is None else count
    if wanted:
        counted = plan.count()
    if counted == 0:  # nothing to look for along the sort index (which would walk all of it)
        return SightingsPublic(data=[], count=0, next_cursor=None)
    if counted is not None:
        plan.page_along_sort(counted)
    # the page's conditions are checked row by row along the sort index, and stop after limit + 1 rows;
    # whether a row is hidden is read from the triage row the page joins anyway
    on_page = plan.conditions(fenced=True) + ([roster.not_hidden_joined()] if f.hide else [])
    sort_col = getattr(Sighting, _SORT_COLUMN[sort])
    keys = (sort_col, col(Sighting.device_id), col(Sighting.id))
    query = (select(Sighting, col(SightingTriage.owner), col(SightingTriage.state))
             .outerjoin(SightingTriage, roster.triage_of_sighting()).where(*on_page))
    if not plan.by_index and sort != "overdue":  # ungoverned_since has no sort index of its own
        query = query.with_hint(Sighting, f"INDEXED BY ix_sighting_sort_{_SORT_COLUMN[sort]}", "sqlite")
    if cursor:
        position = tuple_(*_decode(cursor, sort, order))
        query = query.where(tuple_(*keys) > position if order == "asc" else tuple_(*keys) < position)
    query = query.order_by(*(k.asc() if order == "asc" else k.desc() for k in keys)).limit(limit + 1)
    rows = list(session.execute(query))
    next_cursor = _encode(rows[limit - 1][0], sort, order) if len(rows) > limit else None
    covered = chains.covered_by(session.connection(), [((r.device_id, r.id), r.parent, orjson.loads(r.flags))
                                                       for r, _, _ in rows[:limit]])
    return SightingsPublic(data=[with_cover(on_ladder(public(r, o, t), r, settings, now), covered)
                                 for r, o, t in rows[:limit]], count=counted, next_cursor=next_cursor)


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
    covered = chains.covered_by(conn, [(key, row.parent, orjson.loads(row.flags))])
    if key in covered:  # no standing of its own: its chain's root's covers it
        standing = covered[key].standing
    policy = triage.load_policy(conn)
    servers = detail.get("mcp_servers", [])
    verdict = governance.assess(row.signature, orjson.loads(row.providers), orjson.loads(row.fingerprints),
                                orjson.loads(row.flags), policy, standing, governance.tools_of(servers),
                                governance.risky_tools(servers, policy.risky_tools), user=row.user,
                                tools=triage.named_tools(detail))
    listed = with_cover(on_ladder(public(row, state["owner"] if state else None, state["state"] if state else None),
                                  row, lifecycle.settings(conn), time.time()), covered)
    return SightingDetail(
        **listed.model_dump(), **detail,
        history=[SightingHistoryPublic(epoch=h.epoch, seq=h.seq, at=iso(h.at), change=h.change,
                                       fields=[f for f in h.fields.split(",") if f]) for h in history],
        actions=[triage_routes.public(a) for a in triage.actions_of(conn, key, ACTIONS_SHOWN)],
        registration=registrations.public(Registration(**newest)) if newest else None,
        reasons=dict(verdict.reasons),
        risk_reasons=[RiskReason(flag=flag, weight=weight, meaning=governance.explain(flag),
                                 next_step=FLAG_NEXT_STEPS.get(flag, "")) for flag, weight in
                      governance.risk_reasons(orjson.loads(row.flags))],
    )  # fmt: skip


def public(row: Sighting, owner: str | None = None, triage_state: str | None = None) -> SightingPublic:
    return SightingPublic(
        device_id=row.device_id, id=row.id, signature=row.signature, name=row.name, vendor=row.vendor,
        type=row.type, user=row.user or None, running=row.running, confidence=row.confidence, parent=row.parent,
        hostname=row.hostname, governed=row.governed, flags=orjson.loads(row.flags),
        providers=orjson.loads(row.providers), first_seen=iso(row.first_seen), last_seen=iso(row.last_seen),
        recorded_at=iso(row.recorded_at), gone=row.gone, owner=owner,
        triage_state=cast(TriageState, triage_state or "new"), risk=row.risk, servers=row.servers,
    )  # fmt: skip


def with_cover(listed: SightingPublic, covered: dict[tuple[str, str], chains.Cover]) -> SightingPublic:
    """Name the root of its chain whose declaration covers a sighting without a standing of its own."""
    cover = covered.get((listed.device_id, listed.id))
    if cover is not None:
        listed.covered_by = ChainCover(sighting_id=cover.sighting_id, name=cover.name, by=cover.by)
    return listed


def on_ladder(listed: SightingPublic, row: Sighting, settings: lifecycle.Settings, now: float) -> SightingPublic:
    """Add where an ungoverned sighting stands on the nudge ladder (computed now, from the policy)."""
    if not row.governed and not row.gone:
        since = row.recorded_at if row.ungoverned_since is None else row.ungoverned_since
        standing = lifecycle.rung_of(settings, since, now)
        listed.ladder, listed.ladder_due, listed.overdue = standing.rung, iso(standing.due), standing.overdue
        listed.ungoverned_since = iso(since)
    return listed


def _encode(row: Sighting, sort: str, order: str) -> str:
    value = getattr(row, _SORT_COLUMN[sort])
    raw = orjson.dumps([sort, order, value, row.device_id, row.id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BIGINT_MAX = 2**63 - 1
_RESTART = "This page of results no longer fits the list asked for: load the list again from its first page."


def _decode(cursor: str, sort: str, order: str) -> tuple[Any, str, str]:
    """The cursor's position; 400 when it is not one of ours or was made for another sort."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_sort, made_order, value, device_id, sighting_id = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise refuse(400, "invalid_cursor", message=_RESTART) from None
    numeric = sort in NUMERIC_SORTS
    if ((made_sort, made_order) != (sort, order) or not isinstance(device_id, str)
            or not isinstance(sighting_id, str) or not isinstance(value, (int, float) if numeric else str)):
        raise refuse(400, "invalid_cursor", hint="a cursor is valid only with the sort and order it came from",
                     message=_RESTART)
    if isinstance(value, int | float) and numeric and not -BIGINT_MAX <= value <= BIGINT_MAX:
        raise refuse(400, "invalid_cursor", hint="a cursor's position is out of range",  # no store binds it
                     message=_RESTART)
    return value, device_id, sighting_id
