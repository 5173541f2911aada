"""Codex CLI: ``~/.codex/config.toml`` (and a trusted project's ``.codex/config.toml``).

``[mcp_servers.<name>]`` tables hold ``command``/``args``/``env``/``env_vars`` for a local server
or ``url`` (Streamable HTTP, with ``bearer_token_env_var`` naming the token's variable) for a remote
one, and ``enabled``. ``model`` and ``model_provider`` select the model, at the top and per
``[profiles.<name>]``; ``[model_providers.<id>].base_url`` points a provider elsewhere.
"""

from __future__ import annotations

from typing import Any

from endpoint.scan.parsers.findings import Findings, mapping
from endpoint.scan.parsers.mcp import add_server, enabled_flag, tools_of

# Codex merges its config layers (the user's, a trusted project's, the managed one) table by table,
# so a later layer may hold only some fields of a server another one defines.
_TARGET_KEYS = frozenset({"command", "url", "type", "transport"})
_SERVER_FIELDS = _TARGET_KEYS | {"args", "env", "env_vars", "cwd", "bearer_token_env_var", "bearer_token",
                                 "http_headers", "env_http_headers", "enabled", "enabled_tools", "disabled_tools",
                                 "startup_timeout_sec", "startup_timeout_ms", "tool_timeout_sec"}


def extract_codex_toml(document: dict[str, Any], out: Findings) -> None:
    """The ``codex_toml`` dialect."""
    out.each_entry(document.get("mcp_servers"), "/mcp_servers", "table of servers", _server)
    for selection in [document, *mapping(document.get("profiles")).values()]:
        out.model(mapping(selection).get("model"))
        out.provider(mapping(selection).get("model_provider"))
    for provider in mapping(document.get("model_providers")).values():
        out.base_url(mapping(provider).get("base_url"))


def _server(out: Findings, name: str, entry: object, where: str) -> None:
    if not isinstance(entry, dict):
        out.invalid_server(where, "not an MCP server: the entry is not a table")
        return
    if not _TARGET_KEYS & entry.keys() and entry.keys() <= _SERVER_FIELDS:
        return  # only overrides settings of a server another layer defines (enabled = false): not an error
    add_server(out, name, where, kind=entry.get("type", entry.get("transport")), command=entry.get("command"),
               args=entry.get("args"), url=entry.get("url"), env=entry.get("env"), env_names=entry.get("env_vars"),
               enabled=enabled_flag(entry), url_transport="http", tools=tools_of(entry))  # fmt: skip
