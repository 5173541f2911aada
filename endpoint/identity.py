"""Who this device is to the collector, and the root-only files that say so.

The daemon enrolls with a per-install identity (``install:<128 random bits>``, made once and kept in
its data dir, readable by root only), so that no one can guess another machine's identity (a hostname
is shared and public; /etc/machine-id is world-readable). The hardware identity the OS keeps
(``/etc/machine-id`` on Linux, IOPlatformUUID and serial number on macOS, MachineGuid on Windows) goes
along for the console, but proves nothing. The organisation's fingerprint key, handed over at
enrollment, is kept here too, for the daemon and for ``agentroster scan`` run by root.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from endpoint._managed_windows import RegistryReader

INSTALL_ID_FILE = "install.id"
FINGERPRINT_KEY_FILE = "fingerprint.key"
MAX_PRIVATE_BYTES = 4096
CRYPTOGRAPHY_KEY = r"SOFTWARE\Microsoft\Cryptography"
_IOREG_FIELD = re.compile(r'"(IOPlatformUUID|IOPlatformSerialNumber)"\s*=\s*"([^"\n]{1,128})"')


def read_private(path: Path) -> str | None:
    """The text of a root-only file: a regular file (no symlink) owned by root or this user, that no group
    or other can read or write; None when it is missing or is not such a file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_PRIVATE_BYTES:
            return None
        if os.name == "posix" and (st.st_uid not in {0, os.geteuid()} or st.st_mode & 0o077):
            return None
        data = os.read(fd, MAX_PRIVATE_BYTES + 1)
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8").strip() or None
    except UnicodeDecodeError:
        return None


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read (0600), whole, then renamed into place."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.unlink()  # whatever was there (a link someone left) is not followed
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def install_id(data_dir: Path) -> str:
    """This install's identity, made on first use (``install:`` and 32 hex digits) and kept 0600."""
    path = Path(data_dir) / INSTALL_ID_FILE
    found = read_private(path)
    if found and re.fullmatch(r"install:[0-9a-f]{32}", found):
        return found
    made = "install:" + secrets.token_hex(16)
    write_private(path, made)
    return made


def hardware_id(platform: str | None = None, *, root: str = "/", run: Callable[[list[str]], str] | None = None,
                registry: RegistryReader | None = None) -> str:
    """The hardware identity the OS keeps, ``""`` where there is none (or it cannot be read)."""
    plat = platform or sys.platform
    try:
        if plat.startswith("linux"):
            return _machine_id(root)
        if plat == "darwin":
            return macos_hardware_id((run or _ioreg)(["ioreg", "-rd1", "-c", "IOPlatformExpertDevice"]))
        if plat == "win32":
            return windows_hardware_id(registry)
    except (OSError, subprocess.SubprocessError, ValueError):
        return ""
    return ""


def _machine_id(root: str) -> str:
    for candidate in ("etc/machine-id", "var/lib/dbus/machine-id"):
        try:
            with open(os.path.join(root, candidate), encoding="ascii", errors="replace") as fh:
                value = fh.read(64).strip()
        except OSError:
            continue
        if re.fullmatch(r"[0-9a-fA-F]{32}", value):
            return f"machine-id:{value.lower()}"
    return ""


def macos_hardware_id(ioreg_output: str) -> str:
    """``IOPlatformUUID/serial`` from ``ioreg -rd1 -c IOPlatformExpertDevice``."""
    fields = dict(_IOREG_FIELD.findall(ioreg_output))
    uuid, serial = fields.get("IOPlatformUUID", ""), fields.get("IOPlatformSerialNumber", "")
    return f"ioplatform:{uuid}/{serial}" if uuid else ""


def windows_hardware_id(registry: RegistryReader | None = None) -> str:
    """``MachineGuid`` under ``HKLM\\SOFTWARE\\Microsoft\\Cryptography``."""
    if registry is None:
        from endpoint._managed_windows import WinregReader

        registry = WinregReader()
    for name, data, _kind in registry.values(CRYPTOGRAPHY_KEY) or ():
        if name.lower() == "machineguid" and isinstance(data, str) and 0 < len(data) <= 64:
            return f"machine-guid:{data.strip().lower()}"
    return ""


def _ioreg(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout


def fingerprint_key_path(data_dir: Path) -> Path:
    return Path(data_dir) / FINGERPRINT_KEY_FILE


def save_fingerprint_key(data_dir: Path, value: str) -> None:
    write_private(fingerprint_key_path(data_dir), value)
