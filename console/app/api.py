"""The console's client of the collector API: typed results and one error tree, over httpx, no Qt.

Every call is blocking; the console runs them off the GUI thread (``console.app.worker``). Each failure
is one exception under ``ApiError`` (itself under the console's ``ConsoleError``): what went wrong at the
HTTP layer is mapped to the most specific type (``TimedOut`` for a time-out, ``ServerUnreachable`` for a
refused or reset connection, ``Unauthorized`` for 401, …) and carries a stable ``code``, the collector's
reason and a message fit to show to a person. A token is sent, never shown.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from console.app.errors import ConsoleError
from console.loopback import plain_http_elsewhere

API = "/api/v1"
PAGE_MAX = 500  # the collector's largest page
TRIAGE_ACTIONS = ("approve", "assign_owner", "request_registration", "false_positive", "note")
TRIAGE_STATES = ("new", "approved", "registration_requested", "false_positive")


# -- errors -----------------------------------------------------------------------------------------


class ApiError(ConsoleError):
    """The collector could not answer a request as asked."""

    code = "api_error"

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason  # the collector's own reason, when it gave one


class ServerUnreachable(ApiError):
    """No answer: the connection was refused, reset or timed out."""

    code = "server_unreachable"


class TimedOut(ServerUnreachable):
    """No answer in time: the collector is overloaded, or the network drops packets."""

    code = "timed_out"


class Unauthorized(ApiError):
    """401: the token is missing, unknown or revoked."""

    code = "unauthorized"


class Forbidden(ApiError):
    """403: the token is valid but its role may not do this (a viewer triaging)."""

    code = "forbidden"


class NotFound(ApiError):
    """404: no such agent, device or registration."""

    code = "not_found"


class InvalidRequest(ApiError):
    """400 or 422: the collector refused the request's content."""

    code = "invalid_request"


class Conflict(ApiError):
    """409: the thing changed in the meantime (a registration already decided)."""

    code = "conflict"


class RateLimited(ApiError):
    """429: too many requests; try again later."""

    code = "rate_limited"


class ServerError(ApiError):
    """5xx: the collector failed or its store is unavailable."""

    code = "server_error"


class ProtocolError(ApiError):
    """The answer was not what the API promises (not JSON, a wrong shape)."""

    code = "protocol_error"


class InsecureTransport(ApiError):
    """An ``http://`` collector that is not on this machine: the token would cross the network in clear."""

    code = "insecure_transport"


def check_transport(base_url: str, *, allow_insecure_http: bool = False) -> None:
    """Raise ``InsecureTransport`` for plain HTTP to a host other than loopback, unless allowed."""
    if plain_http_elsewhere(base_url) and not allow_insecure_http:
        raise InsecureTransport(f"{base_url} is plain HTTP to another machine: the token would cross the network "
                                "in clear. Use https://, or start the console with --insecure-http.",
                                reason="insecure_http")


_BY_STATUS: dict[int, type[ApiError]] = {400: InvalidRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound,
                                         409: Conflict, 422: InvalidRequest, 429: RateLimited}  # fmt: skip

_POLITE = {
    "missing_token": "No token was given; sign in with an admin or viewer token.",
    "invalid_token": "The collector does not know this token (revoked or mistyped); sign in again.",
    "device_token_not_allowed": "That is a device key; the console needs an admin or viewer token.",
    "admin_role_required": "Your token is a viewer token: viewers can look but not change anything.",
    "viewers_cannot_triage": "Your token is a viewer token: viewers can look but not triage.",
    "sighting_not_found": "That agent is no longer known to the collector.",
    "registration_not_pending": "That registration was already decided.",
    "store_unavailable": "The collector's database is unavailable; try again in a moment.",
    "rate_limited": "The collector is busy; try again in a moment.",
}


def _error_from(response: httpx.Response) -> ApiError:
    """The most specific error for an HTTP error answer, with the collector's reason."""
    reason, extra = "", ""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, dict):
        reason = str(detail.get("reason", ""))
        if isinstance(detail.get("message"), str):
            extra = f" ({detail['message']})"
        errors = detail.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            extra = f" ({errors[0].get('msg', '')} at {'.'.join(map(str, errors[0].get('loc') or []))})"
    elif isinstance(detail, str):
        reason = detail
    status = response.status_code
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    message = _POLITE.get(reason) or (f"The collector refused: {reason.replace('_', ' ')}{extra}" if reason
                                      else f"The collector answered HTTP {status}")
    return kind(message, status=status, reason=reason)


# -- results ----------------------------------------------------------------------------------------


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


@dataclass(frozen=True, slots=True)
class Agent:
    """One row of the roster: a sighting as the list returns it."""

    device_id: str
    id: str
    name: str
    type: str
    signature: str | None = None
    vendor: str = ""
    user: str | None = None
    hostname: str = ""
    running: bool = False
    confidence: float = 0.0
    parent: str | None = None
    governed: bool = False
    flags: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    recorded_at: datetime | None = None
    gone: bool = False
    owner: str | None = None
    triage_state: str = "new"

    @property
    def key(self) -> tuple[str, str]:
        return self.device_id, self.id

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Agent:
        return cls(
            device_id=str(data["device_id"]), id=str(data["id"]), name=str(data.get("name", "")),
            type=str(data.get("type", "unknown")), signature=data.get("signature"), vendor=str(data.get("vendor") or ""),
            user=data.get("user"), hostname=str(data.get("hostname") or ""), running=bool(data.get("running")),
            confidence=float(data.get("confidence") or 0.0), parent=data.get("parent"),
            governed=bool(data.get("governed")), flags=_strs(data.get("flags")), providers=_strs(data.get("providers")),
            first_seen=_time(data.get("first_seen")), last_seen=_time(data.get("last_seen")),
            recorded_at=_time(data.get("recorded_at")), gone=bool(data.get("gone")), owner=data.get("owner"),
            triage_state=str(data.get("triage_state") or "new"),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class AgentPage:
    agents: tuple[Agent, ...]
    count: int | None  # rows matching the filters, over all pages; the collector counts on the first page
    next_cursor: str | None
    raw: tuple[dict[str, Any], ...] = ()  # the rows as the collector sent them (for export)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One change of a sighting as the collector recorded it: new, changed (which fields), gone."""

    at: datetime | None
    change: str
    fields: tuple[str, ...] = ()
    epoch: str = ""
    seq: int = 0


@dataclass(frozen=True, slots=True)
class TriageAction:
    """One triage action as stored: who did what, when."""

    id: str
    device_id: str
    sighting_id: str
    action: str
    actor: str
    at: datetime | None
    owner: str | None = None
    note: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TriageAction:
        return cls(id=str(data.get("id", "")), device_id=str(data.get("device_id", "")),
                   sighting_id=str(data.get("sighting_id", "")), action=str(data.get("action", "")),
                   actor=str(data.get("actor") or ""), at=_time(data.get("at")), owner=data.get("owner"),
                   note=data.get("note"))  # fmt: skip


@dataclass(frozen=True, slots=True)
class AgentDetail:
    """One sighting with everything the collector holds about it."""

    agent: Agent
    processes: tuple[dict[str, Any], ...] = ()
    configs: tuple[dict[str, Any], ...] = ()
    mcp_servers: tuple[dict[str, Any], ...] = ()
    endpoints: tuple[dict[str, Any], ...] = ()
    credentials: tuple[dict[str, Any], ...] = ()
    evidence: tuple[dict[str, Any], ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    actions: tuple[TriageAction, ...] = ()
    registration: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AgentDetail:
        def dicts(name: str) -> tuple[dict[str, Any], ...]:
            value = data.get(name)
            return tuple(v for v in value if isinstance(v, dict)) if isinstance(value, list) else ()

        history = tuple(HistoryEntry(at=_time(h.get("at")), change=str(h.get("change", "")),
                                     fields=_strs(h.get("fields")), epoch=str(h.get("epoch", "")),
                                     seq=int(h.get("seq") or 0)) for h in dicts("history"))
        registration = data.get("registration")
        return cls(agent=Agent.from_json(data), processes=dicts("processes"), configs=dicts("configs"),
                   mcp_servers=dicts("mcp_servers"), endpoints=dicts("endpoints"), credentials=dicts("credentials"),
                   evidence=dicts("evidence"), history=history,
                   actions=tuple(TriageAction.from_json(a) for a in dicts("actions")),
                   registration=registration if isinstance(registration, dict) else None, raw=dict(data))


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    hostname: str
    os: str = ""
    os_version: str = ""
    agentroster_version: str = ""
    last_seen: datetime | None = None
    enrolled_at: datetime | None = None
    stale: bool = False
    revoked: bool = False
    sightings: int = 0
    status: dict[str, Any] = field(default_factory=dict)
    users: tuple[str, ...] = ()  # the distinct users of its agents, as the collector lists them
    identity_conflict: str | None = None  # the device whose identity it claimed without that device's key
    hardware_id: str = ""

    @property
    def units_failed(self) -> int:
        """Units its last scan could not process (its last report's status says so)."""
        value = self.status.get("units_failed")
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    @property
    def degraded(self) -> tuple[str, ...]:
        """The sensors those units came from."""
        return _strs(self.status.get("degraded"))

    @property
    def incomplete(self) -> bool:
        """Its last scan left something out: some unit of it could not be processed."""
        return self.units_failed > 0 or bool(self.degraded)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Device:
        status = data.get("status")
        return cls(id=str(data["id"]), hostname=str(data.get("hostname") or ""), os=str(data.get("os") or ""),
                   os_version=str(data.get("os_version") or ""),
                   agentroster_version=str(data.get("agentroster_version") or ""),
                   last_seen=_time(data.get("last_seen")), enrolled_at=_time(data.get("enrolled_at")),
                   stale=bool(data.get("stale")), revoked=bool(data.get("revoked")),
                   sightings=int(data.get("sightings") or 0), status=status if isinstance(status, dict) else {},
                   users=_strs(data.get("users")),
                   identity_conflict=str(data["identity_conflict"]) if data.get("identity_conflict") else None,
                   hardware_id=str(data.get("hardware_id") or ""))


@dataclass(frozen=True, slots=True)
class DevicePage:
    devices: tuple[Device, ...]
    count: int


@dataclass(frozen=True, slots=True)
class Overview:
    sightings: int
    devices: int
    stale_devices: int
    by_type: tuple[tuple[str, int], ...]
    by_governed: tuple[tuple[str, int], ...]
    new_last_day: int
    top_providers: tuple[tuple[str, int], ...]
    top_ungoverned_devices: tuple[tuple[str, str, int], ...]  # (device id, hostname, count)
    trend: tuple[tuple[datetime, int], ...] = ()  # ungoverned over time, when the collector keeps it
    incomplete_devices: int = 0  # whose last scan was incomplete

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Overview:
        def counts(name: str) -> tuple[tuple[str, int], ...]:
            return tuple((str(c["key"]), int(c["count"])) for c in data.get(name) or () if isinstance(c, dict))

        trend = []
        for point in data.get("trend") or ():
            when = _time(point.get("at")) if isinstance(point, dict) else None
            if when is not None:
                trend.append((when, int(point.get("ungoverned") or 0)))
        return cls(sightings=int(data.get("sightings") or 0), devices=int(data.get("devices") or 0),
                   stale_devices=int(data.get("stale_devices") or 0), by_type=counts("by_type"),
                   by_governed=counts("by_governed"), new_last_day=int(data.get("new_last_day") or 0),
                   top_providers=counts("top_providers"),
                   top_ungoverned_devices=tuple((str(d["device_id"]), str(d.get("hostname") or ""),
                                                 int(d["count"])) for d in data.get("top_ungoverned_devices") or ()
                                                if isinstance(d, dict)),
                   trend=tuple(trend), incomplete_devices=int(data.get("incomplete_devices") or 0))  # fmt: skip

    @property
    def ungoverned(self) -> int:
        return dict(self.by_governed).get("ungoverned", 0)

    @property
    def governed(self) -> int:
        return dict(self.by_governed).get("governed", 0)


@dataclass(frozen=True, slots=True)
class Policy:
    sanctioned_signatures: tuple[str, ...] = ()
    sanctioned_providers: tuple[str, ...] = ()
    corporate_fingerprints: tuple[str, ...] = ()
    version: int = 0
    risky_tools: tuple[str, ...] = ()  # glob patterns on MCP server names and commands: broad_tools

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Policy:
        return cls(sanctioned_signatures=_strs(data.get("sanctioned_signatures")),
                   sanctioned_providers=_strs(data.get("sanctioned_providers")),
                   corporate_fingerprints=_strs(data.get("corporate_fingerprints")),
                   version=int(data.get("version") or 0), risky_tools=_strs(data.get("risky_tools")))

    def to_json(self) -> dict[str, list[str]]:
        body = {"sanctioned_signatures": list(self.sanctioned_signatures),
                "sanctioned_providers": list(self.sanctioned_providers),
                "corporate_fingerprints": list(self.corporate_fingerprints)}
        if self.risky_tools:  # left out when empty (the default), so a collector without the field takes it
            body["risky_tools"] = list(self.risky_tools)
        return body


@dataclass(frozen=True, slots=True)
class Registration:
    """An employee's declaration of one agent: what it is for and what it may use; an admin decides."""

    id: str
    device_id: str
    sighting_id: str
    owner: str
    purpose: str
    status: str
    business_process: str = ""
    providers: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    data_systems: tuple[str, ...] = ()
    autonomy: str = "supervised"
    created_at: datetime | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None
    decision_note: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Registration:
        return cls(id=str(data["id"]), device_id=str(data.get("device_id", "")),
                   sighting_id=str(data.get("sighting_id", "")), owner=str(data.get("owner") or ""),
                   purpose=str(data.get("purpose") or ""), status=str(data.get("status") or ""),
                   business_process=str(data.get("business_process") or ""), providers=_strs(data.get("providers")),
                   tools=_strs(data.get("tools")), data_systems=_strs(data.get("data_systems")),
                   autonomy=str(data.get("autonomy") or "supervised"), created_at=_time(data.get("created_at")),
                   decided_at=_time(data.get("decided_at")), decided_by=data.get("decided_by"),
                   decision_note=data.get("decision_note"))  # fmt: skip


@dataclass(frozen=True, slots=True)
class RegistrationPage:
    registrations: tuple[Registration, ...]
    count: int


@dataclass(frozen=True, slots=True)
class TriageResult:
    applied: int
    actions: tuple[TriageAction, ...]


# -- the client -------------------------------------------------------------------------------------


class Client:
    """A signed-in connection to one collector. Thread-safe: httpx's client is."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 15.0,
                 transport: httpx.BaseTransport | None = None, allow_insecure_http: bool = False) -> None:
        check_transport(base_url, allow_insecure_http=allow_insecure_http)  # before the token goes anywhere
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport,
                                  headers={"authorization": f"Bearer {token}", "accept": "application/json"})

    def __repr__(self) -> str:  # never the token
        return f"Client({self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    # -- plumbing

    def _request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                 body: Any = None) -> Any:
        try:
            response = self._http.request(method, path, params=params, json=body)
        except httpx.TimeoutException as exc:
            raise TimedOut(f"The collector at {self.base_url} does not answer ({type(exc).__name__}).") from None
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise ServerUnreachable(f"The collector at {self.base_url} does not answer ({type(exc).__name__}).") \
                from None
        except httpx.HTTPError as exc:
            raise ServerUnreachable(f"The collector at {self.base_url} could not be reached: {exc}") from None
        if response.status_code >= 400:
            raise _error_from(response)
        try:
            return response.json()
        except ValueError:
            raise ProtocolError(f"The collector's answer to {path} is not JSON.", status=response.status_code) \
                from None

    def _get(self, path: str, **params: Any) -> Any:
        return self._request("GET", API + path, params={k: v for k, v in params.items() if v is not None})

    # -- reads

    def health(self) -> bool:
        """True when the collector and its database answer (``/healthz`` needs no token)."""
        try:
            response = self._http.get("/healthz")
        except httpx.TimeoutException:
            raise TimedOut(f"The collector at {self.base_url} does not answer in time.") from None
        except httpx.HTTPError:
            raise ServerUnreachable(f"The collector at {self.base_url} does not answer.") from None
        return response.status_code == 200

    def role(self) -> str:
        """"admin" or "viewer": what this token may do. From ``GET /me`` where the collector has it, else
        from an admin-only read (which answers 403 to a viewer)."""
        try:
            me = self._get("/me")
        except NotFound:
            me = None
        if isinstance(me, dict) and me.get("role") in ("admin", "viewer"):
            return str(me["role"])
        try:
            self._get("/admin/tokens")
        except Forbidden:
            return "viewer"
        return "admin"

    def agents(self, params: Mapping[str, Any] | None = None, *, sort: str = "last_seen", order: str = "desc",
               limit: int = 100, cursor: str | None = None) -> AgentPage:
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        query.update(sort=sort, order=order, limit=min(limit, PAGE_MAX))
        if cursor:
            query["cursor"] = cursor
        data = self._get("/agents", **query)
        try:
            rows = tuple(r for r in data["data"] if isinstance(r, dict))
            count = data.get("count")
            return AgentPage(agents=tuple(Agent.from_json(r) for r in rows),
                             count=None if count is None else int(count), next_cursor=data.get("next_cursor"), raw=rows)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"The agent list is not in the expected shape ({exc}).") from None

    def iter_agents(self, params: Mapping[str, Any] | None = None, *, sort: str = "last_seen",
                    order: str = "desc", page: int = PAGE_MAX) -> Iterator[AgentPage]:
        """Every page of a filtered view, one at a time (export streams these; nothing is kept)."""
        cursor: str | None = None
        total: int | None = None
        while True:
            result = self.agents(params, sort=sort, order=order, limit=page, cursor=cursor)
            total = result.count if result.count is not None else total
            yield dataclasses.replace(result, count=total)  # later pages carry the first page's count
            cursor = result.next_cursor
            if not cursor:
                return

    def agent(self, device_id: str, sighting_id: str) -> AgentDetail:
        data = self._get(f"/agents/{_seg(device_id)}/{_seg(sighting_id)}")
        try:
            return AgentDetail.from_json(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"The agent's detail is not in the expected shape ({exc}).") from None

    def devices(self, *, stale: bool | None = None, incomplete: bool | None = None, skip: int = 0,
                limit: int = 100) -> DevicePage:
        """Devices by hostname; ``incomplete``: only those whose last scan was (or was not) incomplete."""
        data = self._get("/devices", stale=_param(stale) if stale is not None else None,
                         incomplete=_param(incomplete) if incomplete is not None else None, skip=skip, limit=limit)
        try:
            return DevicePage(devices=tuple(Device.from_json(d) for d in data["data"]), count=int(data["count"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"The device list is not in the expected shape ({exc}).") from None

    def overview(self) -> Overview:
        try:
            return Overview.from_json(self._get("/overview"))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProtocolError(f"The overview is not in the expected shape ({exc}).") from None

    def policy(self) -> Policy:
        return Policy.from_json(self._get("/policy"))

    def registrations(self, status: str | None = None, *, skip: int = 0, limit: int = 100) -> RegistrationPage:
        """Registrations, newest first (``status``: pending, approved, rejected, superseded)."""
        data = self._get("/registrations", status=status, skip=skip, limit=limit)
        try:
            return RegistrationPage(tuple(Registration.from_json(r) for r in data["data"]), int(data["count"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"The registrations are not in the expected shape ({exc}).") from None

    # -- writes

    def put_policy(self, policy: Policy) -> Policy:
        return Policy.from_json(self._request("PUT", API + "/policy", body=policy.to_json()))

    def triage(self, targets: Sequence[tuple[str, str]], action: str, *, owner: str | None = None,
               note: str | None = None) -> TriageResult:
        """One triage action on one agent or on a selection (all or nothing on the collector)."""
        if action not in TRIAGE_ACTIONS:
            raise ValueError(f"unknown triage action {action!r}")
        if not targets:
            return TriageResult(0, ())
        body: dict[str, Any] = {"action": action, "owner": owner, "note": note}
        if len(targets) == 1:
            device_id, sighting_id = targets[0]
            data = self._request("POST", f"{API}/agents/{_seg(device_id)}/{_seg(sighting_id)}/actions", body=body)
            return TriageResult(1, (TriageAction.from_json(data),))
        body["targets"] = [{"device_id": d, "sighting_id": s} for d, s in targets]
        data = self._request("POST", f"{API}/agents/actions", body=body)
        return TriageResult(int(data.get("applied", 0)),
                            tuple(TriageAction.from_json(a) for a in data.get("actions") or () if isinstance(a, dict)))

    def accept_identity(self, device_id: str) -> Device:
        """Accept a device flagged as an identity conflict (admins): it takes the identity it claimed and
        the device that held it is revoked."""
        return Device.from_json(self._request("POST", f"{API}/devices/{_seg(device_id)}/accept-identity", body={}))

    def decide_registration(self, registration_id: str, approve: bool, note: str | None = None) -> Registration:
        """Approve or reject a pending registration (admins); the collector re-assesses its agent."""
        verb = "approve" if approve else "reject"
        data = self._request("POST", f"{API}/registrations/{_seg(registration_id)}/{verb}", body={"note": note})
        try:
            return Registration.from_json(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"The registration is not in the expected shape ({exc}).") from None

def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _seg(value: str) -> str:
    """A path segment, quoted (ids come from the collector, but a "/" in one must not change the route)."""
    from urllib.parse import quote

    return quote(value, safe="")
