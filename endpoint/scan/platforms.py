"""Which OS this is, in agentroster's three words (linux, macos, windows), and where each OS keeps the
daemon's files: one place for what the scan, the daemon and the local socket all ask."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path, PureWindowsPath

Platform = str  # "linux" | "macos" | "windows"


def normalize_platform(platform: str | None = None) -> Platform:
    """``sys.platform`` spellings (``linux``, ``darwin``, ``win32``) or ours → linux/macos/windows."""
    name = (platform or sys.platform).lower()
    if name in ("darwin", "macos", "mac", "osx"):
        return "macos"
    if name in ("win32", "windows", "cygwin", "nt"):
        return "windows"
    return "linux"  # Linux and the other Unixes keep their files in the same places


#: this machine's OS
PLATFORM: Platform = normalize_platform()


def is_this_machine(root: str) -> bool:
    """Whether a scan root is this machine's own filesystem rather than a mounted image or a test tree:
    ``/``, or on Windows the root of a drive (the daemon's default root, ``\\``, is the system drive's ``C:\\``)."""
    if root in ("", "/"):
        return True
    drive, rest = os.path.splitdrive(root)  # never a drive on Linux and macOS
    return bool(drive) and rest in ("\\", "/")


def default_data_dir(platform: str | None = None, env: Mapping[str, str] | None = None) -> Path:
    """Where the daemon keeps its state on each OS."""
    plat = normalize_platform(platform)
    if plat == "macos":
        return Path("/Library/Application Support/agentroster")
    if plat == "windows":
        env = os.environ if env is None else env
        base = env.get("PROGRAMDATA") or env.get("ProgramData") or r"C:\ProgramData"
        return Path(str(PureWindowsPath(base, "agentroster")))
    return Path("/var/lib/agentroster")
