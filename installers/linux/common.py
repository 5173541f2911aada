"""What the .deb and the .rpm share: the payload's checks, the files they install, the scripts' text.

A payload is the folder of the frozen endpoint with its executable ``agentroster`` at the top. Both
packages install it under ``/usr/lib/agentroster`` with a ``/usr/bin/agentroster`` link, the systemd
unit, and ``/etc/agentroster/endpoint.toml`` (every managed setting, commented out, generated from
``endpoint.service.settings_table``); with the tray companion (its own frozen folder), also
``/usr/lib/agentroster/companion/``, a ``/usr/bin/agentroster-companion`` link and the XDG autostart
entry ``/etc/xdg/autostart/agentroster-companion.desktop`` that starts it in each desktop session. The architecture and the oldest glibc the build runs on are
read from the payload's ELF files, so a package never claims a machine it cannot run on.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from endpoint.service.settings_table import MANAGED_SETTINGS, SettingDoc

NAME = "agentroster"
MAINTAINER = "agentroster maintainers <maintainers@agentroster.example.org>"
SUMMARY = "finds the AI agents on this machine and reports them to the collector"
# at most 79 characters a line (Debian's limit for a description)
DESCRIPTION = (
    "The agentroster endpoint daemon watches processes, config files and network\n"
    "calls for AI agents (coding agents, AI desktop apps, agent frameworks, local\n"
    "model runtimes and the MCP tool servers they use), fingerprints them and\n"
    "reports them to the organisation's agentroster collector. It runs as a\n"
    "systemd service with only the capabilities its sensors need."
)
LICENSE = "Apache-2.0"

INSTALL_DIR = "usr/lib/agentroster"
UNIT_PATH = "usr/lib/systemd/system/agentroster.service"
CONFIG_PATH = "etc/agentroster/endpoint.toml"
COMPANION_NAME = "agentroster-companion"
#: the companion's own frozen folder, inside the package's folder but sharing no file with the endpoint
COMPANION_DIR = f"{INSTALL_DIR}/companion"
#: a file in /etc: a conffile in the .deb and %config(noreplace) in the .rpm, so that an admin's edit
#: (Hidden=true turns it off for every user) survives an upgrade
AUTOSTART_PATH = f"etc/xdg/autostart/{COMPANION_NAME}.desktop"

FILES = Path(__file__).with_name("files")

# ELF e_machine → (Debian architecture, rpm architecture and `uname -m`)
_ELF_MACHINES = {0x3E: ("amd64", "x86_64"), 0xB7: ("arm64", "aarch64")}
_HOST_MACHINES = {"x86_64": ("amd64", "x86_64"), "amd64": ("amd64", "x86_64"),
                  "aarch64": ("arm64", "aarch64"), "arm64": ("arm64", "aarch64")}
_SHARED_LIBRARY = re.compile(r"\.so(\.[0-9.]+)?$")
_GLIBC_SYMBOL_VERSION = re.compile(rb"GLIBC_(\d+)\.(\d+)(?:\.\d+)?\x00")
#: The libraries the companion's Qt takes from the desktop (PyInstaller bundles what the build machine
#: has; these it must not, or cannot): soname → the Debian package that has it. The packages recommend
#: them (a server without a desktop installs the package without them; the companion never starts
#: there). A soname the companion needs that is neither in its folder, nor glibc's, nor here stops the
#: build: add it here.
DESKTOP_LIBRARIES: dict[str, str] = {
    "libEGL.so.1": "libegl1", "libGL.so.1": "libgl1", "libOpenGL.so.0": "libopengl0",
    "libdbus-1.so.3": "libdbus-1-3", "libfontconfig.so.1": "libfontconfig1", "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0", "libgthread-2.0.so.0": "libglib2.0-0",
    "libwayland-client.so.0": "libwayland-client0", "libwayland-cursor.so.0": "libwayland-cursor0",
    "libwayland-egl.so.1": "libwayland-egl1", "libX11.so.6": "libx11-6", "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb.so.1": "libxcb1", "libxcb-cursor.so.0": "libxcb-cursor0", "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0", "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0", "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0", "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon.so.0": "libxkbcommon0", "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
}
#: glibc's own libraries: the libc6 (glibc) dependency covers them
_GLIBC_LIBRARIES = re.compile(r"(ld-linux[-\w.]*|lib(c|m|dl|pthread|rt|util|resolv)\.so\.\d+)")
_ELF_NEEDED = 1  # DT_NEEDED

# Debian and rpm both take this: a digit first, then letters, digits and . + ~ (no "-": it would
# split off a Debian revision or an rpm release).
_VERSION = re.compile(r"[0-9][0-9A-Za-z.+~]*")


class PackageError(Exception):
    """The package cannot be built; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class Payload:
    path: Path
    deb_arch: str
    rpm_arch: str
    #: the newest glibc symbol version the payload's ELF files need, "" when none (no ELF file)
    min_glibc: str
    #: it holds ELF files (a real frozen build, not a test payload of scripts)
    has_elf: bool
    #: the frozen companion's folder (``agentroster-companion`` at its top), or None: not shipped
    companion: Path | None = None


def check_version(version: str) -> str:
    if not _VERSION.fullmatch(version):
        raise PackageError(f"version {version!r} cannot be a package version: it must start with a digit "
                           "and hold only letters, digits and . + ~ (e.g. 1.4.0 or 1.4.0~rc1)")
    return version


def inspect_payload(payload: Path, companion: Path | None = None) -> Payload:
    """Check the payload folder (and the companion's, when given) and read their architecture and glibc
    needs from their ELF files.

    A payload with no ELF file (a test payload of scripts) is built for this machine's architecture."""
    exe = payload / NAME
    if not payload.is_dir():
        raise PackageError(f"{payload}: the payload folder does not exist (freeze the endpoint first: ./dev package)")
    if exe.is_symlink() or not exe.is_file() or not os.access(exe, os.X_OK):
        raise PackageError(f"{exe}: the payload must hold an executable file named {NAME} at its top")
    if (payload / "companion").exists():
        raise PackageError(f"{payload}: already has a companion folder; the package puts the companion there itself")
    folders = [payload]
    if companion is not None:
        companion_exe = companion / COMPANION_NAME
        if not companion.is_dir() or companion_exe.is_symlink() or not companion_exe.is_file() \
                or not os.access(companion_exe, os.X_OK):
            raise PackageError(f"{companion}: not a frozen companion folder (an executable {COMPANION_NAME} at its "
                               "top): python -m installers freeze makes it")
        folders.append(companion)
    machines: dict[int, Path] = {}
    glibc = (0, 0)
    for folder, path in sorted((f, p) for f in folders for p in f.rglob("*")):
        if path.is_symlink():
            _check_link(folder, path)
            continue
        if not path.is_file():
            continue
        data = path.read_bytes()
        if data[:4] != b"\x7fELF" or len(data) < 20:
            continue
        machine = int.from_bytes(data[18:20], "little" if data[5] == 1 else "big")  # EI_DATA, e_machine
        machines.setdefault(machine, path)
        for match in _GLIBC_SYMBOL_VERSION.finditer(data):
            glibc = max(glibc, (int(match[1]), int(match[2])))
    if len(machines) > 1:
        found = ", ".join(f"{p.relative_to(payload)} (ELF machine {m:#x})" for m, p in machines.items())
        raise PackageError(f"{payload}: the payload mixes architectures: {found}; freeze it again on one machine")
    if machines:
        (machine, where), = machines.items()
        if machine not in _ELF_MACHINES:
            raise PackageError(f"{where}: ELF machine {machine:#x} is not supported; "
                               "the packages are built for x86_64 and aarch64")
        deb_arch, rpm_arch = _ELF_MACHINES[machine]
    else:
        host = platform.machine()
        if host not in _HOST_MACHINES:
            raise PackageError(f"this machine is {host}; the packages are built for x86_64 and aarch64")
        deb_arch, rpm_arch = _HOST_MACHINES[host]
    min_glibc = f"{glibc[0]}.{glibc[1]}" if glibc > (0, 0) else ""
    return Payload(payload, deb_arch, rpm_arch, min_glibc, bool(machines), companion)


def desktop_libraries(companion: Path | None) -> list[str]:
    """The sonames the companion's ELF files need that the desktop provides (DESKTOP_LIBRARIES), sorted;
    none without a companion or without ELF files (a test's stand-in)."""
    if companion is None:
        return []
    bundled = {p.name for p in companion.rglob("*")}
    wanted: set[str] = set()
    for path in sorted(companion.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        with open(path, "rb") as fh:
            if fh.read(4) != b"\x7fELF":
                continue
        for name in elf_needed(path.read_bytes()):
            if name in bundled or _GLIBC_LIBRARIES.fullmatch(name):
                continue
            if name not in DESKTOP_LIBRARIES:
                raise PackageError(f"{path}: needs {name}, which is neither in the companion's folder nor a library "
                                   "the packages know a desktop provides: add it to DESKTOP_LIBRARIES in "
                                   "installers/linux/common.py with the Debian package that has it")
            wanted.add(name)
    return sorted(wanted)


def elf_needed(data: bytes) -> list[str]:
    """The DT_NEEDED names of a 64-bit little-endian ELF file (x86_64, aarch64), read from its dynamic
    section; [] for anything else or a file without one."""
    import struct

    if len(data) < 64 or data[4] != 2 or data[5] != 1:  # ELFCLASS64, ELFDATA2LSB
        return []
    try:
        return _dynamic_needed(data)
    except (struct.error, ValueError, IndexError):  # a truncated or odd file: no names rather than a crash
        return []


def _dynamic_needed(data: bytes) -> list[str]:
    import struct

    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)
                if shoff + (i + 1) * shentsize <= len(data)]
    names: list[str] = []
    for _name, kind, _flags, _addr, offset, size, link, _info, _align, entsize in sections:
        if kind != 6 or not entsize or link >= len(sections):  # SHT_DYNAMIC; its strings: sections[link]
            continue
        strings_offset = sections[link][4]
        for at in range(offset, min(offset + size, len(data) - 15), entsize):
            tag, value = struct.unpack_from("<qQ", data, at)
            if tag == 0:
                break
            if tag == _ELF_NEEDED:
                start = strings_offset + value
                names.append(data[start:data.index(b"\0", start)].decode("ascii", "replace"))
    return names


def _check_link(payload: Path, link: Path) -> None:
    target = os.readlink(link)
    resolved = (link.parent / target).resolve()
    if os.path.isabs(target) or not resolved.is_relative_to(payload.resolve()):
        raise PackageError(f"{link}: a symlink to {target}, outside the payload; the package would install it "
                           "pointing anywhere (freeze again without it)")


def stage(payload: Payload, root: Path) -> None:
    """Lay out under ``root`` every file both packages install, with the modes they install with."""
    install_dir = root / INSTALL_DIR
    shutil.copytree(payload.path, install_dir, symlinks=True)
    if payload.companion is not None:
        shutil.copytree(payload.companion, root / COMPANION_DIR, symlinks=True)
    for path in [install_dir, *install_dir.rglob("*")]:
        if path.is_symlink():
            continue
        executable = path.is_dir() or (path.stat().st_mode & stat.S_IXUSR and not _SHARED_LIBRARY.search(path.name))
        # root-owned and readable by all; executable where the build made it so, but for shared
        # libraries, which are loaded, never run
        path.chmod(0o755 if executable else 0o644)
    bin_link = root / "usr/bin" / NAME
    bin_link.parent.mkdir(parents=True, exist_ok=True)
    bin_link.symlink_to(f"../lib/{NAME}/{NAME}")
    if payload.companion is not None:
        (root / "usr/bin" / COMPANION_NAME).symlink_to(f"../lib/{NAME}/companion/{COMPANION_NAME}")
        autostart = root / AUTOSTART_PATH
        autostart.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FILES / f"{COMPANION_NAME}.desktop", autostart)
        autostart.chmod(0o644)
    unit = root / UNIT_PATH
    unit.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FILES / "agentroster.service", unit)
    unit.chmod(0o644)
    config = root / CONFIG_PATH
    config.parent.mkdir(parents=True, exist_ok=True)
    config.parent.chmod(0o755)
    config.write_text(endpoint_toml(), encoding="utf-8")
    # it may name the collector; the enroll secret itself goes in /etc/agentroster/enroll-secret
    config.chmod(0o600)
    for path in [root, *root.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)


def script(name: str, payload: Payload) -> str:
    """A maintainer script from files/, with the shared shell functions and the payload's facts in it."""
    text = (FILES / name).read_text(encoding="utf-8")
    check = ((FILES / "check-system.sh").read_text(encoding="utf-8")
             .replace("@MACHINE@", payload.rpm_arch).replace("@DEB_ARCH@", payload.deb_arch)
             .replace("@MIN_GLIBC@", payload.min_glibc))
    text = text.replace("@CHECK_SYSTEM@\n", check)
    return text.replace("@SYSTEMD@\n", (FILES / "systemd.sh").read_text(encoding="utf-8"))


# Examples for the settings with no default: what an administrator would write.
_EXAMPLES = {
    "collector_url": "https://collector.example.org:8443",
    "enroll_secret_file": "/etc/agentroster/enroll-secret",
    "ca_bundle": "/etc/agentroster/ca.pem",
    "data_dir": "/var/lib/agentroster",
}
# What the service unit adds to a setting's sentence on Linux.
_LINUX_NOTES = {
    "enroll_secret": "Leave it unset here: this file is not the place for a secret.",
    "data_dir": "The service may write only /var/lib/agentroster: another folder also needs "
                "ReadWritePaths= (systemctl edit agentroster).",
}


def endpoint_toml() -> str:
    """``/etc/agentroster/endpoint.toml``: every managed setting, commented out, one sentence each."""
    lines = [
        "# agentroster endpoint settings: the managed config on Linux.",
        "#",
        "# Every setting is shown commented out, with its default or, where it has none, an example.",
        '# Remove the "# " in front of a setting to set it. The daemon reads this file when it starts and',
        "# on `systemctl reload agentroster`; `agentroster daemon --print-settings` shows what it took.",
        "# Keep this file owned by root and writable by root only, or the daemon refuses it. The enroll",
        "# secret goes in /etc/agentroster/enroll-secret (mode 0600, owned by root), not here.",
    ]
    for doc in MANAGED_SETTINGS:
        lines.append("")
        lines.append(f"# {doc.summary}")
        if doc.name in _LINUX_NOTES:
            lines.append(f"# {_LINUX_NOTES[doc.name]}")
        lines.append(f"# {doc.name} = {_toml_value(doc)}")
    return "\n".join(lines) + "\n"


def _toml_value(doc: SettingDoc) -> str:
    value = doc.default or _EXAMPLES.get(doc.name, "")
    if doc.kind in ("seconds", "number", "size") and value:
        return value
    if doc.kind == "list":
        return "[" + ", ".join(_toml_string(item.strip()) for item in value.split(",") if item.strip()) + "]"
    return _toml_string(value)


def _toml_string(text: str) -> str:
    # a literal string: no escapes to get wrong (the values here never hold a single quote)
    if "'" in text or "\n" in text:
        raise PackageError(f"{text!r} cannot be written as a TOML literal string")
    return f"'{text}'"
