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
from sqlalchemy import Connection, select

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


def at_ingest(cursor: Any, pg: bool, device_id: str, rows: Iterable[Mapping[str, Any]],
              docs: Mapping[str, Mapping[str, Any]], own: Mapping[str, governance.Standing]) -> dict[str, governance.Standing]:
    """The standing of each root whose chain holds a sighting of this report without a standing of its own
    (``own``), by sighting id; only roots whose standing covers. One query when the device has no standing."""
    waiting = [r["id"] for r in rows if docs[r["id"]].get("parent") and r["id"] not in own]
    if not waiting:
        return {}
    sql = _PG_SQL if pg else _SQL
    cursor.execute(sql["standings"], {"device_id": device_id})
    standings = {sid: standing_of(a, r) for sid, a, r in cursor.fetchall()}
    if not any(covers(s) for s in standings.values()):
        return {}  # most of a fleet: nobody approved or registered anything on this device

    def parent_of(sighting_id: str) -> str | None:
        if sighting_id in docs:
            return docs[sighting_id].get("parent")
        cursor.execute(sql["parent"], {"device_id": device_id, "sighting_id": sighting_id})
        found = cursor.fetchone()
        if found is None:
            raise KeyError(sighting_id)
        return found[0]  # type: ignore[no-any-return]

    roots: dict[str, governance.Standing] = {}
    for sid in waiting:
        root = root_of(parent_of, str(docs[sid]["parent"]))
        if root is not None and covers(standings.get(root)):
            roots[sid] = standings[root]
    return roots


# -- stored sightings -------------------------------------------------------------------------------------


def descendants(conn: Connection, keys: Sequence[Key]) -> list[Key]:
    """Every sighting whose chain passes through one of ``keys`` (children, theirs, ...), each once."""
    found: dict[Key, None] = {}
    level = list(dict.fromkeys(keys))
    for _ in range(MAX_CHAIN):
        if not level:
            break
        by_device: dict[str, list[str]] = {}
        for device_id, sighting_id in level:
            by_device.setdefault(device_id, []).append(sighting_id)
        following: list[Key] = []
        for device_id, ids in by_device.items():
            for start in range(0, len(ids), _CHUNK):
                # on the primary key's device prefix: one device's sightings
                following += [(device_id, s) for (s,) in conn.execute(
                    select(S.c.id).where(S.c.device_id == device_id, S.c.parent.in_(ids[start:start + _CHUNK])))]
        level = [k for k in following if k not in found and k not in keys]
        found.update(dict.fromkeys(level))
    return list(found)


def roots_of_stored(conn: Connection, keys: Iterable[Key]) -> dict[Key, tuple[str, str, governance.Standing]]:
    """For stored sightings without a standing of their own: the root of each one's chain whose standing
    covers it, as ``{key: (root id, root name, root standing)}``."""
    cache: dict[Key, tuple[str | None, str]] = {}

    def row_of(device_id: str, sighting_id: str) -> tuple[str | None, str]:
        key = (device_id, sighting_id)
        if key not in cache:
            found = conn.execute(select(S.c.parent, S.c.name).where(S.c.device_id == device_id,
                                                                    S.c.id == sighting_id)).first()
            if found is None:
                raise KeyError(sighting_id)
            cache[key] = (found[0], found[1])
        return cache[key]

    out: dict[Key, tuple[str, str, governance.Standing]] = {}
    for device_id, sighting_id in keys:
        try:
            parent = row_of(device_id, sighting_id)[0]
        except KeyError:
            continue
        if not parent:
            continue
        root = root_of(lambda s, d=device_id: row_of(d, s)[0], parent)  # type: ignore[misc]
        if root is None:
            continue
        triage = conn.execute(select(T.c.approval, T.c.registration)
                              .where(T.c.device_id == device_id, T.c.sighting_id == root)).first()
        standing = standing_of(triage[0], triage[1]) if triage is not None else None
        if standing is not None and covers(standing):
            out[(device_id, sighting_id)] = (root, row_of(device_id, root)[1], standing)
    return out


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
    for device_id, sighting_id in candidates:
        found = conn.execute(select(T.c.approval, T.c.registration)
                             .where(T.c.device_id == device_id, T.c.sighting_id == sighting_id)).first()
        if found is not None and (found[0] or found[1]):
            own.add((device_id, sighting_id))
    return {key: Cover(root, name, "registration" if standing.registration == "approved" else "approval", standing)
            for key, (root, name, standing) in roots_of_stored(conn, [k for k in candidates if k not in own]).items()}
