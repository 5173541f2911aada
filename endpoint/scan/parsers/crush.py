"""Crush: ``crush.json`` / ``.crush.json`` in a project, ``~/.config/crush/crush.json`` for the user.

``mcp`` maps a name to ``{type: stdio|http|sse, command, args, env, url, headers, disabled}``.
``models.large`` / ``models.small`` select ``{model, provider}``; ``providers.<id>.base_url`` points
a provider (often an OpenAI-compatible local runtime) elsewhere.
"""

from __future__ import annotations

from typing import Any

from endpoint.scan.parsers.findings import Findings, mapping
from endpoint.scan.parsers.mcp import server_map


def extract_crush_json(document: dict[str, Any], out: Findings) -> None:
    """The ``crush_json`` dialect."""
    server_map(out, document.get("mcp"), "/mcp")
    for selected in mapping(document.get("models")).values():
        out.model(mapping(selected).get("model"))
        out.provider(mapping(selected).get("provider"))
    for provider_id, provider in mapping(document.get("providers")).items():
        out.provider(str(provider_id))
        out.base_url(mapping(provider).get("base_url"))
