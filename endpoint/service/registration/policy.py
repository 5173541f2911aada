"""Who registers, which sighting, what is prefilled and what the collector will take: the pure rules of a
registration (and who is running this command).

Under sudo the registrant is the user who ran sudo, and may register only their own sightings; root
itself may register any. Ids are matched by a unique prefix of at least ``MIN_PREFIX`` characters.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from contract.registration import RegistrationRequest
from endpoint.scan.platforms import PLATFORM
from endpoint.service.registration.errors import InvalidRegistration, NotYours, UnknownSighting

MIN_PREFIX = 4  # the shortest id prefix accepted for ID

SHORT_ID = 8  # characters of an id shown in the list (longer where two would clash)

FIELD_FLAGS = {"sighting_id": "ID", "owner": "--owner", "purpose": "--purpose",
               "business_process": "--business-process", "providers": "--provider", "tools": "--tool",
               "data_systems": "--data-system", "autonomy": "--autonomy"}



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
    """Whether two user names are one user. With ``fold_case`` (macOS and Windows) case does not count, and
    a name with a domain matches a bare one by its account part: Windows names a process's user
    ``DOMAIN\\name`` and a home folder's user ``name``."""
    if not a or not b:
        return False
    if not fold_case:
        return a == b
    a, b = a.casefold(), b.casefold()
    if a == b:
        return True
    if ("\\" in a) != ("\\" in b):
        return a.rpartition("\\")[2] == b.rpartition("\\")[2]
    return False



def label(sighting: Mapping[str, Any]) -> str:
    return shown(f"{sighting.get('name') or '(unnamed)'} ({str(sighting.get('id', ''))[:SHORT_ID]})")



def may_register(sighting: Mapping[str, Any], who: Registrant, *, fold_case: bool = False) -> None:
    """Raise ``NotYours`` unless ``who`` may register ``sighting``."""
    if who.any_user:
        return
    owner = sighting.get("user")
    if not owner:
        raise NotYours(f"{label(sighting)} is machine-wide (no user): only root may register it")
    if not same_user(str(owner), who.name, fold_case=fold_case):
        raise NotYours(f"{label(sighting)} belongs to {shown(owner)}, not to {who.name or 'you'}: "
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



def current_registrant() -> Registrant:
    if PLATFORM == "windows":
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
    return PLATFORM in ("macos", "windows")  # user names are case-insensitive there
