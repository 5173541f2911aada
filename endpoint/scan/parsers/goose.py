"""Goose: ``~/.config/goose/config.yaml`` (``%APPDATA%/Block/goose/config/config.yaml`` on Windows).

``extensions`` maps a name to an extension: ``builtin`` and ``platform`` ones run inside Goose
(recorded as ``builtin``), ``stdio`` ones run ``cmd`` + ``args`` with ``envs`` and the keyring
secrets named in ``env_keys``, and remote ones (``sse``, ``streamable_http``) call ``uri``. The model
is ``active_provider`` + ``providers.<id>.model``, or in older files the flat ``GOOSE_PROVIDER`` /
``GOOSE_MODEL`` keys, which sit beside provider hosts such as ``OLLAMA_HOST``.
"""

from __future__ import annotations

from typing import Any

from endpoint.scan.parsers.envvars import note_env
from endpoint.scan.parsers.findings import Findings, mapping
from endpoint.scan.parsers.mcp import add_server, enabled_flag

# Goose's own extension kinds that are not MCP transports: tools the app itself supplies, and
# Python code Goose runs as a local MCP server.
_KINDS = {"frontend": "builtin", "inline_python": "stdio"}


def extract_goose_yaml(document: dict[str, Any], out: Findings) -> None:
    """The ``goose_yaml`` dialect."""
    note_env(document, out)
    active = document.get("active_provider")
    out.provider(active)
    if isinstance(active, str):
        out.model(mapping(mapping(document.get("providers")).get(active)).get("model"))
    out.each_entry(document.get("extensions"), "/extensions", "mapping of extensions", _extension)


def _extension(out: Findings, name: str, entry: object, where: str) -> None:
    if not isinstance(entry, dict):
        out.invalid_server(where, "not an MCP server: the entry is not a mapping")
        return
    # Some older files wrap the fields in "config"; the switch stays on the outer entry.
    spec = mapping(entry.get("config")) if "type" not in entry and "config" in entry else entry
    kind = spec.get("type")
    kind = _KINDS.get(kind, kind) if isinstance(kind, str) else kind
    if kind in ("builtin", "platform"):
        add_server(out, name, where, kind="builtin", enabled=enabled_flag(entry), require_target=False)
        return
    add_server(out, name, where, kind=kind, command=spec.get("cmd"), args=spec.get("args"), url=spec.get("uri"),
               env=spec.get("envs"), env_names=spec.get("env_keys"), enabled=enabled_flag(entry),
               require_target=kind is None)  # fmt: skip
