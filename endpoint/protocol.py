"""The wire contract: the scan document and the sightings in it, as pydantic models.

The scan path builds plain dicts of this shape (pydantic is slow to import on an endpoint's hot
path); these models are the contract's source of truth: the collector validates reports with them,
``endpoint/schema/scan-1.json`` is generated from them, and the tests check every scan against it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from endpoint.service.inventory import MAX_PARTS  # what the device splits a snapshot into, at the most

SightingType = Literal["coding", "in_product", "enterprise", "runtime", "tool_server", "unknown"]
Flag = Literal["unregistered", "pending", "drift", "unsanctioned_provider", "personal_credential", "autonomous",
               "broad_tools", "plaintext_secret", "remote_tool_server"]


#: Integer bounds, so that no number in a report reaches the store out of range (SQLite's and PostgreSQL's
#: BIGINT hold -2**63..2**63-1; the collector stores seq + 1 and sums counts, so these leave room).
PID_MAX = 2**32 - 1  # a Windows DWORD; POSIX pid_t is smaller
PORT_MAX = 65535
COUNT_MAX = 2**53 - 1  # exact in a JSON number read as a double
#: a report's seq counts up from 1 within an epoch; the collector keeps it (and seq + 1) in an INTEGER
#: column (32 bits on PostgreSQL), so the top leaves room: 2**30 reports is 34 years at one a second
SEQ_MAX = 2**30


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Device(_Model):
    id: str = Field(description="stable device id (machine-id, or host:NAME)")
    hostname: str
    os: Literal["linux", "macos", "windows"]
    os_version: str = ""
    arch: str = ""
    agentroster_version: str


class Process(_Model):
    pid: int = Field(ge=0, le=PID_MAX)
    ppid: int = Field(ge=0, le=PID_MAX)
    name: str
    exe: str
    cmdline: list[str] = Field(description="argv with every credential replaced by [REDACTED:kind]")
    user: str
    started: float


class Config(_Model):
    path: str
    client: str = Field(description="the signature id whose file template matched")
    format: str = Field(description="the config dialect")
    scope: Literal["managed", "user", "project"]


class McpServer(_Model):
    name: str
    transport: Literal["stdio", "http", "sse", "streamable_http", "builtin", "unknown"]
    command: str | None
    args: list[str]
    url: str | None = Field(description="without userinfo or query values")
    source: str = Field(description="the config file that declares it")
    enabled: bool
    project: str | None = None


class Endpoint(_Model):
    host: str
    port: int = Field(ge=0, le=PORT_MAX)
    provider: str | None
    via: Literal["sni", "dns", "connect", "http", "socket"]
    first_seen: float
    last_seen: float
    count: int = Field(ge=0, le=COUNT_MAX)


class CredentialRef(_Model):
    kind: str
    fingerprint: str | None = Field(pattern=r"^hmac-sha256:[0-9a-f]{32}$",
                                    description="null when the scan had no organisation key (an errors[] entry says so)")
    source: Literal["env", "config", "cmdline"]
    where: str


class Evidence(_Model):
    kind: Literal["process", "config", "artifact", "network"]
    rule: str
    detail: str


class Sighting(_Model):
    id: str
    signature: str | None
    name: str
    vendor: str
    type: SightingType
    user: str | None = Field(description="null for a machine-wide install")
    running: bool
    confidence: float = Field(ge=0, le=1)
    parent: str | None = Field(description="the id of the sighting that declared or spawned this one")
    processes: list[Process]
    configs: list[Config]
    mcp_servers: list[McpServer]
    endpoints: list[Endpoint]
    credentials: list[CredentialRef]
    flags: list[Flag]
    evidence: list[Evidence]
    first_seen: str
    last_seen: str


class ScanErrorEntry(_Model):
    where: str
    error: str
    detail: str


class ScanDocument(_Model):
    schema_: Literal["agentroster.scan/1"] = Field(alias="schema")
    device: Device
    scanned_at: str
    sightings: list[Sighting]
    errors: list[ScanErrorEntry]


def json_schema() -> dict[str, object]:
    schema = ScanDocument.model_json_schema(by_alias=True)
    schema["$id"] = "https://agentroster.dev/schema/scan-1.json"
    schema["title"] = "agentroster.scan/1"
    return schema


# -- device ↔ collector ------------------------------------------------------------------------------
# A device enrolls once with the org's enroll secret and gets its own key; then it sends reports, each
# numbered within an epoch (a new epoch starts when its local state is new), as osquery's
# differential results are: a full snapshot now and then, deltas between, heartbeats when nothing
# changed. The collector applies each (device, epoch, seq) exactly once.


class EnrollRequest(_Model):
    enroll_secret: str = Field(min_length=1, max_length=512)
    host_identifier: str = Field(min_length=1, max_length=256,
                                 description="the device id: the daemon's per-install random identity")
    device: Device
    hardware_id: str = Field(default="", max_length=256,
                             description="the OS's hardware identity (machine-id, IOPlatformUUID/serial, MachineGuid)")
    device_key: str | None = Field(default=None, max_length=512,
                                   description="proof of identity: the key this device was last given; without it, "
                                               "an identity whose key is live enrolls as a separate, conflicting device")


class EnrollResponse(_Model):
    device_id: str
    device_key: str = Field(description="the device's own bearer token; stored hashed by the collector")
    fingerprint_key: str | None = Field(default=None, description="the organisation's credential fingerprint key")
    identity_conflict: bool = Field(default=False, description="enrolled apart: the identity's live key was not shown")


class DeviceStatus(_Model):
    spool: Literal["normal", "warning", "full"] = "normal"
    spool_reports: int = Field(default=0, ge=0, le=COUNT_MAX)
    spool_bytes: int = Field(default=0, ge=0, le=COUNT_MAX)
    shedding: bool = Field(default=False, description="the resource guard is shedding work")
    cpu_percent: float = 0.0
    rss_mb: float = 0.0
    sensors: dict[str, str] = Field(default_factory=dict, description="sensor name -> ok | off | limited: why")
    units_failed: int = Field(default=0, ge=0, le=1_000_000,
                              description="units of the last scan (a file, a server entry, a process, a network "
                                          "record, a sighting) the code could not process: its internal errors")
    degraded: list[Literal["files", "processes", "network", "fingerprint"]] = Field(
        default_factory=list, max_length=4, description="the sensors whose last scan was incomplete")


class Report(_Model):
    schema_: Literal["agentroster.report/1"] = Field(alias="schema")
    epoch: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=1, le=SEQ_MAX)
    kind: Literal["snapshot", "delta", "heartbeat"]
    sent_at: str
    device: Device
    upserts: list[Sighting] = Field(default_factory=list, description="snapshot: every sighting (a part: its share); delta: new or changed")
    removed: list[str] = Field(default_factory=list, description="delta: ids of sightings that are gone")
    errors: list[ScanErrorEntry] = Field(default_factory=list)
    status: DeviceStatus = Field(default_factory=DeviceStatus)
    part: int = Field(default=1, ge=1, le=MAX_PARTS,
                      description="a snapshot too big for one report comes in parts 1..parts, in consecutive seqs")
    parts: int = Field(default=1, ge=1, le=MAX_PARTS,
                       description="how many parts the snapshot has; sightings no part carries are gone after the last")


class ReportAck(_Model):
    seq: int = Field(description="the last seq the collector holds for this device and epoch")
    applied: bool
    duplicate: bool = False
    need_snapshot: bool = Field(default=False, description="a gap or a new epoch: send a full snapshot next")
    reason: str = ""


def report_json_schema() -> dict[str, object]:
    schema = Report.model_json_schema(by_alias=True)
    schema["$id"] = "https://agentroster.dev/schema/report-1.json"
    schema["title"] = "agentroster.report/1"
    return schema
