"""Deciding what a device's report does, and preparing its rows: pure, no database and no I/O.

``decide`` says whether a report is applied, a duplicate, or needs a snapshot first; ``prepare`` turns the
report's sightings into rows and tags with governance applied (the policy's risky-tool patterns too), and
keeps the flags the device sent in the detail (``device_flags``). ``console.server.ingest_store`` writes
them, inside the store's transaction.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson

from console import governance
from console.server.errors import CollectorError
from contract.report import Report
from contract.scan import COLLECTOR_FLAGS, Sighting
from signatures.redaction import Redactor

Result = Literal["applied", "duplicate", "need_snapshot"]
SECTIONS = ("processes", "configs", "mcp_servers", "endpoints", "credentials", "evidence")
CORE = ("signature", "name", "vendor", "type", "user", "running", "confidence", "parent", "flags")
MAX_ID = 128  # sighting ids are 20 hex characters today
MAX_TEXT = 1024  # for every string stored in an indexed column


class IngestError(CollectorError):
    """A report the collector refuses; ``status`` and ``detail`` make the HTTP answer."""

    code = "report_refused"
    status = 400


class InvalidDeviceKey(IngestError):
    """The key is unknown, replaced by a newer enrollment, or revoked: the device must enroll again."""

    code = "invalid_device_key"
    status = 401

    def __init__(self) -> None:
        super().__init__("invalid_device_key", reenroll=True)


class DeviceMismatch(IngestError):
    """The report speaks for another device than the key's."""

    code = "device_mismatch"
    status = 403


class ReportRejected(IngestError):
    """The report is well-formed JSON and matches the schema, but cannot be stored as it is."""

    code = "report_rejected"
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
    sections = [endpoints if s == "endpoints" else doc[s] for s in SECTIONS]
    # an enterprise agent's project is one more, last, and only when there is one: the checksums of every
    # other sighting stay what they were before projects were reported
    return [*sections, doc["project"]] if doc.get("project") else sections


def section_checksums(doc: dict[str, Any]) -> str:
    """A checksum of all the material sections, then one per section (so that history can name them).

    Telling a refreshed sighting from a changed one needs only the first. All are computed as the report
    is prepared, outside the store's write lock.
    """
    sections = _material(doc)
    return ".".join([_crc(sections), *(_crc(part) for part in sections)])


def check_parts(report: Report) -> None:
    """Only a snapshot comes in parts, and a part is one of them."""
    part, parts = report.get("part", 1), report.get("parts", 1)
    if part > parts or (parts > 1 and report["kind"] != "snapshot"):
        raise ReportRejected("invalid_parts", part=part, parts=parts, kind=report["kind"])


def check_sizes(sightings: Iterable[Sighting], removed: Iterable[str]) -> None:
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
    return sorted({f for f in doc["flags"] if f not in COLLECTOR_FLAGS})


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


def scrub(value: Any) -> Any:
    """Any JSON value (a device's status) with every credential value in its strings hidden."""
    return _scrub(value, _redactor())


def scrubbed(doc: dict[str, Any]) -> dict[str, Any]:
    """A reported sighting with any credential value its device left in a free-text string hidden (defence
    in depth: a device running old or altered code). One search over the sighting tells whether there can
    be one; most sightings are taken as they are."""
    redactor = _redactor()
    # What can hold one: names, command lines, MCP servers, evidence; a credential's "where" names the variable
    # that held it (so it has the words), only a key shape there counts. Configs' paths and endpoints' hosts
    # are scrubbed with the rest, not searched.
    if not (redactor.might_hold_secret(orjson.dumps([doc["name"], doc["processes"], doc["mcp_servers"],
                                                     doc["evidence"], doc.get("project")]).decode())
            or doc["credentials"] and redactor.holds_key_shape(orjson.dumps(doc["credentials"]).decode())):
        return doc
    project = {"project": _scrub(doc["project"], redactor)} if doc.get("project") else {}
    return {**doc, "name": redactor.text(doc["name"]), **_scrub({s: doc[s] for s in SECTIONS}, redactor), **project}


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
            "detail": orjson.dumps({**{s: doc[s] for s in SECTIONS}, "project": doc.get("project"),
                                    governance.DEVICE_FLAGS: device_flags}).decode(),
            "section_checksums": section_checksums(doc),
            "first_seen": parse_time(doc["first_seen"], now), "last_seen": parse_time(doc["last_seen"], now),
            "recorded_at": now, "updated_at": now, "gone": False, "gone_at": None, "touched": touched,
            "risk": governance.risk_of(verdict.flags), "servers": len(doc["mcp_servers"]),
            "reach": governance.reach_of(doc["mcp_servers"]) + project_words(doc.get("project")),
        })  # fmt: skip
        out.tags[doc["id"]] = tags_of(verdict.flags, providers)
        out.docs[doc["id"]] = doc
    return out


def prepare_report(report: Mapping[str, Any], policy: governance.Policy, now: float) -> Prepared:
    """``prepare`` before the device is known: run by the request, outside the write lock, under the policy
    last seen. ``apply_report`` fills in the device, or prepares again if the policy has changed since."""
    prepared = prepare(report["upserts"], device_id="", hostname=report["device"]["hostname"], policy=policy,
                       now=now, touched=0)
    prepared.policy = policy
    return prepared


def project_words(project: Mapping[str, Any] | None) -> str:
    """What free text finds an enterprise agent by beyond its name (which holds its project's folder and
    entry): its framework and the workflows of a platform, lower-cased, after the MCP servers' words."""
    if not project:
        return ""
    words = [project.get("framework"), *(w.get("name") for w in project.get("workflows") or [])]
    return "".join(f" {w.lower()}" for w in dict.fromkeys(w for w in words if isinstance(w, str) and w))[:2000]


def tags_of(flags: Iterable[str], providers: Iterable[str]) -> list[tuple[str, str]]:
    return [("flag", f) for f in flags] + [("provider", p) for p in providers]


def changed_fields(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str] | None:
    """None when nothing material changed; else the fields that did ([] for a new or returning one)."""
    if old is None or old["gone"]:
        return []
    fields = [k for k in CORE if old[k] != new[k]]
    old_sums, new_sums = old["section_checksums"].split("."), new["section_checksums"].split(".")
    if old_sums[0] != new_sums[0]:
        fields += [s for s, a, b in zip(SECTIONS, old_sums[1:], new_sums[1:], strict=False) if a != b]
        # the project's checksum follows the sections' when the sighting has one (_material)
        if old_sums[len(SECTIONS) + 1:] != new_sums[len(SECTIONS) + 1:]:
            fields.append("project")
    return fields or None


# -- the policy last read -------------------------------------------------------------------------------

_policy_cache: dict[int, governance.Policy] = {}


def policy_of(version: int, lists: Sequence[Any]) -> governance.Policy:
    """The policy of a stored row's version and four lists (JSON text or lists), parsed once per version
    per process; it becomes the ``cached_policy``."""
    if version not in _policy_cache:
        parsed = [orjson.loads(v) if isinstance(v, str | bytes) else v for v in lists]
        _policy_cache.clear()
        _policy_cache[version] = governance.Policy.of(*parsed)
    return _policy_cache[version]


def cached_policy() -> governance.Policy | None:
    """The policy this process last read (None before its first report): what ``prepare_report`` uses."""
    return next(iter(_policy_cache.values()), None)
