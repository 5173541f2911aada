"""GET /api/v1/agents/fleet: the fleet by kind, one row per signature (and one per type for the agents no
signature matched, as the collector typed them by behaviour), agents and tool servers apart.

It takes the roster's filters (``console.server.roster``) and counts the same sightings: a row's
``filter``, added to the request's own, lists in ``GET /agents`` exactly the sightings it counts. One
grouped pass over the covering index ``ix_sighting_fleet`` (signature, type, governed, device, user, MCP
server count, risk, flags) counts every row; each flag's count is a sum over the flags column there.
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

from typing import Any

from fastapi import APIRouter
from sqlalchemy import case, func, select

from console.server import roster
from console.server.deps import Caller, SessionDep
from console.server.models import FleetPublic, FleetRow, Sighting
from console.server.planning import holds
from contract.scan import COLLECTOR_FLAGS, ENDPOINT_FLAGS

router = APIRouter(prefix="/api/v1", tags=["agents"])
FLAGS = sorted(COLLECTOR_FLAGS | ENDPOINT_FLAGS)
MAX_ROWS = 1000  # kinds listed per side; a fleet has tens


@router.get("/agents/fleet")
def fleet(session: SessionDep, caller: Caller, f: roster.Filter) -> FleetPublic:
    """Sightings, devices, users, ungoverned and per-flag counts for each kind of agent, agents and tool
    servers apart, over the roster's filters (false positives left out unless ``include_hidden=true``)."""
    plan = roster.Plan(session, f)
    # gone (and governed) as plain equalities: SQLite seeks the fleet index on gone and reads each signature's
    # rows together, grouping as it goes, where an unindexed gone would sort the whole fleet first
    where = plan.conditions(fenced=False, seek=True)
    if f.hide and roster.any_hidden(session):
        where.append(~roster.hidden_keys())
    s = Sighting.__table__  # type: ignore[attr-defined]
    flag_sums = [func.sum(case((holds(s.c.flags, f'"{flag}"'), 1), else_=0)) for flag in FLAGS]
    query = (select(s.c.signature, s.c.type, func.count(), func.count(s.c.device_id.distinct()),
                    func.count(func.nullif(s.c.user, "").distinct()),
                    func.sum(case((s.c.governed == False, 1), else_=0)),  # noqa: E712
                    func.coalesce(func.sum(s.c.servers), 0), func.max(s.c.risk), *flag_sums)
             .select_from(s).where(*where).group_by(s.c.signature, s.c.type))
    if not plan.text:  # free text finds its rows through the search index's rowids
        query = query.with_hint(s, "INDEXED BY ix_sighting_fleet", "sqlite")
    rows = list(session.execute(query))
    names = roster.signature_names(session, sorted({r[0] for r in rows if r[0] is not None})[:2 * MAX_ROWS])
    merged: dict[tuple[str | None, str], dict[str, Any]] = {}
    for signature, kind, sightings, devices, users, ungoverned, servers, max_risk, *flags in rows:
        # a signature seen with several types (rare) is one row, under its most common type
        key = (signature, "" if signature is not None else kind)
        row = merged.setdefault(key, {"types": {}, "sightings": 0, "devices": 0, "users": 0, "ungoverned": 0,
                                      "servers": 0, "max_risk": 0, "flags": dict.fromkeys(FLAGS, 0)})
        row["types"][kind] = row["types"].get(kind, 0) + sightings
        row["sightings"] += sightings
        row["devices"] += devices  # distinct per type: counted again below when a signature has several
        row["users"] = max(row["users"], users)
        row["ungoverned"] += ungoverned
        row["servers"] += servers
        row["max_risk"] = max(row["max_risk"], max_risk or 0)
        for flag, n in zip(FLAGS, flags, strict=True):
            row["flags"][flag] += n or 0
    several = [sig for (sig, kind_key), row in merged.items() if sig is not None and len(row["types"]) > 1]
    for signature, devices, users in _distinct_across_types(session, where, several):
        merged[(signature, "")].update(devices=devices, users=users)
    agents: list[FleetRow] = []
    servers_side: list[FleetRow] = []
    for (signature, kind_key), row in merged.items():
        kind = kind_key or max(row["types"].items(), key=lambda kv: kv[1])[0]
        own = {"signature": signature} if signature is not None else {"signature": "", "type": kind}
        out = FleetRow(key=signature if signature is not None else f"unknown:{kind}", signature=signature,
                       name=names.get(signature, signature or "") if signature is not None else _unknown_name(kind),
                       type=kind, sightings=row["sightings"], devices=row["devices"], users=row["users"],
                       ungoverned=row["ungoverned"], flags={k: n for k, n in row["flags"].items() if n},
                       mcp_servers=0 if kind == "tool_server" else row["servers"], max_risk=row["max_risk"],
                       filter={**_as_params(f), **own})
        (servers_side if kind == "tool_server" else agents).append(out)
    for side in (agents, servers_side):
        side.sort(key=lambda r: (-r.sightings, r.key))
    return FleetPublic(agents=agents[:MAX_ROWS], tool_servers=servers_side[:MAX_ROWS],
                       sightings=sum(r["sightings"] for r in merged.values()),
                       agent_sightings=sum(r.sightings for r in agents),
                       tool_server_sightings=sum(r.sightings for r in servers_side))


def _distinct_across_types(session: SessionDep, where: list[Any], signatures: list[str]) -> list[tuple[str, int, int]]:
    """Devices and users of each signature seen under several types (rare), counted once across them."""
    if not signatures:
        return []
    s = Sighting.__table__  # type: ignore[attr-defined]
    query = (select(s.c.signature, func.count(s.c.device_id.distinct()),
                    func.count(func.nullif(s.c.user, "").distinct()))
             .select_from(s).where(*where, s.c.signature.in_(signatures[:2 * MAX_ROWS])).group_by(s.c.signature))
    return [(str(sig), int(devices), int(users)) for sig, devices, users in session.execute(query)]


def _unknown_name(kind: str) -> str:
    return {"unknown": "Unknown agents", "tool_server": "Unknown tool servers"}.get(
        kind, f"Unknown {kind.replace('_', ' ')} agents")


def _as_params(f: roster.RosterFilter) -> dict[str, str | list[str]]:
    """The request's own filter as query parameters (``type`` and ``flag`` as lists: repeat them)."""
    out: dict[str, str | list[str]] = {}
    for key, value in f.params().items():
        out[key] = value if isinstance(value, list) else str(value).lower() if isinstance(value, bool) else str(value)
    return out

