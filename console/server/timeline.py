"""Intent over time: each sighting's behaviour as a timeline of facts, and drift as events.

A fact is one thing a sighting was seen doing: a ``provider`` it calls, an ``mcp_server`` present in its
config (the "tools" a declaration names), an ``mcp_server_used`` (a tool server sighting that runs as a live
process or whose URL was called: the fact is the tool server's own, and its parent's timeline reads it too),
an ``mcp_tool`` (``server/tool``, where a config names a server's tools) and a ``tool`` an enterprise agent's
code declares, a ``system`` it reaches (the host of a remote tool server's URL, or a data system an MCP
server's arguments name, such as ``postgresql://db.internal/payroll``), and its ``autonomy`` (autonomous or
supervised). Each has a first_seen, a last_seen and, once a report no longer
shows it, a gone_at. Facts are written at ingest only for the sightings whose document changed
(``record``, one call from ``ingest_store``); a present fact's last_seen as the API answers it is the
sighting's own last_seen, so a report that changes nothing writes nothing here.

A drift event opens when a changed sighting carries ``drift`` (governance: it does more than its approved
registration declares, or than it did when an admin approved it): it holds exactly what was added
(providers, MCP servers, systems outside the declared data systems, autonomy) and when it began. Later
additions join the open event; it is ``resolved`` when the sighting goes back inside its declaration, or
``accepted`` by an admin (``accept``), which widens the declaration to cover it, audited as a triage
action (``accept_drift``), and re-assesses the sighting.

Values come from the collector's stored, already scrubbed documents; a URL is kept only as scheme, host
and database (never its user, password or query), so a fact never holds a credential.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy import Connection, insert, select, update

from console import governance
from console.server import chains, triage
from console.server.models import (
    BehaviourFact,
    DriftEvent,
    Registration,
    Sighting,
    SightingTriage,
    TriageAction,
    TriageBatch,
    TriageUndo,
)
from contract.registration import MAX_ITEMS

F = BehaviourFact.__table__  # type: ignore[attr-defined]
E = DriftEvent.__table__  # type: ignore[attr-defined]
R = Registration.__table__  # type: ignore[attr-defined]
S = Sighting.__table__  # type: ignore[attr-defined]
T = SightingTriage.__table__  # type: ignore[attr-defined]
A = TriageAction.__table__  # type: ignore[attr-defined]
B = TriageBatch.__table__  # type: ignore[attr-defined]
U = TriageUndo.__table__  # type: ignore[attr-defined]

#: ``mcp_server``: present (its config declares it); ``mcp_server_used``: used (a tool server sighting of the
#: chain runs it as a live process, or calls were seen to its URL); ``mcp_tool``: ``server/tool`` where a
#: config names a server's tools (an allow or auto-approve list); ``tool``: a tool an enterprise agent's code
#: declares (its project's ``tools``)
KINDS = ("provider", "mcp_server", "mcp_server_used", "mcp_tool", "tool", "system", "autonomy")
#: what a drift event can hold, in the order the API and the console name them
ADDED = ("providers", "mcp_servers", "tools", "systems", "autonomy")
TOOL_KINDS = frozenset({"mcp_tool", "tool"})
MAX_VALUE = 512
MAX_FACTS = 256  # per sighting: a hostile document cannot fill the table
#: the fields of a sighting's history entry (ingest.changed_fields) its facts and its chain come from
FACT_FIELDS = frozenset({"endpoints", "mcp_servers", "flags", "parent", "project"})
#: and, for a tool server, whether it runs: its processes come and go with its use
USE_FIELDS = frozenset({"processes", "running"})
#: URL schemes of data systems an MCP server's arguments can name
DATA_SCHEMES = frozenset({"postgres", "postgresql", "mysql", "mariadb", "mongodb", "mongodb+srv", "redis",
                          "rediss", "sqlserver", "mssql", "snowflake", "clickhouse", "oracle", "jdbc"})

# -- what a document shows ---------------------------------------------------------------------------


def facts_of(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The behaviour facts one (scrubbed) sighting document shows: ``[(kind, value), ...]``, sorted."""
    servers = [s for s in doc.get("mcp_servers") or [] if isinstance(s, Mapping)]
    facts = {("provider", p) for p in governance.providers_of(doc.get("endpoints") or [])}
    facts |= {("mcp_server", t) for t in governance.tools_of(servers)}
    facts |= {("mcp_tool", t) for t in governance.mcp_tools_of(servers)}
    facts |= {("tool", t) for t in governance.project_tools_of(doc.get("project"))}
    facts |= {("system", s) for s in systems_of(servers)}
    if used(doc):
        facts.add(("mcp_server_used", str(doc.get("name") or "")))
    flags = doc.get("flags") or []
    facts.add(("autonomy", "autonomous" if "autonomous" in flags else "supervised"))
    # a long list of tools fills the cap last: it never pushes out a provider, a server or a system
    kept = sorted(((k, v[:MAX_VALUE]) for k, v in facts if v), key=lambda f: (f[0] in TOOL_KINDS, f))[:MAX_FACTS]
    return sorted(kept)


def used(doc: Mapping[str, Any]) -> bool:
    """Whether a tool server sighting is in use: it runs as a live process, or calls reached its URL."""
    if doc.get("type") != "tool_server":
        return False
    return bool(doc.get("running") and doc.get("processes")) or bool(doc.get("endpoints"))


def systems_of(servers: Iterable[Mapping[str, Any]]) -> list[str]:
    """The systems MCP servers reach: a remote server's host, and each data system URL in the arguments
    (``scheme://host/database``), lower-cased, without user, password, port or query."""
    found: set[str] = set()
    for server in servers:
        url = server.get("url")
        if isinstance(url, str) and (host := _host(url)):
            found.add(host)
        args = server.get("args")
        for arg in args if isinstance(args, list) else ():
            if isinstance(arg, str) and (system := _data_system(arg)):
                found.add(system)
    return sorted(found)


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:  # a malformed port or bracket: no host to name
        return ""


def _data_system(arg: str) -> str:
    match = re.match(r"([a-z][a-z0-9+.-]*)://", arg.strip(), re.IGNORECASE)
    if match is None or match.group(1).lower() not in DATA_SCHEMES:
        return ""
    scheme = match.group(1).lower()
    host = _host(arg.strip())
    try:
        database = urlsplit(arg.strip()).path.strip("/").split("/")[0]
    except ValueError:
        return ""
    return f"{scheme}://{host}/{database}".lower() if host else ""


# -- at ingest -----------------------------------------------------------------------------------------

_SQL = {
    "upsert": "INSERT INTO behaviour_fact (device_id, sighting_id, kind, value, first_seen, last_seen, gone_at) "
              "VALUES (:device_id, :sighting_id, :kind, :value, :now, :now, NULL) "
              "ON CONFLICT (device_id, sighting_id, kind, value) DO UPDATE SET last_seen = excluded.last_seen, "
              "gone_at = NULL",
    "gone": "UPDATE behaviour_fact SET gone_at = :now WHERE device_id = :device_id AND sighting_id = :sighting_id "
            "AND gone_at IS NULL AND last_seen < :now",
    "open": "SELECT id, sighting_id, added FROM drift_event WHERE device_id = :device_id AND status = 'open'",
    "systems": "SELECT data_systems, decided_at FROM registration WHERE id = :id",
    "since": "SELECT value FROM behaviour_fact WHERE device_id = :device_id AND sighting_id = :sighting_id "
             "AND kind = 'system' AND gone_at IS NULL AND first_seen > :decided_at",
    "new_event": "INSERT INTO drift_event (device_id, sighting_id, began_at, added, status) "
                 "VALUES (:device_id, :sighting_id, :now, :added, 'open') RETURNING id",
    "parent": "SELECT parent FROM sighting WHERE device_id = :device_id AND id = :sighting_id",
    "grow_event": "UPDATE drift_event SET added = :added WHERE id = :id",
    "end_event": "UPDATE drift_event SET status = 'resolved', ended_at = :now WHERE id = :id",
}  # fmt: skip
_PG_SQL = {name: re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", statement) for name, statement in _SQL.items()}


def record(cursor: Any, pg: bool, device_id: str, docs: Mapping[str, Mapping[str, Any]],
           rows: Iterable[Mapping[str, Any]], history: Iterable[Mapping[str, Any]], now: float,
           standings: Mapping[str, tuple[str, str]]) -> None:
    """Write the facts of the sightings a report changed (``history``'s new and changed entries), mark the
    facts they no longer show gone, and open, grow or resolve their drift events.

    ``cursor`` is the driver's cursor inside the ingest transaction; nothing runs when no sighting changed.
    ``standings`` is the device's (``chains.stored_standings``, read once for the whole report).
    """
    # a change elsewhere (a process started, a config file moved) shows no other fact: nothing to write
    changes = {h["sighting_id"]: h["change"] for h in history if h["change"] == "new"
               or h["change"] == "changed" and _shows_facts(docs[h["sighting_id"]], h["fields"].split(","))}
    if not changes:
        return
    sql = _PG_SQL if pg else _SQL
    facts = [{"device_id": device_id, "sighting_id": sid, "kind": kind, "value": value, "now": now}
             for sid in changes for kind, value in facts_of(docs[sid])]
    cursor.executemany(sql["upsert"], facts)
    # a new sighting has no facts from before to leave behind
    before = [{"device_id": device_id, "sighting_id": sid, "now": now} for sid, c in changes.items() if c == "changed"]
    if before:
        cursor.executemany(sql["gone"], before)
    # Drift needs a standing (an approval or a registration): a device with none, most of a fleet, stops here.
    if not standings:
        return
    drifting = {r["id"] for r in rows if r["id"] in changes and "drift" in orjson.loads(r["flags"])}
    cursor.execute(sql["open"], {"device_id": device_id})
    open_events = {sid: (event_id, orjson.loads(added)) for event_id, sid, added in cursor.fetchall()}
    for sid in changes:
        event = open_events.get(sid)
        if sid not in drifting:
            # an event some sub-agent or tool server of it brought stays open until an admin accepts it
            if event is not None and not event[1].get("via"):
                cursor.execute(sql["end_event"], {"id": event[0], "now": now})
            continue
        standing = standings.get(sid)
        if standing is None:
            continue
        declared = _declared_systems(cursor, sql, device_id, sid, standing[1])
        _open_or_grow(cursor, sql, open_events, device_id, sid,
                      difference(facts_of(docs[sid]), standing[0], standing[1], declared), now)
    for sid, doc in ((sid, docs[sid]) for sid in changes if docs[sid].get("parent")):
        _judge_against_root(cursor, sql, open_events, standings, device_id, sid, doc, docs, now)


def _shows_facts(doc: Mapping[str, Any], fields: list[str]) -> bool:
    """Whether a change can show other facts: a tool server's processes say whether it is used."""
    return not FACT_FIELDS.isdisjoint(fields) or doc.get("type") == "tool_server" and not USE_FIELDS.isdisjoint(fields)


def _judge_against_root(cursor: Any, sql: Mapping[str, str], open_events: dict[str, tuple[int, dict[str, Any]]],
                        standings: Mapping[str, tuple[str, str]], device_id: str, sighting_id: str,
                        doc: Mapping[str, Any], docs: Mapping[str, Mapping[str, Any]], now: float) -> None:
    """A sub-agent or tool server with no standing of its own is held to the declaration of the root of its
    chain (its parent's parent ...): what that does not cover is drift on the root, naming the sighting
    (``via``). Nothing when the root has no approval or approved registration."""
    if sighting_id in standings:
        return  # judged on its own
    root = _root_of(cursor, sql, device_id, str(doc["parent"]), docs)
    standing = standings.get(root) if root is not None else None
    if root is None or standing is None:
        return
    declared = _declared_systems(cursor, sql, device_id, sighting_id, standing[1])
    added = difference(facts_of(doc), standing[0], standing[1], declared)
    if any(added.values()):
        _open_or_grow(cursor, sql, open_events, device_id, root, {**added, "via": [sighting_id]}, now)


def _root_of(cursor: Any, sql: Mapping[str, str], device_id: str, parent: str,
             docs: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The root of a chain from a parent id: this report's documents first, then the stored sightings; None
    for an unknown parent, a loop or a chain deeper than a hostile device should send."""
    return chains.root_of(chains.parent_lookup(cursor, sql["parent"], device_id, docs), parent)


def _open_or_grow(cursor: Any, sql: Mapping[str, str], open_events: dict[str, tuple[int, dict[str, Any]]],
                  device_id: str, sighting_id: str, added: dict[str, Any], now: float) -> None:
    """Open a drift event on the sighting with what was added, or join it to the one open already."""
    if not any(added.get(k) for k in ADDED):
        return
    event = open_events.get(sighting_id)
    if event is None:
        cursor.execute(sql["new_event"], {"device_id": device_id, "sighting_id": sighting_id, "now": now,
                                          "added": orjson.dumps(merge({}, added)).decode()})
        open_events[sighting_id] = (int(cursor.fetchone()[0]), merge({}, added))
    elif (grown := merge(event[1], added)) != event[1]:
        cursor.execute(sql["grow_event"], {"id": event[0], "added": orjson.dumps(grown).decode()})
        open_events[sighting_id] = (event[0], grown)


def _declared_systems(cursor: Any, sql: Mapping[str, str], device_id: str, sighting_id: str,
                      registration: str) -> tuple[list[str], set[str]] | None:
    """The data systems the approved registration declares, and the systems the sighting reached first
    after it was approved (None: no approved registration). Only those can be added: a system it reached
    when the admin approved it was part of what was approved."""
    summary = orjson.loads(registration) if registration else None
    if not summary or summary.get("status") != "approved":
        return None
    cursor.execute(sql["systems"], {"id": summary["id"]})
    row = cursor.fetchone()
    if row is None:
        return None
    value, decided_at = row
    systems = orjson.loads(value) if isinstance(value, str | bytes) else value
    cursor.execute(sql["since"], {"device_id": device_id, "sighting_id": sighting_id, "decided_at": decided_at or 0.0})
    return [s for s in systems or [] if isinstance(s, str)], {r[0] for r in cursor.fetchall()}


def difference(facts: Iterable[tuple[str, str]], approval: str, registration: str,
               declared_systems: tuple[list[str], set[str]] | None) -> dict[str, Any]:
    """What the facts add beyond the declarations that hold the sighting (its approved registration's, and
    what it did when an admin approved it), as governance judges drift. ``declared_systems``: the approved
    registration's data systems and the systems reached first since its approval; one of those is added
    when no declared one covers it (a declared ``payroll`` covers ``postgresql://db.internal/payroll``)."""
    standing = triage.standing_of(approval, registration)
    held = [d for d in ((standing.declaration if standing.registration == "approved" else None), standing.approval)
            if d is not None]
    by_kind: dict[str, list[str]] = {k: [] for k in KINDS}
    for kind, value in facts:
        by_kind.setdefault(kind, []).append(value)
    added: dict[str, Any] = {
        "providers": sorted({p for p in by_kind["provider"] for d in held if p not in d.providers}),
        "mcp_servers": sorted({t for t in by_kind["mcp_server"] for d in held if t not in d.tools}),
        # a tool only where the declaration names tools (governance.tools_beyond)
        "tools": sorted({t for d in held for t in governance.tools_beyond(d.tools, by_kind["mcp_tool"],
                                                                           by_kind["tool"])}),
        "systems": [] if declared_systems is None else
        [s for s in by_kind["system"] if s in declared_systems[1] and not _covers(declared_systems[0], s)],
        "autonomy": "autonomous" in by_kind["autonomy"] and any(not d.autonomous for d in held),
    }
    return added


def _covers(declared: Iterable[str], system: str) -> bool:
    """Whether a declared data system names this one: the whole of it, its host or its database."""
    names = {system}
    if "://" in system:
        try:
            parts = urlsplit(system)
            names |= {parts.hostname or "", parts.path.strip("/")}
        except ValueError:  # "postgres://a]/db": the whole value still counts
            pass
    names.discard("")
    return any(d.strip().lower() in names for d in declared)


def merge(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """An open event's additions with the new ones joined in (what it added first stays)."""
    merged: dict[str, Any] = {k: sorted(set(old.get(k) or []) | set(new.get(k) or []))
                              for k in ADDED if k != "autonomy"}
    merged["autonomy"] = bool(old.get("autonomy")) or bool(new.get("autonomy"))
    via = sorted(set(old.get("via") or []) | set(new.get("via") or []))
    return {**{k: merged[k] for k in ADDED}, **({"via": via} if via else {})}


def describe(added: Mapping[str, Any]) -> str:
    """One line for the audit log and the console: ``providers openai; MCP servers slack``."""
    parts = [f"{label} {', '.join(added[k])}" for k, label in
             (("providers", "providers"), ("mcp_servers", "MCP servers"), ("tools", "tools"), ("systems", "systems"))
             if added.get(k)]
    if added.get("autonomy"):
        parts.append("runs autonomously")
    if added.get("via"):
        parts.append(f"through {len(added['via'])} sub-agent or tool server sighting(s) of its chain")
    return "; ".join(parts) or "nothing"


# -- reading ---------------------------------------------------------------------------------------------


def facts(conn: Connection, key: triage.Key) -> list[dict[str, Any]]:
    """A sighting's facts, oldest first (present ones before gone ones of the same start), with the
    MCP servers its tool server sightings show used (``mcp_server_used``): each of those carries the tool
    server's id (``sighting_id``), its last_seen (``seen``) and, once that sighting is gone, its gone_at."""
    rows = [dict(r) for r in conn.execute(select(F).where(F.c.device_id == key[0], F.c.sighting_id == key[1])
                                          .order_by(F.c.first_seen, F.c.kind, F.c.value)).mappings()]
    # the children of a sighting are found on the primary key's device prefix: one device's sightings
    children = (select(S.c.id, S.c.last_seen, S.c.gone, S.c.gone_at)
                .where(S.c.device_id == key[0], S.c.parent == key[1], S.c.type == "tool_server").subquery())
    for row in conn.execute(select(F, children.c.last_seen.label("seen"), children.c.gone.label("child_gone"),
                                   children.c.gone_at.label("child_gone_at"))
                            .join(children, F.c.sighting_id == children.c.id)
                            .where(F.c.device_id == key[0], F.c.kind == "mcp_server_used")
                            .order_by(F.c.first_seen, F.c.value).limit(MAX_FACTS)).mappings():  # a hostile chain
        fact = dict(row)
        gone, gone_at = fact.pop("child_gone"), fact.pop("child_gone_at")
        if gone and fact["gone_at"] is None:  # the tool server's sighting is gone: so is its use
            fact["gone_at"] = gone_at if gone_at is not None else fact["seen"]
        rows.append(fact)
    return sorted(rows, key=lambda f: (f["first_seen"], f["kind"], f["value"], f["sighting_id"]))


def events(conn: Connection, key: triage.Key | None = None, since: float | None = None,
           status: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """Drift events, newest first: one sighting's, or the fleet's since a time (of one status)."""
    query = select(E).order_by(E.c.began_at.desc(), E.c.id.desc()).limit(limit)
    if key is not None:
        query = query.where(E.c.device_id == key[0], E.c.sighting_id == key[1])
    if since is not None:
        query = query.where(E.c.began_at >= since)
    if status is not None:  # in the query, before the limit: the newest open ones, not open ones of the newest
        query = query.where(E.c.status == status)
    return [{**r, "added": orjson.loads(r["added"])} for r in conn.execute(query).mappings()]


# -- accepting the new behaviour ---------------------------------------------------------------------------


def accept(conn: Connection, key: triage.Key, event_id: int, actor: str, now: float | None = None) -> dict[str, Any]:
    """Widen the declaration that holds the sighting to cover what the event added, audit it as a triage
    action, close the event and re-assess the sighting. Answers the event as it is now."""
    now = time.time() if now is None else now
    event = conn.execute(select(E).where(E.c.id == event_id)).mappings().first()
    if event is None or (event["device_id"], event["sighting_id"]) != key:
        raise triage.TriageError(404, "drift_event_not_found", id=event_id,
                                 message=f"No drift event #{event_id} on this sighting.")
    if event["status"] != "open":
        raise triage.TriageError(409, "drift_event_closed", status=event["status"],
                                 message=f"Drift event #{event_id} is {event['status']} already.")
    added = orjson.loads(event["added"])
    row = triage.triage_of(conn, key)
    if row is None or not (row["approval"] or row["registration"]):
        raise triage.TriageError(409, "nothing_declared", message="The sighting has no approval or approved "
                                 "registration to widen: approve it or its registration instead.")
    registration = orjson.loads(row["registration"]) if row["registration"] else None
    if registration and registration["status"] == "approved":
        _widen_registration(conn, int(registration["id"]), added)
    approval = row["approval"]
    if approval:
        approval = _widen(orjson.loads(approval), added)
        conn.execute(update(T).where(T.c.device_id == key[0], T.c.sighting_id == key[1])
                     .values(approval=approval, updated_at=now))
    note = f"accepted drift #{event_id}: {describe(added)}"
    batch_id = conn.execute(insert(B).values(action="accept_drift", actor=actor, at=now, count=1, note=note)
                            .returning(B.c.id)).scalar_one()
    previous = {"state": row["state"], "owner": row["owner"], "approval": row["approval"]}
    conn.execute(insert(U).values(batch_id=batch_id, device_id=key[0], sighting_id=key[1],
                                  previous=orjson.dumps(previous).decode()))
    conn.execute(insert(A).values(device_id=key[0], sighting_id=key[1], action="accept_drift", actor=actor, at=now,
                                  note=note, batch_id=batch_id))
    conn.execute(update(E).where(E.c.id == event_id).values(status="accepted", ended_at=now, ended_by=actor))
    if registration and registration["status"] == "approved":
        triage.refresh_registration(conn, key, now)  # stores the widened declaration, re-assesses
    else:
        triage.reassess(conn, [key])
    return {**dict(event), "added": added, "status": "accepted", "ended_at": now, "ended_by": actor}


def _widen(declaration: dict[str, Any], added: Mapping[str, Any]) -> str:
    """An approval's declaration (providers, tools, autonomy) covering what was added, as JSON."""
    widened = {**declaration,
               "providers": sorted(set(declaration.get("providers") or []) | set(added["providers"])),
               "tools": sorted(set(declaration.get("tools") or []) | set(added["mcp_servers"])
                               | set(added.get("tools") or []))}
    if added["autonomy"]:
        widened["autonomy"] = "autonomous"
    return orjson.dumps(widened).decode()


def _widen_registration(conn: Connection, registration_id: int, added: Mapping[str, Any]) -> None:
    row = conn.execute(select(R.c.providers, R.c.tools, R.c.data_systems).where(R.c.id == registration_id)).first()
    if row is None:
        return
    providers = list(dict.fromkeys([*row[0], *added["providers"]]))
    tools = list(dict.fromkeys([*row[1], *added["mcp_servers"], *(added.get("tools") or [])]))
    systems = list(dict.fromkeys([*row[2], *added["systems"]]))
    if max(len(providers), len(tools), len(systems)) > MAX_ITEMS:
        raise triage.TriageError(409, "declaration_too_long", limit=MAX_ITEMS,
                                 message=f"The registration would declare more than {MAX_ITEMS} items of one "
                                         "kind: ask the employee to register the agent again instead.")
    values: dict[str, Any] = {"providers": providers, "tools": tools, "data_systems": systems}
    if added["autonomy"]:
        values["autonomy"] = "autonomous"
    conn.execute(update(R).where(R.c.id == registration_id).values(**values))
