"""The console's state in plain Python, no Qt: filters, the paged roster, selection, column choices,
overview figures and the agent detail's timeline and chain.

The Qt models in ``console.app.models`` are thin adapters over these; everything here is tested
without a display.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import IO, Any

from console.app import api, classification

TYPES = ("coding", "in_product", "enterprise", "runtime", "tool_server", "unknown")
FLAGS = ("unregistered", "pending", "drift", "unsanctioned_provider", "personal_credential", "autonomous",
         "broad_tools", "plaintext_secret", "remote_tool_server")  # fmt: skip
#: "agents": every type but the MCP tool servers (the roster's default, the overview's and the fleet's "Agents")
AGENT_TYPES = tuple(t for t in TYPES if t != "tool_server")
TYPE_LABELS = {"coding": "Coding", "in_product": "In-product", "enterprise": "Enterprise", "runtime": "Runtime",
               "tool_server": "Tool server", "unknown": "Unknown"}  # fmt: skip
ACTION_LABELS = {"approve": "Approved (sanctioned)", "assign_owner": "Owner assigned",
                 "request_registration": "Registration requested", "false_positive": "Marked false positive",
                 "note": "Note"}  # fmt: skip
#: each action on many agents, as a question (its count filled in) and as the button that confirms it
ACTION_QUESTIONS = {"approve": ("Approve {n} agents?", "Approve"),
                    "assign_owner": ("Assign an owner to {n} agents?", "Assign owner"),
                    "request_registration": ("Request registration of {n} agents?", "Request registration"),
                    "false_positive": ("Mark {n} agents as false positives?", "Mark false positive"),
                    "note": ("Add a note to {n} agents?", "Add note")}  # fmt: skip


def question(action: str, count: int) -> tuple[str, str]:
    """("Approve 3,748 agents?", "Approve"): the confirmation's question and its button."""
    text, button = ACTION_QUESTIONS.get(action, ("Apply to {n} agents?", "Apply"))
    return text.format(n=f"{count:,}"), button
#: what a person reads for each flag (the ids stay the collector's filter values)
FLAG_LABELS = {"unregistered": "Unregistered", "pending": "Registration pending", "drift": "Drifted from approval",
               "unsanctioned_provider": "Unsanctioned provider", "personal_credential": "Personal API key",
               "autonomous": "Autonomous (no human approval)", "broad_tools": "Broad tools",
               "plaintext_secret": "Secret in plain text", "remote_tool_server": "Remote tool server"}  # fmt: skip
TRIAGE_STATE_LABELS = {"new": "New", "approved": "Approved", "registration_requested": "Registration requested",
                       "false_positive": "False positive"}  # fmt: skip


def flag_label(flag: str) -> str:
    return FLAG_LABELS.get(flag, flag.replace("_", " ").capitalize())


def when(value: datetime | None) -> str:
    """A time as an admin reads it: UTC, to the minute."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else ""


# -- the nudge ladder -------------------------------------------------------------------------------

#: the collector's rungs (console/server/lifecycle.py), lowest first, as an admin reads them
LADDER_LABELS = {"report_only": "Reported", "notify": "Employee notified", "remind": "Reminded",
                 "escalate": "Escalated"}
#: the overview's card of the agents the ladder escalated to IT (their deadline passed)
ESCALATED = "Escalated to IT"
#: what ``GET /agents?ladder=`` takes: a rung, or the ungoverned agents past their deadline
LADDER_FILTERS = (*LADDER_LABELS, "overdue")


def ladder_label(a: api.Agent) -> str:
    """Where an ungoverned agent stands on the ladder and when it climbs (or its deadline); "" governed."""
    if a.ladder is None:
        return ""
    rung = LADDER_LABELS.get(a.ladder, a.ladder)
    if a.overdue:
        return f"{rung}: overdue since {when(a.ladder_due)}"
    if a.ladder_due is None:  # the policy's ladder stops here (report only: it climbs nothing)
        return f"{rung} only" if a.ladder == "report_only" else rung
    return f"{rung}, next {when(a.ladder_due)}"


def cover_label(a: api.Agent) -> str:
    """"covered by Claude Code's registration": a sub-agent or tool server without a standing of its own that
    the root of its chain covers; "" for any other."""
    return f"covered by {a.covered_by.name}'s {a.covered_by.by}" if a.covered_by is not None else ""


def governed_label(a: api.Agent) -> str:
    if not a.governed:
        return "ungoverned"
    return cover_label(a) or "governed"


# -- columns ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    title: str
    value: Callable[[api.Agent], str]
    sort: str | None = None  # the collector's sort key, when it sorts on this column


COLUMNS: tuple[Column, ...] = (
    Column("name", "Agent", lambda a: a.name, "name"),
    Column("risk", "Risk", lambda a: str(a.risk), "risk"),
    Column("servers", "MCP servers", lambda a: str(a.servers) if a.servers else ""),
    Column("type", "Type", lambda a: TYPE_LABELS.get(a.type, a.type), "type"),
    Column("governed", "Governed", lambda a: governed_label(a)),
    Column("ladder", "Ladder", lambda a: ladder_label(a), "overdue"),  # sorted: longest ungoverned first
    Column("flags", "Flags", lambda a: ", ".join(flag_label(f) for f in a.flags)),
    Column("device", "Device", lambda a: a.hostname, "device"),
    Column("user", "User", lambda a: a.user or "(machine)", "user"),
    Column("providers", "Providers", lambda a: ", ".join(a.providers)),
    Column("signature", "Signature", lambda a: a.signature or ""),
    Column("owner", "Owner", lambda a: a.owner or ""),
    Column("triage_state", "Triage", lambda a: TRIAGE_STATE_LABELS.get(a.triage_state, a.triage_state)),
    Column("running", "Running", lambda a: "yes" if a.running else "no"),
    Column("confidence", "Confidence", lambda a: f"{a.confidence:.2f}", "confidence"),
    Column("first_seen", "First seen", lambda a: when(a.first_seen), "first_seen"),
    Column("last_seen", "Last seen", lambda a: when(a.last_seen), "last_seen"),
    Column("vendor", "Vendor", lambda a: a.vendor),
)
COLUMN_BY_KEY = {c.key: c for c in COLUMNS}
DEFAULT_COLUMNS = ("name", "risk", "servers", "type", "governed", "ladder", "flags", "device", "user", "providers", "triage_state",
                   "last_seen")


@dataclass
class ColumnChoice:
    """Which columns the user shows, in order; remembered between runs as a list of keys."""

    visible: list[str] = field(default_factory=lambda: list(DEFAULT_COLUMNS))

    @classmethod
    def restore(cls, saved: Iterable[str] | None) -> ColumnChoice:
        keys = [k for k in dict.fromkeys(saved or ()) if k in COLUMN_BY_KEY]
        return cls(keys or list(DEFAULT_COLUMNS))

    @property
    def columns(self) -> list[Column]:
        return [COLUMN_BY_KEY[k] for k in self.visible]

    def toggle(self, key: str) -> bool:
        """Show or hide a column (the last one stays); True when the choice changed."""
        if key not in COLUMN_BY_KEY:
            return False
        if key in self.visible:
            if len(self.visible) == 1:
                return False
            self.visible.remove(key)
        else:
            order = [c.key for c in COLUMNS]
            self.visible.append(key)
            self.visible.sort(key=order.index)
        return True


# -- filters ----------------------------------------------------------------------------------------


KEEP_EMPTY = frozenset({"signature", "user"})  # "" means something there: no signature, machine-wide


@dataclass(frozen=True)
class AgentFilter:
    """What the roster shows; every field is a filter of ``GET /agents`` (None: no filter). ``type`` and
    ``flag`` take one value or a tuple of several (any of the types; all of the flags)."""

    type: str | tuple[str, ...] | None = None
    flag: str | tuple[str, ...] | None = None
    governed: bool | None = None
    device: str | None = None
    user: str | None = None
    provider: str | None = None
    signature: str | None = None
    owner: str | None = None
    triage_state: str | None = None
    q: str | None = None
    state: str = "present"
    min_risk: int | None = None
    parent: str | None = None  # the sighting id of the agent whose servers and sub-agents are listed
    ladder: str | None = None  # a rung of the nudge ladder, or "overdue" (LADDER_FILTERS)

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "state":
                if value != "present":
                    out["state"] = value
            elif isinstance(value, tuple):
                if value:
                    out[f.name] = list(value)  # repeated in the query: type=coding&type=runtime
            elif value is not None and (value != "" or f.name in KEEP_EMPTY):
                out[f.name] = value
        return out

    def with_(self, **changes: Any) -> AgentFilter:
        clean: dict[str, Any] = {k: (v.strip() or None) if isinstance(v, str) and k != "user" else v
                                 for k, v in changes.items()}
        return replace(self, **clean)

    @property
    def agents_first(self) -> bool:
        """True for the roster's default: every type but the tool servers."""
        return isinstance(self.type, tuple) and set(self.type) == set(AGENT_TYPES)

    def describe(self) -> str:
        if self.agents_first:  # "type=coding,in_product,…" reads worse than what it means
            rest = replace(self, type=None).params()
            return ", ".join(["agents (no tool servers)", *(f"{k}={v}" for k, v in rest.items())])
        parts = [f"{k}={v}" for k, v in self.params().items()]
        return ", ".join(parts) if parts else "all agents"

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> AgentFilter:
        """The filter ``params()`` gave (a saved view, a fleet row's filter); unknown keys, values and
        wrong types are dropped."""
        known = {f.name: f for f in fields(cls)}
        clean: dict[str, Any] = {}
        for key, value in params.items():
            if key not in known:
                continue
            if key in ("type", "flag"):
                allowed = TYPES if key == "type" else FLAGS
                chosen = tuple(v for v in (value if isinstance(value, list | tuple) else [value]) if v in allowed)
                if chosen:
                    clean[key] = chosen[0] if len(chosen) == 1 else chosen
            elif key == "governed":
                if isinstance(value, bool):
                    clean[key] = value
            elif key == "min_risk":
                if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 100:
                    clean[key] = value
            elif key == "ladder":
                if value in LADDER_FILTERS:
                    clean[key] = value
            elif isinstance(value, str) and len(value) <= 256 and "\x00" not in value:
                clean[key] = value
        return cls(**clean)


#: the roster's default filter: agents, their MCP tool servers left to the "MCP servers" column
AGENTS_ONLY = AgentFilter(type=AGENT_TYPES)


class SavedViews:
    """Named filters the admin keeps ("Ungoverned coding agents"), remembered between runs as JSON."""

    def __init__(self, views: Mapping[str, AgentFilter] | None = None) -> None:
        self.views: dict[str, AgentFilter] = dict(views or {})

    @classmethod
    def load(cls, text: object) -> SavedViews:
        try:
            data = json.loads(text) if isinstance(text, str) and text else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        return cls({str(name)[:100]: AgentFilter.from_params(params) for name, params in data.items()
                    if isinstance(params, dict)})

    def dump(self) -> str:
        return json.dumps({name: {**f.params(), "state": f.state} for name, f in self.views.items()})

    def save(self, name: str, chosen: AgentFilter) -> str:
        """Keep ``chosen`` under ``name`` (trimmed; an existing view of that name is replaced); the name kept."""
        name = " ".join(name.split())[:100] or "Unnamed view"
        self.views[name] = chosen
        return name

    def remove(self, name: str) -> None:
        self.views.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self.views, key=str.casefold)


def moved_columns(visible: list[str], old_visual: int, new_visual: int) -> list[str]:
    """The column keys after the header moved the one at ``old_visual`` to ``new_visual``."""
    order = list(visible)
    if not (0 <= old_visual < len(order) and 0 <= new_visual < len(order)):
        return order
    order.insert(new_visual, order.pop(old_visual))
    return order


def rows_as_text(agents: Iterable[api.Agent], columns: list[Column]) -> str:
    """Rows as a spreadsheet pastes them: a header line, then one line per agent, cells tab-separated
    (tabs and line breaks inside a cell become spaces, so that each agent stays one line)."""
    def cell(text: str) -> str:
        return " ".join(str(text).replace("\t", " ").splitlines())
    lines = ["\t".join(c.title for c in columns)]
    lines += ["\t".join(cell(c.value(a)) for c in columns) for a in agents]
    return "\n".join(lines) + "\n"


# -- the roster, paged by the collector --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PageRequest:
    generation: int
    params: dict[str, Any]
    sort: str
    order: str
    limit: int
    cursor: str | None


class AgentList:
    """The rows fetched so far for the current filter and sort, page by page with keyset cursors.

    A new filter or sort starts a new generation; pages that arrive for an older one are dropped, so
    a slow answer never lands in the wrong view.
    """

    def __init__(self, page_size: int = 200) -> None:
        self.page_size = page_size
        self.filter = AGENTS_ONLY
        self.sort = "last_seen"
        self.order = "desc"
        self.rows: list[api.Agent] = []
        self.count: int | None = None  # None until the first page is in
        self.next_cursor: str | None = None
        self.generation = 0
        self.loading = False
        self.done = False
        self._index: dict[tuple[str, str], int] = {}

    def reset(self, *, filter: AgentFilter | None = None, sort: str | None = None,
              order: str | None = None) -> None:
        if filter is not None:
            self.filter = filter
        if sort is not None:
            self.sort = sort
        if order is not None:
            self.order = order
        self.rows, self._index = [], {}
        self.count, self.next_cursor, self.done, self.loading = None, None, False, False
        self.generation += 1

    def can_fetch_more(self) -> bool:
        return not self.loading and not self.done

    def next_request(self) -> PageRequest | None:
        """The request for the next page (marks the list loading), or None when there is none to make."""
        if not self.can_fetch_more():
            return None
        self.loading = True
        return PageRequest(self.generation, self.filter.params(), self.sort, self.order, self.page_size,
                           self.next_cursor)

    def receive(self, generation: int, page: api.AgentPage) -> list[api.Agent] | None:
        """Take in a page's position; the rows it adds (for ``append``), or None when it was for an older
        generation. Rows already shown (a row that moved between pages while paging) are left out."""
        if generation != self.generation:
            return None
        self.loading = False
        if page.count is not None:  # later pages are not counted again: the first page's count stands
            self.count = page.count
        self.next_cursor = page.next_cursor
        self.done = page.next_cursor is None
        fresh = {a.key: a for a in page.data if a.key not in self._index}
        return list(fresh.values())

    def append(self, agents: list[api.Agent]) -> None:
        for agent in agents:
            self._index[agent.key] = len(self.rows)
            self.rows.append(agent)

    def failed(self, generation: int) -> None:
        if generation == self.generation:
            self.loading = False

    def update(self, agent: api.Agent) -> int | None:
        """Replace a row in place (after a triage action); its row number, if shown."""
        row = self._index.get(agent.key)
        if row is not None:
            self.rows[row] = agent
        return row


# -- selection --------------------------------------------------------------------------------------


@dataclass
class Selection:
    """The agents the admin has selected, by (device id, sighting id)."""

    keys: list[tuple[str, str]] = field(default_factory=list)

    def set(self, keys: Iterable[tuple[str, str]]) -> None:
        self.keys = list(dict.fromkeys(keys))

    def __len__(self) -> int:
        return len(self.keys)

    def describe(self) -> str:
        return "no agent selected" if not self.keys else f"{len(self.keys)} agent{'s' if len(self.keys) != 1 else ''}"


# -- devices ----------------------------------------------------------------------------------------


#: the devices tab's filter: None (all), True / False (stale / reporting only), or INCOMPLETE
DeviceFilter = bool | str | None
INCOMPLETE = "incomplete"  # only the devices whose last scan was incomplete
INCOMPLETE_SCANS = "Incomplete scans"  # the overview's card of them, which opens the devices tab so filtered


def device_query(chosen: DeviceFilter) -> dict[str, bool]:
    """The ``/devices`` parameters of a devices-tab filter."""
    if chosen == INCOMPLETE:
        return {"incomplete": True}
    return {"stale": chosen} if isinstance(chosen, bool) else {}


def scan_health(device: api.Device) -> str:
    """Its last scan: complete, or incomplete with how many units failed and in which sensors."""
    if not device.status:
        return "–"  # never reported
    if not device.incomplete:
        return "complete"
    failed = device.units_failed
    return (f"incomplete: {failed} unit{'s' if failed != 1 else ''} failed"
            + (f" ({', '.join(device.degraded)})" if device.degraded else ""))


class DeviceList:
    """Devices fetched page by page (the collector pages devices by offset, by hostname)."""

    def __init__(self, page_size: int = 200) -> None:
        self.page_size = page_size
        self.stale: DeviceFilter = None  # the filter (named for the first one it had)
        self.rows: list[api.Device] = []
        self.count: int | None = None
        self.generation = 0
        self.loading = False

    def reset(self, stale: DeviceFilter = None) -> None:
        self.stale = stale
        self.rows, self.count, self.loading = [], None, False
        self.generation += 1

    def can_fetch_more(self) -> bool:
        return not self.loading and (self.count is None or len(self.rows) < self.count)

    def next_request(self) -> tuple[int, int, DeviceFilter] | None:
        if not self.can_fetch_more():
            return None
        self.loading = True
        return self.generation, len(self.rows), self.stale

    def receive(self, generation: int, skip: int, page: api.DevicePage) -> list[api.Device] | None:
        """Take in a page; the devices it adds (for ``rows.extend``), or None when it was stale."""
        if generation != self.generation or skip != len(self.rows):
            return None
        self.loading = False
        self.count = page.count
        if not page.data:
            self.count = len(self.rows)  # the fleet shrank while paging
        return list(page.data)

    def failed(self, generation: int) -> None:
        if generation == self.generation:
            self.loading = False


DEVICE_COLUMNS: tuple[tuple[str, Callable[[api.Device], str]], ...] = (
    ("Host", lambda d: d.hostname),
    ("OS", lambda d: f"{d.os} {d.os_version}".strip()),
    ("User(s)", lambda d: ", ".join(d.users)),
    ("Agent version", lambda d: d.agentroster_version),
    ("Last seen", lambda d: when(d.last_seen) or "never"),
    ("State", lambda d: "revoked" if d.revoked else ("stale" if d.stale else "reporting")),
    ("Sightings", lambda d: str(d.sightings)),
    ("Last scan", scan_health),
    ("Identity", lambda d: f"conflict: claims device {d.identity_conflict}" if d.identity_conflict and not d.revoked
     else ""),
)


# -- registrations --------------------------------------------------------------------------------

REGISTRATION_HEADERS = ("Submitted (UTC)", "Owner", "Purpose", "Business process", "Declared providers",
                        "Declared tools", "Data systems", "Autonomy", "Status", "Decided by", "Comment")


def registration_status(r: api.Registration) -> str:
    """The status as the queue says it: an approved one past its re-attestation date is up for review."""
    if r.status == "approved" and r.review_due:
        return "approved, review due"
    return "more information asked" if r.status == "more_information" else r.status


def registration_row(r: api.Registration) -> tuple[str, ...]:
    return (when(r.created_at), r.owner, r.purpose, r.business_process, ", ".join(r.providers) or "–",
            ", ".join(r.tools) or "–", ", ".join(r.data_systems) or "–", r.autonomy, registration_status(r),
            f"{r.decided_by or ''} {when(r.decided_at)}".strip(), r.decision_note or "")


# -- overview ---------------------------------------------------------------------------------------


@dataclass
class Trend:
    """Ungoverned agents over time: the collector's hourly series once it has two points or more, else
    the samples this console took at each refresh (kept between runs, at most ``limit``)."""

    samples: list[tuple[datetime, int]] = field(default_factory=list)
    limit: int = 500

    def add(self, at: datetime, ungoverned: int) -> None:
        if self.samples and self.samples[-1][0] >= at:
            return
        self.samples.append((at, ungoverned))
        del self.samples[:-self.limit]

    def points(self, overview: api.Overview | None) -> list[tuple[datetime, int]]:
        if overview is not None and len(overview.trend) >= 2:  # one hourly point draws no line
            return sorted((p.at, p.ungoverned) for p in overview.trend)
        return list(self.samples)

    def dump(self) -> str:
        return json.dumps([[t.isoformat(), n] for t, n in self.samples])

    @classmethod
    def load(cls, text: str | None) -> Trend:
        trend = cls()
        try:
            for at, n in json.loads(text or "[]"):
                trend.add(datetime.fromisoformat(at), int(n))
        except (ValueError, TypeError):
            pass  # a damaged saved trend starts afresh
        return trend


NEW_SINCE = "New since your last visit"


def overview_cards(o: api.Overview) -> list[tuple[str, str]]:
    """The headline figures: (label, value); agents and tool servers apart (a collector that does not count
    them apart: every sighting is an agent)."""
    share = f"{o.ungoverned / o.sightings:.0%}" if o.sightings else "–"
    agents = o.agents if (o.agents or o.tool_servers) else o.sightings
    new = o.new_agents + o.new_tool_servers if o.new_since is not None else o.new_last_day
    return [("Agents", f"{agents:,}"), ("Tool servers", f"{o.tool_servers:,}"),
            ("Ungoverned", f"{o.ungoverned:,} ({share})"), (ESCALATED, f"{o.escalated:,}"), (NEW_SINCE, f"{new:,}"),
            ("Devices", f"{o.devices:,}"), ("Stale devices", f"{o.stale_devices:,}"),
            (INCOMPLETE_SCANS, f"{o.incomplete_devices:,}")]


# -- agent detail -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime | None
    kind: str  # "seen" (the sighting's own history), "triage", "registration"
    who: str
    what: str


def timeline(detail: api.AgentDetail) -> list[TimelineEntry]:
    """The sighting's changes, triage actions and registration in one list, newest first."""
    entries = [TimelineEntry(h.at, "seen", "endpoint", _history_text(h)) for h in detail.history]
    for a in detail.actions:
        text = ACTION_LABELS.get(a.action, a.action)
        if a.owner:
            text += f": {a.owner}"
        if a.note:
            text += f" — {a.note}"
        entries.append(TimelineEntry(a.at, "triage", a.actor, text))
    reg = detail.registration
    if reg:
        entries.append(TimelineEntry(reg.created_at, "registration", reg.owner or "employee",
                                     f"Registration {reg.status}: {reg.purpose}"))
        if reg.decided_at:
            entries.append(TimelineEntry(reg.decided_at, "registration", reg.decided_by or "admin",
                                         f"Registration {reg.status}"))
    far_past = datetime.min.replace(tzinfo=UTC)
    return sorted(entries, key=lambda e: e.at or far_past, reverse=True)


def _history_text(h: api.HistoryEntry) -> str:
    if h.change == "new":
        return "First seen"
    if h.change == "gone":
        return "No longer seen"
    return f"Changed: {', '.join(h.fields)}" if h.fields else "Changed"


@dataclass
class ChainNode:
    """One link of the chain an agent belongs to: human → agent → sub-agent → MCP server → system."""

    kind: str  # "human", "device", "agent", "mcp_server", "system"
    label: str
    detail: str = ""
    children: list[ChainNode] = field(default_factory=list)
    current: bool = False
    risk: tuple[str, ...] = ()  # the flags that make this link risky (an MCP server's own, or its agent's)


def chain(detail: api.AgentDetail, parent: api.AgentDetail | None = None,
          children: Iterable[api.Agent] = ()) -> ChainNode:
    """The chain around one agent, from its detail, its parent's, and the sightings it spawned or declared
    (``children``: sightings on the same device whose parent is this one)."""
    agent = detail.agent
    human = ChainNode("human", agent.user or "(machine-wide)", f"on {agent.hostname or agent.device_id}")
    me = _agent_node(detail, children, current=True)
    if parent is not None:
        top = _agent_node(parent, ())
        siblings = [c for c in top.children if not (c.kind == "mcp_server" and c.label == agent.name)]
        top.children = [me, *siblings]
        human.children.append(top)
    else:
        human.children.append(me)
    return human


def _agent_node(detail: api.AgentDetail, children: Iterable[api.Agent], current: bool = False) -> ChainNode:
    a = detail.agent
    node = ChainNode("agent", a.name, f"{TYPE_LABELS.get(a.type, a.type)}; {a.signature or 'no signature'}"
                     + ("" if a.governed else "; ungoverned") + (f"; {cover_label(a)}" if a.covered_by else ""),
                     current=current)
    spawned = {c.name: c for c in children if c.parent == a.id}
    reasons = detail.raw.get("reasons")
    broad = str(reasons.get("broad_tools") or "") if isinstance(reasons, Mapping) else ""
    for server in detail.mcp_servers:
        name = str(server.get("name") or "?")
        args = [str(x) for x in server.get("args") or []]
        target = server.get("url") or " ".join([str(server.get("command") or ""), *args])
        sighting = spawned.pop(name, None)
        risk = list(sighting.flags if sighting is not None else ())
        if name in broad and "broad_tools" not in risk:  # the agent's broad tools name this server
            risk.append("broad_tools")
        seen = ""
        if sighting is not None:
            seen = f"; {'running' if sighting.running else 'not running'}"
            seen += f"; {cover_label(sighting)}" if sighting.covered_by else ""
        risky = f"; risk: {', '.join(flag_label(f) for f in risk)}" if risk else ""
        mcp = ChainNode("mcp_server", name, f"{server.get('transport', '')}: {target.strip()}{seen}{risky}",
                        risk=tuple(risk))
        node.children.append(mcp)
        if server.get("url"):
            mcp.children.append(ChainNode("system", str(server["url"]), "remote tool server"))
        for system in systems_in_args(args):
            mcp.children.append(ChainNode("system", system, "named in its arguments"))
    for child in spawned.values():  # sub-agents (and servers it runs that no config declares)
        kind = "mcp_server" if child.type == "tool_server" else "agent"
        risky = f"; risk: {', '.join(flag_label(f) for f in child.flags)}" if child.flags else ""
        covered = f"; {cover_label(child)}" if child.covered_by else ""
        node.children.append(ChainNode(kind, child.name, f"{TYPE_LABELS.get(child.type, child.type)}; "
                                       f"{child.signature or 'no signature'}{covered}{risky}", risk=tuple(child.flags)))
    for endpoint in detail.endpoints:
        node.children.append(ChainNode("system", f"{endpoint.get('host')}:{endpoint.get('port')}",
                                       f"{endpoint.get('provider') or 'endpoint'} via {endpoint.get('via', '?')}"))
    return node


def walk(node: ChainNode, depth: int = 0) -> Iterator[tuple[int, ChainNode]]:
    yield depth, node
    for child in node.children:
        yield from walk(child, depth + 1)


@dataclass(frozen=True, slots=True)
class Explained:
    """The detail's headline: type with its reason, governed state, each flag with its explanation."""

    type_label: str
    type_reason: str
    governed: str
    flags: tuple[tuple[str, str], ...]  # (flag id, what it means with the collector's reason)
    next_steps: tuple[str, ...] = ()  # what to do about each flag, in the same order


def explain(detail: api.AgentDetail) -> Explained:
    a = detail.agent
    kind, reason = classification.classify(detail.raw)
    governed = "Governed" if a.governed else "Ungoverned"
    if a.covered_by is not None:  # as its roster row says: covered by the root of its chain
        governed += f" ({cover_label(a)})"
    if not a.governed:
        collector = [f for f in a.flags if f in ("unregistered", "pending", "drift")]
        governed += f" ({', '.join(collector)})" if collector else ""
    return Explained(TYPE_LABELS.get(kind, kind), reason, governed,
                     tuple((f, classification.explain(f, detail.raw)) for f in a.flags),
                     tuple(classification.next_step(f) for f in a.flags))


def evidence_rows(detail: api.AgentDetail) -> list[tuple[str, str, str]]:
    """(section, what, where) rows for the evidence tab; credential values are never here, only
    their kind and fingerprint."""
    rows: list[tuple[str, str, str]] = []
    for p in detail.processes:
        rows.append(("Process", f"pid {p.get('pid')} {p.get('name', '')}",
                     " ".join(str(x) for x in p.get("cmdline") or []) or str(p.get("exe") or "")))
    for config in detail.configs:
        rows.append(("Config", str(config.get("client") or ""),
                     f"{config.get('path', '')} ({config.get('format', '')})"))
    for m in detail.mcp_servers:
        target = m.get("url") or " ".join([str(m.get("command") or ""), *map(str, m.get("args") or [])])
        rows.append(("MCP server", f"{m.get('name')} ({m.get('transport')})", target))
    for endpoint in detail.endpoints:
        rows.append(("Endpoint", f"{endpoint.get('host')}:{endpoint.get('port')}",
                     f"{endpoint.get('provider') or '?'} via {endpoint.get('via')}, {endpoint.get('count', 0)}×"))
    for c in detail.credentials:
        rows.append(("Credential", f"{c.get('kind')} {c.get('fingerprint')}", f"{c.get('source')}: {c.get('where')}"))
    for e in detail.evidence:
        rows.append(("Evidence", f"{e.get('kind')}/{e.get('rule')}", str(e.get("detail") or "")))
    return rows


# -- export -----------------------------------------------------------------------------------------


def export_csv(pages: Iterable[api.AgentPage], columns: list[Column], out: IO[str],
               progress: Callable[[int, int], None] | None = None) -> int:
    """Write the rows of every page as CSV with the given columns; the number of rows written."""
    writer = csv.writer(out)
    writer.writerow([c.title for c in columns])
    written = 0
    for page in pages:
        for agent in page.data:
            writer.writerow([_cell(c.value(agent)) for c in columns])
        written += len(page.data)
        if progress:
            progress(written, written if page.count is None else page.count)
    return written


#: what makes a spreadsheet read a cell as a formula (OWASP's CSV injection list, with the full-width forms
#: that some spreadsheets fold to the ASCII ones)
FORMULA_STARTS = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")


def _cell(text: str) -> str:
    """A CSV cell that a spreadsheet will not run as a formula: one that starts with a formula character,
    also after leading spaces (spreadsheets skip them), gets a leading single quote."""
    if text[:1] in FORMULA_STARTS or text.lstrip()[:1] in FORMULA_STARTS:
        return "'" + text
    return text


def export_json(pages: Iterable[api.AgentPage], out: IO[str], meta: Mapping[str, Any],
                progress: Callable[[int, int], None] | None = None) -> int:
    """Write ``{"filter": ..., "agents": [...]}`` with the rows as the collector sent them, page by page."""
    out.write('{"export": ' + json.dumps(dict(meta), ensure_ascii=False) + ',\n "agents": [')
    written = 0
    for page in pages:
        for raw in page.raw:
            out.write(("\n  " if written == 0 else ",\n  ") + json.dumps(raw, ensure_ascii=False, sort_keys=True))
            written += 1
        if progress:
            progress(written, written if page.count is None else page.count)
    out.write("\n ]}\n")
    return written


# -- the systems an MCP server reaches ---------------------------------------------------------------

_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.-]{1,20})://([^\s/?#'\"]+)(/[^\s?#'\"]*)?")


def systems_in_args(args: Iterable[str]) -> list[str]:
    """The hosts and databases a server's arguments name (``postgresql://db/app``, ``https://jira.corp``):
    scheme, host and path only. The collector stores arguments scrubbed, and a user name, password, query
    or fragment is dropped here again, so a secret never reaches the screen from this."""
    found: list[str] = []
    for arg in args:
        for scheme, netloc, path in _URL.findall(str(arg)):
            host = netloc.rsplit("@", 1)[-1]  # never user:password@
            if host:
                found.append(f"{scheme.lower()}://{host}{path.rstrip('/')}")
    return list(dict.fromkeys(found))
