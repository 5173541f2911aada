"""What agentroster holds about one user on this machine (``agentroster status --mine``, the socket's
``mine`` op): their sightings with the evidence kinds and the fields the daemon sends for each, exactly
as sent (command lines, URLs and arguments already redacted), their registrations and their inbox.

A credential is shown by its kind, source and where it was found; its fingerprint (a keyed hash of the
key, not the key) is said to be sent and is not shown; no secret value is ever in the daemon's state.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from endpoint.service.registration.policy import Registrant, fold_case, same_user, shown, visible_to

#: the sighting's fields, in the order the page lists them, and what each one is in a few words
FIELDS = {
    "processes": "running processes (pid, name, executable, command line redacted, user, start time)",
    "configs": "config files (path, client, format, scope)",
    "mcp_servers": "MCP tool servers (name, transport, command and arguments redacted, URL without secrets, "
                   "the file declaring it)",
    "endpoints": "network endpoints (host, port, provider, how seen, first and last seen, count)",
    "credentials": "credentials (kind, where found, and a keyed fingerprint: never the key itself)",
    "evidence": "evidence lines (kind, rule, detail)",
    "flags": "flags",
    "project": "its project (folder, entry point, framework, providers, models, tools)",
}


def sent_about(sighting: Mapping[str, Any]) -> dict[str, Any]:
    """One sighting as the page shows it: what identifies it, which fields are sent (non-empty), the
    evidence kinds, and each field's entries as sent (credentials without their fingerprint)."""
    def entries(name: str) -> list[Mapping[str, Any]]:
        value = sighting.get(name)
        return [e for e in value if isinstance(e, Mapping)] if isinstance(value, list) else []

    credentials = [{"kind": c.get("kind"), "source": c.get("source"), "where": c.get("where"),
                    "fingerprint": "sent" if c.get("fingerprint") else "none"} for c in entries("credentials")]
    return {
        "id": sighting.get("id"), "name": sighting.get("name"), "type": sighting.get("type"),
        "user": sighting.get("user"), "parent": sighting.get("parent"), "running": bool(sighting.get("running")),
        "first_seen": sighting.get("first_seen"), "last_seen": sighting.get("last_seen"),
        "fields": [f for f in FIELDS if sighting.get(f)],
        "evidence_kinds": dict(Counter(str(e.get("kind")) for e in entries("evidence"))),
        "processes": [{k: p.get(k) for k in ("pid", "name", "exe", "cmdline")} for p in entries("processes")],
        "configs": [c.get("path") for c in entries("configs")],
        "mcp_servers": [{k: m.get(k) for k in ("name", "transport", "command", "args", "url")}
                        for m in entries("mcp_servers")],
        "endpoints": [{k: e.get(k) for k in ("host", "port", "provider")} for e in entries("endpoints")],
        "credentials": credentials,
        "flags": list(sighting.get("flags") or []),
    }  # fmt: skip


def mine_document(who: Registrant, sightings: Sequence[Mapping[str, Any]], ledger: Mapping[str, Any],
                  statuses: Mapping[str, Any] | None, inbox_items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The whole page for ``who``: only their own sightings, registrations and inbox items."""
    mine = visible_to(sightings, who, fold_case=fold_case())
    own = {str(s.get("id")) for s in mine}
    return {"user": who.name, "any_user": who.any_user, "sightings": [sent_about(s) for s in mine],
            "registrations": {k: v for k, v in ledger.items() if k in own},
            "statuses": None if statuses is None else {k: v for k, v in statuses.items() if k in own},
            "inbox": [dict(i) for i in inbox_items if item_visible(i, who)]}


def item_visible(item: Mapping[str, Any], who: Registrant) -> bool:
    """An inbox item is its user's (root sees every one; one with no user is root's only)."""
    return who.any_user or same_user(item.get("user"), who.name, fold_case=fold_case())


# -- the terminal page -------------------------------------------------------------------------------------


def render(doc: Mapping[str, Any]) -> str:
    whose = "every user" if doc.get("any_user") else shown(doc.get("user") or "you")
    sightings = [s for s in doc.get("sightings") or () if isinstance(s, Mapping)]
    lines = [f"What agentroster holds and sends about {whose} on this machine: {len(sightings)} agent"
             f"{'' if len(sightings) == 1 else 's'}"]
    statuses = doc.get("statuses") if isinstance(doc.get("statuses"), Mapping) else None
    registrations = doc.get("registrations")
    ledger: Mapping[str, Any] = registrations if isinstance(registrations, Mapping) else {}
    for s in sightings:
        sid = str(s.get("id"))
        lines.append("")
        lines.append(f"{shown(s.get('name'))} ({shown(s.get('type'))}, {sid[:8]}), user "
                     f"{shown(s.get('user') or '(machine)')}; seen {shown(s.get('first_seen'))} to "
                     f"{shown(s.get('last_seen'))}")
        lines.append(f"  registered:    {_registration(sid, statuses, ledger)}")
        kinds = s.get("evidence_kinds") or {}
        lines.append("  evidence:      " + (", ".join(f"{shown(k)} ×{v}" for k, v in sorted(kinds.items()))
                                          or "(none)"))
        lines.append("  fields sent:   " + (", ".join(shown(f) for f in s.get("fields") or ()) or "(none)"))
        for p in s.get("processes") or ():
            lines.append(f"  process:       pid {p.get('pid')} {shown(' '.join(map(str, p.get('cmdline') or [])))[:200]}")
        for c in s.get("configs") or ():
            lines.append(f"  config:        {shown(c)}")
        for m in s.get("mcp_servers") or ():
            target = m.get("url") or " ".join([str(m.get("command") or ""), *map(str, m.get("args") or [])])
            lines.append(f"  MCP server:    {shown(m.get('name'))}: {shown(target)[:200]}")
        for e in s.get("endpoints") or ():
            lines.append(f"  endpoint:      {shown(e.get('host'))}:{e.get('port')} ({shown(e.get('provider') or '?')})")
        for c in s.get("credentials") or ():
            lines.append(f"  credential:    {shown(c.get('kind'))} from {shown(c.get('source'))} at "
                         f"{shown(c.get('where'))}; fingerprint {shown(c.get('fingerprint'))} (never the key)")
        if s.get("flags"):
            lines.append("  flags:         " + ", ".join(shown(f) for f in s.get("flags") or ()))
    items = [i for i in doc.get("inbox") or () if isinstance(i, Mapping)]
    lines.append("")
    unread = sum(1 for i in items if not i.get("read_at"))
    lines.append(f"Inbox: {len(items)} message{'' if len(items) == 1 else 's'} from IT, {unread} unread")
    for i in items:
        lines.append("  " + message_line(i))
    lines.append("")
    lines.append("Each field is sent to your organisation's collector with the daemon's reports. Credentials "
                 "are never sent: only their kind and a keyed fingerprint.")
    return "\n".join(lines)


def message_line(item: Mapping[str, Any]) -> str:
    """One inbox item as a line of text."""
    name = shown(item.get("sighting_name") or str(item.get("sighting_id"))[:8])
    text = shown(item.get("text") or "")
    by = shown(item.get("sent_by") or "IT")
    mark = "" if item.get("read_at") else "new: "
    if item.get("kind") == "request":
        body = f"{by} asks you to register {name}" + (f": {text}" if text else "")
    elif item.get("kind") == "decision":
        body = f"your registration of {name} was {shown(item.get('status'))} by {by}" + (f": {text}" if text else "")
    elif item.get("kind") == "review":
        body = f"your registration of {name} is due for review" + (f": {text}" if text else "")
    elif item.get("kind") == "policy":
        # the collector's sentence names the version and the next step; without it, say the same in short
        body = text or (f"IT's policy now allows {name}: nothing to do" if item.get("status") == "governed" else
                        f"IT's policy no longer covers {name}: register it (agentroster register) or stop using it")
    elif item.get("kind") in ("notify", "remind"):
        body = f"{by} asks you to register {name}" + (f": {text}" if text else "")
    else:
        body = f"{by} asks about {name}: {text}"
    return f"#{item.get('id')} {mark}{body}"[:600]


def _registration(sid: str, statuses: Mapping[str, Any] | None, ledger: Mapping[str, Any]) -> str:
    if statuses is not None and isinstance(statuses.get(sid), Mapping):
        row = statuses[sid]
        return f"#{row.get('id')} {shown(row.get('status'))}"
    entry = ledger.get(sid)
    if isinstance(entry, Mapping):
        return f"#{entry.get('id')} sent {shown(entry.get('created_at') or '')[:10]}".rstrip()
    return "no (agentroster register ID --owner … --purpose …)"


# -- the command ------------------------------------------------------------------------------------------


def main(data_dir: Any, *, as_json: bool = False) -> int:
    """``agentroster status --mine``: through the daemon's socket, else from the data dir (root). Exit 0/1."""
    import json

    from endpoint.service.localsock import DaemonNotListening, socket_path
    from endpoint.service.registration.cli import DaemonClient
    from endpoint.service.registration.errors import RegisterError
    from endpoint.service.registration.policy import current_registrant

    who = current_registrant()
    try:
        try:
            doc = DaemonClient(socket_path(data_dir), who).call({"op": "mine"})
            doc.pop("ok", None)
        except DaemonNotListening:
            doc = direct(data_dir, who)
    except RegisterError as exc:
        print(f"agentroster status --mine: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(doc, indent=2, sort_keys=True) if as_json else render(doc))
    return 0


def direct(data_dir: Any, who: Registrant) -> dict[str, Any]:
    """The page read from the data dir itself (root, or whoever may read it), without the collector."""
    from endpoint.service.inbox import Inbox
    from endpoint.service.registration.ledger import DeviceState

    state = DeviceState.read(data_dir)
    return mine_document(who, state.sightings, state.ledger(), None, Inbox(data_dir).read()["items"])
