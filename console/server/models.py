"""The collector's store and public shapes, one SQLModel family per entity.

``XBase`` holds the shared fields, ``X(table=True)`` is the row, ``XPublic``/``XsPublic`` are what the
API returns. Times are stored as UNIX seconds (floats sort and compare the same on SQLite and
PostgreSQL) and returned as ISO 8601. Sighting details that are never filtered on (processes,
configs, MCP servers, endpoints, credentials, evidence) sit in one JSON text column.
"""

# No ``from __future__ import annotations`` here: SQLModel builds columns from the real annotations.

from datetime import UTC, datetime
from typing import Literal

from pydantic import ConfigDict
from sqlalchemy import JSON, Index, Text
from sqlmodel import Field, SQLModel

from endpoint.protocol import Config, CredentialRef, DeviceStatus, Endpoint, Evidence, McpServer, Process

#: the columns the agent list sorts on; each has an index (column, device_id, id) for keyset paging
SORT_COLUMNS = ("name", "type", "user", "hostname", "last_seen", "first_seen", "confidence")

Role = Literal["admin", "viewer"]


def iso(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


# -- devices ----------------------------------------------------------------------------------------


class DeviceBase(SQLModel):
    hostname: str = Field(default="", index=True)
    os: str = ""
    os_version: str = ""
    arch: str = ""
    agentroster_version: str = ""


class Device(DeviceBase, table=True):
    """An enrolled machine; its key is stored as a salted HMAC, never in clear."""

    id: str = Field(primary_key=True, max_length=32)
    host_identifier: str = Field(unique=True)
    key_id: str | None = Field(default=None, unique=True, max_length=32)  # None once revoked
    key_salt: str = ""
    key_hash: str = ""
    enrolled_at: float
    revoked_at: float | None = None
    last_seen: float | None = Field(default=None, index=True)
    epoch: str | None = None  # the report epoch being applied
    seq: int = 0  # the last seq applied in that epoch
    applied: int = 0  # reports applied, over all epochs
    spool: str = "normal"
    shedding: bool = False
    status: str = Field(default="{}", sa_type=Text)  # the last DeviceStatus, as JSON


class DevicePublic(DeviceBase):
    id: str
    host_identifier: str
    enrolled_at: datetime
    last_seen: datetime | None
    revoked: bool
    stale: bool
    sightings: int
    status: DeviceStatus


class DevicesPublic(SQLModel):
    data: list[DevicePublic]
    count: int


# -- sightings --------------------------------------------------------------------------------------


class SightingBase(SQLModel):
    signature: str | None = Field(default=None, index=True)
    name: str
    vendor: str = ""
    type: str
    user: str = ""  # "" for a machine-wide install (None on the wire)
    running: bool = False
    confidence: float = 0.0
    parent: str | None = None


class Sighting(SightingBase, table=True):
    """One agent on one device as last reported; ``gone`` once a snapshot or delta drops it."""

    __table_args__ = tuple(Index(f"ix_sighting_sort_{c}", c, "device_id", "id") for c in SORT_COLUMNS)

    device_id: str = Field(primary_key=True, foreign_key="device.id", max_length=32)
    id: str = Field(primary_key=True)
    hostname: str = ""  # the device's, copied so that sorting and searching need no join
    governed: bool = Field(default=False, index=True)
    flags: str = "[]"  # JSON list: the endpoint's flags and the collector's
    providers: str = "[]"  # JSON list of provider ids from the endpoints
    fingerprints: str = "[]"  # JSON list of credential fingerprints
    detail: str = Field(default="{}", sa_type=Text)  # JSON: processes, configs, mcp_servers, ...
    content_hash: str = ""
    first_seen: float
    last_seen: float
    recorded_at: float = Field(index=True)  # when the collector first stored it
    updated_at: float
    gone: bool = False
    gone_at: float | None = None
    touched: int = 0  # the device's applied-report count when a report last carried it


class SightingTag(SQLModel, table=True):
    """A flag or a provider of a sighting, one row each, so the list filters on them through an index."""

    __tablename__ = "sighting_tag"
    __table_args__ = (Index("ix_sighting_tag_kind_value", "kind", "value"), {"sqlite_with_rowid": False})

    device_id: str = Field(primary_key=True, max_length=32)
    sighting_id: str = Field(primary_key=True)
    kind: str = Field(primary_key=True, max_length=16)  # "flag" or "provider"
    value: str = Field(primary_key=True)


class SightingHistory(SQLModel, table=True):
    """One change of a sighting: new, changed (with the fields) or gone, at a report's seq."""

    __tablename__ = "sighting_history"
    __table_args__ = (Index("ix_sighting_history_sighting", "device_id", "sighting_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(max_length=32)
    sighting_id: str
    epoch: str
    seq: int
    at: float
    change: str = Field(max_length=16)
    fields: str = ""  # comma-separated names of the fields that changed


class SightingHistoryPublic(SQLModel):
    epoch: str
    seq: int
    at: datetime
    change: str
    fields: list[str]


class SightingPublic(SightingBase):
    device_id: str
    id: str
    user: str | None  # type: ignore[assignment]
    hostname: str
    governed: bool
    flags: list[str]
    providers: list[str]
    first_seen: datetime
    last_seen: datetime
    recorded_at: datetime
    gone: bool


class SightingDetail(SightingPublic):
    processes: list[Process]
    configs: list[Config]
    mcp_servers: list[McpServer]
    endpoints: list[Endpoint]
    credentials: list[CredentialRef]
    evidence: list[Evidence]
    history: list[SightingHistoryPublic]


class SightingsPublic(SQLModel):
    data: list[SightingPublic]
    count: int
    next_cursor: str | None


class ReportEpoch(SQLModel, table=True):
    """The last seq applied per (device, epoch), so that a replay from an old epoch changes nothing."""

    __tablename__ = "report_epoch"

    device_id: str = Field(primary_key=True, max_length=32)
    epoch: str = Field(primary_key=True, max_length=64)
    last_seq: int
    started_at: float
    last_at: float


# -- policy -----------------------------------------------------------------------------------------


class PolicyBase(SQLModel):
    sanctioned_signatures: list[str] = Field(default_factory=list, sa_type=JSON)
    sanctioned_providers: list[str] = Field(default_factory=list, sa_type=JSON)
    corporate_fingerprints: list[str] = Field(default_factory=list, sa_type=JSON)


class Policy(PolicyBase, table=True):
    """The org policy: a single row (id 1)."""

    id: int = Field(default=1, primary_key=True)
    version: int = 0
    updated_at: float | None = None


class PolicyUpdate(PolicyBase):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    sanctioned_signatures: list[str] = Field(default_factory=list, max_length=10_000)
    sanctioned_providers: list[str] = Field(default_factory=list, max_length=10_000)
    corporate_fingerprints: list[str] = Field(default_factory=list, max_length=100_000)


class PolicyPublic(PolicyBase):
    version: int
    updated_at: datetime | None


# -- admin tokens and the enroll secret -------------------------------------------------------------


class ApiTokenBase(SQLModel):
    name: str = Field(default="", max_length=128)
    role: str = Field(max_length=16)


class ApiTokenCreate(ApiTokenBase):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    role: Role


class ApiToken(ApiTokenBase, table=True):
    """An admin or viewer token; stored as a salted HMAC of its secret part."""

    __tablename__ = "api_token"

    id: str = Field(primary_key=True, max_length=32)
    salt: str
    hash: str
    created_at: float
    revoked_at: float | None = None


class ApiTokenPublic(ApiTokenBase):
    id: str
    created_at: datetime
    revoked: bool


class ApiTokensPublic(SQLModel):
    data: list[ApiTokenPublic]
    count: int


class ApiTokenCreated(ApiTokenPublic):
    token: str  # shown once, never stored


class EnrollSecret(SQLModel, table=True):
    """The org's enroll secret (hashed); rotating retires the previous one at once."""

    __tablename__ = "enroll_secret"

    id: int | None = Field(default=None, primary_key=True)
    salt: str
    hash: str
    created_at: float
    retired_at: float | None = None


class EnrollSecretCreated(SQLModel):
    enroll_secret: str  # shown once, never stored


# -- overview ---------------------------------------------------------------------------------------


class CountBy(SQLModel):
    key: str
    count: int


class DeviceCount(SQLModel):
    device_id: str
    hostname: str
    count: int


class OverviewPublic(SQLModel):
    sightings: int
    devices: int
    stale_devices: int
    by_type: list[CountBy]
    by_governed: list[CountBy]
    new_last_day: int
    top_providers: list[CountBy]
    top_ungoverned_devices: list[DeviceCount]
