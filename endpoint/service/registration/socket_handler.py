"""The daemon's answers on its local socket (``endpoint/service/localsock.py`` carries them): list a
user's own sightings, show one, register one with the collector.

Each request comes with its peer as the OS told the transport (a uid on Linux and macOS; a SID, its account
and whether it is elevated on Windows); it decides who the registrant is (root, or on Windows SYSTEM or an
elevated administrator, may act for one user with ``as_user``), and reads the daemon's state afresh,
read-only.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from endpoint.service.localsock import Peer, error
from endpoint.service.registration.collector import fetch_statuses, send
from endpoint.service.registration.errors import InvalidRegistration, NotYours, RegisterError, UnknownSighting
from endpoint.service.registration.ledger import DeviceState
from endpoint.service.registration.policy import (
    Registrant,
    fold_case,
    may_register,
    resolve,
    shown,
    validate,
    visible_to,
)

log = logging.getLogger("agentroster.localsock")

COLLECTOR_TIMEOUT_S = 15.0  # the registration POST
STATUS_TIMEOUT_S = 5.0  # the registrations GET behind a list (the list is answered without it after that)
SIGHTING_FIELDS = ("id", "name", "vendor", "type", "user", "parent", "flags")


def wire_sighting(sighting: Mapping[str, Any]) -> dict[str, Any]:
    """What ``agentroster register`` needs of a sighting (list, prefill), and nothing else: credentials as
    their kind only, MCP servers by name, endpoints by provider."""
    doc = {k: sighting.get(k) for k in SIGHTING_FIELDS}
    doc["endpoints"] = [{"provider": e.get("provider")} for e in sighting.get("endpoints") or ()
                        if isinstance(e, Mapping)]
    doc["credentials"] = [{"kind": c.get("kind")} for c in sighting.get("credentials") or ()
                          if isinstance(c, Mapping)]
    doc["mcp_servers"] = [{"name": m.get("name")} for m in sighting.get("mcp_servers") or ()
                          if isinstance(m, Mapping)]
    return doc


def user_name(uid: int) -> str | None:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


@dataclass
class Handler:
    """Answers one request of one peer; reads the daemon's state afresh each time (read-only)."""

    data_dir: Path
    ca_bundle: Path | None = None
    collector_timeout_s: float = COLLECTOR_TIMEOUT_S
    status_timeout_s: float = STATUS_TIMEOUT_S
    names: Callable[[int], str | None] = user_name

    def __post_init__(self) -> None:
        self._ledger_lock = threading.Lock()

    def answer(self, line: bytes, peer: Peer) -> dict[str, Any]:
        from endpoint.service.reporter import ReporterError

        try:
            request = json.loads(line)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the parser's depth
            return error("bad_request", "not a JSON object on one line")
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            return error("bad_request", 'a request is a JSON object with an "op"')
        try:
            who = self.registrant(peer, request.pop("as_user", None))
            op = request.pop("op")
            if op == "list":
                return self.list(who, request)
            if op == "show":
                return self.show(who, request)
            if op == "register":
                return self.register(who, request)
            if op in ("inbox", "inbox_ack", "mine"):
                return self.employee_op(op, who, request)
            return error("bad_request", f"unknown op {shown(op)[:40]!r} (list, show, register, inbox, "
                                        "inbox_ack, mine)")
        except RegisterError as exc:
            return error(_CODES.get(type(exc).__name__, "refused"), str(exc))
        except ReporterError as exc:
            return error("unreachable", str(exc))

    def registrant(self, peer: Peer, as_user: Any) -> Any:
        if as_user is None:
            name = peer.name if peer.name is not None or not isinstance(peer.key, int) else self.names(peer.key)
            return Registrant(name, any_user=peer.superuser)
        if not peer.superuser:
            raise NotYours("as_user: only root may act for another user")
        if not isinstance(as_user, str) or not as_user.strip() or len(as_user) > 256:
            raise InvalidRegistration("as_user: a user name")
        return Registrant(as_user, any_user=False, via_sudo=True)

    def list(self, who: Any, request: Mapping[str, Any]) -> dict[str, Any]:

        if request:
            raise InvalidRegistration("list takes no fields")
        state = DeviceState.read(self.data_dir)
        mine = visible_to(state.sightings, who, fold_case=fold_case())
        statuses = None
        if mine and state.collector_url:
            try:
                key = state.device_key()
            except RegisterError:  # not enrolled yet: what was sent is all there is
                key = ""
            if key:
                statuses = fetch_statuses(collector_url=state.collector_url, key=key,
                                              ca_bundle=self.ca_bundle, timeout_s=self.status_timeout_s)
        own = {str(s["id"]) for s in mine}
        return {"ok": True, "user": who.name, "any_user": who.any_user,
                "sightings": [wire_sighting(s) for s in mine],
                "ledger": {k: v for k, v in state.ledger().items() if k in own},
                "statuses": None if statuses is None else {k: v for k, v in statuses.items() if k in own}}

    def show(self, who: Any, request: Mapping[str, Any]) -> dict[str, Any]:

        ref = request.get("id")
        if not isinstance(ref, str) or not 0 < len(ref) <= 128 or set(request) != {"id"}:
            raise InvalidRegistration("show takes an id (a string of at most 128 characters)")
        state = DeviceState.read(self.data_dir)
        # Among the caller's own only: a prefix of another user's id is answered as one of no id at all
        # (ids are hashes anyone can compute, so "belongs to bob" would tell who runs what).
        sighting = resolve(ref, visible_to(state.sightings, who, fold_case=fold_case()))
        may_register(sighting, who, fold_case=fold_case())
        return {"ok": True, "sighting": wire_sighting(sighting)}

    def register(self, who: Any, request: Mapping[str, Any]) -> dict[str, Any]:

        sid = request.get("sighting_id")
        if not isinstance(sid, str):
            raise InvalidRegistration("ID: the sighting's full id, as a string")
        state = DeviceState.read(self.data_dir)
        mine = visible_to(state.sightings, who, fold_case=fold_case())
        sighting = next((s for s in mine if str(s.get("id")) == sid), None)  # as show: the caller's own only
        if sighting is None:
            raise UnknownSighting(f"{shown(sid)[:40]}: no such agent known to the daemon on this "
                                      "machine (run `agentroster register` to list yours)")
        may_register(sighting, who, fold_case=fold_case())
        body = validate(request)
        key = state.device_key()
        assert state.collector_url is not None  # device_key() checked it
        answer = send(body, collector_url=state.collector_url, key=key, ca_bundle=self.ca_bundle,
                          timeout_s=self.collector_timeout_s)
        with self._ledger_lock:
            try:
                state.remember(body["sighting_id"], answer)
            except OSError as exc:
                log.warning("local socket: registration #%s sent, but not noted in the ledger: %s",
                            answer.get("id"), exc.strerror)
        log.info("local socket: %s registered %s (#%s)", who.name or "?", sid, answer.get("id"))
        return {"ok": True, "registration": answer}


    def employee_op(self, op: str, who: Any, request: Mapping[str, Any]) -> dict[str, Any]:
        """``inbox`` (the caller's own items from IT), ``inbox_ack`` (``ids``: mark those read; ids not
        the caller's are not counted, as ids that match nothing), ``mine`` (what is held about them)."""
        from endpoint.service.inbox import Inbox
        from endpoint.service.registration.mine import item_visible, mine_document

        inbox = Inbox(self.data_dir)
        if op == "inbox_ack":
            ids = request.get("ids")
            if set(request) != {"ids"} or not isinstance(ids, list) or len(ids) > 1000 \
                    or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
                raise InvalidRegistration("inbox_ack takes ids (a list of at most 1000 item ids)")
            return {"ok": True, "acked": inbox.mark_read(ids, lambda item: item_visible(item, who))}
        if request:
            raise InvalidRegistration(f"{op} takes no fields")
        kept = inbox.read()
        items, notify = kept["items"], kept["notify"]  # notify: whether the org's policy nudges its users
        if op == "inbox":
            return {"ok": True, "user": who.name, "notify": notify, "items": [i for i in items if item_visible(i, who)]}
        listing = self.list(who, {})
        return {"ok": True, "notify": notify, **mine_document(who, DeviceState.read(self.data_dir).sightings,
                                                              listing["ledger"], listing["statuses"], items)}


_CODES = {"InvalidRegistration": "invalid", "NotYours": "not_yours", "UnknownSighting": "unknown_sighting",
          "NotEnrolled": "not_enrolled", "StateUnavailable": "state", "RegistrationRefused": "refused"}
