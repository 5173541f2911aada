"""Managed settings on macOS: the device-level managed preferences an MDM profile installs.

``/Library/Managed Preferences/dev.agentroster.endpoint.plist`` (XML or binary), written by
``mdmclient`` from a configuration profile's custom-settings payload. The per-user managed
preferences (``/Library/Managed Preferences/<user>/…``) are ignored: a daemon serves the whole device.
"""

from __future__ import annotations

import plistlib

from endpoint.service._managed_common import ManagedFileSource
from endpoint.service.settings import ManagedValues, SettingsError

DOMAIN = "dev.agentroster.endpoint"
PLIST_PATH = f"Library/Managed Preferences/{DOMAIN}.plist"  # under the root


class MacManagedSource(ManagedFileSource):
    """``<root>/Library/Managed Preferences/dev.agentroster.endpoint.plist``."""

    RELATIVE_PATH = PLIST_PATH

    def parse(self, data: bytes) -> ManagedValues:
        try:
            values = plistlib.loads(data)
        except Exception as exc:  # plistlib raises many types (expat, struct, ValueError…) on bad input
            raise SettingsError(None, self.where,
                                f"is not a valid property list, XML or binary ({type(exc).__name__})") from None
        if not isinstance(values, dict):
            raise SettingsError(None, self.where, "must hold a dictionary of settings at the top level")
        # a profile's own Payload* keys end up here when a payload is uploaded as the plist itself
        settings = {k: v for k, v in values.items() if not str(k).startswith("Payload")}
        return ManagedValues(settings, self.where)
