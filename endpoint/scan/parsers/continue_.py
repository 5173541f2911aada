"""Continue: ``~/.continue/config.yaml``, the older ``config.json``, and ``.continue/mcpServers/*``.

config.yaml (and every standalone block file) lists ``mcpServers`` as a list of entries with
``name``, ``command``/``args``/``env`` or ``type`` + ``url``, or ``uses: owner/block`` for a hub
block; config.json keeps them in ``experimental.modelContextProtocolServers`` as ``{transport:
{type, command, args}}``. A JSON file dropped into ``.continue/mcpServers/`` may also be another
client's ``{"mcpServers": {...}}`` map, or one bare server object named after the file.
Models come from ``models`` (``provider``, ``model``, ``apiBase``) and, in config.json, the
autocomplete and embeddings models.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from endpoint.scan.parsers.findings import Findings, dig, mapping, text
from endpoint.scan.parsers.mcp import add_server, enabled_flag, server_map, standard_server

_RUNNERS = frozenset({"npx", "bunx", "pnpx", "uvx", "pipx", "uv", "docker", "deno", "pnpm", "yarn"})
_RUNNER_VERBS = frozenset({"run", "dlx", "exec", "x", "tool"})


def extract_continue_config(document: dict[str, Any], out: Findings) -> None:
    """The ``continue_config`` dialect."""
    servers = document.get("mcpServers")
    legacy = dig(document, "experimental", "modelContextProtocolServers")
    if isinstance(servers, list):
        _listed_servers(servers, "/mcpServers", out, nested=False)
    elif isinstance(servers, dict):
        server_map(out, servers, "/mcpServers")
    elif servers is not None:
        out.warn("/mcpServers", "is neither a list nor a mapping of servers; ignored")
    if isinstance(legacy, list):
        _listed_servers(legacy, "/experimental/modelContextProtocolServers", out, nested=True)
    elif legacy is not None:
        out.warn("/experimental/modelContextProtocolServers", "is not a list of servers; ignored")
    if servers is None and legacy is None and ("command" in document or "url" in document):
        standard_server(out, _file_stem(out.path), document, "")
    _models(document, out)


def _listed_servers(entries: list[Any], where: str, out: Findings, *, nested: bool) -> None:
    for index, entry in enumerate(entries):
        at = f"{where}/{index}"
        if not isinstance(entry, dict):
            out.invalid_server(at, "not an MCP server: the entry is not a mapping")
            continue
        uses = text(entry.get("uses"))
        if uses:  # a hub block: the server is defined on the hub, not in this file
            add_server(out, uses, at, enabled=enabled_flag(entry), require_target=False)
            continue
        spec = entry.get("transport") if nested else entry
        if not isinstance(spec, dict):
            out.invalid_server(at, "not an MCP server: its transport is not a mapping")
            continue
        command, args, url = spec.get("command"), spec.get("args"), spec.get("url")
        name = text(entry.get("name")) or _derived_name(command, args, url) or str(index)
        add_server(out, name, at, kind=spec.get("type"), command=command, args=args, url=url,
                   env=spec.get("env"), enabled=enabled_flag(entry))  # fmt: skip


def _derived_name(command: object, args: object, url: object) -> str | None:
    """A readable name for an unnamed server: its package for npx-style runners, else its program or host."""
    if isinstance(url, str) and url:
        try:
            return urlsplit(url).hostname or url
        except ValueError:
            return url
    if not isinstance(command, str) or not command:
        return None
    program = os.path.basename(command.replace("\\", "/"))
    if program.lower().removesuffix(".exe") in _RUNNERS and isinstance(args, list):
        for arg in args:
            if isinstance(arg, str) and not arg.startswith("-") and arg not in _RUNNER_VERBS:
                return arg
    return program


def _file_stem(path: str) -> str:
    stem = os.path.splitext(os.path.basename(path.replace("\\", "/")))[0]
    return stem or "server"


def _models(document: dict[str, Any], out: Findings) -> None:
    models = document.get("models")
    picked = list(models) if isinstance(models, list) else []
    autocomplete = document.get("tabAutocompleteModel")
    picked += autocomplete if isinstance(autocomplete, list) else [autocomplete]
    picked.append(document.get("embeddingsProvider"))
    for model in picked:
        entry = mapping(model)
        out.model(entry.get("model", entry.get("uses")))
        out.provider(entry.get("provider"))
        out.base_url(entry.get("apiBase"))
