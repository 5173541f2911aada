"""Amp: ``~/.config/amp/settings.json`` (JSONC) with servers under the flat key ``amp.mcpServers``.

Entries are ``command``/``args``/``env`` for a local server or ``url``/``headers`` for a remote one,
and may carry ``disabled``.
"""

from __future__ import annotations

from typing import Any

from endpoint.scan.parsers.findings import Findings
from endpoint.scan.parsers.mcp import server_map

KEY = "amp.mcpServers"


def extract_amp_settings(document: dict[str, Any], out: Findings) -> None:
    """The ``amp_settings`` dialect."""
    server_map(out, document.get(KEY), "/" + KEY)
