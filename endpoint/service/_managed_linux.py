"""Managed settings on Linux: ``/etc/agentroster/endpoint.toml``, written by config management.

A flat TOML table of the settings' own names (``collector_url = "https://…"``); the file must be
root-owned and not writable by others (see ``_managed_common``), else it is refused with a clear error.
"""

from __future__ import annotations

import tomllib

from endpoint.service._managed_common import ManagedFileSource
from endpoint.service.settings import ManagedValues, SettingsError

CONFIG_PATH = "etc/agentroster/endpoint.toml"  # under the root


class LinuxManagedSource(ManagedFileSource):
    """``<root>/etc/agentroster/endpoint.toml``; ``root`` is ``/`` on a live machine."""

    RELATIVE_PATH = CONFIG_PATH

    def parse(self, data: bytes) -> ManagedValues:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SettingsError(None, self.where, f"is not UTF-8 (invalid byte at offset {exc.start})") from None
        try:
            values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            # the decoder's message gives the line and column, never the offending text
            raise SettingsError(None, self.where, f"is not valid TOML: {exc}") from None
        return ManagedValues(values, self.where)
