"""Gemini CLI: ``~/.gemini/settings.json`` and a project's ``.gemini/settings.json``.

``mcpServers`` entries take ``command`` (stdio), ``url`` (SSE) or ``httpUrl`` (Streamable HTTP).
``mcp.allowed`` / ``mcp.excluded`` (``allowMCPServers`` / ``excludeMCPServers`` in older files)
decide which of them connect. The model is ``model.name`` (a plain ``model`` string in older files).
"""

from __future__ import annotations

from typing import Any

from endpoint.scan.parsers.findings import Findings, dig, mapping
from endpoint.scan.parsers.mcp import names, server_map


def extract_gemini_settings(document: dict[str, Any], out: Findings) -> None:
    """The ``gemini_settings`` dialect."""
    mcp = mapping(document.get("mcp"))
    excluded = names(mcp.get("excluded", document.get("excludeMCPServers")))
    allowed = mcp.get("allowed", document.get("allowMCPServers"))
    servers = document.get("mcpServers")
    if isinstance(allowed, list) and isinstance(servers, dict):
        # An allow-list switches off every server it does not name.
        excluded = excluded | frozenset(str(n) for n in servers if n not in names(allowed))
    server_map(out, servers, "/mcpServers", url_transport="sse", disabled=excluded)
    model = document.get("model")
    out.model(dig(model, "name") if isinstance(model, dict) else model)
