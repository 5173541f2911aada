"""Report framing (``agentroster.report/1``): the report a device sends, how a snapshot too big for one
body is split into parts, the status spliced in at send time, and the collector's ack.

A report is numbered within an epoch (a new epoch starts when the device's local state is new), as
osquery's differential results are: a full snapshot now and then, deltas between, heartbeats when nothing
changed. The collector applies each (device, epoch, seq) exactly once. Pure functions over plain data:
the device's spool keeps the bodies, the collector checks them with ``contract.validation``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, NotRequired, TypedDict

from contract.bounds import Default, Doc, Length, Range
from contract.scan import COUNT_MAX, Device, ScanError, Sighting

REPORT_SCHEMA = "agentroster.report/1"
# A report body over this is sent in several (the collector refuses more than 8 MiB by default): a snapshot
# in parts (``part``/``parts``), a delta as several deltas. Room is kept for ``sent_at`` and ``status``.
MAX_REPORT_BYTES = 4 << 20
MAX_PARTS = 10_000  # parts of one snapshot at the most
SEND_TIME_ROOM = 4096  # bytes kept free in a body for what is spliced in at send time
#: a report's seq counts up from 1 within an epoch; the collector keeps it (and seq + 1) in an INTEGER
#: column (32 bits on PostgreSQL), so the top leaves room: 2**30 reports is 34 years at one a second
SEQ_MAX = 2**30

Kind = Literal["snapshot", "delta", "heartbeat"]
SpoolHealth = Literal["normal", "warning", "full"]
DegradedSensor = Literal["files", "processes", "network", "fingerprint"]


def idle_status() -> DeviceStatus:
    """The status a report without one stands for."""
    return {"spool": "normal", "spool_reports": 0, "spool_bytes": 0, "shedding": False, "cpu_percent": 0.0,
            "rss_mb": 0.0, "sensors": {}, "units_failed": 0, "degraded": []}


class DeviceStatus(TypedDict):
    spool: NotRequired[Annotated[SpoolHealth, Default("normal")]]
    spool_reports: NotRequired[Annotated[int, Range(0, COUNT_MAX), Default(0)]]
    spool_bytes: NotRequired[Annotated[int, Range(0, COUNT_MAX), Default(0)]]
    shedding: NotRequired[Annotated[bool, Default(False), Doc("the resource guard is shedding work")]]
    cpu_percent: NotRequired[Annotated[float, Default(0.0)]]
    rss_mb: NotRequired[Annotated[float, Default(0.0)]]
    sensors: NotRequired[Annotated[dict[str, str], Default(factory=dict),
                                   Doc("sensor name -> ok | off | limited: why")]]
    units_failed: NotRequired[Annotated[int, Range(0, 1_000_000), Default(0),
                                        Doc("units of the last scan (a file, a server entry, a process, a network "
                                            "record, a sighting) the code could not process: its internal errors")]]
    degraded: NotRequired[Annotated[list[DegradedSensor], Length(max=4), Default(factory=list),
                                    Doc("the sensors whose last scan was incomplete")]]


class Report(TypedDict):
    schema: Literal["agentroster.report/1"]
    epoch: Annotated[str, Length(1, 64)]
    seq: Annotated[int, Range(1, SEQ_MAX)]
    kind: Kind
    sent_at: str
    device: Device
    upserts: NotRequired[Annotated[list[Sighting], Default(factory=list),
                                   Doc("snapshot: every sighting (a part: its share); delta: new or changed")]]
    removed: NotRequired[Annotated[list[str], Default(factory=list), Doc("delta: ids of sightings that are gone")]]
    errors: NotRequired[Annotated[list[ScanError], Default(factory=list)]]
    status: NotRequired[Annotated[DeviceStatus, Default(factory=idle_status)]]
    part: NotRequired[Annotated[int, Range(1, MAX_PARTS), Default(1),
                                Doc("a snapshot too big for one report comes in parts 1..parts, in consecutive seqs")]]
    parts: NotRequired[Annotated[int, Range(1, MAX_PARTS), Default(1),
                                 Doc("how many parts the snapshot has; sightings no part carries are gone after "
                                     "the last")]]


class ReportAck(TypedDict):
    seq: Annotated[int, Doc("the last seq the collector holds for this device and epoch")]
    applied: bool
    duplicate: NotRequired[Annotated[bool, Default(False)]]
    need_snapshot: NotRequired[Annotated[bool, Default(False), Doc("a gap or a new epoch: send a full snapshot next")]]
    reason: NotRequired[Annotated[str, Default("")]]


def report_body(*, epoch: str, seq: int, kind: Kind, device: Mapping[str, Any], upserts: Iterable[Mapping[str, Any]],
                removed: Iterable[str], errors: Iterable[Mapping[str, Any]], part: int = 1, parts: int = 1) -> bytes:
    """A report as the spool keeps it: everything but ``sent_at`` and ``status``, which are added at send
    time (``finish_body``) so that a resend says when it was sent and how the device is now."""
    doc: dict[str, Any] = {"schema": REPORT_SCHEMA, "epoch": epoch, "seq": seq, "kind": kind, "device": dict(device),
                           "upserts": list(upserts), "removed": list(removed), "errors": list(errors)}
    if parts > 1:
        doc["part"], doc["parts"] = part, parts
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def split_report(*, epoch: str, seq: int, kind: Kind, device: Mapping[str, Any], upserts: Sequence[Sighting],
                 removed: Sequence[str], errors: Sequence[ScanError],
                 max_bytes: int = MAX_REPORT_BYTES) -> list[tuple[Kind, bytes]]:
    """The report as one body, or, when it would be over ``max_bytes``, as several in consecutive seqs from
    ``seq``: a snapshot in parts (the collector marks gone what no part carried only after the last), a delta
    as deltas (the errors and the removed ids first).

    A sighting too big for any report (a config declaring tens of thousands of MCP servers) is sent with
    its longest lists cut, and an error entry says what was left out: a file a user controls can never
    stop the device from reporting."""
    whole = report_body(epoch=epoch, seq=seq, kind=kind, device=device, upserts=upserts, removed=removed,
                        errors=errors)
    if len(whole) + SEND_TIME_ROOM <= max_bytes:
        return [(kind, whole)]
    room = max_bytes - SEND_TIME_ROOM - len(report_body(epoch=epoch, seq=seq + MAX_PARTS, kind=kind, device=device,
                                                         upserts=[], removed=[], errors=[], part=MAX_PARTS,
                                                         parts=MAX_PARTS))
    fitted: list[Mapping[str, Any]] = []
    notes: list[dict[str, str]] = []
    for sighting in upserts:
        cut, left_out = fit_sighting(sighting, room - 64)
        fitted.append(cut)
        if left_out:
            notes.append({"where": f"sighting {sighting.get('id', '')}", "error": "truncated",
                          "detail": f"{left_out} left out to fit a report of {max_bytes} bytes"})
    # The first body carries the errors, then the removed ids as they fit, then sightings as they fit.
    groups: list[tuple[list[Mapping[str, Any]], list[str], list[Mapping[str, Any]]]] = [([], [], [*errors, *notes])]
    used = _json_size(groups[0][2]) if groups[0][2] else 0
    items: list[tuple[int, Any]] = [*((1, sid) for sid in removed), *((0, sighting) for sighting in fitted)]
    for slot, item in items:  # slot 1: a removed id, slot 0: a sighting
        size = _json_size(item) + 1
        if used + size > room and used:
            groups.append(([], [], []))
            used = 0
        groups[-1][slot].append(item)
        used += size
    if len(groups) > MAX_PARTS:
        raise ValueError(f"a report of {len(whole)} bytes needs more than {MAX_PARTS} parts")
    parts = len(groups) if kind == "snapshot" else 1
    return [(kind, report_body(epoch=epoch, seq=seq + index, kind=kind, device=device, upserts=group, removed=gone,
                               errors=said, part=index + 1, parts=parts))
            for index, (group, gone, said) in enumerate(groups)]


_CUTTABLE = ("mcp_servers", "evidence", "processes", "configs", "endpoints", "credentials")


def fit_sighting(sighting: Sighting, limit: int) -> tuple[Mapping[str, Any], str]:
    """``sighting`` within ``limit`` bytes of JSON: its longest list halved until it fits (the first entries
    kept), and what was left out ("1200 mcp_servers, 3 evidence"), or "" when it fitted as it was."""
    size = _json_size(sighting)
    if size <= limit:
        return sighting, ""
    out = dict(sighting)
    left: dict[str, int] = {}
    while size > limit:
        key = max(_CUTTABLE, key=lambda k: _json_size(out.get(k) or []))
        items = out.get(key)
        if not isinstance(items, list) or not items:
            break  # nothing left to cut: it goes as it is
        keep = len(items) // 2
        left[key] = left.get(key, 0) + len(items) - keep
        out[key] = items[:keep]
        size = _json_size(out)
    return out, ", ".join(f"{count} {key}" for key, count in sorted(left.items()))


def finish_body(body: bytes, *, sent_at: str, status: Mapping[str, Any]) -> bytes:
    """The spooled body with ``sent_at`` and ``status`` spliced in (no re-parse of the sightings)."""
    tail = json.dumps({"sent_at": sent_at, "status": dict(status)}, separators=(",", ":"), ensure_ascii=False)
    return body[:-1] + b"," + tail[1:].encode()
