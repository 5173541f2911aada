"""The collector's store and public shapes, one SQLModel family per entity.

``XBase`` holds the shared fields, ``X(table=True)`` is the row, ``XPublic``/``XsPublic`` are what the
API returns. Times are stored as UNIX seconds (floats sort and compare the same on SQLite and
PostgreSQL) and returned as ISO 8601. Sighting details that are never filtered on (processes,
configs, MCP servers, endpoints, credentials, evidence) sit in one JSON text column.
"""

# No ``from __future__ import annotations`` here: SQLModel builds columns from the real annotations.

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, overload

from pydantic import ConfigDict, StringConstraints
from sqlalchemy import JSON, Index, Text, text
from sqlmodel import Field, SQLModel

from contract.bounds import NO_NUL
from contract.registration import MAX_ITEMS, MAX_NOTE, Autonomy
from contract.validation import (
    BusinessProcess,
    Config,
    CredentialRef,
    DeviceStatus,
    Endpoint,
    Evidence,
    Item,
    McpServer,
    Name,
    Process,
    Project,
    Purpose,
    SightingId,
)

#: the columns the agent list sorts on; each has an index (column, device_id, id) for keyset paging
SORT_COLUMNS = ("name", "type", "user", "hostname", "last_seen", "first_seen", "confidence", "risk")

Role = Literal["admin", "viewer"]
TriageKind = Literal["approve", "assign_owner", "request_registration", "false_positive", "note"]
TriageState = Literal["new", "approved", "registration_requested", "false_positive"]
RegistrationStatus = Literal["pending", "approved", "rejected", "superseded", "more_information"]
#: the rungs of the nudge ladder (console/server/lifecycle.py), lowest first
LadderRung = Literal["report_only", "notify", "remind", "escalate"]

# Text an admin types: no NUL (PostgreSQL text cannot hold it), bounded (the contract's Name and Item
# are the same rule for what an employee types).
Note = Annotated[str, StringConstraints(max_length=MAX_NOTE, pattern=NO_NUL)]


@overload
def iso(seconds: float) -> datetime: ...
@overload
def iso(seconds: float | None) -> datetime | None: ...
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
    snapshot_from: int | None = None  # while a snapshot comes in parts: the ``applied`` count its first part had
    spool: str = "normal"
    shedding: bool = False
    status: str = Field(default="{}", sa_type=Text)  # the last DeviceStatus, as JSON
    # the last report's health, from its status, as columns a filter can use: units its scan could not
    # process, and the sensors they came from (comma-separated); either set means the scan was incomplete
    units_failed: int = Field(default=0, index=True)
    degraded: str = ""
    hardware_id: str = ""  # what the device says its hardware is (machine-id, IOPlatformUUID, MachineGuid)
    # The id of the device whose identity this one claimed without that device's key: an admin accepts
    # it (it replaces that device) or revokes it. Its host_identifier carries CONFLICT_MARK and its id.
    identity_conflict: str | None = Field(default=None, max_length=32)


#: joins a claimed host identifier and the conflicting device's id in that device's host_identifier
#: (the column is unique); enrollment refuses identifiers that hold it
CONFLICT_MARK = "|identity-conflict|"


def claimed_identifier(host_identifier: str) -> str:
    """The identifier a device enrolled with (a conflicting device's row keeps it before CONFLICT_MARK)."""
    return host_identifier.partition(CONFLICT_MARK)[0]


class DevicePublic(DeviceBase):
    id: str
    host_identifier: str
    hardware_id: str = ""
    identity_conflict: str | None = None  # the device whose identity it claimed without its key
    enrolled_at: datetime
    last_seen: datetime | None
    revoked: bool
    stale: bool
    sightings: int
    users: list[str] = []  # the distinct users of its present sightings, sorted, capped
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

    __table_args__ = (
        *(Index(f"ix_sighting_sort_{c}", c, "device_id", "id") for c in SORT_COLUMNS),
        # covers the roster's counts and the overview (present, governed, per device, per type, new), so
        # that they read an index instead of the wide rows
        Index("ix_sighting_roster", "gone", "governed", "device_id", "id", "hostname", "type", "recorded_at",
              "risk"),
        # covers the fleet by kind (one row per signature): what it counts, without the wide rows
        Index("ix_sighting_fleet", "gone", "signature", "type", "governed", "device_id", "user", "servers", "risk",
              "flags"),
    )

    device_id: str = Field(primary_key=True, foreign_key="device.id", max_length=32)
    id: str = Field(primary_key=True)
    hostname: str = ""  # the device's, copied so that sorting and searching need no join
    governed: bool = Field(default=False, index=True)
    flags: str = "[]"  # JSON list: the endpoint's flags and the collector's
    providers: str = "[]"  # JSON list of provider ids from the endpoints
    fingerprints: str = "[]"  # JSON list of credential fingerprints
    detail: str = Field(default="{}", sa_type=Text)  # JSON: processes, configs, mcp_servers, ...
    section_checksums: str = ""  # ingest.section_checksums: the whole, then one per section
    first_seen: float
    last_seen: float
    recorded_at: float = Field(index=True)  # when the collector first stored it
    # when its last spell ungoverned began: when it was first stored, or last went from governed to not.
    # The nudge ladder's clock (console/server/lifecycle.py) runs from it while it is ungoverned
    ungoverned_since: float | None = Field(default=None, index=True)
    updated_at: float
    gone: bool = False
    gone_at: float | None = None
    touched: int = 0  # the device's applied-report count when a report last carried it
    risk: int = 0  # governance.risk_of(flags): 0-100, kept with the flags so that sorting on it has an index
    servers: int = 0  # how many MCP servers its configs declare
    reach: str = Field(default="", sa_type=Text)  # governance.reach_of: its MCP servers, for free text


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


class ChainCover(SQLModel):
    """The root of a sub-agent's or tool server's chain whose declaration covers it (console/server/chains.py)."""

    sighting_id: str
    name: str
    by: Literal["registration", "approval"]  # the root's approved registration, or an admin's approval of it


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
    owner: str | None = None
    triage_state: TriageState = "new"
    risk: int = 0  # 0-100, the weights of its flags (console.governance.RISK_WEIGHTS)
    servers: int = 0  # the MCP servers its configs declare
    ladder: LadderRung | None = None  # where an ungoverned sighting stands on the nudge ladder; None: governed
    ladder_due: datetime | None = None  # when it climbs to the next rung (escalated: its deadline)
    overdue: bool = False  # its deadline has passed
    covered_by: ChainCover | None = None  # no standing of its own: the root of its chain covers it
    ungoverned_since: datetime | None = None  # when it last became ungoverned: where its ladder's clock starts


class RiskReason(SQLModel):
    """One flag's part of a sighting's risk: its weight, what it means and what to do."""

    flag: str
    weight: int
    meaning: str
    next_step: str


class SightingDetail(SightingPublic):
    processes: list[Process]
    configs: list[Config]
    mcp_servers: list[McpServer]
    endpoints: list[Endpoint]
    credentials: list[CredentialRef]
    evidence: list[Evidence]
    project: Project | None = None  # an enterprise agent's project (null for any other, or from an older endpoint)
    history: list[SightingHistoryPublic]
    actions: list["TriageActionPublic"]  # newest first
    registration: "RegistrationPublic | None"  # the newest, whatever its status
    reasons: dict[str, str]  # collector flag -> one line about this sighting ("calls openai, not declared")
    risk_reasons: list[RiskReason] = []  # the flags that make up ``risk``, heaviest first


class SightingsPublic(SQLModel):
    data: list[SightingPublic]
    count: int | None  # on the first page (or with count=true); null on the pages after it
    next_cursor: str | None


class ReportEpoch(SQLModel, table=True):
    """The last seq applied per (device, epoch), so that a replay from an old epoch changes nothing."""

    __tablename__ = "report_epoch"

    device_id: str = Field(primary_key=True, max_length=32)
    epoch: str = Field(primary_key=True, max_length=64)
    last_seq: int
    started_at: float
    last_at: float


# -- triage -----------------------------------------------------------------------------------------


class SightingTriage(SQLModel, table=True):
    """A sighting's triage: its state, owner, approval and registration, kept apart from the sighting row
    (which every report rewrites) and read by ingest only for the sightings that have one."""

    __tablename__ = "sighting_triage"
    __table_args__ = (Index("ix_sighting_triage_state", "state"), Index("ix_sighting_triage_owner", "owner"))

    device_id: str = Field(primary_key=True, max_length=32)
    sighting_id: str = Field(primary_key=True)
    state: str = Field(default="new", max_length=32)
    owner: str | None = Field(default=None, max_length=256)
    approval: str = Field(default="", sa_type=Text)  # JSON declaration of what it did when approved, or ""
    registration: str = Field(default="", sa_type=Text)  # JSON of the registration that counts, or ""
    updated_at: float


class TriageActionCreate(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    action: TriageKind
    owner: Name | None = None
    note: Note | None = None


class TriageTarget(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    device_id: str = Field(max_length=32)
    sighting_id: str = Field(max_length=128)


class TriageBulkCreate(TriageActionCreate):
    targets: list[TriageTarget] = Field(min_length=1, max_length=1000)


class TriageAction(SQLModel, table=True):
    """One triage action on one sighting, with who took it and when; never changed afterwards."""

    __tablename__ = "triage_action"
    __table_args__ = (Index("ix_triage_action_sighting", "device_id", "sighting_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(max_length=32)
    sighting_id: str
    action: str = Field(max_length=32)
    actor: str = Field(max_length=128)
    at: float
    owner: str | None = Field(default=None, max_length=256)
    note: str | None = Field(default=None, sa_type=Text)
    batch_id: int | None = None  # the TriageBatch it was part of


class TriageBatch(SQLModel, table=True):
    """One admin action as the audit log keeps it: on one sighting, a list or a whole filter, with how many
    sightings it changed; ``undone_at`` once undone."""

    __tablename__ = "triage_batch"

    id: int | None = Field(default=None, primary_key=True)
    action: str = Field(max_length=32)
    actor: str = Field(max_length=128)
    at: float
    count: int
    owner: str | None = Field(default=None, max_length=256)
    note: str | None = Field(default=None, sa_type=Text)
    filter: str = Field(default="", sa_type=Text)  # JSON of the roster filter it was applied to, or ""
    undone_at: float | None = None
    undone_by: str | None = Field(default=None, max_length=128)


class TriageUndo(SQLModel, table=True):
    """A sighting's triage before a batch changed it (``previous``: the row as JSON, "" when it had none)."""

    __tablename__ = "triage_undo"

    batch_id: int = Field(primary_key=True)
    device_id: str = Field(primary_key=True, max_length=32)
    sighting_id: str = Field(primary_key=True)
    previous: str = Field(default="", sa_type=Text)


class TriageActionPublic(SQLModel):
    id: int
    device_id: str
    sighting_id: str
    action: str
    actor: str
    at: datetime
    owner: str | None
    note: str | None
    batch_id: int | None = None


class TriageApplied(SQLModel):
    applied: int
    actions: list[TriageActionPublic]
    action_id: int | None = None  # the batch: ``POST /agents/actions/undo`` undoes it


class TriageBatchPublic(SQLModel):
    id: int
    action: str
    actor: str
    at: datetime
    count: int
    owner: str | None
    note: str | None
    filter: dict[str, object] | None
    undone_at: datetime | None
    undone_by: str | None


class TriageFilterApplied(SQLModel):
    """What an action on a whole filter did (or, ``dry_run``, would do)."""

    count: int  # the sightings the filter matches (and the action was applied to)
    dry_run: bool
    action_id: int | None  # the batch, for the audit log and undo; null on a dry run
    message: str  # a sentence for the person who asked


class TriageUndone(SQLModel):
    action_id: int
    restored: int  # sightings put back to their triage before the action
    message: str


# -- registrations ----------------------------------------------------------------------------------


class RegistrationBase(SQLModel):
    sighting_id: str = Field(max_length=128)
    owner: str = Field(max_length=256)
    purpose: str = Field(sa_type=Text)
    business_process: str = Field(default="", max_length=1000)
    providers: list[str] = Field(default_factory=list, sa_type=JSON)
    tools: list[str] = Field(default_factory=list, sa_type=JSON)
    data_systems: list[str] = Field(default_factory=list, sa_type=JSON)
    autonomy: str = Field(default="supervised", max_length=16)


class RegistrationCreate(RegistrationBase):
    """What an employee declares about an agent of theirs (sent by their device)."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    sighting_id: SightingId
    owner: Name
    purpose: Purpose
    business_process: BusinessProcess = ""
    providers: list[Item] = Field(default_factory=list, max_length=MAX_ITEMS)
    tools: list[Item] = Field(default_factory=list, max_length=MAX_ITEMS)
    data_systems: list[Item] = Field(default_factory=list, max_length=MAX_ITEMS)
    autonomy: Autonomy = "supervised"


class Registration(RegistrationBase, table=True):
    """An employee's registration of one sighting; an admin approves or rejects it. A newer registration of
    the same sighting supersedes an older pending one, and once approved an older approved one."""

    __table_args__ = (Index("ix_registration_sighting", "device_id", "sighting_id", "id"),
                      Index("ix_registration_status", "status", "id"))

    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(max_length=32)
    status: str = Field(default="pending", max_length=16)
    created_at: float
    decided_at: float | None = None
    decided_by: str | None = Field(default=None, max_length=128)
    decision_note: str | None = Field(default=None, sa_type=Text)
    # an admin's question (status more_information); the employee's next registration answers it
    question: str | None = Field(default=None, sa_type=Text)
    asked_at: float | None = None
    asked_by: str | None = Field(default=None, max_length=128)


class RegistrationDecision(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    note: Note | None = None


class RegistrationQuestion(SQLModel):
    """An admin's question on a registration (``POST /registrations/{id}/ask``)."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    question: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NOTE, pattern=NO_NUL)]


class RegistrationPublic(RegistrationBase):
    id: int
    device_id: str
    status: RegistrationStatus
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    decision_note: str | None
    question: str | None = None
    asked_at: datetime | None = None
    asked_by: str | None = None
    review_due_at: datetime | None = None  # approved: when the policy's re-attestation period ends
    review_due: bool = False  # approved, and that time has passed


class RegistrationsPublic(SQLModel):
    data: list[RegistrationPublic]
    count: int


# -- the device inbox: what travels back to the employee (console/server/inbox.py) --------------------


#: the inbox items of the nudge ladder, one of each kind per sighting and spell ungoverned
NUDGE_KINDS_SQL = "kind IN ('notify', 'remind')"


class InboxItem(SQLModel, table=True):
    """One message for the user of a sighting on one device: an admin's request to register it, the
    decision on a registration (with the admin's comment), or a question. ``source_id`` is the triage
    action or registration it came from (None for a question); ``delivered_at`` is set once the device
    acknowledged it."""

    __tablename__ = "inbox_item"
    __table_args__ = (Index("ix_inbox_item_source", "device_id", "kind", "source_id", unique=True),
                      Index("ix_inbox_item_waiting", "device_id", "delivered_at", "id"),
                      # one nudge of each rung per sighting and spell ungoverned, even from concurrent requests
                      Index("ix_inbox_item_nudge", "device_id", "sighting_id", "kind", "ungoverned_since", unique=True,
                            sqlite_where=text(NUDGE_KINDS_SQL), postgresql_where=text(NUDGE_KINDS_SQL)))

    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(max_length=32)
    sighting_id: str = Field(max_length=128)
    sighting_name: str = Field(default="", max_length=256)
    user: str | None = Field(default=None, max_length=256)
    kind: str = Field(max_length=16)  # request, decision, question, notify, remind, review, policy
    source_id: int | None = None
    status: str | None = Field(default=None, max_length=16)  # a decision's: approved, rejected
    text: str | None = Field(default=None, sa_type=Text)  # the admin's note, comment or question
    sent_by: str = Field(default="", max_length=128)
    created_at: float
    delivered_at: float | None = None
    ungoverned_since: float | None = None  # a nudge's: the sighting's spell ungoverned it is about


# -- policy -----------------------------------------------------------------------------------------


class PolicyBase(SQLModel):
    sanctioned_signatures: list[str] = Field(default_factory=list, sa_type=JSON)
    sanctioned_providers: list[str] = Field(default_factory=list, sa_type=JSON)
    corporate_fingerprints: list[str] = Field(default_factory=list, sa_type=JSON)
    risky_tools: list[str] = Field(default_factory=list, sa_type=JSON)  # globs on MCP server names and commands
    # a signature sanctioned for some users only: [{"signature": ..., "users": [names or globs]}]
    group_approvals: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    # the registration lifecycle and the nudge ladder (console/server/lifecycle.py)
    reattest_days: int = Field(default=180, ge=0, le=36500)  # approved registrations come up for review; 0: never
    ladder: str = Field(default="report_only", max_length=16)  # the highest rung the ladder climbs to
    notify_after_days: int = Field(default=0, ge=0, le=3650)  # ungoverned -> the employee is told
    remind_after_days: int = Field(default=7, ge=0, le=3650)  # notify -> remind, with a deadline
    deadline_days: int = Field(default=7, ge=0, le=3650)  # remind -> its deadline
    escalate_after_days: int = Field(default=0, ge=0, le=3650)  # deadline -> escalated to the admin


class Policy(PolicyBase, table=True):
    """The org policy: a single row (id 1)."""

    id: int = Field(default=1, primary_key=True)
    version: int = 0
    updated_at: float | None = None
    ladder_since: float | None = None  # when the ladder last left report_only: no sighting's clock starts earlier


class GroupApproval(SQLModel):
    """The policy sanctions ``signature`` for these users (names, or globs such as ``*@sales.example.com``)."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    signature: Item
    users: list[Item] = Field(min_length=1, max_length=1000)


class PolicyUpdate(PolicyBase):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    sanctioned_signatures: list[str] = Field(default_factory=list, max_length=10_000)
    sanctioned_providers: list[str] = Field(default_factory=list, max_length=10_000)
    corporate_fingerprints: list[str] = Field(default_factory=list, max_length=100_000)
    risky_tools: list[Item] = Field(default_factory=list, max_length=1000)
    ladder: LadderRung = "report_only"
    group_approvals: list[GroupApproval] = Field(default_factory=list, max_length=1000)  # type: ignore[assignment]


class PolicyPublic(PolicyBase):
    version: int
    updated_at: datetime | None


class PolicyVersion(PolicyBase, table=True):
    """Every version of the policy as it was saved, with who saved it and what changed."""

    __tablename__ = "policy_version"

    version: int = Field(primary_key=True)
    at: float
    actor: str = Field(default="", max_length=128)
    changes: str = Field(default="", sa_type=Text)  # one line per change ("sanctioned signature claude-code")


class PolicyVersionPublic(PolicyBase):
    version: int
    at: datetime
    actor: str
    changes: list[str]


class PolicyVersionsPublic(SQLModel):
    data: list[PolicyVersionPublic]
    count: int


class PolicyChange(PolicyUpdate):
    """A new policy; ``cover_servers``: also sanction the MCP servers declared in the configs of each
    signature it newly sanctions (their tool-server signatures), so that they are not left ungoverned."""

    cover_servers: bool = False


class PolicyChoice(SQLModel):
    id: str
    name: str = ""
    type: str = ""
    sightings: int
    devices: int = 0
    sanctioned: bool


class PolicyChoices(SQLModel):
    """What the fleet reports that a policy can name, most seen first."""

    signatures: list[PolicyChoice]
    providers: list[PolicyChoice]
    fingerprints: list[PolicyChoice]


class PolicyPreview(SQLModel):
    """What a policy would change, before it is saved."""

    considered: int  # the sightings the change can concern (its signatures, providers, keys, tools)
    governed_before: int
    governs: int  # governed afterwards, among those considered
    ungoverned: int  # left ungoverned among those considered
    ungoverned_because: dict[str, int]  # flag -> how many of those left ungoverned carry it
    newly_governed: int
    no_longer_governed: int
    covered_servers: list[str]  # tool-server signatures ``cover_servers`` would add
    message: str  # "governs 3,412, leaves 336 ungoverned because of drift"


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


class Me(SQLModel):
    """The caller's token: its name and role."""

    name: str
    role: str


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


class FingerprintKey(SQLModel, table=True):
    """The organisation's credential fingerprint key, made once at setup and handed to each device at
    enrollment; never logged, never in an API answer but the enrollment's."""

    __tablename__ = "fingerprint_key"

    id: int | None = Field(default=None, primary_key=True)
    value: str
    created_at: float


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


class UngovernedTrend(SQLModel, table=True):
    """Ungoverned sightings at one hour (its start, UNIX seconds), as last counted in that hour."""

    __tablename__ = "ungoverned_trend"

    at: float = Field(primary_key=True)
    ungoverned: int
    sightings: int


class TrendPoint(SQLModel):
    at: datetime
    ungoverned: int


class RiskyAgent(SQLModel):
    device_id: str
    id: str
    name: str
    type: str
    hostname: str
    user: str | None
    risk: int
    flags: list[str]


class EscalatedAgent(SQLModel):
    """An ungoverned agent the nudge ladder escalated to the admins: its deadline passed, and the days after."""

    device_id: str
    id: str
    name: str
    type: str
    hostname: str
    user: str | None
    ungoverned_since: datetime  # where its ladder's clock started
    deadline: datetime  # when it should have been registered by
    escalated_at: datetime  # when it reached the admins


class FleetRow(SQLModel):
    """One kind of agent in the fleet: a signature, or (``signature`` null) the agents no signature matched,
    one row per type the collector gave them by behaviour."""

    key: str  # the signature, or "unknown:<type>"
    signature: str | None
    name: str
    type: str
    sightings: int
    devices: int
    users: int
    ungoverned: int
    flags: dict[str, int]  # flag -> sightings carrying it
    mcp_servers: int  # MCP servers their configs declare, over all its sightings (0 for tool servers)
    max_risk: int
    filter: dict[str, str | list[str]]  # GET /agents query parameters listing exactly these (lists: repeat)


class FleetPublic(SQLModel):
    agents: list[FleetRow]
    tool_servers: list[FleetRow]
    sightings: int  # over every row
    agent_sightings: int
    tool_server_sightings: int


class OverviewPublic(SQLModel):
    sightings: int
    devices: int
    stale_devices: int
    incomplete_devices: int = 0  # whose last scan was incomplete (the devices list's ``incomplete=true``)
    by_type: list[CountBy]
    by_governed: list[CountBy]
    new_last_day: int
    top_providers: list[CountBy]
    top_ungoverned_devices: list[DeviceCount]
    trend: list[TrendPoint] = []  # one point per hour over the last 30 days, oldest first
    agents: int = 0  # present sightings that are not tool servers
    tool_servers: int = 0
    riskiest: list[RiskyAgent] = []  # the riskiest agents (tool servers apart), highest first
    new_since: datetime | None = None  # ``since`` as asked, else a day ago
    new_agents: int = 0  # agents first recorded since then
    new_tool_servers: int = 0
    by_flag: list[CountBy] = []  # present sightings per flag, most first
    escalated: int = 0  # ungoverned agents the nudge ladder escalated to the admins (false positives apart)
    escalated_agents: list[EscalatedAgent] = []  # the longest escalated first, at most ten


SightingDetail.model_rebuild()  # its actions and registration are defined further down


# -- intent over time: the behaviour timeline and drift events (console/server/timeline.py) -----------


class BehaviourFact(SQLModel, table=True):
    """One thing a sighting was seen doing (``kind``: provider, mcp_server, system, autonomy), from when
    to when; ``gone_at`` once a later report no longer shows it."""

    __tablename__ = "behaviour_fact"

    device_id: str = Field(primary_key=True, max_length=32)
    sighting_id: str = Field(primary_key=True, max_length=128)
    kind: str = Field(primary_key=True, max_length=16)
    value: str = Field(primary_key=True, max_length=512)
    first_seen: float
    last_seen: float
    gone_at: float | None = None


class DriftEvent(SQLModel, table=True):
    """A governed sighting doing more than its declaration covers: what it added (JSON), since when, and how
    it ended (``accepted`` by an admin, ``resolved`` when the agent went back inside its declaration)."""

    __tablename__ = "drift_event"
    __table_args__ = (Index("ix_drift_event_sighting", "device_id", "sighting_id", "status"),
                      Index("ix_drift_event_began", "began_at"))

    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(max_length=32)
    sighting_id: str = Field(max_length=128)
    began_at: float
    added: str = Field(default="", sa_type=Text)
    status: str = Field(default="open", max_length=16)
    ended_at: float | None = None
    ended_by: str | None = Field(default=None, max_length=128)
