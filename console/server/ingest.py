"""Applying a device's report to the store, exactly once per (device, epoch, seq).

``decide`` (pure) says whether a report is applied, a duplicate, or needs a snapshot first;
``prepare`` (pure) turns the report's sightings into rows and tags with governance applied (the policy's
risky-tool patterns too), and keeps the flags the device sent in the detail (``device_flags``);
``apply_report`` runs inside the caller's transaction: lock the device's row, decide, one bulk read
of the prior state of the sightings it carries, a bulk upsert (``INSERT ... ON CONFLICT DO UPDATE``)
of new ones, an in-place update of the rest, history, tags, the device's row. No per-sighting
round trip. ``recompute_governance`` re-assesses every stored sighting when the policy changes, from the
flags its device sent.
"""

from __future__ import annotations

import functools
import re
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any, Literal

import orjson
from sqlalchemy import Connection, select, tuple_

from console import governance
from console.server import auth, triage
from console.server.models import Sighting, SightingHistory, SightingTag, claimed_identifier
from signatures.redaction import Redactor

Result = Literal["applied", "duplicate", "need_snapshot"]
SECTIONS = ("processes", "configs", "mcp_servers", "endpoints", "credentials", "evidence")
CORE = ("signature", "name", "vendor", "type", "user", "running", "confidence", "parent", "flags")
MAX_ID = 128  # sighting ids are 20 hex characters today
MAX_TEXT = 1024  # for every string stored in an indexed column
POLICY_LOCK_ID = 0x61677275  # PostgreSQL advisory lock: ingest shares it, a policy change takes it whole
_CHUNK = 500  # ids per IN (...) list

T = Sighting.__table__  # type: ignore[attr-defined]
G = SightingTag.__table__  # type: ignore[attr-defined]
H = SightingHistory.__table__  # type: ignore[attr-defined]


class IngestError(Exception):
    """A report the collector refuses; ``status`` and ``detail`` make the HTTP answer."""

    status = 400

    def __init__(self, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.detail: dict[str, Any] = {"reason": reason, **extra}


class InvalidDeviceKey(IngestError):
    """The key is unknown, replaced by a newer enrollment, or revoked: the device must enroll again."""

    status = 401

    def __init__(self) -> None:
        super().__init__("invalid_device_key", reenroll=True)


class DeviceMismatch(IngestError):
    """The report speaks for another device than the key's."""

    status = 403


class ReportRejected(IngestError):
    """The report is well-formed JSON and matches the schema, but cannot be stored as it is."""

    status = 422


@dataclass(frozen=True, slots=True)
class Outcome:
    result: Result
    seq: int
    reason: str = ""

    def ack(self) -> dict[str, Any]:
        """The ReportAck document."""
        return {"seq": self.seq, "applied": self.result == "applied", "duplicate": self.result == "duplicate",
                "need_snapshot": self.result == "need_snapshot", "reason": self.reason}


# -- deciding -----------------------------------------------------------------------------------------


def decide(current_epoch: str | None, current_seq: int, past_seq: int | None, epoch: str, seq: int,
           kind: str) -> Outcome:
    """Apply, duplicate or need a snapshot, from the device's position and the report's.

    ``past_seq`` is the last seq applied in ``epoch`` when that is an earlier epoch of this device.
    """
    if epoch == current_epoch:
        if seq <= current_seq:
            return Outcome("duplicate", current_seq, "already applied")
        if kind == "snapshot" or seq == current_seq + 1:
            return Outcome("applied", seq)
        return Outcome("need_snapshot", current_seq, f"gap: expected seq {current_seq + 1}, got {seq}")
    if past_seq is not None:
        return Outcome("duplicate", past_seq, "an earlier epoch")
    if kind == "snapshot":
        return Outcome("applied", seq)
    return Outcome("need_snapshot", 0, "a new epoch starts with a snapshot")


# -- preparing rows (pure) ----------------------------------------------------------------------------


@dataclass
class Prepared:
    """The rows one report writes, before the prior state is known."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    tags: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # sighting id -> (kind, value)
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)  # sighting id -> the report's sighting
    policy: governance.Policy | None = None  # the policy the rows were assessed under


def parse_time(value: str, default: float) -> float:
    if not isinstance(value, str):
        return default
    # a report's times repeat (a scan stamps its sightings alike), so each is parsed once; only short
    # strings are kept, whatever a device sends
    seconds = _iso_seconds(value) if len(value) <= _MAX_TIME_TEXT else _iso_seconds.__wrapped__(value)
    return default if seconds is None else seconds


_MAX_TIME_TEXT = 64


@functools.lru_cache(maxsize=4096)
def _iso_seconds(value: str) -> float | None:
    try:
        return datetime.fromisoformat(value).timestamp()
    except (ValueError, OverflowError):
        return None


def _crc(data: Any) -> str:
    return format(zlib.crc32(orjson.dumps(data)), "08x")


def _material(doc: dict[str, Any]) -> list[Any]:
    """The detail sections as far as history cares: endpoints by (host, port, provider, via) only, since
    their counters move with every call."""
    endpoints = [(e["host"], e["port"], e["provider"], e["via"]) for e in doc["endpoints"]]
    return [endpoints if s == "endpoints" else doc[s] for s in SECTIONS]


def content_hash(doc: dict[str, Any]) -> str:
    """A checksum of all the material sections, then one per section (so that history can name them).

    Telling a refreshed sighting from a changed one needs only the first. All are computed as the report
    is prepared, outside the store's write lock.
    """
    sections = _material(doc)
    return ".".join([_crc(sections), *(_crc(part) for part in sections)])


def check_parts(report: dict[str, Any]) -> None:
    """Only a snapshot comes in parts, and a part is one of them."""
    part, parts = report.get("part", 1), report.get("parts", 1)
    if part > parts or (parts > 1 and report["kind"] != "snapshot"):
        raise ReportRejected("invalid_parts", part=part, parts=parts, kind=report["kind"])


def check_sizes(sightings: Iterable[dict[str, Any]], removed: Iterable[str]) -> None:
    """Reject values no index can hold, and NUL characters (PostgreSQL text cannot store them)."""
    for doc in sightings:
        if len(doc["id"]) > MAX_ID or "\x00" in doc["id"]:
            raise ReportRejected("invalid_sighting_id", max_length=MAX_ID)
        for key in ("signature", "name", "vendor", "user", "parent"):
            value = doc[key]
            if value is not None and (len(value) > MAX_TEXT or "\x00" in value):
                raise ReportRejected("invalid_field", field=key, sighting=doc["id"], max_length=MAX_TEXT)
    for sid in removed:
        if len(sid) > MAX_ID:
            raise ReportRejected("invalid_sighting_id", max_length=MAX_ID)


@functools.lru_cache(maxsize=8192)
def _assess(signature: str | None, providers: tuple[str, ...], fingerprints: tuple[str, ...],
            flags: tuple[str, ...], policy: governance.Policy, risky: tuple[str, ...]) -> governance.Verdict:
    # the same few agents, again
    return governance.assess(signature, providers, fingerprints, flags, policy, risky=risky)


def sent_flags(doc: dict[str, Any]) -> list[str]:
    """The endpoint's own flags of a reported sighting, as stored in its detail (``device_flags``): what
    every later re-assessment starts from, whatever flags the collector adds on top."""
    return sorted({f for f in doc["flags"] if f not in governance.COLLECTOR_FLAGS})


def risky_of(mcp_servers: list[dict[str, Any]], policy: governance.Policy) -> tuple[str, ...]:
    """The sighting's MCP servers that the policy's risky-tool patterns match (nothing to do without any)."""
    return tuple(governance.risky_tools(mcp_servers, policy.risky_tools)) if policy.risky_tools else ()


@functools.lru_cache(maxsize=1)
def _redactor() -> Redactor:
    import signatures

    return Redactor.from_kinds(signatures.load().credential_kinds)


def _scrub(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, str):
        return redactor.text(value)
    if isinstance(value, list):
        if value and all(isinstance(v, str) for v in value):
            return redactor.argv(value)  # a command line or args: a secret flag's value is the next string
        return [_scrub(v, redactor) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, redactor) for k, v in value.items()}
    return value


def scrubbed(doc: dict[str, Any]) -> dict[str, Any]:
    """A reported sighting with any credential value its device left in a free-text string hidden (defence
    in depth: a device running old or altered code). One search over the sighting tells whether there can
    be one; most sightings are taken as they are."""
    redactor = _redactor()
    # What can hold one: names, command lines, MCP servers, evidence; a credential's "where" names the variable
    # that held it (so it has the words), only a key shape there counts. Configs' paths and endpoints' hosts
    # are scrubbed with the rest, not searched.
    if not (redactor.might_hold_secret(orjson.dumps([doc["name"], doc["processes"], doc["mcp_servers"],
                                                     doc["evidence"]]).decode())
            or doc["credentials"] and redactor.holds_key_shape(orjson.dumps(doc["credentials"]).decode())):
        return doc
    return {**doc, "name": redactor.text(doc["name"]), **_scrub({s: doc[s] for s in SECTIONS}, redactor)}


def prepare(sightings: Sequence[dict[str, Any]], *, device_id: str, hostname: str, policy: governance.Policy,
            now: float, touched: int) -> Prepared:
    """Rows for the sighting table (with governance applied) and their tags; the last copy of an id wins."""
    out = Prepared()
    for doc in {d["id"]: d for d in sightings}.values():
        doc = scrubbed(doc)
        providers = governance.providers_of(doc["endpoints"])
        fingerprints = governance.fingerprints_of(doc["credentials"])
        device_flags = sent_flags(doc)
        verdict = _assess(doc["signature"], tuple(providers), tuple(fingerprints), tuple(device_flags), policy,
                          risky_of(doc["mcp_servers"], policy))
        out.rows.append({
            "device_id": device_id, "id": doc["id"], "signature": doc["signature"], "name": doc["name"],
            "vendor": doc["vendor"], "type": doc["type"], "user": doc["user"] or "", "running": doc["running"],
            "confidence": float(doc["confidence"]), "parent": doc["parent"], "hostname": hostname,
            "governed": verdict.governed, "flags": orjson.dumps(verdict.flags).decode(),
            "providers": orjson.dumps(providers).decode(), "fingerprints": orjson.dumps(fingerprints).decode(),
            "detail": orjson.dumps({**{s: doc[s] for s in SECTIONS},
                                    governance.DEVICE_FLAGS: device_flags}).decode(),
            "content_hash": content_hash(doc),
            "first_seen": parse_time(doc["first_seen"], now), "last_seen": parse_time(doc["last_seen"], now),
            "recorded_at": now, "updated_at": now, "gone": False, "gone_at": None, "touched": touched,
        })  # fmt: skip
        out.tags[doc["id"]] = tags_of(verdict.flags, providers)
        out.docs[doc["id"]] = doc
    return out


def prepare_report(report: dict[str, Any], policy: governance.Policy, now: float) -> Prepared:
    """``prepare`` before the device is known: run by the request, outside the write lock, under the policy
    last seen. ``apply_report`` fills in the device, or prepares again if the policy has changed since."""
    prepared = prepare(report["upserts"], device_id="", hostname=report["device"]["hostname"], policy=policy,
                       now=now, touched=0)
    prepared.policy = policy
    return prepared


def tags_of(flags: Iterable[str], providers: Iterable[str]) -> list[tuple[str, str]]:
    return [("flag", f) for f in flags] + [("provider", p) for p in providers]


def changed_fields(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str] | None:
    """None when nothing material changed; else the fields that did ([] for a new or returning one)."""
    if old is None or old["gone"]:
        return []
    fields = [k for k in CORE if old[k] != new[k]]
    old_hash, new_hash = old["content_hash"].split("."), new["content_hash"].split(".")
    if old_hash[0] != new_hash[0]:
        fields += [s for s, a, b in zip(SECTIONS, old_hash[1:], new_hash[1:], strict=False) if a != b]
    return fields or None


# -- the transaction ------------------------------------------------------------------------------------
# The hot path speaks SQL to the driver's cursor: the same statements on SQLite and PostgreSQL, written
# with :name parameters (rewritten to %(name)s for psycopg), id lists passed as one parameter (a JSON
# array on SQLite, an array on PostgreSQL), so that each statement is prepared once and runs in bulk.

_COLUMNS = tuple(c.name for c in T.columns)
# What an update of a present sighting writes when none of its indexed columns moved but last_seen: it
# leaves every other index alone (SQLite rewrites only the indexes of the columns it sets).
_REFRESH = ("last_seen", "detail", "content_hash", "updated_at", "touched", "vendor", "running", "parent", "flags",
            "providers", "fingerprints")
_INDEXED = ("name", "type", "user", "first_seen", "confidence", "signature", "governed")
_UPSERT_KEEP = ("device_id", "id", "recorded_at")  # what an upsert leaves as it was
_REFRESH_KEYS = ("device_id", "id", *_REFRESH)
_core_of, _indexed_of, _refresh_of = itemgetter(*CORE), itemgetter(*_INDEXED), itemgetter(*_REFRESH_KEYS)


def _q(name: str) -> str:
    return '"user"' if name == "user" else name


_SQL = {
    "device": "SELECT id, host_identifier, key_salt, key_hash, revoked_at, epoch, seq, applied, hostname, "
              "last_seen, os, os_version, arch, agentroster_version, snapshot_from FROM device WHERE key_id = :key_id",
    "past_epoch": "SELECT last_seq FROM report_epoch WHERE device_id = :device_id AND epoch = :epoch",
    "policy": "SELECT version, sanctioned_signatures, sanctioned_providers, corporate_fingerprints, risky_tools "
              "FROM policy WHERE id = 1",
    "prior": f"SELECT id, {', '.join(_q(k) for k in CORE)}, providers, content_hash, gone, first_seen, governed "
             "FROM sighting WHERE device_id = :device_id AND id IN {ids}",
    "upsert": f"INSERT INTO sighting ({', '.join(map(_q, _COLUMNS))}) VALUES ({', '.join(':' + c for c in _COLUMNS)}) "
              f"ON CONFLICT (device_id, id) DO UPDATE SET "
              + ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in _COLUMNS if c not in _UPSERT_KEEP),
    "refresh": f"UPDATE sighting SET {', '.join(f'{c} = :{c}' for c in _REFRESH)} "
               "WHERE device_id = :device_id AND id = :id",
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
    "refresh": (("device_id", "id", *_REFRESH), "UPDATE sighting AS s SET "
                + ", ".join(f"{c} = v.{c}" for c in _REFRESH) + " FROM "
                + _unnest(T, ("device_id", "id", *_REFRESH)) + f" AS v(device_id, id, {', '.join(_REFRESH)}) "
                "WHERE s.device_id = v.device_id AND s.id = v.id"),
    "history": (_HISTORY_COLUMNS, f"INSERT INTO sighting_history ({', '.join(_HISTORY_COLUMNS)}) SELECT * FROM "
                + _unnest(H, _HISTORY_COLUMNS)),
    "tag": (_TAG_COLUMNS, f"INSERT INTO sighting_tag ({', '.join(_TAG_COLUMNS)}) SELECT * FROM "
            + _unnest(G, _TAG_COLUMNS) + " ON CONFLICT DO NOTHING"),
}


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

    def ids(self, values: list[str]) -> Any:
        return values if self.pg else orjson.dumps(values).decode()

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


_policy_cache: dict[int, governance.Policy] = {}


def load_policy(cur: _Cursor) -> governance.Policy:
    """The org policy, parsed once per version per process (on PostgreSQL, shares the policy lock)."""
    row = cur.one("policy", {})
    if row is None:
        return governance.Policy()
    if row[0] not in _policy_cache:
        lists = [orjson.loads(v) if isinstance(v, str | bytes) else v for v in row[1:5]]
        _policy_cache.clear()
        _policy_cache[row[0]] = governance.Policy.of(*lists)
    return _policy_cache[row[0]]


def cached_policy() -> governance.Policy | None:
    """The policy this process last read (None before its first report): what ``prepare_report`` uses."""
    return next(iter(_policy_cache.values()), None)


_DEVICE_FIELDS = ("id", "host_identifier", "key_salt", "key_hash", "revoked_at", "epoch", "seq", "applied",
                  "hostname", "last_seen", "os", "os_version", "arch", "agentroster_version", "snapshot_from")
_INFO = ("hostname", "os", "os_version", "arch", "agentroster_version")
_PRIOR_FIELDS = ("id", *CORE, "providers", "content_hash", "gone", "first_seen", "governed")


def apply_report(conn: Connection, presented: auth.Presented, report: dict[str, Any],
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
    outcome = decide(device["epoch"], device["seq"], past_seq, report["epoch"], report["seq"], report["kind"])
    if outcome.result == "applied" and report.get("part", 1) > 1 and not _continues(device, report):
        outcome = Outcome("need_snapshot", device["seq"] if report["epoch"] == device["epoch"] else 0,
                          f"part {report['part']} of a snapshot whose part {report['part'] - 1} was not the last applied")
    if outcome.result == "applied":
        _apply(cur, device, report, now, prepared, policy)
    return outcome


def _continues(device: dict[str, Any], report: dict[str, Any]) -> bool:
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


def _apply(cur: _Cursor, device: dict[str, Any], report: dict[str, Any], now: float,
           prepared: Prepared | None = None, policy: governance.Policy | None = None) -> None:
    device_id, touched = device["id"], device["applied"] + 1
    if report["device"]["hostname"] != device["hostname"]:
        cur.run("hostname", {"hostname": report["device"]["hostname"], "device_id": device_id})
    if policy is None:
        policy = load_policy(cur)
    if prepared is None or prepared.policy is not policy:
        prepared = prepare(report["upserts"], device_id=device_id, hostname=report["device"]["hostname"],
                           policy=policy, now=now, touched=touched)
    else:
        for row in prepared.rows:
            row["device_id"], row["touched"] = device_id, touched
    # an admin's approval or an employee's registration outranks the policy alone
    triage.adjust_at_ingest(cur.cursor, cur.pg, device_id, prepared.rows, prepared.tags, prepared.docs, policy)
    history = _write_sightings(cur, device_id, prepared, report, now)
    # a snapshot's sightings are those every part of it carried: the first part's count and on
    since = device["snapshot_from"] if report.get("part", 1) > 1 else touched
    last_part = report.get("part", 1) == report.get("parts", 1)
    if last_part:
        history += _mark_gone(cur, device_id, report, now, touched, since)
    cur.many("history", history)
    _update_device(cur, device, report, now, touched, None if last_part else since)


def _write_sightings(cur: _Cursor, device_id: str, prepared: Prepared, report: dict[str, Any],
                     now: float) -> list[dict[str, Any]]:
    """New sightings (and those whose indexed columns moved) are upserted whole; the others are updated
    in place without touching their indexes but last_seen's. Returns the history entries."""
    prior = _prior(cur, device_id, [r["id"] for r in prepared.rows])
    history, upserts, refreshes, retag = [], [], [], {}
    for row in prepared.rows:
        old = prior.get(row["id"])
        present = old if old is not None and not old["gone"] else None
        if present and present["content_hash"] == row["content_hash"] and _core_of(present) == _core_of(row):
            fields = None  # a refresh: nothing material moved
        else:
            fields = changed_fields(old, row)
        if present and _indexed_of(present) == _indexed_of(row):
            refreshes.append(dict(zip(_REFRESH_KEYS, _refresh_of(row), strict=True)))
        else:
            upserts.append(row)
        if fields is not None:
            change = "new" if old is None or old["gone"] else "changed"
            history.append({"device_id": device_id, "sighting_id": row["id"], "epoch": report["epoch"],
                            "seq": report["seq"], "at": now, "change": change, "fields": ",".join(fields)})
        if old is None or old["flags"] != row["flags"] or old["providers"] != row["providers"]:
            retag[row["id"]] = prepared.tags[row["id"]]
    cur.many("upsert", upserts)
    cur.many("refresh", refreshes)
    _retag(cur, device_id, retag, [sid for sid in retag if sid in prior])
    return history


def _prior(cur: _Cursor, device_id: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    prior: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), _CHUNK):
        for row in cur.all("prior", {"device_id": device_id, "ids": cur.ids(ids[start:start + _CHUNK])}):
            found = dict(zip(_PRIOR_FIELDS, row, strict=True))
            found["running"], found["gone"] = bool(found["running"]), bool(found["gone"])
            prior[found["id"]] = found
    return prior


def _retag(cur: _Cursor, device_id: str, tags: dict[str, list[tuple[str, str]]], stored: list[str]) -> None:
    """Replace the tags of the sightings in ``tags``; only those in ``stored`` can have tags to take off."""
    if not tags:
        return
    ids = stored
    for start in range(0, len(ids), _CHUNK):
        cur.run("untag", {"device_id": device_id, "ids": cur.ids(ids[start:start + _CHUNK])})
    cur.many("tag", [{"device_id": device_id, "sighting_id": sid, "kind": k, "value": v}
                     for sid, pairs in tags.items() for k, v in pairs])


def _mark_gone(cur: _Cursor, device_id: str, report: dict[str, Any], now: float,
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


def _update_device(cur: _Cursor, device: dict[str, Any], report: dict[str, Any], now: float,
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
        "status": orjson.dumps(_scrub(status, _redactor())).decode(), "snapshot_from": snapshot_from,
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
                                **({"dt": recorded} if recorded else {})})
                tags[(device_id, sid)] = tags_of(verdict.flags, providers_list)
        if updates:
            triage.write_verdicts(conn, updates, tags)
        changed += len(updates)
        last = (rows[-1][0], rows[-1][1])
