"""Who this device is to the collector, and the root-only files that say so.

The daemon enrolls with a per-install identity (``install:<128 random bits>``, made once and kept in
its data dir, readable by root only), so that no one can guess another machine's identity (a hostname
is shared and public; /etc/machine-id is world-readable). The hardware identity the OS keeps
(``/etc/machine-id`` on Linux, IOPlatformUUID and serial number on macOS, MachineGuid on Windows) goes
along for the console, but proves nothing. (The organisation's fingerprint key, handed over at
enrollment, is kept beside it by ``endpoint.scan.credentials``, which reads it for every scan.)
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from endpoint.scan.safeio import read_private, write_private

if TYPE_CHECKING:
    from endpoint.service._managed_windows import RegistryReader

INSTALL_ID_FILE = "install.id"
CRYPTOGRAPHY_KEY = r"SOFTWARE\Microsoft\Cryptography"
_IOREG_FIELD = re.compile(r'"(IOPlatformUUID|IOPlatformSerialNumber)"\s*=\s*"([^"\n]{1,128})"')


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
        from endpoint.service._managed_windows import WinregReader

        registry = WinregReader()
    for name, data, _kind in registry.values(CRYPTOGRAPHY_KEY) or ():
        if name.lower() == "machineguid" and isinstance(data, str) and 0 < len(data) <= 64:
            return f"machine-guid:{data.strip().lower()}"
    return ""


def _ioreg(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout
