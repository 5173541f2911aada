"""User homes under a scan root, and the expansion of signature path templates inside them.

A scan root is a whole filesystem as this machine sees it: ``/`` on a live machine, or a mounted
image or test tree. Homes are found where each OS keeps them (``home/*`` and ``root`` on Linux,
``Users/*`` on macOS and Windows, ``mnt/c/Users/*`` for a Windows disk under WSL), and a home's
layout says which OS's templates apply to it.
"""

from __future__ import annotations

import glob
import os
from typing import NamedTuple

from endpoint.scan.platforms import is_this_machine

Platform = str  # "linux" | "macos" | "windows"

_NOT_HOMES = frozenset({"shared", "public", "default", "default user", "all users", "defaultapppool",
                        "guest", "lost+found", ".localized"})


class Home(NamedTuple):
    path: str  # where it is on this machine, e.g. /mnt/image/home/alice
    user: str
    platforms: frozenset[Platform]
    display: str  # where it is on the scanned system, e.g. /home/alice


def display_path(path: str, root: str) -> str:
    """The path as the scanned system names it (the scan root's prefix removed)."""
    if is_this_machine(root):  # on Windows with one kind of slash (a template's are "/"): C:\Users\a\.cursor\mcp.json
        return path if os.sep == "/" else os.path.normpath(path)
    rel = os.path.relpath(path, root)
    return "/" + rel if not rel.startswith("..") else path


def _layout(path: str, default: frozenset[Platform]) -> frozenset[Platform]:
    found = set()
    if os.path.isdir(os.path.join(path, "Library")):
        found.add("macos")
    if os.path.isdir(os.path.join(path, "AppData")):
        found.add("windows")
    return frozenset(found) or default


def _owner(path: str, fallback: str, root: str) -> str:
    if root not in ("", "/"):
        return fallback  # uids in a mounted image do not map to this machine's users
    import pwd  # here: Windows has none (a root there is never "/": a home is named by its folder, above)

    try:
        return pwd.getpwuid(os.stat(path).st_uid).pw_name
    except (KeyError, OSError):
        return fallback


def find_homes(root: str, extra: list[str] | None = None, *, only_extra: bool = False) -> list[Home]:
    """Every user home under ``root``, plus ``extra`` directories taken as homes (with ``only_extra``,
    those alone)."""
    homes: dict[str, Home] = {}

    def add(path: str, user: str, platforms: frozenset[Platform]) -> None:
        real = os.path.realpath(path)
        if real in homes or not os.path.isdir(real):
            return
        homes[real] = Home(real, user, platforms, display_path(real, root))

    for parent, default in () if only_extra else (("home", frozenset({"linux"})),
                                                   ("Users", frozenset({"macos", "windows"})),
                                                   ("mnt/c/Users", frozenset({"windows"}))):
        base = os.path.join(root, parent)
        try:
            entries = sorted(os.scandir(base), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.lower() in _NOT_HOMES or entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                add(entry.path, _owner(entry.path, entry.name, root), _layout(entry.path, default))
    if not only_extra:
        add(os.path.join(root, "root"), "root", _layout(os.path.join(root, "root"), frozenset({"linux"})))
    if root in ("", "/") and not only_extra:
        add(os.path.join(root, "var/root"), "root", frozenset({"macos"}))
    for path in extra or []:
        add(path, _owner(path, os.path.basename(path.rstrip("/")) or "root", "/"),
            _layout(path, frozenset({"linux", "macos", "windows"})))
    return list(homes.values())


def template_platforms(template: str, declared: list[str]) -> frozenset[Platform]:
    """The OSes a path template applies to: as declared, else as its shape says."""
    if declared:
        return frozenset(declared)
    if template.startswith("%"):
        return frozenset({"windows"})
    if "/Library/" in template or template.startswith("/Library") or "/Applications/" in template \
            or template.startswith("/Applications"):
        return frozenset({"macos"})
    if template.startswith("/"):
        return frozenset({"linux", "macos"})
    return frozenset({"linux", "macos", "windows"})


def is_home_template(template: str) -> bool:
    return template.startswith(("~", "%APPDATA%", "%LOCALAPPDATA%", "%USERPROFILE%"))


def expand_home_template(template: str, home: Home) -> str:
    """A home-relative template as a path on this machine (may hold ``*``: see ``existing``)."""
    for var, sub in (("~", ""), ("%USERPROFILE%", ""), ("%APPDATA%", "/AppData/Roaming"),
                     ("%LOCALAPPDATA%", "/AppData/Local")):
        if template.startswith(var):
            return home.path + sub + template[len(var):]
    raise ValueError(f"not a home template: {template}")


def expand_machine_template(template: str, root: str) -> list[str]:
    """A machine-wide template (``/etc/...``, ``%PROGRAMDATA%/...``) as paths under ``root``."""
    base = root.rstrip("/")
    for var, subs in (("%PROGRAMDATA%", ("/ProgramData", "/mnt/c/ProgramData")),
                      ("%PROGRAMFILES%", ("/Program Files", "/mnt/c/Program Files"))):
        if template.startswith(var):
            return [base + sub + template[len(var):] for sub in subs]
    if template.startswith("/"):
        return [base + template]
    raise ValueError(f"not a machine-wide template: {template}")


def existing(path: str, prefix: str) -> list[str]:
    """Paths matching ``path`` that exist, without following a final link.

    ``*`` in the part of ``path`` after ``prefix`` (the home or root, taken literally) matches within
    one component.
    """
    tail = path[len(prefix):]
    if "*" in tail:
        return sorted(glob.glob(glob.escape(prefix) + tail))
    return [path] if os.path.lexists(path) else []


#: machine-wide folders whose subfolders only administrators (and SYSTEM) can create, on a default
#: Windows install; ``%PROGRAMDATA%`` grants every user "create folders"
ADMIN_ONLY_FOLDERS = ("%PROGRAMFILES%", "%PROGRAMFILES(X86)%", "%SYSTEMROOT%", "%WINDIR%")


def trusted_policy_template(template: str) -> bool:
    """Whether a machine-wide file template may hold organisation policy on Windows (a client's
    "managed" settings that switch other settings off): only under a folder only administrators create.
    Templates that are not Windows folders (``/etc/...``, ``/Library/...``) are for the other OSes' own
    checks and pass."""
    head = template.replace("\\", "/").split("/", 1)[0].upper()
    if head.startswith("%") and head.endswith("%"):
        return head in ADMIN_ONLY_FOLDERS
    return True
