"""Writing a device's report to the store, exactly once per (device, epoch, seq).

``apply_report`` runs inside the caller's transaction: lock the device's row, ``ingest.decide``, one read
of the device's standings, one bulk read of the prior state of the sightings it carries, a bulk upsert
(``INSERT ... ON CONFLICT DO UPDATE``) of new ones, an in-place update of the rest (the indexed columns
that moved, and last_seen), history, tags, the device's row. No per-sighting round trip; on PostgreSQL
the writes are pipelined.
The rows themselves are ``ingest.prepare``'s. ``recompute_governance`` re-assesses every stored sighting
when the policy changes, from the flags its device sent.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Connection, select, tuple_

from console import governance
from console.server import auth, chains, ingest, timeline, triage
from console.server.ingest import CORE, DeviceMismatch, InvalidDeviceKey, Outcome, Prepared
from console.server.models import Sighting, SightingHistory, SightingTag, claimed_identifier

POLICY_LOCK_ID = 0x61677275  # PostgreSQL advisory lock: ingest shares it, a policy change takes it whole
_CHUNK = 500  # ids per IN (...) list

T = Sighting.__table__  # type: ignore[attr-defined]
G = SightingTag.__table__  # type: ignore[attr-defined]
H = SightingHistory.__table__  # type: ignore[attr-defined]


# -- the transaction ------------------------------------------------------------------------------------
# The hot path speaks SQL to the driver's cursor: the same statements on SQLite and PostgreSQL, written
# with :name parameters (rewritten to %(name)s for psycopg), id lists passed as one parameter (a JSON
# array on SQLite, an array on PostgreSQL), so that each statement is prepared once and runs in bulk.

_COLUMNS = tuple(c.name for c in T.columns)
# What an update of a present sighting always writes: of the indexed columns only last_seen. SQLite rewrites
# the entries of every index holding a column an UPDATE sets, whether its value changed or not, so a present
# sighting is updated in place with these and only those of _INDEXED whose values moved (a changed flag: the
# indexes of flags and risk, not the dozen others an upsert of the whole row would rewrite). flags and servers
# are in the fleet's covering index (ix_sighting_fleet).
_REFRESH = ("last_seen", "detail", "section_checksums", "updated_at", "touched", "vendor", "running", "parent",
            "providers", "fingerprints", "reach")
_INDEXED = ("name", "type", "user", "first_seen", "confidence", "signature", "governed", "risk", "flags", "servers")
_UPSERT_KEEP = ("device_id", "id", "recorded_at", "ungoverned_since")  # what an upsert leaves as it was
# the nudge ladder's clock (console/server/lifecycle.py): restarted when a report ungoverns a governed sighting
_UNGOVERNED_SINCE = ("ungoverned_since = CASE WHEN sighting.governed AND NOT excluded.governed "
                     "THEN excluded.ungoverned_since "
                     "ELSE COALESCE(sighting.ungoverned_since, excluded.ungoverned_since) END")
_core_of = itemgetter(*CORE)


def _q(name: str) -> str:
    return '"user"' if name == "user" else name


_SQL = {
    "device": "SELECT id, host_identifier, key_salt, key_hash, revoked_at, epoch, seq, applied, hostname, "
              "last_seen, os, os_version, arch, agentroster_version, snapshot_from FROM device WHERE key_id = :key_id",
    "past_epoch": "SELECT last_seq FROM report_epoch WHERE device_id = :device_id AND epoch = :epoch",
    "policy": "SELECT version, sanctioned_signatures, sanctioned_providers, corporate_fingerprints, risky_tools "
              "FROM policy WHERE id = 1",
    "prior": f"SELECT id, {', '.join(_q(k) for k in CORE)}, providers, section_checksums, gone, first_seen, governed, "
             "risk, servers, ungoverned_since IS NULL "
             "FROM sighting WHERE device_id = :device_id AND id IN {ids}",
    "upsert": f"INSERT INTO sighting ({', '.join(map(_q, _COLUMNS))}) VALUES ({', '.join(':' + c for c in _COLUMNS)}) "
              f"ON CONFLICT (device_id, id) DO UPDATE SET "
              + ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in _COLUMNS if c not in _UPSERT_KEEP)
              + ", " + _UNGOVERNED_SINCE,
    "gone_ids": "UPDATE sighting SET gone = :yes, gone_at = :now, updated_at = :now, touched = :touched "
                "WHERE device_id = :device_id AND id IN {ids} AND NOT gone RETURNING id",
    "gone_untouched": "UPDATE sighting SET gone = :yes, gone_at = :now, updated_at = :now, touched = :touched "
                      "WHERE device_id = :device_id AND NOT gone AND touched < :since RETURNING id",
    "history": "INSERT INTO sighting_history (device_id, sighting_id, epoch, seq, at, change, fields) "
               "VALUES (:device_id, :sighting_id, :epoch, :seq, :at, :change, :fields)",
    "untag": "DELETE FROM sighting_tag WHERE device_id = :device_id AND sighting_id IN {ids}",
    "tag": "INSERT INTO sighting_tag (device_id, sighting_id, kind, value) "
           "VALUES (:device_id, :sighting_id, :kind, :value) ON CONFLICT DO NOTHING",
    "hostname": "UPDATE sighting SET hostname = :hostname WHERE device_id = :device_id",
    "device_update": "UPDATE device SET last_seen = :now, epoch = :epoch, seq = :seq, applied = :applied, "
                     "spool = :spool, shedding = :shedding, status = :status, snapshot_from = :snapshot_from, "
                     "units_failed = :units_failed, degraded = :degraded WHERE id = :id",
    "device_info": "UPDATE device SET hostname = :hostname, os = :os, os_version = :os_version, arch = :arch, "
                   "agentroster_version = :agentroster_version WHERE id = :id",
    "close_epoch": "INSERT INTO report_epoch (device_id, epoch, last_seq, started_at, last_at) "
                   "VALUES (:device_id, :epoch, :last_seq, :started_at, :last_at)",
}  # fmt: skip
_PG_EXTRA = {
    "device": " FOR UPDATE",  # concurrent reports of one device (other workers) wait here
}
_dialect_sql: dict[str, dict[str, str]] = {}


def _pg_type(column: Any) -> str:
    kind = type(column.type).__name__
    return {"Float": "float8", "Integer": "int8", "Boolean": "bool"}.get(kind, "text")


def _unnest(table: Any, columns: Sequence[str]) -> str:
    """unnest() over one array parameter per column: a whole batch of rows in one statement (PostgreSQL)."""
    # %(name)b: psycopg sends the arrays in binary, without quoting every element in Python
    return "unnest(" + ", ".join(f"CAST(%({c})b AS {_pg_type(table.c[c])}[])" for c in columns) + ")"


_HISTORY_COLUMNS = ("device_id", "sighting_id", "epoch", "seq", "at", "change", "fields")
_TAG_COLUMNS = ("device_id", "sighting_id", "kind", "value")
# On PostgreSQL the bulk statements take arrays: psycopg's executemany still costs a message per row.
_PG_BULK = {
    "upsert": (_COLUMNS, _SQL["upsert"].replace(
        "VALUES (" + ", ".join(":" + c for c in _COLUMNS) + ")", "SELECT * FROM " + _unnest(T, _COLUMNS))),
    "history": (_HISTORY_COLUMNS, f"INSERT INTO sighting_history ({', '.join(_HISTORY_COLUMNS)}) SELECT * FROM "
                + _unnest(H, _HISTORY_COLUMNS)),
    "tag": (_TAG_COLUMNS, f"INSERT INTO sighting_tag ({', '.join(_TAG_COLUMNS)}) SELECT * FROM "
            + _unnest(G, _TAG_COLUMNS) + " ON CONFLICT DO NOTHING"),
}




def refresh_statement(moved: tuple[str, ...], since: str) -> str:
    """The name of the in-place update of present sightings that writes ``_REFRESH`` and ``moved`` (the
    indexed columns whose values changed), made the first time it is asked for, in both dialects. ``since``
    is what it does to ``ungoverned_since``, as the upsert would: "" nothing, "fill" set it where it is
    NULL, "case" also restart it when the report ungoverns the sighting (``moved`` holds governed)."""
    name = "refresh" + (f"+{','.join(moved)}" if moved else "") + (f"+since:{since}" if since else "")
    if name in _SQL:
        return name
    columns = (*_REFRESH, *moved)
    clause = {"": "", "fill": "ungoverned_since = COALESCE({s}ungoverned_since, {v}ungoverned_since)",
              "case": "ungoverned_since = CASE WHEN {s}governed AND NOT {v}governed THEN {v}ungoverned_since "
                      "ELSE COALESCE({s}ungoverned_since, {v}ungoverned_since) END"}[since]
    sets = [f"{_q(c)} = :{c}" for c in columns] + ([clause.format(s="", v=":")] if clause else [])
    bulk = ("device_id", "id", *columns, *(("ungoverned_since",) if since else ()))
    pg_sets = [f"{_q(c)} = v.{_q(c)}" for c in columns] + ([clause.format(s="s.", v="v.")] if clause else [])
    _PG_BULK[name] = (bulk, f"UPDATE sighting AS s SET {', '.join(pg_sets)} FROM {_unnest(T, bulk)} "
                            f"AS v({', '.join(map(_q, bulk))}) WHERE s.device_id = v.device_id AND s.id = v.id")
    _SQL[name] = f"UPDATE sighting SET {', '.join(sets)} WHERE device_id = :device_id AND id = :id"
    for dialect, statements in _dialect_sql.items():  # added in place: cursors hold these dicts
        pg = dialect == "postgresql"
        statements[name] = _pyformat(_SQL[name]) if pg else _SQL[name]
        if pg:
            statements["bulk_" + name] = _pyformat(_PG_BULK[name][1])
    return name


def _sql_for(dialect: str) -> dict[str, str]:
    """The statements in the driver's own parameter style, built once per dialect."""
    if dialect not in _dialect_sql:
        pg = dialect == "postgresql"
        ids = "(SELECT unnest(CAST(%(ids)b AS text[])))" if pg else "(SELECT value FROM json_each(:ids))"
        out = {}
        for name, statement in _SQL.items():
            statement = statement.replace("{ids}", ids) + (_PG_EXTRA.get(name, "") if pg else "")
            if pg and name == "policy":
                statement = statement.replace(" FROM policy", f", pg_advisory_xact_lock_shared({POLICY_LOCK_ID}) "
                                                              "FROM policy")
            out[name] = _pyformat(statement) if pg else statement
        if pg:
            out.update({f"bulk_{name}": _pyformat(statement) for name, (_, statement) in _PG_BULK.items()})
        _dialect_sql[dialect] = out
    return _dialect_sql[dialect]


def _pyformat(statement: str) -> str:
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", statement)


class _Cursor:
    """The driver's cursor inside the caller's SQLAlchemy transaction, with the dialect's statements."""

    def __init__(self, conn: Connection) -> None:
        self.pg = conn.dialect.name == "postgresql"
        self.sql = _sql_for(conn.dialect.name)
        self.cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]

    def pipeline(self) -> AbstractContextManager[Any]:
        """On PostgreSQL, the driver's pipeline mode: a write is sent without waiting for its answer, and
        the writes queued meanwhile share the round trip of the next read (or of the pipeline's end). An
        error in any of them is raised there, and takes the transaction down as it would have anyway."""
        return self.cursor.connection.pipeline() if self.pg else nullcontext()

    def ids(self, values: list[str]) -> Any:
        return values if self.pg else orjson.dumps(values).decode()

    def send(self, name: str, params: dict[str, Any]) -> Any:
        """A read on a cursor of its own, its rows not fetched yet: in PostgreSQL's pipeline mode the query
        is only sent, and answered along with the next read that is fetched."""
        reader = self.cursor.connection.cursor()
        reader.execute(self.sql[name], params)
        return reader

    def one(self, name: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        self.cursor.execute(self.sql[name], params)
        row: tuple[Any, ...] | None = self.cursor.fetchone()
        return row

    def all(self, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        self.cursor.execute(self.sql[name], params)
        return list(self.cursor.fetchall())

    def run(self, name: str, params: dict[str, Any]) -> None:
        self.cursor.execute(self.sql[name], params)

    def many(self, name: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if self.pg and name in _PG_BULK:
            columns = _PG_BULK[name][0]
            self.cursor.execute(self.sql["bulk_" + name], {c: [r[c] for r in rows] for c in columns})
        else:
            self.cursor.executemany(self.sql[name], rows)


def load_policy(cur: _Cursor) -> governance.Policy:
    """The org policy, parsed once per version per process (on PostgreSQL, shares the policy lock)."""
    row = cur.one("policy", {})
    if row is None:
        return governance.Policy()
    return ingest.policy_of(row[0], row[1:5])


_DEVICE_FIELDS = ("id", "host_identifier", "key_salt", "key_hash", "revoked_at", "epoch", "seq", "applied",
                  "hostname", "last_seen", "os", "os_version", "arch", "agentroster_version", "snapshot_from")
_INFO = ("hostname", "os", "os_version", "arch", "agentroster_version")
_PRIOR_FIELDS = ("id", *CORE, "providers", "section_checksums", "gone", "first_seen", "governed", "risk", "servers",
                 "no_ungoverned_since")


def apply_report(conn: Connection, presented: auth.Presented, report: Mapping[str, Any],
                 now: float | None = None, prepared: Prepared | None = None,
                 policy: governance.Policy | None = None) -> Outcome:
    """Apply one validated report (as plain JSON data) from the device the key belongs to.

    ``prepared`` is the report's ``prepare_report`` (made with the same ``now``); it is used, and changed,
    only if the policy it was made under is still the policy. ``policy`` is ``current_policy(conn)`` when
    the caller applies several reports in one transaction (read once for them all).
    """
    now = time.time() if now is None else now
    cur = _Cursor(conn)
    device = _locked_device(cur, presented)
    if report["device"]["id"] != claimed_identifier(device["host_identifier"]):
        raise DeviceMismatch("device_mismatch", expected=claimed_identifier(device["host_identifier"]))
    past_seq = None
    if report["epoch"] != device["epoch"]:
        row = cur.one("past_epoch", {"device_id": device["id"], "epoch": report["epoch"]})
        past_seq = row[0] if row else None
    outcome = ingest.decide(device["epoch"], device["seq"], past_seq, report["epoch"], report["seq"], report["kind"])
    if outcome.result == "applied" and report.get("part", 1) > 1 and not _continues(device, report):
        outcome = Outcome("need_snapshot", device["seq"] if report["epoch"] == device["epoch"] else 0,
                          f"part {report['part']} of a snapshot whose part {report['part'] - 1} was not the last applied")
    if outcome.result == "applied":
        with cur.pipeline():
            _apply(cur, device, report, now, prepared, policy)
    return outcome


def _continues(device: dict[str, Any], report: Mapping[str, Any]) -> bool:
    """Whether a later part of a snapshot follows the part before it: same epoch, the next seq, and the
    device's snapshot still open."""
    return (device["snapshot_from"] is not None and report["epoch"] == device["epoch"]
            and report["seq"] == device["seq"] + 1)


def current_policy(conn: Connection) -> governance.Policy:
    """The policy as this transaction sees it (on PostgreSQL, holding the policy lock shared until it ends)."""
    return load_policy(_Cursor(conn))


def _locked_device(cur: _Cursor, presented: auth.Presented) -> dict[str, Any]:
    row = cur.one("device", {"key_id": presented.key_id})
    device = dict(zip(_DEVICE_FIELDS, row, strict=True)) if row else None
    if device is None or device["revoked_at"] is not None or not auth.matches(
            device["key_salt"], device["key_hash"], presented.secret):
        raise InvalidDeviceKey()
    return device


def _apply(cur: _Cursor, device: dict[str, Any], report: Mapping[str, Any], now: float,
           prepared: Prepared | None = None, policy: governance.Policy | None = None) -> None:
    device_id, touched = device["id"], device["applied"] + 1
    if report["device"]["hostname"] != device["hostname"]:
        cur.run("hostname", {"hostname": report["device"]["hostname"], "device_id": device_id})
    if policy is None:
        policy = load_policy(cur)
    if prepared is None or prepared.policy is not policy:
        prepared = ingest.prepare(report["upserts"], device_id=device_id, hostname=report["device"]["hostname"],
                           policy=policy, now=now, touched=touched)
    else:
        for row in prepared.rows:
            row["device_id"], row["touched"] = device_id, touched
    prior = _prior(cur, device_id, [r["id"] for r in prepared.rows])  # on PostgreSQL answered with the next read
    # an admin's approval or an employee's registration outranks the policy alone; read once for the
    # report's own sightings, its chains' roots and its drift (nothing ingest writes changes them)
    standings = chains.stored_standings(cur.cursor, cur.pg, device_id)
    triage.adjust_at_ingest(cur.cursor, cur.pg, device_id, prepared.rows, prepared.tags, prepared.docs, policy,
                            standings)
    history = _write_sightings(cur, device_id, prepared, report, now, prior())
    timeline.record(cur.cursor, cur.pg, device_id, prepared.docs, prepared.rows, history, now,
                    standings)  # changed ones only
    # a snapshot's sightings are those every part of it carried: the first part's count and on
    since = device["snapshot_from"] if report.get("part", 1) > 1 else touched
    last_part = report.get("part", 1) == report.get("parts", 1)
    if last_part:
        history += _mark_gone(cur, device_id, report, now, touched, since)
    cur.many("history", history)
    _update_device(cur, device, report, now, touched, None if last_part else since)


def _write_sightings(cur: _Cursor, device_id: str, prepared: Prepared, report: Mapping[str, Any],
                     now: float, prior: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """New sightings (and those that were gone) are upserted whole; present ones are updated in place,
    touching only the indexes of the columns that moved (and last_seen's). Returns the history entries."""
    history, upserts, retag = [], [], {}
    refreshes: dict[str, list[dict[str, Any]]] = {}  # by statement: present sightings whose same columns moved
    for row in prepared.rows:
        row["ungoverned_since"] = now  # a new sighting's; a stored one keeps its own unless this ungoverns it
        old = prior.get(row["id"])
        present = old if old is not None and not old["gone"] else None
        if present and present["section_checksums"] == row["section_checksums"] and _core_of(present) == _core_of(row):
            fields = None  # a refresh: nothing material moved
        else:
            fields = ingest.changed_fields(old, row)
        if present:
            moved = tuple(c for c in _INDEXED if present[c] != row[c])
            # ungoverned_since as the upsert keeps it: restarted when this ungoverns it, set where it is NULL
            since = "case" if "governed" in moved else "fill" if moved and present["no_ungoverned_since"] else ""
            refreshes.setdefault(refresh_statement(moved, since), []).append(row)
        else:
            upserts.append(row)
        if fields is not None:
            change = "new" if old is None or old["gone"] else "changed"
            history.append({"device_id": device_id, "sighting_id": row["id"], "epoch": report["epoch"],
                            "seq": report["seq"], "at": now, "change": change, "fields": ",".join(fields)})
        if old is None or old["flags"] != row["flags"] or old["providers"] != row["providers"]:
            retag[row["id"]] = prepared.tags[row["id"]]
    cur.many("upsert", upserts)
    for statement, rows in refreshes.items():
        cur.many(statement, rows)
    _retag(cur, device_id, retag, [sid for sid in retag if sid in prior])
    return history


def _prior(cur: _Cursor, device_id: str, ids: list[str]) -> Callable[[], dict[str, dict[str, Any]]]:
    """The stored state of the sightings ``ids``, as a call that answers it. On PostgreSQL the reads (one
    per 500 ids) are only sent here, in the pipeline: the next read fetched answers them in its round trip."""
    readers = [cur.send("prior", {"device_id": device_id, "ids": cur.ids(ids[start:start + _CHUNK])})
               for start in range(0, len(ids), _CHUNK)]

    def answer() -> dict[str, dict[str, Any]]:
        prior: dict[str, dict[str, Any]] = {}
        for reader in readers:
            for row in reader.fetchall():
                found = dict(zip(_PRIOR_FIELDS, row, strict=True))
                found["running"], found["gone"] = bool(found["running"]), bool(found["gone"])
                found["no_ungoverned_since"] = bool(found["no_ungoverned_since"])
                prior[found["id"]] = found
            reader.close()
        return prior

    if cur.pg:
        return answer
    stored = answer()  # SQLite: read now, before anything else runs on the connection
    return lambda: stored


def _retag(cur: _Cursor, device_id: str, tags: dict[str, list[tuple[str, str]]], stored: list[str]) -> None:
    """Replace the tags of the sightings in ``tags``; only those in ``stored`` can have tags to take off."""
    if not tags:
        return
    ids = stored
    for start in range(0, len(ids), _CHUNK):
        cur.run("untag", {"device_id": device_id, "ids": cur.ids(ids[start:start + _CHUNK])})
    cur.many("tag", [{"device_id": device_id, "sighting_id": sid, "kind": k, "value": v}
                     for sid, pairs in tags.items() for k, v in pairs])


def _mark_gone(cur: _Cursor, device_id: str, report: Mapping[str, Any], now: float,
               touched: int, since: int) -> list[dict[str, Any]]:
    """Sightings a snapshot no longer carries (no part of it, from the one ``since`` on), or a delta removes,
    are gone (kept, with history)."""
    params = {"device_id": device_id, "now": now, "touched": touched, "yes": True}
    if report["kind"] == "snapshot":
        gone = [r[0] for r in cur.all("gone_untouched", {**params, "since": since})]
    elif report["removed"]:
        gone = [r[0] for r in cur.all("gone_ids", {**params, "ids": cur.ids(list(report["removed"]))})]
    else:
        return []
    return [{"device_id": device_id, "sighting_id": sid, "epoch": report["epoch"], "seq": report["seq"],
             "at": now, "change": "gone", "fields": ""} for sid in gone]


def _update_device(cur: _Cursor, device: dict[str, Any], report: Mapping[str, Any], now: float,
                   touched: int, snapshot_from: int | None) -> None:
    info, status = report["device"], report.get("status") or {}
    if report["epoch"] != device["epoch"] and device["epoch"] is not None:
        # remember where the previous epoch ended, so that its replays are recognised as duplicates
        cur.run("close_epoch", {"device_id": device["id"], "epoch": device["epoch"], "last_seq": device["seq"],
                                "started_at": device["last_seen"] or now, "last_at": now})
    described = {k: info.get(k, "") for k in _INFO}
    if any(described[k] != device[k] for k in _INFO):  # rarely: so the hostname index is left alone
        cur.run("device_info", {"id": device["id"], **described})
    cur.run("device_update", {
        "id": device["id"], "now": now, "epoch": report["epoch"], "seq": report["seq"], "applied": touched,
        "spool": status.get("spool", "normal"), "shedding": bool(status.get("shedding", False)),
        "status": orjson.dumps(ingest.scrub(status)).decode(), "snapshot_from": snapshot_from,
        "units_failed": int(status.get("units_failed") or 0), "degraded": ",".join(status.get("degraded") or ()),
    })  # fmt: skip


def recompute_governance(conn: Connection, policy: governance.Policy, batch: int = 2000) -> int:
    """Apply a new policy to every stored sighting; returns how many changed.

    Each is re-assessed from the flags its device sent, never from the flags stored, so that a risky-tool
    pattern taken off the policy takes its ``broad_tools`` off again, unless the device said so itself."""
    changed = 0
    last = ("", "")
    columns = (T.c.device_id, T.c.id, T.c.signature, T.c.providers, T.c.fingerprints, T.c.flags, T.c.governed,
               T.c.detail)
    while True:
        rows = conn.execute(select(*columns).where(tuple_(T.c.device_id, T.c.id) > tuple_(*last))
                            .order_by(T.c.device_id, T.c.id).limit(batch)).all()
        if not rows:
            return changed
        updates, tags = [], {}
        for device_id, sid, signature, providers, fingerprints, flags, governed, detail in rows:
            providers_list = orjson.loads(providers)
            verdict, recorded = triage.assess_stored(signature, providers_list, orjson.loads(fingerprints), flags,
                                                     detail, policy)
            new_flags = orjson.dumps(verdict.flags).decode()
            if new_flags != flags or verdict.governed != governed:
                updates.append({"d": device_id, "s": sid, "g": verdict.governed, "f": new_flags,
                                "r": governance.risk_of(verdict.flags), **({"dt": recorded} if recorded else {})})
                tags[(device_id, sid)] = ingest.tags_of(verdict.flags, providers_list)
        if updates:
            triage.write_verdicts(conn, updates, tags)
        changed += len(updates)
        last = (rows[-1][0], rows[-1][1])
