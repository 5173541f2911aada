"""GET /api/v1/overview: the fleet in numbers, counted by the database (no rows loaded into Python).

False positives are not counted unless ``include_hidden=true``. Each figure is counted over every present
sighting (through the covering index ``ix_sighting_roster``), and the few hidden ones are counted apart,
from the triage side, and taken off: cheaper than asking, row by row, whether each sighting is hidden.
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import fastapi
import orjson
from fastapi import APIRouter
from sqlalchemy import ColumnElement, Select, and_, case, func, select
from sqlmodel import col

from console.server import lifecycle, roster, trend
from console.server.deps import Caller, SessionDep, StateDep
from console.server.models import (
    CountBy,
    Device,
    DeviceCount,
    EscalatedAgent,
    OverviewPublic,
    RiskyAgent,
    Sighting,
    SightingTag,
    SightingTriage,
    TrendPoint,
    iso,
)
from console.server.planning import holds, unindexed
from console.server.routes import API
from console.server.routes.devices import incomplete_scan
from contract.scan import COLLECTOR_FLAGS, ENDPOINT_FLAGS

router = APIRouter(prefix=API, tags=["overview"])
TOP = 10
DAY = 24 * 3600.0
_S = Sighting.__table__  # type: ignore[attr-defined]
_T = SightingTriage.__table__  # type: ignore[attr-defined]
_ROSTER = "INDEXED BY ix_sighting_roster"  # SQLite, without statistics, would pick a sort index and read rows


Column = Callable[[Any], Any]  # a column as is, or ``unindexed``
Query = Callable[[Column], Select[Any]]  # a counting query, given how to name the sighting's indexed columns


class _Counting:
    """Runs a counting query over present sightings, and again over the hidden ones when they are left out."""

    def __init__(self, session: SessionDep, include_hidden: bool) -> None:
        self.session = session
        self.hide = not include_hidden and session.scalar(
            select(_T.c.device_id).where(_T.c.state == "false_positive").limit(1)) is not None

    def every(self, query: Query) -> list[Any]:
        """Rows over every present sighting, read from the covering index."""
        return list(self.session.execute(query(lambda c: c).with_hint(_S, _ROSTER, "sqlite")))

    def hidden(self, query: Query) -> list[Any]:
        """Rows over the hidden ones to take off (none when they are counted), found from the triage side."""
        if not self.hide:
            return []
        return list(self.session.execute(query(unindexed)
                                         .join(_T, and_(_T.c.device_id == _S.c.device_id, _T.c.sighting_id == _S.c.id))
                                         .where(_T.c.state == "false_positive")))

    def total(self, query: Query) -> int:
        hidden = self.hidden(query)
        return int(self.every(query)[0][0]) - (int(hidden[0][0]) if hidden else 0)

    def by(self, query: Query) -> Counter[Any]:
        counts = Counter({k: n for k, n in self.every(query)})
        counts.subtract({k: n for k, n in self.hidden(query)})
        return +counts  # drops the keys counted down to zero


@router.get("/overview")
def overview(session: SessionDep, caller: Caller, state: StateDep, include_hidden: bool = False,
             since: Annotated[datetime | None, fastapi.Query(description="count what is new since then (the admin's "
                                                                 "last visit); default: a day ago")] = None,
             ) -> OverviewPublic:
    """The riskiest agents first, agents and tool servers counted apart, what is new since ``since``,
    counts by type, flag and governed, top providers, top ungoverned devices, and the ungoverned trend:
    one point per hour over the last 30 days (``console.server.trend``)."""
    now = time.time()
    since_seconds = now - DAY if since is None else _seconds(since)
    devices = col(Device.revoked_at).is_(None)
    cutoff = now - state.settings.stale_after_seconds
    counting = _Counting(session, include_hidden)
    count = select(func.count()).select_from(_S)
    # one pass over the roster index counts each type, and how many of each are new since ``since``
    by_type, new_by_type = Counter[str](), Counter[str]()

    def typed(c: Column) -> Select[Any]:
        return (select(_S.c.type, func.count(), func.sum(case((_S.c.recorded_at >= since_seconds, 1), else_=0)))
                .select_from(_S).where(present(c)).group_by(_S.c.type))

    for sign, rows in ((1, counting.every(typed)), (-1, counting.hidden(typed))):
        for kind, n, new in rows:
            by_type[kind] += sign * n
            new_by_type[kind] += sign * (new or 0)
    by_type, new_by_type = +by_type, +new_by_type
    by_governed = counting.by(lambda c: select(_S.c.governed, func.count()).select_from(_S).where(present(c))
                              .group_by(_S.c.governed))
    # what the admins have to chase: the ladder's escalated agents, longest escalated first
    escalated, chased = lifecycle.escalated(session.connection(), lifecycle.settings(session.connection()), now, TOP)
    return OverviewPublic(
        agents=sum(n for k, n in by_type.items() if k != "tool_server"),
        tool_servers=by_type.get("tool_server", 0),
        riskiest=_riskiest(session, counting.hide),
        new_since=iso(since_seconds),
        new_agents=sum(n for k, n in new_by_type.items() if k != "tool_server"),
        new_tool_servers=new_by_type.get("tool_server", 0),
        by_flag=_by_flag(counting),
        sightings=counting.total(lambda c: count.where(present(c))),
        devices=session.scalar(select(func.count()).select_from(Device).where(devices)) or 0,
        stale_devices=session.scalar(select(func.count()).select_from(Device).where(
            devices, (col(Device.last_seen) < cutoff) | col(Device.last_seen).is_(None))) or 0,
        # as the devices list filtered by ``incomplete=true`` counts them, which the console opens from here
        incomplete_devices=session.scalar(select(func.count()).select_from(Device).where(incomplete_scan())) or 0,
        by_type=[CountBy(key=str(k), count=n) for k, n in sorted(by_type.items(), key=lambda kv: (-kv[1], kv[0]))],
        by_governed=[CountBy(key="governed" if k else "ungoverned", count=n) for k, n in sorted(by_governed.items())],
        new_last_day=counting.total(lambda c: count.where(present(c), _S.c.recorded_at >= now - DAY)),
        top_providers=_top_providers(session, counting),
        top_ungoverned_devices=_top_ungoverned(counting),
        trend=[TrendPoint(at=iso(at), ungoverned=n) for at, n in trend.points(session.connection(), now)],
        escalated=escalated,
        escalated_agents=[EscalatedAgent(device_id=e.device_id, id=e.id, name=e.name, type=e.type, hostname=e.hostname,
                                         user=e.user, ungoverned_since=iso(e.ungoverned_since), deadline=iso(e.deadline),
                                         escalated_at=iso(e.escalated_at)) for e in chased],
    )  # fmt: skip


def present(c: Column) -> ColumnElement[bool]:
    condition: ColumnElement[bool] = c(_S.c.gone) == False  # noqa: E712  ("=", not "IS": PostgreSQL uses an index for "=" only)
    return condition


def _seconds(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _riskiest(session: SessionDep, hide: bool) -> list[RiskyAgent]:
    """The riskiest present agents (tool servers apart), read down the risk index from the top."""
    query = (select(_S.c.device_id, _S.c.id, _S.c.name, _S.c.type, _S.c.hostname, _S.c.user, _S.c.risk, _S.c.flags)
             .where(unindexed(_S.c.gone) == False, _S.c.type != "tool_server", _S.c.risk > 0)  # noqa: E712
             .order_by(_S.c.risk.desc(), _S.c.device_id.desc(), _S.c.id.desc()).limit(TOP)
             .with_hint(_S, "INDEXED BY ix_sighting_sort_risk", "sqlite"))
    if hide:
        query = query.where(~roster.hidden())
    return [RiskyAgent(device_id=d, id=i, name=n, type=t, hostname=h, user=u or None, risk=r, flags=orjson.loads(f))
            for d, i, n, t, h, u, r, f in session.execute(query)]


def _by_flag(counting: _Counting) -> list[CountBy]:
    """Present sightings per flag, most first: one pass over the covering index ``ix_sighting_fleet`` (its
    flags column), where the tag index would list gone sightings' flags too."""
    flags = sorted(COLLECTOR_FLAGS | ENDPOINT_FLAGS)

    def query(c: Column) -> Select[Any]:
        return (select(*(func.sum(case((holds(_S.c.flags, f'"{flag}"'), 1), else_=0)) for flag in flags))
                .select_from(_S).where(present(c)))

    every = counting.session.execute(query(lambda c: c).with_hint(_S, "INDEXED BY ix_sighting_fleet", "sqlite")).one()
    hidden = counting.hidden(query)
    less = hidden[0] if hidden else (0,) * len(flags)
    counts = {flag: (n or 0) - (m or 0) for flag, n, m in zip(flags, every, less, strict=True)}
    return [CountBy(key=k, count=n) for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n > 0]


def _top_providers(session: SessionDep, counting: _Counting) -> list[CountBy]:
    return _by_tag(session, counting, "provider", limit=TOP)


def _by_tag(session: SessionDep, counting: _Counting, kind: str, limit: int | None) -> list[CountBy]:
    """Every provider's (or flag's) count (there are tens), less the hidden, then the top ones."""
    g = SightingTag.__table__  # type: ignore[attr-defined]
    # each tag's sighting is looked up in the covering roster index by (gone, governed, device_id, id) rather
    # than by primary key, which would read the wide row for ``gone`` (twice the time on SQLite)
    query = (select(g.c.value, func.count()).select_from(g)
             .join(_S, and_(_S.c.device_id == g.c.device_id, _S.c.id == g.c.sighting_id))
             .where(g.c.kind == kind, _S.c.gone == False, _S.c.governed.in_((False, True)))  # noqa: E712
             .group_by(g.c.value).with_hint(_S, _ROSTER, "sqlite"))
    counts = Counter({k: n for k, n in session.execute(query)})
    if counting.hide:
        counts.subtract({k: n for k, n in session.execute(
            query.join(_T, and_(_T.c.device_id == _S.c.device_id, _T.c.sighting_id == _S.c.id))
            .where(_T.c.state == "false_positive"))})
    ranked = sorted((+counts).items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [CountBy(key=k, count=n) for k, n in ranked]


def _top_ungoverned(counting: _Counting) -> list[DeviceCount]:
    """The devices with most ungoverned sightings. With hidden ones to take off, the top ``m`` devices are
    read, their hidden sightings taken off, and ``m`` grows until no device further down could rank: taking
    off moves a device down, never up (ties with devices further down are broken among those read)."""
    n = func.count().label("n")

    def query(c: Column) -> Select[Any]:
        return (select(_S.c.device_id, func.max(_S.c.hostname), n).select_from(_S)
                .where(present(c), c(_S.c.governed) == False).group_by(_S.c.device_id))  # noqa: E712

    m = 2 * TOP
    while True:
        rows = counting.every(lambda c: query(c).order_by(n.desc(), _S.c.device_id).limit(m))  # noqa: B023
        ids = [d for d, _, _ in rows]
        less = {d: k for d, _, k in counting.hidden(lambda c: query(c).where(_S.c.device_id.in_(ids)))}  # noqa: B023
        ranked = sorted(((d, h, k - less.get(d, 0)) for d, h, k in rows), key=lambda r: (-r[2], r[0]))
        kept = [DeviceCount(device_id=d, hostname=h, count=k) for d, h, k in ranked if k > 0][:TOP]
        if len(rows) < m or (len(kept) == TOP and kept[-1].count >= rows[-1][2]):
            return kept
        m *= 4
