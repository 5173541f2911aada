"""``agentroster register``: list this user's agents, or register one (prompting for what is missing).

Through the daemon's local socket when it listens (``DaemonClient``); otherwise from the data dir
directly, which needs root. The list is rendered here too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from contract.registration import RegistrationRequest
from endpoint.service.registration.collector import fetch_statuses, send
from endpoint.service.registration.errors import (
    InvalidRegistration,
    NotEnrolled,
    NotYours,
    RegisterError,
    RegistrationRefused,
    StateUnavailable,
    UnknownSighting,
)
from endpoint.service.registration.ledger import DeviceState
from endpoint.service.registration.policy import (
    FIELD_FLAGS,
    Registrant,
    current_registrant,
    declaration,
    fold_case,
    label,
    may_register,
    missing,
    prefill,
    resolve,
    short_ids,
    shown,
    validate,
    visible_to,
)


def render_list(sightings: Sequence[Mapping[str, Any]], ledger: Mapping[str, Mapping[str, Any]],
                who: Registrant, statuses: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The registrant's sightings as a table, children under their parent, with what was registered: the
    collector's status of each registration (``statuses``, when it answered), else what was sent."""
    ids = {str(s["id"]) for s in sightings}
    shorts = short_ids(ids)
    by_parent: dict[str | None, list[Mapping[str, Any]]] = {}
    for s in sorted(sightings, key=lambda s: (str(s.get("name", "")).lower(), str(s["id"]))):
        parent = s.get("parent")
        by_parent.setdefault(parent if parent in ids else None, []).append(s)
    rows: list[tuple[str, ...]] = []

    def visit(parent: str | None, depth: int) -> None:
        for s in by_parent.get(parent, []):
            rows.append((shown(shorts[str(s["id"])]), "  " * depth + ("└ " if depth else "") + shown(s.get("name", "")),
                         shown(s.get("type", "")), shown(s.get("user") or "(machine)"),
                         _registered(ledger.get(str(s["id"])), statuses, str(s["id"]))))
            if depth < 8:
                visit(str(s["id"]), depth + 1)

    visit(None, 0)
    whose = "every user's" if who.any_user else f"{who.name}'s"
    if not rows:
        return f"no agents of {who.name or 'yours'} known to the daemon on this machine yet" \
            if not who.any_user else "no agents known to the daemon on this machine yet"
    header = ("ID", "AGENT", "TYPE", "USER", "REGISTERED")
    widths = [min(max(len(r[i]) for r in [header, *rows]), cap) for i, cap in enumerate((40, 40, 11, 14, 40))]
    lines = [f"{len(rows)} agents ({whose}) known to the daemon on this machine"]
    lines += ["  ".join(cell[:w].ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
              for row in [header, *rows]]
    lines.append("register one: agentroster register ID --owner EMAIL --purpose TEXT")
    if statuses is None:
        lines.append("REGISTERED: the registrations sent from this machine (the collector could not be asked "
                     "for their status); an admin approves or rejects them")
    else:
        lines.append("REGISTERED: each registration's status at the collector: pending (an admin will review "
                     "it), approved, rejected")
    return "\n".join(lines)



def _registered(entry: Mapping[str, Any] | None, statuses: Mapping[str, Mapping[str, Any]] | None = None,
                sighting_id: str = "") -> str:
    if statuses is not None:
        row = statuses.get(sighting_id)
        return f"#{row.get('id')} {shown(row.get('status'))[:12]}" if row else "no"
    if not entry:
        return "no"
    when = str(entry.get("created_at") or "")[:10]
    return f"#{entry.get('id')} sent" + (f" {when}" if when else "")



Ask = Callable[[str], str]



def ask_missing(fields: dict[str, Any], ask: Ask, say: Callable[[str], None]) -> bool:
    """Prompt for the required fields (and the business process) still empty; True to send."""
    while not str(fields.get("owner") or "").strip():
        fields["owner"] = ask("Owner (your email): ").strip()
    while not str(fields.get("purpose") or "").strip():
        fields["purpose"] = ask("Purpose (what the agent is for): ").strip()
    if not fields.get("business_process"):
        fields["business_process"] = ask("Business process (Enter to skip): ").strip()
    say(summary(fields))
    return ask("Send this registration? [Y/n] ").strip().lower() in ("", "y", "yes")



def summary(fields: Mapping[str, Any]) -> str:
    def items(name: str) -> str:
        return ", ".join(fields.get(name) or []) or "(none)"

    lines = [f"  owner:            {fields.get('owner')}", f"  purpose:          {fields.get('purpose')}",
             f"  business process: {fields.get('business_process') or '(none)'}",
             f"  providers:        {items('providers')}", f"  tools:            {items('tools')}",
             f"  data systems:     {items('data_systems')}", f"  autonomy:         {fields.get('autonomy')}"]
    return "\n".join(shown(line) for line in lines)



def provider_ids() -> list[str]:
    import signatures

    return [p.id for p in signatures.load().providers]



def main(args: Any, *, ask: Ask = input, interactive: bool | None = None) -> int:
    """``agentroster register [ID …]``: list this user's agents, or register one. Exit 0, 1 or 2.

    Through the daemon's local socket when it listens; otherwise from the data dir directly (root)."""
    from endpoint.service.localsock import DaemonNotListening, socket_path
    from endpoint.service.managed import managed_source
    from endpoint.service.reporter import ReporterError
    from endpoint.service.settings import SettingsError, load_daemon_settings

    try:  # as the daemon does: a bad managed or environment value is the default, with a warning
        loaded = load_daemon_settings({"data_dir": args.data_dir}, managed=managed_source())
    except SettingsError as exc:
        return _fail(str(exc), 2)
    for problem in loaded.problems:
        print(f"agentroster register: warning: {problem}", file=sys.stderr)
    settings = loaded.settings
    who = current_registrant()
    interactive = sys.stdin.isatty() if interactive is None else interactive
    try:
        daemon = DaemonClient(socket_path(settings.data_dir), who)
        try:
            return daemon.run(args, ask=ask, interactive=interactive)
        except DaemonNotListening:
            pass
        return _direct(args, settings, who, ask=ask, interactive=interactive)
    except EOFError:
        return _fail("not sent (input ended)", 1)
    except InvalidRegistration as exc:
        return _fail(str(exc), 2)
    except (RegisterError, ReporterError) as exc:
        return _fail(str(exc), 1)



def _fail(message: str, code: int = 1) -> int:
    print(f"agentroster register: {message}", file=sys.stderr)
    return code



def _fields(args: Any, sighting: Mapping[str, Any], *, ask: Ask, interactive: bool) -> dict[str, Any] | None:
    """The registration from the flags and the prefill, asking for what is missing at a terminal; None
    when the person said no."""
    fields = declaration(sighting, prefill(sighting, provider_ids()), owner=args.owner, purpose=args.purpose,
                         business_process=args.business_process, providers=args.provider, tools=args.tool,
                         data_systems=args.data_system, autonomy=args.autonomy)
    if missing(fields) and interactive:
        print(f"Registering {label(sighting)}, {shown(sighting.get('type'))}, "
              f"user {shown(sighting.get('user') or '(machine)')}")
        if not ask_missing(fields, ask, print):
            return None
    elif missing(fields):
        raise InvalidRegistration(" and ".join(FIELD_FLAGS[g] for g in missing(fields))
                                  + " required (stdin is not a terminal, so nothing is asked)")
    return fields



def _done(sighting: Mapping[str, Any], request: RegistrationRequest, answer: Mapping[str, Any]) -> int:
    status = answer.get("status", "pending")
    note = "pending: an admin will review it" if status == "pending" else shown(status)
    print(f"registration #{answer['id']} of {label(sighting)}: {note}")
    print(summary(request))
    return 0



def _direct(args: Any, settings: Any, who: Registrant, *, ask: Ask, interactive: bool) -> int:
    """The data dir read here (root, or whoever may read it), the registration sent with its key."""
    state = DeviceState.read(settings.data_dir)
    mine = visible_to(state.sightings, who, fold_case=fold_case())
    if args.id is None:
        statuses = None
        if mine and state.collector_url:
            try:
                key = state.device_key()
            except RegisterError:
                key = ""
            if key:
                statuses = fetch_statuses(collector_url=state.collector_url, key=key, ca_bundle=settings.ca_bundle)
        print(render_list(mine, state.ledger(), who, statuses))
        return 0
    sighting = resolve(args.id, state.sightings)
    may_register(sighting, who, fold_case=fold_case())
    key = state.device_key()
    fields = _fields(args, sighting, ask=ask, interactive=interactive)
    if fields is None:
        return _fail("not sent", 1)
    request = validate(fields)
    assert state.collector_url is not None
    answer = send(request, collector_url=state.collector_url, key=key, ca_bundle=settings.ca_bundle)
    try:
        state.remember(request["sighting_id"], answer)
    except OSError as exc:
        print(f"agentroster register: sent, but not noted locally ({exc.strerror})", file=sys.stderr)
    return _done(sighting, request, answer)



_ERRORS: dict[str, type[RegisterError]] = {
    "invalid": InvalidRegistration, "not_yours": NotYours, "unknown_sighting": UnknownSighting,
    "not_enrolled": NotEnrolled, "state": StateUnavailable, "refused": RegistrationRefused}



class DaemonClient:
    """``agentroster register`` through the daemon's local socket: the daemon decides who the caller is
    (root under sudo asks it to act for the user who ran sudo) and holds the key."""

    def __init__(self, path: Path, who: Registrant) -> None:
        self.path = path
        self.extra = {"as_user": who.name} if who.via_sudo and who.name else {}

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        from endpoint.service.localsock import DaemonNotListening, call
        from endpoint.service.reporter import CollectorUnreachable

        try:
            answer = call(self.path, {**request, **self.extra})
        except DaemonNotListening:
            raise
        except OSError as exc:
            text = str(exc) if not isinstance(exc, TimeoutError) else "no answer in time"
            raise RegisterError(f"the daemon's socket {self.path}: {text}") from None
        if answer["ok"]:
            return answer
        code, message = str(answer.get("code")), shown(answer.get("error") or "refused")[:500]
        if code == "unsupported":  # the daemon cannot tell who we are on this OS: read the data dir instead
            raise DaemonNotListening(message)
        if code == "unreachable":
            raise CollectorUnreachable(message)
        if code in ("busy", "timeout", "too_large", "bad_request", "internal"):
            message = f"the daemon refused the request ({code}): {message}"
        raise _ERRORS.get(code, RegisterError)(message)

    def run(self, args: Any, *, ask: Ask, interactive: bool) -> int:
        if args.id is None:
            listing = self.call({"op": "list"})
            who = Registrant(listing.get("user"), any_user=bool(listing.get("any_user")))
            sightings = [s for s in listing.get("sightings") or () if isinstance(s, dict) and s.get("id")]
            ledger, statuses = listing.get("ledger"), listing.get("statuses")
            print(render_list(sightings, ledger if isinstance(ledger, dict) else {}, who,
                              statuses if isinstance(statuses, dict) else None))
            return 0
        sighting = self.call({"op": "show", "id": args.id})["sighting"]
        fields = _fields(args, sighting, ask=ask, interactive=interactive)
        if fields is None:
            return _fail("not sent", 1)
        request = validate(fields)
        answer = self.call({"op": "register", **request})["registration"]
        if not isinstance(answer, dict) or not isinstance(answer.get("id"), int):
            raise RegisterError("the daemon answered without a registration")
        return _done(sighting, request, answer)
