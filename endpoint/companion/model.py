"""The companion's logic without Qt: what the daemon answers about the user (``Snapshot``), which desktop
notifications that makes (once per new agent not registered, once per message from IT), what was
notified already (``SeenStore``, a file in the user's own state dir), and the daemon's socket as the
companion uses it (``Client``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from endpoint.errors import EndpointError
from endpoint.service.registration.mine import message_line
from endpoint.service.registration.policy import shown

MAX_SEEN = 5000  # keys remembered; the oldest go first
SEEN_FILE = "companion.json"
#: agents the companion nudges about: what a person runs, not the MCP servers under them
NUDGED_TYPES = ("coding", "in_product", "enterprise", "runtime", "unknown")


class CompanionError(EndpointError):
    """The daemon could not be asked (not running, busy) or refused; the message says what to do."""

    code = "companion"


@dataclass(frozen=True)
class Notification:
    """One desktop notification: ``key`` makes it once; ``target`` is what a click opens."""

    key: str
    title: str
    text: str
    target: tuple[str, str]  # ("register", sighting id) or ("messages", item id)


@dataclass
class Snapshot:
    """What the daemon answered about the user: their agents, registrations and inbox."""

    user: str | None
    agents: list[dict[str, Any]] = field(default_factory=list)
    statuses: dict[str, Any] | None = None  # the collector's status of each registration, when it answered
    ledger: dict[str, Any] = field(default_factory=dict)  # what was registered from this machine
    items: list[dict[str, Any]] = field(default_factory=list)
    notify: bool = True  # the org's policy nudges its users (false: it only reports; no notification then)

    def registration(self, sighting_id: str) -> str:
        """``#7 approved``, ``#7 sent``, or ``""`` when the agent was never registered."""
        if self.statuses is not None and isinstance(row := self.statuses.get(sighting_id), Mapping):
            return f"#{row.get('id')} {shown(row.get('status'))}"
        entry = self.ledger.get(sighting_id)
        return f"#{entry.get('id')} sent" if isinstance(entry, Mapping) else ""

    def unregistered(self) -> list[dict[str, Any]]:
        """The user's top-level agents with no registration at all."""
        return [a for a in self.agents if not a.get("parent") and a.get("type") in NUDGED_TYPES
                and not self.registration(str(a.get("id")))]

    def agent(self, sighting_id: str) -> dict[str, Any] | None:
        return next((a for a in self.agents if a.get("id") == sighting_id), None)


def notifications(snapshot: Snapshot, seen: Iterable[str]) -> list[Notification]:
    """The notifications not made yet: one per agent not registered, one per unread message from IT."""
    done = set(seen)
    out: list[Notification] = []
    for agent in snapshot.unregistered():
        key = f"agent:{agent['id']}"
        if key not in done:
            name = shown(agent.get("name") or "an agent")
            out.append(Notification(key, f"agentroster found {name} on this machine",
                                    f"{name} is not registered with IT yet. Click to register it: what it is for, "
                                    "and what it may reach.", ("register", str(agent["id"]))))
    for item in snapshot.items:
        key = f"item:{item.get('id')}"
        if key not in done and not item.get("read_at"):
            title = {"request": "IT asks you to register an agent", "decision": "IT answered your registration",
                     "question": "IT has a question about an agent",
                     "review": "Your registration of an agent is up for review",
                     "policy": ("IT's policy now allows an agent of yours" if item.get("status") == "governed"
                                else "IT's policy no longer covers an agent of yours")}.get(str(item.get("kind")),
                                                                                      "A message from IT")
            no_longer_covered = item.get("kind") == "policy" and item.get("status") != "governed"
            target = ("register", str(item.get("sighting_id"))) \
                if item.get("kind") in ("request", "review") or no_longer_covered \
                else ("messages", str(item.get("id")))
            out.append(Notification(key, title, message_line({**item, "read_at": "shown"}).partition(" ")[2],
                                    target))
    return out


class SeenStore:
    """What was notified already, in the user's own state dir (``$XDG_STATE_HOME/agentroster``)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_state_dir() / SEEN_FILE

    def load(self) -> list[str]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        seen = doc.get("seen") if isinstance(doc, dict) else None
        return [s for s in seen if isinstance(s, str)][-MAX_SEEN:] if isinstance(seen, list) else []

    def save(self, seen: Sequence[str]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"seen": list(seen)[-MAX_SEEN:]}), encoding="utf-8")
        os.replace(tmp, self.path)


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "agentroster"


class Client:
    """The daemon's local socket, as the companion's user: every answer is that user's own."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        from endpoint.service.localsock import DaemonNotListening, call

        try:
            answer = call(self.socket, request, timeout_s=30.0)
        except DaemonNotListening:
            raise CompanionError("the agentroster daemon is not running on this machine (or not listening on "
                                 f"{self.socket}); ask IT") from None
        except OSError as exc:
            raise CompanionError(f"the daemon's socket {self.socket}: {exc}") from None
        if not answer.get("ok"):
            raise CompanionError(shown(answer.get("error") or answer.get("code") or "refused")[:500])
        return answer

    def snapshot(self, previous: Snapshot | None = None, *, relist: bool = True) -> Snapshot:
        """The user's inbox, and their agents and registrations: listed again when ``relist``, when there is
        no ``previous``, or when the inbox changed (a decision changes a registration's status). The
        list asks the collector for the statuses: it is not asked on every poll."""
        inbox = self.call({"op": "inbox"})
        items = [i for i in inbox.get("items") or () if isinstance(i, dict)]
        notify = inbox.get("notify") is not False  # a daemon that does not say: as before, notifications on
        if previous is not None and not relist and [i.get("id") for i in items] == [i.get("id") for i in previous.items]:
            return Snapshot(previous.user, previous.agents, previous.statuses, previous.ledger, items, notify)
        listing = self.call({"op": "list"})
        statuses, ledger = listing.get("statuses"), listing.get("ledger")
        return Snapshot(user=listing.get("user"),
                        agents=[a for a in listing.get("sightings") or () if isinstance(a, dict) and a.get("id")],
                        statuses=statuses if isinstance(statuses, dict) else None,
                        ledger=ledger if isinstance(ledger, dict) else {}, items=items, notify=notify)

    def mine(self) -> dict[str, Any]:
        return self.call({"op": "mine"})

    def mark_read(self, ids: Sequence[int]) -> None:
        self.call({"op": "inbox_ack", "ids": list(ids)})

    def register(self, request: Mapping[str, Any]) -> dict[str, Any]:
        registration = self.call({"op": "register", **request}).get("registration")
        if not isinstance(registration, dict) or not isinstance(registration.get("id"), int):
            raise CompanionError("the daemon answered without a registration")
        return registration
