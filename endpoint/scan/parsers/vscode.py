"""VS Code: ``mcp.json`` (workspace ``.vscode/mcp.json`` or the user profile's) and ``settings.json``.

Both hold ``servers`` (``type`` stdio, http or sse) and ``inputs``; in settings.json they sit under
``"mcp"``. ``${input:...}`` references in an entry are prompts VS Code fills in at start, not
secrets. The Amp extension also reads its ``amp.mcpServers`` from VS Code's settings.json.
"""

from __future__ import annotations

from typing import Any

from endpoint.scan.parsers.amp import extract_amp_settings
from endpoint.scan.parsers.findings import Findings, mapping
from endpoint.scan.parsers.mcp import server_map


def extract_vscode_mcp(document: dict[str, Any], out: Findings) -> None:
    """The ``vscode_mcp`` dialect."""
    server_map(out, document.get("servers"), "/servers")


def extract_vscode_settings(document: dict[str, Any], out: Findings) -> None:
    """The ``vscode_settings`` dialect: ``mcp.servers`` and ``amp.mcpServers``."""
    server_map(out, mapping(document.get("mcp")).get("servers"), "/mcp/servers")
    extract_amp_settings(document, out)
