"""The console's client of the collector API: typed results and one error tree, over httpx, no Qt.

Every call is blocking; the console runs them off the GUI thread (``console.app.worker``). Each failure
is one exception under ``ApiError`` (itself under the console's ``ConsoleError``): what went wrong at the
HTTP layer is mapped to the most specific type (``TimedOut`` for a time-out, ``ServerUnreachable`` for a
refused or reset connection, ``Unauthorized`` for 401, …) and carries a stable ``code``, the collector's
reason and a message fit to show to a person. A token is sent, never shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, PrivateAttr, ValidationError

from console.app.errors import ConsoleError
from console.loopback import plain_http_elsewhere
from console.server import models as public

API = "/api/v1"
PAGE_MAX = 500  # the collector's largest page
TRIAGE_MAX = 1000  # the most agents one triage request takes
#: an action on a whole filter (or its undo) writes every matching sighting in one transaction: on a fleet it
#: takes longer than a read, and a time-out would leave the admin unsure whether it was applied
BULK_TIMEOUT = 300.0
TRIAGE_ACTIONS = ("approve", "assign_owner", "request_registration", "false_positive", "note")
TRIAGE_STATES = ("new", "approved", "registration_requested", "false_positive")
_M = TypeVar("_M", bound=BaseModel)


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


_FIELD_NAMES = {"targets": "agents", "q": "search text", "sanctioned_signatures": "sanctioned signatures",
                "sanctioned_providers": "sanctioned providers", "corporate_fingerprints": "corporate key fingerprints",
                "risky_tools": "risky tool patterns", "note": "note", "owner": "owner"}  # fmt: skip


def invalid_sentence(error: Mapping[str, Any]) -> str:
    """A validation error of the collector (pydantic's ``type``, ``loc`` and ``ctx``) as a sentence that says
    what to do; pydantic's own wording ("List should have at most 1000 items") never reaches a person."""
    loc = [str(part) for part in error.get("loc") or [] if isinstance(part, str) and part not in ("body", "query")]
    name = _FIELD_NAMES.get(loc[0] if loc else "", (loc[0] if loc else "the request").replace("_", " "))
    ctx = error.get("ctx") if isinstance(error.get("ctx"), Mapping) else {}
    kind = str(error.get("type") or "")
    limit = ctx.get("max_length") if isinstance(ctx, Mapping) else None
    if limit is None:  # the collector sends pydantic's message without its ctx: only the number is read from it
        found = re.search(r"at most (\d+)", str(error.get("msg") or ""))
        limit = int(found.group(1)) if found else None
    if kind == "too_long" and name == "agents":
        most = f"{limit:,}" if isinstance(limit, int) else "a limited number of"
        return (f"One action takes at most {most} agents at once. Select fewer agents, or use Select all "
                "matching to act on the whole filter.")
    if kind in ("too_long", "string_too_long"):
        unit = "items" if kind == "too_long" else "characters"
        most = f" ({limit:,} {unit} at most)" if isinstance(limit, int) else ""
        return f"The {name} is too long{most}: shorten it and try again."
    if kind == "missing":
        return f"The {name} is missing: fill it in and try again."
    if kind in ("literal_error", "enum"):
        return f"The {name} is not one the collector knows: pick one from the list and try again."
    if kind.startswith(("int_", "bool_", "float_")) or kind in ("greater_than_equal", "less_than_equal"):
        return f"The {name} is not a valid value: correct it and try again."
    if kind.startswith("string_pattern") or kind == "value_error":
        return f"The {name} contains something the collector does not accept: correct it and try again."
    return f"The collector could not accept the {name}: check it and try again."


def _error_from(response: httpx.Response) -> ApiError:
    """The most specific error for an HTTP error answer, with the collector's reason."""
    reason, said = "", ""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, dict):
        reason = str(detail.get("reason", ""))
        if isinstance(detail.get("message"), str):
            said = _sentence(detail["message"])  # the collector's own sentence for people
        errors = detail.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return InvalidRequest(invalid_sentence(errors[0]), status=response.status_code, reason=reason)
    elif isinstance(detail, list) and detail and isinstance(detail[0], dict):  # FastAPI's own 422 shape
        return InvalidRequest(invalid_sentence(detail[0]), status=response.status_code, reason="invalid_request")
    elif isinstance(detail, str):
        reason = detail
    status = response.status_code
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    message = _POLITE.get(reason) or said or (f"The collector refused: {reason.replace('_', ' ')}." if reason
                                              else f"The collector answered HTTP {status}.")
    return kind(message, status=status, reason=reason)


def _sentence(text: str) -> str:
    """The collector's message as a sentence: capitalised and ended, at most 500 characters of it."""
    text = " ".join(text.split())[:500]
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


# -- results ----------------------------------------------------------------------------------------
# The collector's own public models (console/server/models.py), as its routes answer them; a subclass only
# adds what the console derives from one (a key, a scan's health), never a field of its own.


class Agent(public.SightingPublic):
    """One row of the roster: the collector's ``SightingPublic``."""

    @property
    def key(self) -> tuple[str, str]:
        return self.device_id, self.id


class AgentPage(public.SightingsPublic):
    """One page of the roster (``SightingsPublic``); ``raw`` keeps the rows as the collector sent them, for
    export."""

    data: list[Agent]  # type: ignore[assignment]
    _raw: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    @property
    def raw(self) -> list[dict[str, Any]]:
        return self._raw


class AgentDetail(public.SightingDetail):
    """One sighting with everything the collector holds about it (``SightingDetail``)."""

    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def agent(self) -> Agent:
        """Its roster row."""
        return Agent.model_validate({name: getattr(self, name) for name in Agent.model_fields})

    @property
    def raw(self) -> dict[str, Any]:
        """The detail as the collector sent it."""
        return self._raw


class Device(public.DevicePublic):
    """One enrolled machine (``DevicePublic``), and the health of its last scan."""

    @property
    def units_failed(self) -> int:
        """Units its last scan could not process (its last report's status says so)."""
        value = self.status.get("units_failed")
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    @property
    def degraded(self) -> tuple[str, ...]:
        """The sensors those units came from."""
        value = self.status.get("degraded")
        return tuple(str(v) for v in value) if isinstance(value, list) else ()

    @property
    def incomplete(self) -> bool:
        """Its last scan left something out: some unit of it could not be processed."""
        return self.units_failed > 0 or bool(self.degraded)


class DevicePage(public.DevicesPublic):
    data: list[Device]  # type: ignore[assignment]


class Overview(public.OverviewPublic):
    """The fleet in numbers (``OverviewPublic``)."""

    @property
    def ungoverned(self) -> int:
        return next((c.count for c in self.by_governed if c.key == "ungoverned"), 0)

    @property
    def governed(self) -> int:
        return next((c.count for c in self.by_governed if c.key == "governed"), 0)


RiskyAgent = public.RiskyAgent
Policy = public.PolicyPublic  # the policy as the collector holds it
PolicyEdit = public.PolicyUpdate  # what an admin sends to change it
Registration = public.RegistrationPublic
ChainCover = public.ChainCover  # the root of a chain that covers a sub-agent or tool server
RegistrationPage = public.RegistrationsPublic
HistoryEntry = public.SightingHistoryPublic
TriageAction = public.TriageActionPublic
TriageResult = public.TriageApplied
FilterApplied = public.TriageFilterApplied  # an action on a whole filter, or its dry-run count
Undone = public.TriageUndone
Fleet = public.FleetPublic  # the fleet by kind: one row per signature, agents and tool servers apart
FleetRow = public.FleetRow
PolicyChange = public.PolicyChange  # a policy to save or preview (``cover_servers`` too)
PolicyChoices = public.PolicyChoices
PolicyChoice = public.PolicyChoice
PolicyPreview = public.PolicyPreview
PolicyVersions = public.PolicyVersionsPublic


def _parse(model: type[_M], data: Any, what: str) -> _M:
    """The collector's answer as its public model; anything else is a ProtocolError naming the first problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first.get("loc") or ())) or "the answer"
        raise ProtocolError(f"The {what} is not in the expected shape ({first.get('msg', '')} at {where}).") \
            from None


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
                 body: Any = None, timeout: float | None = None) -> Any:
        try:
            if timeout is None:
                response = self._http.request(method, path, params=params, json=body)
            else:
                response = self._http.request(method, path, params=params, json=body, timeout=timeout)
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
        page = _parse(AgentPage, data, "agent list")
        page._raw = list(data["data"])
        return page

    def iter_agents(self, params: Mapping[str, Any] | None = None, *, sort: str = "last_seen",
                    order: str = "desc", page: int = PAGE_MAX) -> Iterator[AgentPage]:
        """Every page of a filtered view, one at a time (export streams these; nothing is kept)."""
        cursor: str | None = None
        total: int | None = None
        while True:
            result = self.agents(params, sort=sort, order=order, limit=page, cursor=cursor)
            total = result.count if result.count is not None else total
            yield result.model_copy(update={"count": total})  # later pages carry the first page's count
            cursor = result.next_cursor
            if not cursor:
                return

    def agent(self, device_id: str, sighting_id: str) -> AgentDetail:
        data = self._get(f"/agents/{_seg(device_id)}/{_seg(sighting_id)}")
        detail = _parse(AgentDetail, data, "agent's detail")
        detail._raw = dict(data)
        return detail

    def timeline(self, device_id: str, sighting_id: str) -> dict[str, Any]:
        """An agent's behaviour facts and drift events (``GET …/timeline``), as the collector answers them."""
        return dict(self._get(f"/agents/{_seg(device_id)}/{_seg(sighting_id)}/timeline"))

    def accept_drift(self, device_id: str, sighting_id: str, event_id: int) -> dict[str, Any]:
        """Accept a drift event: the agent's declaration is widened to cover it (admins only)."""
        path = f"{API}/agents/{_seg(device_id)}/{_seg(sighting_id)}/drift/{int(event_id)}/accept"
        return dict(self._request("POST", path, body={}))

    def devices(self, *, stale: bool | None = None, incomplete: bool | None = None, skip: int = 0,
                limit: int = 100) -> DevicePage:
        """Devices by hostname; ``incomplete``: only those whose last scan was (or was not) incomplete."""
        data = self._get("/devices", stale=_param(stale) if stale is not None else None,
                         incomplete=_param(incomplete) if incomplete is not None else None, skip=skip, limit=limit)
        return _parse(DevicePage, data, "device list")

    def overview(self, since: datetime | None = None) -> Overview:
        """The fleet in numbers; ``since`` (the admin's last visit): what is new counts from then."""
        return _parse(Overview, self._get("/overview", since=since.isoformat() if since else None), "overview")

    def policy(self) -> Policy:
        return _parse(Policy, self._get("/policy"), "policy")

    def fleet(self, params: Mapping[str, Any] | None = None) -> Fleet:
        """The fleet by kind over the roster's filters: one row per signature (and per type for the agents no
        signature matched), agents and tool servers apart."""
        return _parse(Fleet, self._get("/agents/fleet", **{k: _param(v) for k, v in (params or {}).items()}),
                      "fleet")

    def complete_devices(self, prefix: str, limit: int = 20) -> list[tuple[str, str]]:
        """(device id, hostname) of the devices whose hostname starts with ``prefix``, for completing a
        device filter."""
        data = self._get("/devices/complete", prefix=prefix, limit=limit)
        if not isinstance(data, list) or not all(isinstance(d, dict) and isinstance(d.get("id"), str)
                                                  and isinstance(d.get("hostname"), str) for d in data):
            raise ProtocolError("The device completion is not a list of {id, hostname}.")
        return [(d["id"], d["hostname"]) for d in data]

    def policy_choices(self) -> PolicyChoices:
        return _parse(PolicyChoices, self._get("/policy/choices"), "policy choices")

    def policy_versions(self, limit: int = 50) -> PolicyVersions:
        return _parse(PolicyVersions, self._get("/policy/versions", limit=limit), "policy versions")

    def preview_policy(self, change: PolicyChange) -> PolicyPreview:
        """What ``change`` would do if saved; nothing is saved."""
        return _parse(PolicyPreview, self._request("POST", API + "/policy/preview", body=change.model_dump()),
                      "policy preview")

    def registrations(self, status: str | None = None, *, skip: int = 0, limit: int = 100) -> RegistrationPage:
        """Registrations, newest first (``status``: pending, more_information, approved, review_due, rejected,
        superseded)."""
        return _parse(RegistrationPage, self._get("/registrations", status=status, skip=skip, limit=limit),
                      "registration list")

    # -- writes

    def put_policy(self, policy: PolicyEdit | PolicyChange) -> Policy:
        body = policy.model_dump()
        if not body["risky_tools"]:  # left out when empty (the default), so a collector without the field takes it
            del body["risky_tools"]
        return _parse(Policy, self._request("PUT", API + "/policy", body=body), "policy")

    def triage(self, targets: Sequence[tuple[str, str]], action: str, *, owner: str | None = None,
               note: str | None = None) -> TriageResult:
        """One triage action on one agent or on a selection (all or nothing on the collector)."""
        if action not in TRIAGE_ACTIONS:
            raise ValueError(f"unknown triage action {action!r}")
        if not targets:
            return TriageResult(applied=0, actions=[])
        body: dict[str, Any] = {"action": action, "owner": owner, "note": note}
        if len(targets) == 1:
            device_id, sighting_id = targets[0]
            data = self._request("POST", f"{API}/agents/{_seg(device_id)}/{_seg(sighting_id)}/actions", body=body)
            stored = _parse(TriageAction, data, "triage action")
            return TriageResult(applied=1, actions=[stored], action_id=stored.batch_id)
        body["targets"] = [{"device_id": d, "sighting_id": s} for d, s in targets]
        return _parse(TriageResult, self._request("POST", f"{API}/agents/actions", body=body), "triage result")

    def undo_policy(self) -> Policy:
        """Back to the previous version of the policy (saved as a new version)."""
        return _parse(Policy, self._request("POST", API + "/policy/undo", body={}), "policy")

    def triage_filter(self, params: Mapping[str, Any], action: str, *, owner: str | None = None,
                      note: str | None = None, dry_run: bool = False, expected: int | None = None) -> FilterApplied:
        """One action on every agent the roster filter ``params`` matches, in one transaction on the collector;
        ``dry_run``: only how many it would touch. ``expected``: the count the person confirmed (409
        ``count_changed`` when the fleet moved in between, and nothing is done)."""
        if action not in TRIAGE_ACTIONS:
            raise ValueError(f"unknown triage action {action!r}")
        body: dict[str, Any] = {"action": action, "owner": owner, "note": note, "filter": dict(params),
                                "dry_run": dry_run}
        if expected is not None:
            body["expected"] = expected
        data = self._request("POST", f"{API}/agents/actions/filter", body=body,
                             timeout=None if dry_run else BULK_TIMEOUT)
        return _parse(FilterApplied, data, "filter action")

    def undo_last_action(self, action_id: int | None = None) -> Undone:
        """Undo the last triage action (refused unless ``action_id``, when given, is the last one)."""
        body = {"action_id": action_id} if action_id is not None else {}
        return _parse(Undone, self._request("POST", f"{API}/agents/actions/undo", body=body, timeout=BULK_TIMEOUT),
                      "undo")

    def accept_identity(self, device_id: str) -> Device:
        """Accept a device flagged as an identity conflict (admins): it takes the identity it claimed and
        the device that held it is revoked."""
        return _parse(Device, self._request("POST", f"{API}/devices/{_seg(device_id)}/accept-identity", body={}),
                      "device")

    def decide_registration(self, registration_id: int, approve: bool, note: str | None = None) -> Registration:
        """Approve or reject a pending registration (admins); the collector re-assesses its agent."""
        verb = "approve" if approve else "reject"
        data = self._request("POST", f"{API}/registrations/{registration_id}/{verb}", body={"note": note})
        return _parse(Registration, data, "registration")

    def ask_registration(self, registration_id: int, question: str) -> Registration:
        """Ask the employee a question about a pending registration (admins): it becomes
        ``more_information`` and the question reaches them through their device."""
        data = self._request("POST", f"{API}/registrations/{registration_id}/ask", body={"question": question})
        return _parse(Registration, data, "registration")

def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _seg(value: str) -> str:
    """A path segment, quoted (ids come from the collector, but a "/" in one must not change the route)."""
    from urllib.parse import quote

    return quote(value, safe="")
