"""``agentroster register``: an employee declares one of their agents to the collector (owner, purpose,
business process, providers, tools, data systems, autonomy); an admin then approves or rejects it.

The sightings are the daemon's and the registration is sent with the device's key, both in the daemon's
root-only data dir. So a user asks the running daemon over its local socket (``endpoint/service/localsock.py``),
which knows who they are from the kernel; with no daemon listening, the command reads the data dir itself
(read-only), which needs root (``sudo agentroster register``). Under sudo the registrant is the user who
ran sudo, and may register only their own sightings; root itself may register any. The pure parts
(prefill, validation, ids, ownership, rendering) come first; the state file, the key and HTTP are at the
bottom, then the command.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from contract.registration import RegistrationRequest
from contract.scan import Sighting
from endpoint.errors import EndpointError

if TYPE_CHECKING:
    import httpx

REGISTRATIONS_PATH = "/api/v1/registrations"
LEDGER_FILE = "registrations.json"
LEDGER_SCHEMA = "agentroster.registrations/1"
LEDGER_MAX_BYTES = 4 << 20
MIN_PREFIX = 4  # the shortest id prefix accepted for ID
SHORT_ID = 8  # characters of an id shown in the list (longer where two would clash)
FIELD_FLAGS = {"sighting_id": "ID", "owner": "--owner", "purpose": "--purpose",
               "business_process": "--business-process", "providers": "--provider", "tools": "--tool",
               "data_systems": "--data-system", "autonomy": "--autonomy"}

# -- errors --------------------------------------------------------------------------------------------------


class RegisterError(EndpointError):
    """A registration could not be made; the message is one line for the person at the terminal."""

    code = "registration_failed"


class StateUnavailable(RegisterError):
    """The daemon's state cannot be read (not there yet, or root-only)."""

    code = "state_unavailable"


class NotEnrolled(RegisterError):
    """This device has no key from a collector yet."""

    code = "not_enrolled"


class UnknownSighting(RegisterError):
    """ID names no sighting the daemon knows, or more than one."""

    code = "unknown_sighting"


class NotYours(RegisterError):
    """The sighting belongs to another user (or to the machine) and the registrant is not root."""

    code = "not_yours"


class InvalidRegistration(RegisterError):
    """A field is missing or outside the collector's limits."""

    code = "invalid_registration"


class RegistrationRefused(RegisterError):
    """The collector answered 4xx: the reason it gave."""

    code = "registration_refused"


# -- pure: who registers, which sighting, what is prefilled --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Registrant:
    """Who runs the command: a user name, and whether they may register any sighting (root)."""

    name: str | None
    any_user: bool
    via_sudo: bool = False


def registrant_of(*, euid: int | None, login: str | None, env: Mapping[str, str]) -> Registrant:
    """Root under sudo acts for the user who ran sudo; root itself may register any sighting."""
    if euid == 0:
        sudo_user = env.get("SUDO_USER", "").strip()
        if sudo_user and sudo_user != "root":
            return Registrant(sudo_user, any_user=False, via_sudo=True)
        return Registrant(login or "root", any_user=True)
    return Registrant(login, any_user=False)


def same_user(a: str | None, b: str | None, *, fold_case: bool = False) -> bool:
    if not a or not b:
        return False
    return a.casefold() == b.casefold() if fold_case else a == b


def may_register(sighting: Mapping[str, Any], who: Registrant, *, fold_case: bool = False) -> None:
    """Raise ``NotYours`` unless ``who`` may register ``sighting``."""
    if who.any_user:
        return
    owner = sighting.get("user")
    if not owner:
        raise NotYours(f"{_label(sighting)} is machine-wide (no user): only root may register it")
    if not same_user(str(owner), who.name, fold_case=fold_case):
        raise NotYours(f"{_label(sighting)} belongs to {shown(owner)}, not to {who.name or 'you'}: "
                       "you may register only your own agents")


def visible_to(sightings: Iterable[Mapping[str, Any]], who: Registrant, *,
               fold_case: bool = False) -> list[Mapping[str, Any]]:
    """The sightings ``who`` may register: their own (root: all)."""
    return [s for s in sightings if who.any_user or same_user(s.get("user"), who.name, fold_case=fold_case)]


def resolve(ref: str, sightings: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The sighting whose id is ``ref`` or starts with it (at least MIN_PREFIX characters, unique)."""
    ref = ref.strip().lower()
    exact = [s for s in sightings if str(s.get("id", "")).lower() == ref]
    if exact:
        return exact[0]
    if len(ref) < MIN_PREFIX:
        raise UnknownSighting(f"{ref!r}: give at least {MIN_PREFIX} characters of the id")
    found = [s for s in sightings if str(s.get("id", "")).lower().startswith(ref)]
    if not found:
        raise UnknownSighting(f"{shown(ref)}: no such agent known to the daemon on this machine "
                              "(run `agentroster register` to list yours)")
    if len(found) > 1:
        raise UnknownSighting(f"{shown(ref)}: matches {len(found)} agents; give more of the id")
    return found[0]


def short_ids(ids: Iterable[str], *, width: int = SHORT_ID) -> dict[str, str]:
    """Each id cut to ``width`` characters, or as long as it takes to tell it from every other."""
    ids = sorted(set(ids))
    out: dict[str, str] = {}
    for i, sid in enumerate(ids):
        n = width
        for other in (ids[i - 1] if i else "", ids[i + 1] if i + 1 < len(ids) else ""):
            common = len(os.path.commonprefix([sid, other]))
            n = max(n, common + 1)
        out[sid] = sid[:n]
    return out


def prefill(sighting: Mapping[str, Any], provider_ids: Iterable[str] = ()) -> dict[str, Any]:
    """What the sighting's evidence already says: the LLM providers it calls (or holds a key for), the
    MCP servers it uses (by name, as drift compares them), and its autonomy."""
    known = set(provider_ids)
    providers = {p for e in sighting.get("endpoints") or () if isinstance(p := e.get("provider"), str) and p}
    providers |= {k for c in sighting.get("credentials") or () if isinstance(k := c.get("kind"), str) and k in known}
    tools = {n for m in sighting.get("mcp_servers") or () if isinstance(n := m.get("name"), str) and n}
    autonomous = "autonomous" in (sighting.get("flags") or ())
    return {"providers": sorted(providers), "tools": sorted(tools),
            "autonomy": "autonomous" if autonomous else "supervised"}


def declaration(sighting: Mapping[str, Any], prefilled: Mapping[str, Any], *, owner: str | None = None,
                purpose: str | None = None, business_process: str | None = None,
                providers: Sequence[str] | None = None, tools: Sequence[str] | None = None,
                data_systems: Sequence[str] | None = None, autonomy: str | None = None) -> dict[str, Any]:
    """The registration's fields: what was given wins over what was prefilled (a list given replaces)."""
    return {
        "sighting_id": str(sighting["id"]),
        "owner": owner,
        "purpose": purpose,
        "business_process": business_process or "",
        "providers": list(providers) if providers is not None else list(prefilled.get("providers", [])),
        "tools": list(tools) if tools is not None else list(prefilled.get("tools", [])),
        "data_systems": list(data_systems or []),
        "autonomy": autonomy or prefilled.get("autonomy", "supervised"),
    }


def missing(fields: Mapping[str, Any]) -> list[str]:
    """The required fields still empty."""
    return [name for name in ("owner", "purpose") if not str(fields.get(name) or "").strip()]


def validate(fields: Mapping[str, Any]) -> RegistrationRequest:
    """The request, or ``InvalidRegistration`` naming the flag and the limit."""
    gaps = missing(fields)
    if gaps:
        raise InvalidRegistration(" and ".join(FIELD_FLAGS[g] for g in gaps) + " required")
    from contract.validation import REGISTRATION_REQUEST  # pydantic's adapters: only when registering

    try:
        return REGISTRATION_REQUEST.validate_python(dict(fields))
    except ValidationError as exc:
        raise InvalidRegistration(_first_problem(exc)) from None


def _first_problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = list(first.get("loc", ()))
    flag = FIELD_FLAGS.get(str(loc[0]), str(loc[0])) if loc else "registration"
    if len(loc) > 1 and isinstance(loc[1], int):
        flag += f" #{loc[1] + 1}"
    kind, ctx = first.get("type", ""), first.get("ctx") or {}
    if kind == "string_too_short":
        why = "must not be empty"
    elif kind == "string_too_long":
        why = f"too long (at most {ctx.get('max_length')} characters)"
    elif kind == "too_long":
        why = f"too many (at most {ctx.get('max_length')})"
    elif kind == "string_pattern_mismatch":
        why = "must not contain a NUL character"
    elif kind == "literal_error":
        why = f"must be one of {ctx.get('expected', '')}"
    else:
        why = str(first.get("msg", "invalid"))
    more = len(exc.errors()) - 1
    return f"{flag}: {why}" + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


def shown(value: Any) -> str:
    """Text from a config file or a command line, safe for a terminal: no escape or control characters."""
    return "".join(c if c.isprintable() else "?" for c in str(value))


def _label(sighting: Mapping[str, Any]) -> str:
    return shown(f"{sighting.get('name') or '(unnamed)'} ({str(sighting.get('id', ''))[:SHORT_ID]})")


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


def newest_by_sighting(rows: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """The newest registration of each sighting from the collector's rows (any order), as id and status."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("id"), int) \
                or not isinstance(row.get("sighting_id"), str) or not isinstance(row.get("status"), str):
            continue
        have = out.get(row["sighting_id"])
        if have is None or row["id"] > have["id"]:
            out[row["sighting_id"]] = {"id": row["id"], "status": row["status"],
                                       "created_at": row.get("created_at")}
    return out


def parse_ledger(data: bytes, collector_url: str | None) -> dict[str, dict[str, Any]]:
    """The registrations this machine sent to ``collector_url``, by sighting id (a bad file reads as none)."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(doc, dict) or doc.get("schema") != LEDGER_SCHEMA:
        return {}
    if collector_url is None or str(doc.get("collector_url", "")).rstrip("/") != collector_url.rstrip("/"):
        return {}
    entries = doc.get("registrations")
    if not isinstance(entries, dict):
        return {}
    return {str(k): v for k, v in entries.items() if isinstance(v, dict) and isinstance(v.get("id"), int)}


def ledger_document(entries: Mapping[str, Mapping[str, Any]], collector_url: str) -> bytes:
    return json.dumps({"schema": LEDGER_SCHEMA, "collector_url": collector_url.rstrip("/"),
                       "registrations": dict(entries)}, indent=1, sort_keys=True).encode()


def refusal(status: int, body: Any) -> str:
    """One line for a 4xx answer: the collector's reason, and what it means here."""
    detail = body.get("detail") if isinstance(body, dict) else None
    reason = str(detail.get("reason")) if isinstance(detail, dict) and detail.get("reason") else f"http {status}"
    reason = reason[:100]
    if reason == "sighting_not_found":
        return ("the collector does not know this agent yet (the daemon has not reported it); "
                "try again after its next report (see `agentroster status`)")
    if reason in ("invalid_device_key", "missing_token", "invalid_token", "not_a_device_key"):
        return (f"the collector refused this device's key ({reason}): the daemon enrolls again by itself "
                "unless an admin revoked this device; try again later (see `agentroster status`)")
    if reason == "invalid_request" and isinstance(detail, dict):
        errors = detail.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            loc = [x for x in errors[0].get("loc", []) if x != "body"]
            where = FIELD_FLAGS.get(str(loc[0]), str(loc[0])) if loc else "request"
            return f"refused ({status} invalid_request): {where}: {str(errors[0].get('msg', ''))[:200]}"
    return f"refused ({status} {reason})"


# -- I/O: the daemon's state, the device key, the collector ---------------------------------------------------


def current_registrant() -> Registrant:
    if os.name != "posix":
        import getpass

        return Registrant(getpass.getuser(), any_user=_windows_admin())
    import pwd

    euid = os.geteuid()
    try:
        login: str | None = pwd.getpwuid(euid).pw_name
    except KeyError:
        login = None
    return registrant_of(euid=euid, login=login, env=os.environ)


def _windows_admin() -> bool:
    try:
        import ctypes

        return bool(ctypes.windll.shell32.IsUserAnAdmin())  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return False


def fold_case() -> bool:
    return sys.platform in ("darwin", "win32")  # user names are case-insensitive there


@dataclass
class DeviceState:
    """What the daemon's data dir says: its sightings, the collector it enrolled with, and its key."""

    data_dir: Path
    sightings: list[Sighting]
    collector_url: str | None
    device_id: str | None

    @classmethod
    def read(cls, data_dir: str | os.PathLike[str]) -> DeviceState:
        from endpoint.service.inventory import STATE_FILE, Inventory, StateError

        try:
            os.stat(Path(data_dir) / STATE_FILE)
        except PermissionError:  # a data dir this user cannot enter reads as "no state" further down
            raise StateUnavailable(_ROOT_ONLY.format(where=Path(data_dir))) from None
        except OSError:
            pass  # missing: the inventory says so
        try:
            inventory = Inventory(data_dir, readonly=True)
        except StateError as exc:
            raise StateUnavailable(_state_hint(str(exc))) from None
        try:
            meta = inventory.meta()
            sightings = inventory.stored_sightings()
        finally:
            inventory.close()
        return cls(Path(data_dir), sightings, meta.get("collector_url"), meta.get("device_id"))

    def device_key(self) -> str:
        from endpoint.service.inventory import KEY_FILE

        try:
            key = (self.data_dir / KEY_FILE).read_text(encoding="utf-8").strip()
        except (FileNotFoundError, NotADirectoryError):
            key = ""
        except PermissionError:
            raise StateUnavailable(f"{self.data_dir / KEY_FILE}: permission denied; the device key is root's: "
                                   "run `sudo agentroster register …`") from None
        if not key or not self.collector_url or not self.device_id:
            raise NotEnrolled("this device is not enrolled with a collector yet (the daemon enrolls when it "
                              "first reaches one; see `agentroster status`)")
        return key

    @property
    def ledger_path(self) -> Path:
        return self.data_dir / LEDGER_FILE

    def ledger(self) -> dict[str, dict[str, Any]]:
        """What was registered from this machine (missing, unreadable or not ours: nothing)."""
        try:
            fd = os.open(self.ledger_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return {}
        with os.fdopen(fd, "rb") as fh:
            import stat

            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return {}
            data = fh.read(LEDGER_MAX_BYTES + 1)
        return {} if len(data) > LEDGER_MAX_BYTES else parse_ledger(data, self.collector_url)

    def remember(self, sighting_id: str, answer: Mapping[str, Any]) -> None:
        """Add a registration to the ledger (written whole, then renamed; mode 0600)."""
        assert self.collector_url
        entries = self.ledger()
        entries[sighting_id] = {"id": answer.get("id"), "status": answer.get("status", "pending"),
                                "created_at": answer.get("created_at"), "owner": answer.get("owner")}
        tmp = self.ledger_path.with_name(LEDGER_FILE + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(ledger_document(entries, self.collector_url))
        os.replace(tmp, self.ledger_path)


_ROOT_ONLY = ("{where}: the daemon's state is readable by root only, and no daemon answers on its local "
              "socket; list and register your agents with `sudo agentroster register`")


def _state_hint(message: str) -> str:
    if "run as root" in message or "ermission denied" in message:
        return _ROOT_ONLY.format(where=message.split(": ")[0])
    return message


def send(request: RegistrationRequest, *, collector_url: str, key: str, ca_bundle: str | Path | None,
         timeout_s: float = 15.0, transport: httpx.BaseTransport | None = None) -> dict[str, Any]:
    """POST the registration with the device key; the collector's RegistrationPublic, or an error."""
    import httpx

    from endpoint.service.reporter import CollectorUnreachable, verify_for

    url = collector_url.rstrip("/")
    try:
        verify = verify_for(ca_bundle)
    except OSError as exc:  # missing, unreadable, or not certificates (ssl.SSLError is an OSError)
        raise CollectorUnreachable(f"the CA bundle {ca_bundle} cannot be used: "
                                   f"{exc.strerror or type(exc).__name__}") from None
    try:
        with httpx.Client(base_url=url, verify=verify, transport=transport,
                          timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)), follow_redirects=False,
                          headers={"user-agent": "agentroster-endpoint"}) as http:
            answer = http.post(REGISTRATIONS_PATH, json=request,
                               headers={"authorization": f"Bearer {key}"})
    except httpx.TimeoutException:
        raise CollectorUnreachable(f"the collector at {url} did not answer in time") from None
    except (httpx.HTTPError, OSError) as exc:  # refused, reset, TLS, a bad CA bundle
        text = (str(exc) or type(exc).__name__).splitlines()[0][:200]
        raise CollectorUnreachable(f"cannot reach the collector at {url}: {text}") from None
    try:
        body = answer.json()
    except ValueError:
        body = None
    if answer.status_code == 429 or answer.status_code >= 500:
        raise CollectorUnreachable(f"the collector at {url} is unavailable ({answer.status_code}); try again later")
    if answer.status_code != 201:
        raise RegistrationRefused(refusal(answer.status_code, body))
    if not isinstance(body, dict) or not isinstance(body.get("id"), int):
        raise CollectorUnreachable(f"the collector at {url} answered 201 without a registration")
    return body


STATUS_PAGE = 500  # the collector's largest page
STATUS_PAGES = 4  # a device with more registrations than this shows the newest ones' status


def fetch_statuses(*, collector_url: str, key: str, ca_bundle: str | Path | None, timeout_s: float = 5.0,
                   transport: httpx.BaseTransport | None = None) -> dict[str, dict[str, Any]] | None:
    """This device's registrations at the collector (``GET /api/v1/registrations`` with the device key:
    its own rows only), newest per sighting; None when it cannot be asked (down, refused, not understood)."""
    import httpx

    from endpoint.service.reporter import verify_for

    rows: list[Any] = []
    try:
        with httpx.Client(base_url=collector_url.rstrip("/"), verify=verify_for(ca_bundle), transport=transport,
                          timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)), follow_redirects=False,
                          headers={"user-agent": "agentroster-endpoint", "authorization": f"Bearer {key}"}) as http:
            for page in range(STATUS_PAGES):
                answer = http.get(REGISTRATIONS_PATH, params={"skip": page * STATUS_PAGE, "limit": STATUS_PAGE})
                if answer.status_code != 200:
                    return None
                body = answer.json()
                data = body.get("data") if isinstance(body, dict) else None
                if not isinstance(data, list):
                    return None
                rows += data
                if len(data) < STATUS_PAGE:
                    break
    except (httpx.HTTPError, OSError, ValueError):
        return None
    return newest_by_sighting(rows)


# -- the command ---------------------------------------------------------------------------------------------


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
    from endpoint.service.settings import SettingsError, load_settings

    try:
        settings, _ = load_settings({"data_dir": args.data_dir}, managed=managed_source())
    except SettingsError as exc:
        return _fail(str(exc), 2)
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
        print(f"Registering {_label(sighting)}, {shown(sighting.get('type'))}, "
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
    print(f"registration #{answer['id']} of {_label(sighting)}: {note}")
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
