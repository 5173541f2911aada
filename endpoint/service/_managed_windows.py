"""Managed settings on Windows: ``HKLM\\SOFTWARE\\Policies\\agentroster``, set by Group Policy or Intune.

These are the only sources of organisation policy on Windows: the policy key (which only
administrators can write) and files under folders only administrators can create
(``homes.trusted_policy_template``). ``%PROGRAMDATA%`` is not one: any user may create a folder there, so a
"managed" file in it may be a user's.

Registry access sits behind ``RegistryReader`` so the type mapping (REG_SZ → text, REG_DWORD and
REG_QWORD → numbers, REG_MULTI_SZ → a list) is the same code on every OS: the real reader uses
``winreg`` (imported on Windows only, when first used), ``DictRegistry`` reads a dict of the same
(name, data, type) triples ``winreg.EnumValue`` returns. Value names are matched case-insensitively,
as Windows does; per-user policy (HKCU) is ignored.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from endpoint.service.settings import ManagedValues, SettingsError

POLICY_KEY = r"SOFTWARE\Policies\agentroster"
HIVE = "HKLM"

# winreg's type numbers (the same on every Windows), so the mapping runs without winreg
REG_NONE, REG_SZ, REG_EXPAND_SZ, REG_BINARY, REG_DWORD = 0, 1, 2, 3, 4
REG_DWORD_BIG_ENDIAN, REG_LINK, REG_MULTI_SZ, REG_QWORD = 5, 6, 7, 11

RegistryValue = tuple[str, Any, int]  # (name, data, type) as winreg.EnumValue gives them


class RegistryReader(Protocol):
    """Reads the values of one HKLM key; ``None`` when the key does not exist."""

    def values(self, key: str) -> Sequence[RegistryValue] | None: ...


class WinregReader:
    """The real registry, 64-bit view (where Group Policy writes, even for a 32-bit Python)."""

    def values(self, key: str) -> Sequence[RegistryValue] | None:
        winreg: Any = importlib.import_module("winreg")  # Windows only; typed loosely so mypy passes anywhere
        access = winreg.KEY_READ | winreg.KEY_WOW64_64KEY
        try:
            handle = winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key, 0, access)
        except FileNotFoundError:
            return None
        found: list[RegistryValue] = []
        with handle:
            index = 0
            while True:
                try:
                    name, data, kind = winreg.EnumValue(handle, index)
                except OSError:  # ERROR_NO_MORE_ITEMS
                    break
                if kind == REG_EXPAND_SZ and isinstance(data, str):
                    data = winreg.ExpandEnvironmentStrings(data)
                found.append((name, data, kind))
                index += 1
        return found


class DictRegistry:
    """A registry held in a dict, key path → [(name, data, type)]: for tests and dry runs."""

    def __init__(self, keys: Mapping[str, Sequence[RegistryValue]]) -> None:
        self._keys = {k.lower(): list(v) for k, v in keys.items()}

    def values(self, key: str) -> Sequence[RegistryValue] | None:
        return self._keys.get(key.lower())


class WindowsManagedSource:
    """The policy key; ``reader`` defaults to the real registry."""

    def __init__(self, reader: RegistryReader | None = None, *, key: str = POLICY_KEY) -> None:
        self.reader = reader if reader is not None else WinregReader()
        self.key = key

    @property
    def where(self) -> str:
        return f"{HIVE}\\{self.key}"

    def read(self) -> ManagedValues:
        try:
            raw = self.reader.values(self.key)
        except OSError as exc:
            raise SettingsError(None, self.where, f"cannot be read: {exc.strerror or type(exc).__name__}") from None
        if raw is None:
            return ManagedValues({}, self.where)
        values: dict[str, object] = {}
        for name, data, kind in raw:
            key = str(name).lower()
            if key:  # the key's (Default) value carries no setting
                values[key] = convert(data, kind)
        # Policies keys grant Users read access: whatever a policy holds, every local user can read
        return ManagedValues(values, self.where, exposed="every local user can read the Policies key")


def convert(data: Any, kind: int) -> object:
    """A registry value as the settings parser takes it; unsupported types become binary data,
    which every setting refuses with a clear error."""
    if kind in (REG_SZ, REG_EXPAND_SZ) and isinstance(data, str):
        return data.rstrip("\x00")
    if kind in (REG_DWORD, REG_QWORD) and isinstance(data, int) and not isinstance(data, bool):
        return data
    if kind == REG_MULTI_SZ and isinstance(data, list | tuple) and all(isinstance(s, str) for s in data):
        return [s for s in data if s]
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    return b""
