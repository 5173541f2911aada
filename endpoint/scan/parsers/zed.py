"""Zed: ``settings.json`` (JSONC) with MCP servers under ``context_servers``.

An entry is a custom server (``command`` + ``args`` + ``env``, or in older files ``command`` as
``{path, args, env}``), a remote one (``url``), or one that a Zed extension provides (``source:
extension``, no command in the file: recorded as ``builtin``). ``enabled: false`` switches it off.
The agent's default model and the language-model providers' ``api_url`` overrides are collected too.
"""

from __future__ import annotations

from typing import Any

from endpoint.scan.parsers.findings import Findings, dig, mapping
from endpoint.scan.parsers.mcp import add_server, enabled_flag


def extract_zed_settings(document: dict[str, Any], out: Findings) -> None:
    """The ``zed_settings`` dialect."""
    out.each_entry(document.get("context_servers"), "/context_servers", "mapping of servers", _server)
    for section in ("agent", "assistant"):  # "assistant" in Zed releases before the agent panel
        out.provider(dig(document, section, "default_model", "provider"))
        out.model(dig(document, section, "default_model", "model"))
    for provider in mapping(document.get("language_models")).values():
        _api_urls(mapping(provider), out)


def _server(out: Findings, name: str, entry: object, where: str) -> None:
    if not isinstance(entry, dict):
        out.invalid_server(where, "not an MCP server: the entry is not a mapping")
        return
    command, args, env = entry.get("command"), entry.get("args"), entry.get("env")
    if isinstance(command, dict):  # the older shape: "command": {"path", "args", "env"}
        spec: dict[Any, Any] = command
        command, args, env = spec.get("path"), spec.get("args"), spec.get("env")
    if entry.get("source") == "extension" or (command is None and entry.get("url") is None and "settings" in entry):
        add_server(out, name, where, kind="builtin", enabled=enabled_flag(entry), require_target=False)
        return
    add_server(out, name, where, command=command, args=args, url=entry.get("url"), env=env,
               enabled=enabled_flag(entry))  # fmt: skip


def _api_urls(provider: dict[Any, Any], out: Findings) -> None:
    if "api_url" in provider:
        out.base_url(provider["api_url"])
        return
    for named in provider.values():  # openai_compatible: {"<name>": {"api_url": ...}}
        out.base_url(mapping(named).get("api_url"))
