"""Chains of sightings: a sub-agent or tool server an agent spawned or declared (its ``parent``, and its
parent's, up to the root of the chain) is judged against the root of its chain.

A sighting with no standing of its own (no approval, no registration) takes its root's standing (an admin's
approval, or an approved registration) where what it does stays inside that declaration: it is then
covered, governed unless something else says otherwise, and carries no ``unregistered`` (the roster, the
detail and the console say "covered by Claude Code's registration"). Where it does more, it keeps no
standing (``unregistered``) and what the root's declaration does not cover is drift on the root
(``console/server/timeline.py``). A chain that loops, is deeper than ``MAX_CHAIN`` or whose root the
collector does not know covers nothing.

The collector applies this wherever it assesses a sighting: at ingest (``at_ingest``, on the driver's
cursor, one query for a device that has no standing at all), and when it re-assesses stored sightings
(``roots_of_stored`` and ``descendants``: a decision on a root re-assesses its chain).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import orjson
from sqlalchemy import ColumnElement, Connection, func, select, tuple_

from console import governance
from console.server.models import Sighting, SightingTriage

S = Sighting.__table__  # type: ignore[attr-defined]
T = SightingTriage.__table__  # type: ignore[attr-defined]

Key = tuple[str, str]  # (device_id, sighting_id)
MAX_CHAIN = 16  # parents followed to the root of a chain
_CHUNK = 500


def root_of(parent_of: Callable[[str], str | None], parent: str) -> str | None:
    """The root of a chain, from a sighting's parent id: ``parent_of`` answers a sighting's own parent (None
    or "" for a root) and raises KeyError for one it does not know. None for an unknown sighting, a loop or
    a chain deeper than a hostile device should send."""
    seen: set[str] = set()
    current = parent
    for _ in range(MAX_CHAIN):
        if current in seen:
            return None
        seen.add(current)
        try:
            up = parent_of(current)
        except KeyError:
            return None
        if not up:
            return current
        current = str(up)
    return None


def covers(standing: governance.Standing | None) -> bool:
    """Whether a root's standing can cover its chain: an admin's approval, or an approved registration."""
    return standing is not None and (standing.approval is not None or standing.registration == "approved")


def chain_standing(root: governance.Standing | None, verdict: Callable[[governance.Standing], governance.Verdict],
                   ) -> governance.Standing:
    """The standing a sighting without one of its own is assessed with: its root's, when the root's covers
    it and the sighting does nothing beyond it (``verdict`` assesses the sighting under a standing); else
    none, so that it stays ``unregistered`` and its drift is the root's."""
    if root is None or not covers(root):
        return governance.NO_STANDING
    return root if "drift" not in dict(verdict(root).reasons) else governance.NO_STANDING


def standing_of(approval: str, registration: str) -> governance.Standing:
    """The standing a ``sighting_triage`` row's two JSON columns hold (as ``triage.standing_of``, which
    imports this module)."""
    approved = _declaration(orjson.loads(approval)) if approval else None
    reg = orjson.loads(registration) if registration else None
    if reg is None:
        return governance.Standing(approval=approved)
    return governance.Standing(approval=approved, registration=reg["status"],
                               declaration=_declaration(reg) if reg["status"] == "approved" else None)


def _declaration(data: dict[str, Any]) -> governance.Declaration:
    return governance.Declaration.of(data.get("providers", ()), data.get("tools", ()),
                                     data.get("autonomy") == "autonomous")


# -- at ingest ------------------------------------------------------------------------------------------

_SQL = {
    "standings": "SELECT sighting_id, approval, registration FROM sighting_triage WHERE device_id = :device_id "
                 "AND (approval <> '' OR registration <> '')",
    "parent": "SELECT parent FROM sighting WHERE device_id = :device_id AND id = :sighting_id",
}
_PG_SQL = {name: re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", statement) for name, statement in _SQL.items()}


def stored_standings(cursor: Any, pg: bool, device_id: str) -> dict[str, tuple[str, str]]:
    """The device's stored standings as ``{sighting id: (approval, registration)}`` (the JSON text of a
    ``sighting_triage`` row that has either): read once per report, on the primary key's device prefix, for
    the report's own sightings, the roots of its chains and its drift alike. Empty for most of a fleet."""
    cursor.execute((_PG_SQL if pg else _SQL)["standings"], {"device_id": device_id})
    return {sid: (approval, registration) for sid, approval, registration in cursor.fetchall()}


def parent_lookup(cursor: Any, statement: str, device_id: str,
                  docs: Mapping[str, Mapping[str, Any]]) -> Callable[[str], str | None]:
    """A sighting's parent as ``root_of`` asks for it at ingest: from this report's documents first, then
    from the store by ``statement`` (its parameters ``device_id`` and ``sighting_id``); ``KeyError`` for a
    sighting known to neither."""

    def parent_of(sighting_id: str) -> str | None:
        if sighting_id in docs:
            return docs[sighting_id].get("parent")
        cursor.execute(statement, {"device_id": device_id, "sighting_id": sighting_id})
        found = cursor.fetchone()
        if found is None:
            raise KeyError(sighting_id)
        return found[0]  # type: ignore[no-any-return]

    return parent_of


def at_ingest(cursor: Any, pg: bool, device_id: str, rows: Iterable[Mapping[str, Any]],
              docs: Mapping[str, Mapping[str, Any]], own: Mapping[str, governance.Standing],
              stored: Mapping[str, tuple[str, str]]) -> dict[str, governance.Standing]:
    """The standing of each root whose chain holds a sighting of this report without a standing of its own
    (``own``), by sighting id; only roots whose standing covers. ``stored`` is ``stored_standings``: nothing
    is read when the device has none."""
    waiting = [r["id"] for r in rows if docs[r["id"]].get("parent") and r["id"] not in own]
    if not waiting or not stored:
        return {}
    sql = _PG_SQL if pg else _SQL
    standings = {sid: standing_of(a, r) for sid, (a, r) in stored.items()}
    if not any(covers(s) for s in standings.values()):
        return {}  # most of a fleet: nobody approved or registered anything on this device

    parent_of = parent_lookup(cursor, sql["parent"], device_id, docs)
    roots: dict[str, governance.Standing] = {}
    for sid in waiting:
        root = root_of(parent_of, str(docs[sid]["parent"]))
        if root is not None and covers(standings.get(root)):
            roots[sid] = standings[root]
    return roots


# -- stored sightings -------------------------------------------------------------------------------------


def descendants(conn: Connection, keys: Sequence[Key]) -> list[Key]:
    """Every sighting whose chain passes through one of ``keys`` (children, theirs, ...), each once: one
    query per level of the deepest chain (and per 500 parents), each seeking the primary key's device
    prefix for each parent."""
    found: dict[Key, None] = {}
    given = set(keys)
    level = list(dict.fromkeys(keys))
    for _ in range(MAX_CHAIN):
        following: list[Key] = []
        for start in range(0, len(level), _CHUNK):
            following += [(d, i) for d, i in conn.execute(select(S.c.device_id, S.c.id).where(
                among(conn, S.c.device_id, S.c.parent, level[start:start + _CHUNK])))]
        level = [k for k in dict.fromkeys(following) if k not in found and k not in given]
        if not level:
            break
        found.update(dict.fromkeys(level))
    return list(found)


def roots_of_stored(conn: Connection, keys: Iterable[Key], known: Mapping[Key, tuple[str | None, str]] | None = None,
                    ) -> dict[Key, tuple[str, str, governance.Standing]]:
    """For stored sightings without a standing of their own: the root of each one's chain whose standing
    covers it, as ``{key: (root id, root name, root standing)}``. A few queries whatever the number of keys
    (one per level of the deepest chain, and one for the roots' standings), each on primary keys.
    ``known``: the (parent, name) of sightings the caller has just read, which are not read again."""
    # (device_id, id) -> (parent, name), read level by level
    rows: dict[Key, tuple[str | None, str]] = dict(known or {})

    def read(wanted: Iterable[Key]) -> None:
        missing = list(dict.fromkeys(k for k in wanted if k not in rows))
        for start in range(0, len(missing), _CHUNK):
            for d, i, parent, name in conn.execute(select(S.c.device_id, S.c.id, S.c.parent, S.c.name).where(
                    among(conn, S.c.device_id, S.c.id, missing[start:start + _CHUNK]))):
                rows[(d, i)] = (parent, name)

    keys = list(dict.fromkeys(keys))
    read(keys)
    # each sighting climbs its chain one level per round: where it stands now, and where it has been
    climbing = {k: (k, {k[1]}) for k in keys if k in rows and rows[k][0]}
    roots: dict[Key, str] = {}
    for _ in range(MAX_CHAIN):
        if not climbing:
            break
        read((k[0], str(rows[at][0])) for k, (at, _) in climbing.items())
        following: dict[Key, tuple[Key, set[str]]] = {}
        for key, (at, seen) in climbing.items():
            up = (key[0], str(rows[at][0]))
            if up not in rows or up[1] in seen:
                continue  # a parent the collector does not know, or a loop: no root
            if not rows[up][0]:
                roots[key] = up[1]
            else:
                following[key] = (up, seen | {up[1]})
        climbing = following
    standings: dict[Key, governance.Standing] = {}
    wanted = list(dict.fromkeys((k[0], r) for k, r in roots.items()))
    for start in range(0, len(wanted), _CHUNK):
        for d, i, approval, registration in conn.execute(
                select(T.c.device_id, T.c.sighting_id, T.c.approval, T.c.registration)
                .where(among(conn, T.c.device_id, T.c.sighting_id, wanted[start:start + _CHUNK]))):
            standings[(d, i)] = standing_of(approval, registration)
    return {key: (root, rows[(key[0], root)][1], standings[(key[0], root)]) for key, root in roots.items()
            if covers(standings.get((key[0], root)))}


def among(conn: Connection, device_column: Any, id_column: Any, keys: Sequence[Key]) -> ColumnElement[bool]:
    """The row's (device_id, sighting_id) is one of ``keys`` (``triage.among`` says why it is written so)."""
    if conn.dialect.name != "sqlite":
        return tuple_(device_column, id_column).in_(list(keys))
    listed = func.json_each(orjson.dumps([list(k) for k in keys]).decode()).table_valued("value")
    return tuple_(device_column, id_column).in_(
        select(func.json_extract(listed.c.value, "$[0]"), func.json_extract(listed.c.value, "$[1]")))


class Cover(NamedTuple):
    """The root of a chain that covers a sighting: its id, its name, ``registration`` or ``approval``, and
    the standing the sighting is assessed with."""

    sighting_id: str
    name: str
    by: Literal["registration", "approval"]
    standing: governance.Standing


def covered_by(conn: Connection, rows: Iterable[tuple[Key, str | None, list[str]]]) -> dict[Key, Cover]:
    """Which of these stored sightings (``(key, parent, flags)``) the root of their chain covers: those with
    a parent, no standing of their own, neither ``unregistered`` nor ``pending`` nor drifting, whose root's
    standing covers them (as the last assessment found)."""
    candidates = [key for key, parent, flags in rows
                  if parent and "unregistered" not in flags and "pending" not in flags and "drift" not in flags]
    if not candidates:
        return {}
    own: set[Key] = set()
    for start in range(0, len(candidates), _CHUNK):
        own.update((d, i) for d, i, approval, registration in conn.execute(
            select(T.c.device_id, T.c.sighting_id, T.c.approval, T.c.registration)
            .where(among(conn, T.c.device_id, T.c.sighting_id, candidates[start:start + _CHUNK])))
            if approval or registration)
    return {key: Cover(root, name, "registration" if standing.registration == "approved" else "approval", standing)
            for key, (root, name, standing) in roots_of_stored(conn, [k for k in candidates if k not in own]).items()}
