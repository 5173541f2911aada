"""Lays out the macOS package from a frozen endpoint folder: what ``pkgbuild`` and ``productbuild`` take.

Under ``out/macos/`` (any OS; the .pkg itself is made on macOS by .github/workflows/macos.yml):

- ``root/``: the pkg payload, installed at ``/``:
  ``usr/local/agentroster/`` (the frozen folder, plus ``uninstall.sh``),
  ``usr/local/bin/agentroster`` (a link to it, for admins and MDM scripts), and
  ``Library/LaunchDaemons/dev.agentroster.endpoint.plist`` (root:wheel 0644);
  with the tray companion: ``usr/local/agentroster/companion/agentroster-companion.app`` (its own frozen
  bundle, bundle id ``dev.agentroster.companion``) and ``Library/LaunchAgents/dev.agentroster.companion.plist``,
  which starts it in each user's GUI (Aqua) session at login, once: a user who quits it is not overruled;
- ``scripts/preinstall`` (refuses a macOS or CPU this build does not run on) and
  ``scripts/postinstall`` (the data and log directories, then ``launchctl bootstrap``);
- ``uninstall.sh`` (also in the payload), ``distribution.xml`` for productbuild;
- ``profiles/``: the PPPC profile when the team id is known, the notifications profile and the Jamf
  manifest (the settings profile needs the organisation's collector URL: ``installers.macos.profiles``).

The daemon's data dir is ``/Library/Application Support/agentroster`` (``default_data_dir``): the
package never ships anything there, so an upgrade or a reinstall keeps the enrollment.
"""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import stat
import struct
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from installers.macos import profiles

LABEL = "dev.agentroster.endpoint"
PKG_IDENTIFIER = "dev.agentroster.endpoint"
INSTALL_DIR = "/usr/local/agentroster"
EXECUTABLE = f"{INSTALL_DIR}/agentroster"
LINK = "/usr/local/bin/agentroster"
#: relative, so the link is right wherever the payload root is mounted (a test's folder, a volume)
LINK_TARGET = os.path.relpath(EXECUTABLE, PurePosixPath(LINK).parent)
PLIST = f"/Library/LaunchDaemons/{LABEL}.plist"
#: the companion: its bundle id is the one the notifications profile allows (profiles.COMPANION_BUNDLE_ID)
AGENT_LABEL = profiles.COMPANION_BUNDLE_ID
AGENT_PLIST = f"/Library/LaunchAgents/{AGENT_LABEL}.plist"
COMPANION_DIR = f"{INSTALL_DIR}/companion"
COMPANION_APP = "agentroster-companion.app"
COMPANION_EXECUTABLE = f"{COMPANION_DIR}/{COMPANION_APP}/Contents/MacOS/agentroster-companion"
DATA_DIR = "/Library/Application Support/agentroster"
LOG_DIR = "/Library/Logs/agentroster"
LOG_FILE = f"{LOG_DIR}/daemon.log"
#: the oldest macOS the package installs on (the frozen Python's own minimum is older)
MIN_MACOS = "12.0"
#: launchd waits this long between two starts of a daemon that keeps exiting
THROTTLE_INTERVAL_S = 30
SCRIPTS = Path(__file__).with_name("scripts")

_VERSION_RE = re.compile(r"^[0-9]+(\.[0-9]+){0,3}([.+-]?[A-Za-z0-9]+){0,3}$")
_IDENTITY_TEAM_RE = re.compile(r"\(([A-Z0-9]{10})\)\s*$")
_TOKEN_RE = re.compile(r"@([A-Z_]+)@")
# Mach-O CPU types (mach/machine.h): what the frozen executable runs on
_CPU_TYPES = {0x01000007: "x86_64", 0x0100000C: "arm64"}
_ALL_ARCHS = ("arm64", "x86_64")


class BuildError(ValueError):
    """The package cannot be laid out from this input; the message says what to fix."""


def launchd_plist() -> dict[str, Any]:
    """The LaunchDaemon: started at boot and kept alive, at most once every THROTTLE_INTERVAL_S."""
    return {
        "Label": LABEL,
        "ProgramArguments": [EXECUTABLE, "daemon"],
        "RunAtLoad": True,
        # always restarted: a daemon that stops (killed, crashed, exited) leaves the device unwatched
        "KeepAlive": True,
        "ThrottleInterval": THROTTLE_INTERVAL_S,
        # lower CPU and I/O priority: an inventory agent never competes with the employee's work
        "ProcessType": "Background",
        "StandardOutPath": LOG_FILE,
        "StandardErrorPath": LOG_FILE,
        "WorkingDirectory": "/",
        "Umask": 0o077,  # the files the daemon makes (state, spool) are root's alone
        "ExitTimeOut": 20,
    }


def launch_agent_plist() -> dict[str, Any]:
    """The LaunchAgent: the companion in each user's GUI session, started at login and not kept alive."""
    return {
        "Label": AGENT_LABEL,
        "ProgramArguments": [COMPANION_EXECUTABLE],
        # a login window or an ssh session has no menu bar to put the icon in
        "LimitLoadToSessionType": "Aqua",
        "RunAtLoad": True,
        # an employee who quits the companion has quit it until the next login
        "KeepAlive": False,
        # a user-facing app: launchd does not throttle it as a background job
        "ProcessType": "Interactive",
    }


def _check_companion(companion: Path, archs: tuple[str, ...]) -> None:
    """Refuses a companion folder the package must not ship: a Mac one holds the application bundle, with
    the CPU types of the endpoint; another OS's (a layout check) holds its bare executable."""
    if not companion.is_dir():
        raise BuildError(f"{companion}: not a folder; give the frozen companion folder (python -m installers freeze)")
    exe = companion / COMPANION_APP / "Contents" / "MacOS" / "agentroster-companion"
    bare = companion / "agentroster-companion"
    if not exe.is_file() and not bare.is_file():
        raise BuildError(f"{companion}: neither {COMPANION_APP} nor agentroster-companion in it; is it the frozen "
                         "companion folder?")
    for dirpath, dirnames, filenames in os.walk(companion):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if path.is_symlink():
                target = os.readlink(path)
                if os.path.isabs(target) or not Path(dirpath, target).resolve().is_relative_to(companion.resolve()):
                    raise BuildError(f"{path}: a link that leaves the companion folder ({target}); not packaged")
    got = macho_archs(exe) if exe.is_file() else None
    if got is not None and not set(archs) <= set(got):
        raise BuildError(f"{exe}: built for {', '.join(got)}, the endpoint for {', '.join(archs)}: freeze both "
                         "on the same Mac")


def macho_archs(path: Path) -> tuple[str, ...] | None:
    """The CPU types a Mach-O executable (thin or universal) holds; ``None`` for anything else (a script)."""
    with path.open("rb") as f:
        head = f.read(4096)
    if len(head) < 8:
        return None
    magic_le = struct.unpack_from("<I", head)[0]
    if magic_le in (0xFEEDFACF, 0xFEEDFACE):  # thin, little-endian (every Mac CPU since 2006)
        cpu = struct.unpack_from("<I", head, 4)[0]
        return (_CPU_TYPES.get(cpu, f"cpu-{cpu:#x}"),)
    magic_be, count = struct.unpack_from(">II", head)
    if magic_be in (0xCAFEBABE, 0xCAFEBABF) and 0 < count <= 8:  # universal: a big-endian table of slices
        size = 20 if magic_be == 0xCAFEBABE else 32
        archs = []
        for i in range(count):
            offset = 8 + i * size
            if offset + 4 > len(head):
                return None
            cpu = struct.unpack_from(">I", head, offset)[0]
            archs.append(_CPU_TYPES.get(cpu, f"cpu-{cpu:#x}"))
        return tuple(sorted(set(archs)))
    return None


def _check_payload(payload: Path) -> tuple[str, ...]:
    """Refuses a frozen folder the package must not ship; returns the CPU types it runs on."""
    if not payload.is_dir():
        raise BuildError(f"{payload}: not a folder; give the frozen endpoint folder (./dev package macos freezes it)")
    exe = payload / "agentroster"
    try:
        st = exe.lstat()
    except FileNotFoundError:
        raise BuildError(f"{payload}: no executable named agentroster at its top; is it the frozen endpoint?") from None
    if not stat.S_ISREG(st.st_mode) or not st.st_mode & stat.S_IXUSR:
        raise BuildError(f"{exe}: must be an executable regular file (not a link or folder)")
    if (payload / "uninstall.sh").exists():
        raise BuildError(f"{payload}: already has an uninstall.sh; the package puts its own there")
    top = payload.resolve()
    for dirpath, dirnames, filenames in os.walk(payload):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                target = os.readlink(path)
                # a frozen folder's links (Python.framework's Versions/Current…) stay inside it
                if os.path.isabs(target) or not Path(dirpath, target).resolve().is_relative_to(top):
                    raise BuildError(f"{path}: a link that leaves the payload ({target}); not packaged")
            elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise BuildError(f"{path}: neither a file, a folder nor a link; not packaged")
    archs = macho_archs(exe)
    if archs is None:
        return _ALL_ARCHS  # not a Mach-O file (a test's script): nothing to refuse
    unknown = [a for a in archs if a not in _ALL_ARCHS]
    if unknown:
        raise BuildError(f"{exe}: built for {', '.join(unknown)}, which no supported Mac runs")
    return archs


def _normalise_modes(tree: Path, as_root: bool) -> None:
    """0755 for folders and executables, 0644 for the rest, no setuid/setgid; root:wheel when we can."""
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in [*dirnames, *filenames, ""]:
            path = Path(dirpath, name) if name else Path(dirpath)
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                if as_root:
                    os.lchown(path, 0, 0)
                continue
            executable = stat.S_ISDIR(st.st_mode) or st.st_mode & stat.S_IXUSR
            path.chmod(0o755 if executable else 0o644)
            if as_root:
                os.lchown(path, 0, 0)  # gid 0 is wheel on macOS; pkgbuild --ownership recommended does the same


def _fill(template: str, values: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise BuildError(f"a script template names @{name}@, which build.py does not fill")
        return values[name]

    return _TOKEN_RE.sub(one, template)


def distribution_xml(version: str, archs: tuple[str, ...], component: str) -> bytes:
    """productbuild's distribution: the macOS and CPU checks Installer shows with its own message, one
    hidden choice holding the component package."""
    gui = ET.Element("installer-gui-script", minSpecVersion="2")
    ET.SubElement(gui, "title").text = "agentroster"
    ET.SubElement(gui, "options", {"customize": "never", "require-scripts": "false",
                                   "hostArchitectures": ",".join(archs)})
    ET.SubElement(gui, "domains", enable_anywhere="false", enable_currentUserHome="false",
                  enable_localSystem="true")
    check = ET.SubElement(ET.SubElement(gui, "volume-check"), "allowed-os-versions")
    ET.SubElement(check, "os-version", min=MIN_MACOS)
    outline = ET.SubElement(gui, "choices-outline")
    ET.SubElement(outline, "line", choice=PKG_IDENTIFIER)
    choice = ET.SubElement(gui, "choice", id=PKG_IDENTIFIER, visible="false", title="agentroster")
    ET.SubElement(choice, "pkg-ref", id=PKG_IDENTIFIER)
    ref = ET.SubElement(gui, "pkg-ref", id=PKG_IDENTIFIER, version=version, onConclusion="none")
    ref.text = component
    ET.indent(gui)
    text: bytes = ET.tostring(gui, encoding="utf-8", xml_declaration=True)
    return text + b"\n"


def team_from_identity(signing_identity: str | None, team_id: str | None) -> str | None:
    """The team id given, or read from "Developer ID Application: Name (TEAMID)"; they must agree."""
    from_identity = None
    if signing_identity:
        found = _IDENTITY_TEAM_RE.search(signing_identity)
        from_identity = found.group(1) if found else None
    if team_id and from_identity and team_id != from_identity:
        raise BuildError(f"the team id {team_id} is not the one in the signing identity ({from_identity})")
    return team_id or from_identity


def build(payload: Path, out: Path, version: str, *, team_id: str | None = None,
          signing_identity: str | None = None, companion: Path | None = None) -> list[Path]:
    """Writes the pkg root, scripts, distribution and profiles under ``out/macos``; returns what it wrote."""
    if not _VERSION_RE.match(version) or len(version) > 64:
        raise BuildError(f"the version {version!r} is not one Installer compares (such as 1.4.2 or 1.4.2b1)")
    team = team_from_identity(signing_identity, team_id)
    if team is not None:
        try:
            profiles.code_requirement(team)  # a bad team id is refused before anything is written
        except profiles.ProfileError as exc:
            raise BuildError(str(exc)) from None
    archs = _check_payload(payload)
    if companion is not None:
        _check_companion(companion, archs)
    values = {"AGENT_LABEL": AGENT_LABEL, "AGENT_PLIST": AGENT_PLIST,"VERSION": version, "MIN_MACOS": MIN_MACOS, "ARCHS": " ".join(archs), "LABEL": LABEL,
              "PKG_ID": PKG_IDENTIFIER, "PLIST": PLIST, "INSTALL_DIR": INSTALL_DIR, "LINK": LINK,
              "LINK_TARGET": LINK_TARGET, "DATA_DIR": DATA_DIR, "LOG_DIR": LOG_DIR}
    texts = {name: _fill((SCRIPTS / name).read_text(encoding="utf-8"), values)
             for name in ("preinstall", "postinstall", "uninstall.sh")}
    out = out / "macos"  # dist/ holds every format's output
    out.mkdir(parents=True, exist_ok=True)
    as_root = os.geteuid() == 0
    root, scripts, profile_dir = out / "root", out / "scripts", out / "profiles"
    for old in (root, scripts, profile_dir):  # a rebuild starts clean: nothing stale is packaged
        if old.is_symlink() or old.is_file():
            old.unlink()
        elif old.exists():
            shutil.rmtree(old)

    install_dir = root / INSTALL_DIR.lstrip("/")
    install_dir.parent.mkdir(parents=True)
    shutil.copytree(payload, install_dir, symlinks=True)
    (install_dir / "uninstall.sh").write_text(texts["uninstall.sh"], encoding="utf-8")
    (install_dir / "uninstall.sh").chmod(0o755)

    link = root / LINK.lstrip("/")
    link.parent.mkdir(parents=True)
    link.symlink_to(LINK_TARGET)

    daemon_plist = root / PLIST.lstrip("/")
    daemon_plist.parent.mkdir(parents=True)
    daemon_plist.write_bytes(plistlib.dumps(launchd_plist(), fmt=plistlib.FMT_XML, sort_keys=True))
    if companion is not None:
        shutil.copytree(companion, root / COMPANION_DIR.lstrip("/"), symlinks=True)
        agent_plist = root / AGENT_PLIST.lstrip("/")
        agent_plist.parent.mkdir(parents=True)
        agent_plist.write_bytes(plistlib.dumps(launch_agent_plist(), fmt=plistlib.FMT_XML, sort_keys=True))
    _normalise_modes(root, as_root)

    scripts.mkdir()
    for name in ("preinstall", "postinstall"):
        target = scripts / name
        target.write_text(texts[name], encoding="utf-8")
        target.chmod(0o755)
    uninstall = out / "uninstall.sh"
    uninstall.write_text(texts["uninstall.sh"], encoding="utf-8")
    uninstall.chmod(0o755)

    distribution = out / "distribution.xml"
    distribution.write_bytes(distribution_xml(version, archs, "agentroster-component.pkg"))

    profile_dir.mkdir()
    written = [root, scripts, uninstall, distribution]
    try:
        written += profiles.write_all(profile_dir, "dev.agentroster", team_id=team, organization="agentroster")
    except profiles.ProfileError as exc:
        raise BuildError(str(exc)) from None
    return written
