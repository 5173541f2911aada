"""opencode: ``opencode.json`` / ``opencode.jsonc`` (user ``~/.config/opencode/``, or a project's).

``mcp`` maps a name to ``{type: local, command: [argv...], environment, enabled}`` or ``{type: remote,
url, headers, enabled}``; newer files nest that map under ``mcp.servers``. An entry with nothing but
``enabled`` switches on or off a server the organisation's remote config supplies, and is not a server
of its own. ``model`` is ``provider/model``; ``provider.<id>.options.baseURL`` points a provider elsewhere.
"""

from __future__ import annotations

from typing import Any

from endpoint.scan.parsers.findings import Findings, mapping
from endpoint.scan.parsers.mcp import add_server, enabled_flag

_SERVER_KEYS = frozenset({"type", "command", "url"})


def extract_opencode_json(document: dict[str, Any], out: Findings) -> None:
    """The ``opencode_json`` dialect."""
    servers, where = document.get("mcp"), "/mcp"
    nested = mapping(servers).get("servers")
    if isinstance(nested, dict) and not _SERVER_KEYS & nested.keys():
        servers, where = nested, "/mcp/servers"
    out.each_entry(servers, where, "mapping of servers", _server)
    for key in ("model", "small_model"):
        model = document.get(key)
        out.model(model)
        if isinstance(model, str) and "/" in model:
            out.provider(model.split("/", 1)[0])
    for provider_id, provider in mapping(document.get("provider")).items():
        out.provider(str(provider_id))
        out.base_url(mapping(mapping(provider).get("options")).get("baseURL"))


def _server(out: Findings, name: str, entry: object, where: str) -> None:
    if not isinstance(entry, dict):
        out.invalid_server(where, "not an MCP server: the entry is not a mapping")
        return
    if not _SERVER_KEYS & entry.keys():
        return  # only toggles a server defined elsewhere
    command = entry.get("command")
    argv = command if isinstance(command, list) else None
    if argv is not None and (not argv or not isinstance(argv[0], str)):
        out.invalid_server(where, "command is not a list of strings")
        return
    add_server(out, name, where, kind=entry.get("type"),
               command=argv[0] if argv is not None else command, args=argv[1:] if argv is not None else None,
               url=entry.get("url"), env=entry.get("environment"), enabled=enabled_flag(entry))  # fmt: skip
