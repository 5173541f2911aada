"""Triage and registrations in the store: actions on sightings, employees' registrations, and what both
do to governance.

A sighting's triage (state, owner, approval, the registration that counts) lives in ``sighting_triage``,
one row per triaged sighting, apart from the sighting row that every report rewrites. Ingest reads it
only for the sightings of a report that have an approval or a registration (``adjust_at_ingest``), so
that a report never undoes an admin's decision; the routes re-assess the sightings they touch
(``reassess``) in the same transaction as the decision. On PostgreSQL every write here takes the
policy lock whole (``lock``), as a policy change does: ingests in flight finish first, new ones wait.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from console import governance
from console.server import chains
from console.server.errors import CollectorError
from console.server.models import (
    Policy,
    Registration,
    Sighting,
    SightingTag,
    SightingTriage,
    TriageAction,
    TriageActionCreate,
    TriageBatch,
    TriageUndo,
)

Key = tuple[str, str]  # (device_id, sighting_id)

S = Sighting.__table__  # type: ignore[attr-defined]
G = SightingTag.__table__  # type: ignore[attr-defined]
T = SightingTriage.__table__  # type: ignore[attr-defined]
A = TriageAction.__table__  # type: ignore[attr-defined]
R = Registration.__table__  # type: ignore[attr-defined]
B = TriageBatch.__table__  # type: ignore[attr-defined]
U = TriageUndo.__table__  # type: ignore[attr-defined]
_CHUNK = 500

#: the state each action leaves a sighting in (None: the state does not change)
STATE_AFTER = {"approve": "approved", "request_registration": "registration_requested",
               "false_positive": "false_positive", "assign_owner": None, "note": None}


class TriageError(CollectorError):
    """A triage request the collector refuses; ``status`` and ``detail`` make the HTTP answer."""

    code = "triage_refused"

    def __init__(self, http_status: int, reason: str, **extra: Any) -> None:
        super().__init__(reason, **extra)
        self.status = http_status


#: what a sighting id looks like (the daemon's are 32 hex digits); anything else is not echoed back
_ID_SHAPE = re.compile(r"[0-9a-f]{1,64}")


def not_found(device_id: str, sighting_id: str, device: bool = True, **extra: Any) -> TriageError:
    """The 404 for a sighting the collector does not know. The id sent comes back only when it has the shape
    of an id: a careless client may have put something else there (a key), which is never echoed."""
    shaped = bool(_ID_SHAPE.fullmatch(sighting_id))
    named = f"sighting {sighting_id}" if shaped else "the sighting id sent (it is not an id: 1-64 hex digits)"
    where = " on that device" if device else " on this device"
    return TriageError(404, "sighting_not_found", **({"device_id": device_id} if device else {}),
                       **({"sighting_id": sighting_id} if shaped else {}), **extra,
                       message=f"No such agent: {named} is not known{where}. Check the id against the roster "
                               "(GET /api/v1/agents).")


# -- governance inputs ----------------------------------------------------------------------------------


def standing_of(approval: str, registration: str) -> governance.Standing:
    """The governance standing stored in a ``sighting_triage`` row's two JSON columns."""
    return chains.standing_of(approval, registration)


def load_policy(conn: Connection) -> governance.Policy:
    row = conn.execute(select(Policy.sanctioned_signatures, Policy.sanctioned_providers,  # type: ignore[call-overload]
                              Policy.corporate_fingerprints, Policy.risky_tools, Policy.group_approvals)
                       .where(Policy.id == 1)).first()
    return governance.Policy.of(*row) if row else governance.Policy()


def lock(conn: Connection, lock_id: int) -> None:
    """On PostgreSQL, wait for the ingests in flight and hold new ones until this transaction ends."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})


def among(conn: Connection, device_column: Any, id_column: Any, keys: Sequence[Key]) -> ColumnElement[bool]:
    """The row's (device_id, sighting_id) is one of ``keys``. SQLite reads a list of row values written out
    (``IN (VALUES ...)``) by scanning the whole table, 85 ms per 500 keys at 100,000 sightings; from a
    subquery over the keys as one JSON parameter it seeks the primary key for each (under 1 ms)."""
    return chains.among(conn, device_column, id_column, keys)


def tags_of(flags: Iterable[str], providers: Iterable[str]) -> list[tuple[str, str]]:
    return [("flag", f) for f in flags] + [("provider", p) for p in providers]


# -- at ingest ------------------------------------------------------------------------------------------


def adjust_at_ingest(cursor: Any, pg: bool, device_id: str, rows: list[dict[str, Any]],
                     tags: dict[str, list[tuple[str, str]]], docs: dict[str, dict[str, Any]],
                     policy: governance.Policy, standings: Mapping[str, tuple[str, str]]) -> None:
    """Re-assess the rows of a report whose sightings an admin approved or an employee registered.

    ``cursor`` is the driver's cursor inside the ingest transaction; ``standings`` the device's stored
    standings (``chains.stored_standings``, read once per report): nothing else is read when none of its
    sightings has one.
    """
    groups = _groups_for(cursor, policy)
    if groups:
        policy = dataclasses.replace(policy, group_approvals=groups)
    found = {r["id"]: standing_of(*standings[r["id"]]) for r in rows if r["id"] in standings}
    roots = chains.at_ingest(cursor, pg, device_id, rows, docs, found, standings)  # sub-agents and tool servers: their root's
    for row in rows:
        standing = found.get(row["id"])
        doc = docs[row["id"]]
        if standing is None and row["id"] not in roots and not (groups and policy.sanctions(doc["signature"],
                                                                                             row["user"])):
            continue
        providers = orjson.loads(row["providers"])
        servers = doc["mcp_servers"]

        def verdict_under(held: governance.Standing, doc: dict[str, Any] = doc, row: dict[str, Any] = row,
                          providers: list[str] = providers, servers: Any = servers) -> governance.Verdict:
            return governance.assess(doc["signature"], providers, orjson.loads(row["fingerprints"]), doc["flags"],
                                     policy, held, governance.tools_of(servers), _risky(servers, policy),
                                     user=row["user"], tools=named_tools(doc))

        if standing is None:
            standing = chains.chain_standing(roots.get(row["id"]), verdict_under)
        verdict = verdict_under(standing)
        row["governed"], row["flags"] = verdict.governed, orjson.dumps(verdict.flags).decode()
        row["risk"] = governance.risk_of(verdict.flags)
        tags[row["id"]] = tags_of(verdict.flags, providers)


# -- re-assessing stored sightings --------------------------------------------------------------------------


def reassess(conn: Connection, keys: Iterable[Key], policy: governance.Policy | None = None) -> int:
    """Apply the policy and each sighting's standing to the given stored sightings and to the chains under
    them; returns how many changed. Each is assessed once, and only those whose verdict changes are written:
    an action on many sightings gathers its keys and calls this once (``apply_actions``' ``deferred``)."""
    policy = policy or load_policy(conn)
    keys = list(dict.fromkeys(keys))
    keys += chains.descendants(conn, keys)  # a decision on the root of a chain is one on what it covers
    changed = 0
    for start in range(0, len(keys), _CHUNK):
        changed += _reassess_chunk(conn, keys[start:start + _CHUNK], policy)
    return changed


def _reassess_chunk(conn: Connection, chunk: list[Key], policy: governance.Policy) -> int:
    standings = {(d, s): standing_of(a, r) for d, s, a, r in conn.execute(
        select(T.c.device_id, T.c.sighting_id, T.c.approval, T.c.registration)
        .where(among(conn, T.c.device_id, T.c.sighting_id, chunk)))}
    stored = list(conn.execute(
        select(S.c.device_id, S.c.id, S.c.signature, S.c.providers, S.c.fingerprints, S.c.flags, S.c.detail,
               S.c.governed, S.c.user, S.c.parent, S.c.name).where(among(conn, S.c.device_id, S.c.id, chunk))))
    roots = chains.roots_of_stored(conn, [(r[0], r[1]) for r in stored if r[9] and standings.get(
        (r[0], r[1]), governance.NO_STANDING).empty], known={(r[0], r[1]): (r[9], r[10]) for r in stored})
    updates, tags, before = [], {}, {}
    for d, s, signature, providers, fingerprints, flags, detail, governed, user, _, _ in stored:
        providers_list = orjson.loads(providers)
        root = roots[(d, s)][2] if (d, s) in roots else None
        verdict, recorded = assess_stored_in_chain(signature, providers_list, fingerprints, flags, detail, policy,
                                                   standings.get((d, s), governance.NO_STANDING), root, user=user)
        new_flags = orjson.dumps(verdict.flags).decode()
        if new_flags != flags or verdict.governed != governed:
            updates.append({"d": d, "s": s, "g": verdict.governed, "f": new_flags,
                            "r": governance.risk_of(verdict.flags), **({"dt": recorded} if recorded else {})})
            if new_flags != flags:  # the provider tags stay; the flag tags change with the flags
                tags[(d, s)] = tags_of(verdict.flags, providers_list)
                before[(d, s)] = flags
    write_verdicts(conn, updates, tags, flags_before=before)
    return len(updates)


def assess_stored_in_chain(signature: str | None, providers: list[str], fingerprints: str, flags: str, detail: str,
                           policy: governance.Policy, standing: governance.Standing | None,
                           root: governance.Standing | None, user: str | None = None,
                           ) -> tuple[governance.Verdict, str | None]:
    """``assess_stored`` for a stored sighting that may be in a chain (``fingerprints`` as stored, JSON):
    one without a standing of its own and with a covering ``root`` (its chain's root's standing,
    ``chains.roots_of_stored``) takes the root's where ``chains.chain_standing`` says so. It is first
    assessed under the root's standing to see whether it drifts from it; when it does not, that same verdict
    is the one answered: the sighting is assessed once."""
    assessed: dict[int, tuple[governance.Verdict, str | None]] = {}

    def verdict_under(held: governance.Standing | None) -> tuple[governance.Verdict, str | None]:
        if id(held) not in assessed:
            assessed[id(held)] = assess_stored(signature, providers, orjson.loads(fingerprints), flags, detail,
                                               policy, held, user=user)
        return assessed[id(held)]

    if root is not None and (standing is None or standing.empty):
        standing = chains.chain_standing(root, lambda held: verdict_under(held)[0])
    return verdict_under(standing)


def assess_stored(signature: str | None, providers: list[str], fingerprints: list[str], flags: str, detail: str,
                  policy: governance.Policy, standing: governance.Standing | None = None, user: str | None = None,
                  ) -> tuple[governance.Verdict, str | None]:
    """Re-assess a stored sighting from the flags its device sent (``governance.sent_flags``), never from
    the flags stored: a ``broad_tools`` the policy's risky-tool patterns added goes again with the pattern,
    one the device sent stays. ``standing`` None: the policy alone (the detail is read only when it can
    matter). Also answers the detail to store with the verdict for a row stored before the collector kept
    the device's flags apart (None otherwise), so that they are known once it may add one of its own."""
    stored = orjson.loads(flags)
    parsed: dict[str, Any] | None = None
    if standing is not None or policy.risky_tools or "broad_tools" in stored:
        parsed = orjson.loads(detail)
    servers = parsed.get("mcp_servers", []) if parsed is not None else []
    sent = governance.sent_flags(parsed or {}, stored)
    verdict = governance.assess(signature, providers, fingerprints, sent, policy, standing or governance.NO_STANDING,
                                governance.tools_of(servers), _risky(servers, policy), user=user,
                                tools=named_tools(parsed or {}))
    recorded = None
    if parsed is not None and governance.DEVICE_FLAGS not in parsed:
        recorded = orjson.dumps({**parsed, governance.DEVICE_FLAGS: sorted(set(sent))}).decode()
    return verdict, recorded


def named_tools(doc: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The tools a sighting's document names: its MCP servers' (``server/tool``) and its code's."""
    return governance.mcp_tools_of(doc.get("mcp_servers") or []), governance.project_tools_of(doc.get("project"))


def _risky(servers: list[dict[str, Any]], policy: governance.Policy) -> list[str]:
    return governance.risky_tools(servers, policy.risky_tools) if policy.risky_tools else []


def write_verdicts(conn: Connection, updates: list[dict[str, Any]], tags: dict[Key, list[tuple[str, str]]],
                   flags_before: Mapping[Key, str] | None = None) -> None:
    """Store re-assessed sightings (``d``, ``s``, ``g``overned, ``f``lags, ``r``isk, and ``dt``, the detail,
    where it gains the device's flags) and replace their tags. A sighting whose stored flags (JSON) are in
    ``flags_before`` has only the flag tags that changed deleted and added (its other tags stay as they are),
    rather than all of its tags rewritten."""
    if not updates:
        return
    # the rows go to the driver as they are (one executemany per statement): SQLAlchemy's per-row parameter
    # handling cost more than the writes themselves for the 85,000 rows of an action on 22,000 agents' chains
    pg = conn.dialect.name == "postgresql"
    now = time.time()
    for with_detail in (False, True):
        batch = [{**u, "now": now} for u in updates if ("dt" in u) == with_detail]
        if batch:
            _driver_many(conn, pg, _VERDICT_SQL["update_detail" if with_detail else "update"], batch)
    before = flags_before or {}
    replaced = [key for key in tags if key not in before]
    _driver_many(conn, pg, _VERDICT_SQL["untag_all"], [{"d": d, "s": s} for d, s in replaced])
    rows = [{"d": d, "s": s, "k": k, "v": v} for d, s in replaced for k, v in tags[(d, s)]]
    untagged: list[dict[str, str]] = []
    for key, was in before.items():
        if key not in tags:
            continue
        old, new = set(orjson.loads(was)), {v for k, v in tags[key] if k == "flag"}
        untagged += [{"d": key[0], "s": key[1], "v": v} for v in sorted(old - new)]
        rows += [{"d": key[0], "s": key[1], "k": "flag", "v": v} for v in sorted(new - old)]
    _driver_many(conn, pg, _VERDICT_SQL["untag"], untagged)
    _driver_many(conn, pg, _VERDICT_SQL["tag"], rows)  # a tag already there stays, once


# the nudge ladder's clock (console/server/lifecycle.py) restarts when a governed sighting is governed no more
_SET_VERDICT = ("UPDATE sighting SET governed = :g, flags = :f, risk = :r, ungoverned_since = CASE WHEN "
                "(governed AND NOT :g) OR ungoverned_since IS NULL THEN :now ELSE ungoverned_since END")
_VERDICT_SQL = {
    "update": f"{_SET_VERDICT} WHERE device_id = :d AND id = :s",
    "update_detail": f"{_SET_VERDICT}, detail = :dt WHERE device_id = :d AND id = :s",
    "untag_all": "DELETE FROM sighting_tag WHERE device_id = :d AND sighting_id = :s",
    "untag": "DELETE FROM sighting_tag WHERE device_id = :d AND sighting_id = :s AND kind = 'flag' AND value = :v",
    "tag": "INSERT INTO sighting_tag (device_id, sighting_id, kind, value) VALUES (:d, :s, :k, :v) "
           "ON CONFLICT DO NOTHING",
}


def _driver_many(conn: Connection, pg: bool, statement: str, rows: list[dict[str, Any]]) -> None:
    """One statement (named ``:parameters``) for every row, straight through the driver."""
    if rows:
        conn.exec_driver_sql(re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", statement) if pg else statement, rows)


def reassess_standing(conn: Connection, policy: governance.Policy) -> int:
    """After a policy change: re-assess the sightings whose standing the policy-wide pass did not know."""
    keys = [(d, s) for d, s in conn.execute(select(T.c.device_id, T.c.sighting_id)
                                            .where(or_(T.c.approval != "", T.c.registration != "")))]
    return reassess(conn, keys, policy)


def reassess_groups(conn: Connection, policy: governance.Policy) -> int:
    """After a policy change: re-assess the sightings of the signatures its group approvals name, which
    the policy-wide pass judged without their users."""
    signatures = sorted({sig for sig, _ in policy.group_approvals})
    keys: list[Key] = []
    for start in range(0, len(signatures), _CHUNK):
        keys += [(d, s) for d, s in conn.execute(select(S.c.device_id, S.c.id)
                                                 .where(S.c.signature.in_(signatures[start:start + _CHUNK])))]
    return reassess(conn, keys, policy)


#: the group approvals read for the ingest path's policy object: that object is made once per policy version
#: (``ingest.policy_of``), so while it is the one in use the groups are those of its version
_groups_read: tuple[governance.Policy, frozenset[tuple[str, tuple[str, ...]]]] | None = None


def _groups_for(cursor: Any, policy: governance.Policy) -> frozenset[tuple[str, tuple[str, ...]]]:
    """The group approvals of the policy the ingest path holds, which leaves them out: read once per
    version (one primary-key read), not once per report."""
    global _groups_read
    known = _groups_read
    if known is not None and known[0] is policy:
        return known[1]
    cursor.execute("SELECT group_approvals FROM policy WHERE id = 1")
    stored = cursor.fetchone()
    groups = governance.groups_of(_json_list(stored[0]) if stored else [])
    _groups_read = (policy, groups)
    return groups


def _json_list(value: Any) -> list[Any]:
    """A JSON column as the driver hands it: parsed (psycopg) or text (SQLite)."""
    parsed = orjson.loads(value) if isinstance(value, str | bytes) else value
    return parsed if isinstance(parsed, list) else []


# -- triage actions ---------------------------------------------------------------------------------------


def existing(conn: Connection, keys: Sequence[Key]) -> set[Key]:
    found: set[Key] = set()
    for start in range(0, len(keys), _CHUNK):
        chunk = list(keys[start:start + _CHUNK])
        found.update((d, s) for d, s in conn.execute(select(S.c.device_id, S.c.id)
                                                     .where(among(conn, S.c.device_id, S.c.id, chunk))))
    return found


def open_batch(conn: Connection, body: TriageActionCreate, actor: str, count: int, now: float,
               filter_json: str = "") -> int:
    """The audit row of one admin action (on one sighting, a list, or a filter); returns its id."""
    return int(conn.execute(insert(B).values(action=body.action, actor=actor, at=now, count=count, owner=body.owner,
                                             note=body.note, filter=filter_json).returning(B.c.id)).scalar_one())


def count_batch(conn: Connection, batch_id: int, count: int) -> None:
    conn.execute(update(B).where(B.c.id == batch_id).values(count=count))


def apply_actions(conn: Connection, keys: Sequence[Key], body: TriageActionCreate, actor: str,
                  now: float | None = None, batch_id: int | None = None, checked: bool = False,
                  deferred: list[Key] | None = None) -> list[dict[str, Any]]:
    """Record one action on every sighting in ``keys`` and apply its effect; all or nothing: an unknown
    sighting raises TriageError before anything is written (the caller's transaction rolls back).

    Each sighting's triage before it is kept under ``batch_id`` (a new batch unless given) for an undo.
    ``checked``: the keys were just read from the store in this transaction (an action on a filter).
    ``deferred``: the sightings to re-assess are added to it rather than re-assessed here, so that an action
    applied a chunk at a time re-assesses each sighting (and the chains under them) once, at its end
    (``reassess(conn, deferred)``, in the same transaction)."""
    now = time.time() if now is None else now
    keys = list(dict.fromkeys(keys))
    if not checked:
        known = existing(conn, keys)
        missing = [k for k in keys if k not in known]
        if missing:
            raise not_found(missing[0][0], missing[0][1], unknown=len(missing))
    if batch_id is None:
        batch_id = open_batch(conn, body, actor, len(keys), now)
    state = STATE_AFTER[body.action]
    triage = _triage_rows(conn, keys)
    approvals = _observed(conn, keys) if body.action == "approve" else {}
    conn.execute(insert(U), [{"batch_id": batch_id, "device_id": d, "sighting_id": s,
                              "previous": orjson.dumps(_undoable(triage[(d, s)])).decode() if (d, s) in triage else ""}
                             for d, s in keys])
    rows = []
    for key in keys:
        row = dict(triage.get(key) or {"device_id": key[0], "sighting_id": key[1], "state": "new", "owner": None,
                                       "approval": "", "registration": ""})
        if state is not None:
            row["state"] = state
            row["approval"] = approvals.get(key, "")  # any other decision withdraws an approval
        if body.action == "assign_owner":
            row["owner"] = body.owner
        rows.append({**row, "updated_at": now})
    upsert_triage(conn, rows)
    if state is not None and deferred is not None:
        deferred += keys
    elif state is not None:
        reassess(conn, keys)
    records = [{"device_id": d, "sighting_id": s, "action": body.action, "actor": actor, "at": now,
                "owner": body.owner, "note": body.note, "batch_id": batch_id} for d, s in keys]
    ids = _insert_actions(conn, records)
    return [{"id": i, **r} for i, r in zip(ids, records, strict=True)]


def _undoable(row: dict[str, Any]) -> dict[str, Any]:
    """What an undo puts back: the decision (state, owner, approval), never a registration an employee made."""
    return {"state": row["state"], "owner": row["owner"], "approval": row["approval"]}


def last_batch(conn: Connection) -> dict[str, Any] | None:
    """The newest action not undone yet."""
    row = conn.execute(select(B).where(B.c.undone_at.is_(None)).order_by(B.c.id.desc()).limit(1)).mappings().first()
    return dict(row) if row else None


def undo(conn: Connection, actor: str, action_id: int | None = None, now: float | None = None) -> tuple[int, int]:
    """Undo the newest action (``action_id``, when given, must be it): each sighting it changed gets back
    its triage from before (state, owner, approval) and is re-assessed. Returns (action id, sightings)."""
    now = time.time() if now is None else now
    batch = last_batch(conn)
    if batch is None:
        raise TriageError(409, "nothing_to_undo", message="There is no triage action left to undo.")
    if action_id is not None and action_id != batch["id"]:
        raise TriageError(409, "not_the_last_action", action_id=action_id, last_action_id=batch["id"],
                          message=f"Only the last action (#{batch['id']}) can be undone; action #{action_id} "
                                  "was followed by others or was undone already.")
    restored = 0
    last: Key = ("", "")
    touched: list[Key] = []  # re-assessed once, at the end: the chains under them are walked once
    while True:
        chunk = [(d, s, p) for d, s, p in conn.execute(
            select(U.c.device_id, U.c.sighting_id, U.c.previous)
            .where(U.c.batch_id == batch["id"], tuple_(U.c.device_id, U.c.sighting_id) > tuple_(*last))
            .order_by(U.c.device_id, U.c.sighting_id).limit(_CHUNK))]
        if not chunk:
            break
        keys = [(d, s) for d, s, _ in chunk]
        current = _triage_rows(conn, keys)
        rows = []
        for d, s, previous in chunk:
            before = orjson.loads(previous) if previous else {"state": "new", "owner": None, "approval": ""}
            row = dict(current.get((d, s)) or {"device_id": d, "sighting_id": s, "registration": ""})
            row.update(before, updated_at=now)
            rows.append(row)
        upsert_triage(conn, rows)
        touched += keys
        _insert_actions(conn, [{"device_id": d, "sighting_id": s, "action": "undo", "actor": actor, "at": now,
                                "owner": None, "note": f"undid action #{batch['id']} ({batch['action']})",
                                "batch_id": batch["id"]} for d, s in keys], ids=False)
        restored += len(chunk)
        last = keys[-1]
    reassess(conn, touched)
    conn.execute(update(B).where(B.c.id == batch["id"]).values(undone_at=now, undone_by=actor))
    return int(batch["id"]), restored


def batches(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """The newest actions, as the audit log lists them."""
    return [dict(r) for r in conn.execute(select(B).order_by(B.c.id.desc()).limit(limit)).mappings()]


def _insert_actions(conn: Connection, records: list[dict[str, Any]], ids: bool = True) -> list[int]:
    """Insert audit records of one batch; their ids in the records' order (``ids``) or none."""
    if not records:
        return []
    if conn.dialect.name == "postgresql" and ids:
        result = conn.execute(insert(A).returning(A.c.id, sort_by_parameter_order=True), records)
        return [int(r[0]) for r in result]
    # SQLite answers RETURNING in order only row by row (a statement each: 45,000 for an action and its
    # undo on 22,000 sightings); one executemany, then the batch's newest ids, which are these rows' (the
    # write lock is held: nothing else inserts meanwhile), read back in insertion order
    conn.execute(insert(A), records)
    if not ids:
        return []
    batch_id = records[0]["batch_id"]
    assert all(r["batch_id"] == batch_id for r in records)
    return sorted(int(i) for i in conn.execute(select(A.c.id).where(A.c.batch_id == batch_id)
                                                .order_by(A.c.id.desc()).limit(len(records))).scalars())


def _triage_rows(conn: Connection, keys: Sequence[Key]) -> dict[Key, dict[str, Any]]:
    out: dict[Key, dict[str, Any]] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = list(keys[start:start + _CHUNK])
        for row in conn.execute(select(T).where(among(conn, T.c.device_id, T.c.sighting_id, chunk))).mappings():
            out[(row["device_id"], row["sighting_id"])] = dict(row)
    return out


def _observed(conn: Connection, keys: Sequence[Key]) -> dict[Key, str]:
    """What each sighting does now, as the declaration an approval holds it to."""
    out: dict[Key, str] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = list(keys[start:start + _CHUNK])
        for d, s, providers, flags, detail in conn.execute(
                select(S.c.device_id, S.c.id, S.c.providers, S.c.flags, S.c.detail)
                .where(among(conn, S.c.device_id, S.c.id, chunk))):
            out[(d, s)] = orjson.dumps({
                "providers": orjson.loads(providers),
                "tools": governance.tools_of(orjson.loads(detail).get("mcp_servers", [])),
                "autonomy": "autonomous" if "autonomous" in orjson.loads(flags) else "supervised",
            }).decode()  # fmt: skip
    return out


def upsert_triage(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(T)
    statement = statement.on_conflict_do_update(
        index_elements=["device_id", "sighting_id"],
        set_={c: statement.excluded[c] for c in ("state", "owner", "approval", "registration", "updated_at")})
    conn.execute(statement, rows)


# -- registrations ------------------------------------------------------------------------------------------


def register(conn: Connection, device_id: str, body: dict[str, Any], now: float | None = None) -> int:
    """Store a device's registration of one of its own sightings (pending); returns its id."""
    now = time.time() if now is None else now
    key = (device_id, body["sighting_id"])
    if not existing(conn, [key]):
        raise not_found(device_id, body["sighting_id"], device=False)
    # a new registration answers an admin's question as it replaces a pending one
    conn.execute(update(R).where(R.c.device_id == device_id, R.c.sighting_id == body["sighting_id"],
                                 R.c.status.in_(("pending", "more_information"))).values(status="superseded"))
    new_id = conn.execute(insert(R).values(**body, device_id=device_id, status="pending", created_at=now)
                          .returning(R.c.id)).scalar_one()
    refresh_registration(conn, key, now)
    return int(new_id)


def decide(conn: Connection, registration_id: int, approve: bool, actor: str, note: str | None,
           now: float | None = None) -> None:
    """Approve or reject a pending registration, and apply what that does to its sighting."""
    now = time.time() if now is None else now
    row = conn.execute(select(R.c.device_id, R.c.sighting_id, R.c.status, R.c.owner)
                       .where(R.c.id == registration_id)).first()
    if row is None:
        raise TriageError(404, "registration_not_found", id=registration_id)
    device_id, sighting_id, status, owner = row
    if status not in ("pending", "more_information"):
        raise TriageError(409, "registration_not_pending", status=status)
    if approve:
        conn.execute(update(R).where(R.c.device_id == device_id, R.c.sighting_id == sighting_id,
                                     R.c.status == "approved").values(status="superseded"))
    conn.execute(update(R).where(R.c.id == registration_id).values(
        status="approved" if approve else "rejected", decided_at=now, decided_by=actor, decision_note=note))
    refresh_registration(conn, (device_id, sighting_id), now, owner=owner if approve else None)


def ask(conn: Connection, registration_id: int, actor: str, question: str, now: float | None = None) -> Key:
    """Mark a pending registration ``more_information`` with the admin's question; returns its sighting."""
    now = time.time() if now is None else now
    row = conn.execute(select(R.c.device_id, R.c.sighting_id, R.c.status).where(R.c.id == registration_id)).first()
    if row is None:
        raise TriageError(404, "registration_not_found", id=registration_id)
    device_id, sighting_id, status = row
    if status not in ("pending", "more_information"):
        raise TriageError(409, "registration_not_pending", status=status)
    conn.execute(update(R).where(R.c.id == registration_id).values(
        status="more_information", question=question, asked_at=now, asked_by=actor))
    refresh_registration(conn, (device_id, sighting_id), now)
    return device_id, sighting_id


def refresh_registration(conn: Connection, key: Key, now: float, owner: str | None = None) -> None:
    """Store the registration that counts for a sighting (the newest approved, else the newest pending),
    give an approved one's owner to a sighting that has none, and re-assess the sighting."""
    found = conn.execute(select(R.c.id, R.c.status, R.c.providers, R.c.tools, R.c.autonomy)
                         .where(R.c.device_id == key[0], R.c.sighting_id == key[1],
                                R.c.status.in_(("approved", "pending", "more_information")))
                         .order_by((R.c.status == "approved").desc(), R.c.id.desc()).limit(1)).first()
    # a question asked keeps the sighting pending: it still awaits an admin's decision
    summary = "" if found is None else orjson.dumps(
        {"id": found[0], "status": "pending" if found[1] == "more_information" else found[1],
         "providers": found[2], "tools": found[3], "autonomy": found[4]}).decode()
    row = _triage_rows(conn, [key]).get(key) or {"device_id": key[0], "sighting_id": key[1], "state": "new",
                                                 "owner": None, "approval": ""}
    row.update(registration=summary, updated_at=now)
    if owner and not row["owner"]:
        row["owner"] = owner
    upsert_triage(conn, [row])
    reassess(conn, [key])


# -- reading ----------------------------------------------------------------------------------------------------


def actions_of(conn: Connection, key: Key, limit: int) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(A).where(A.c.device_id == key[0], A.c.sighting_id == key[1])
                                          .order_by(A.c.id.desc()).limit(limit)).mappings()]


def newest_registration(conn: Connection, key: Key) -> dict[str, Any] | None:
    row = conn.execute(select(R).where(R.c.device_id == key[0], R.c.sighting_id == key[1])
                       .order_by(R.c.id.desc()).limit(1)).mappings().first()
    return dict(row) if row else None


def triage_of(conn: Connection, key: Key) -> dict[str, Any] | None:
    row = conn.execute(select(T).where(T.c.device_id == key[0], T.c.sighting_id == key[1])).mappings().first()
    return dict(row) if row else None
