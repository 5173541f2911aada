"""MCP server entries: the shared ``mcpServers`` shape and the checks every dialect's entries go through.

The ``mcpServers`` map (Claude Desktop, Cursor, Windsurf, Cline, Roo, Kilo, Claude Code's .mcp.json)
holds entries with ``command``/``args``/``env`` for a local server, or ``url`` (``serverUrl`` in
Windsurf, ``httpUrl`` in Gemini CLI) for a remote one, an optional ``type`` and ``disabled``.
An entry's tools are named where its client keeps an allow or auto-approve list: ``autoApprove``
(Cline), ``alwaysAllow`` (Roo Code, Kilo), ``includeTools`` (Gemini CLI), ``enabled_tools`` (Codex).
Transports are normalised: every spelling of Streamable HTTP becomes ``http``; a remote entry
without a type is ``sse`` when its URL path ends in ``/sse`` (the convention servers follow),
otherwise ``http``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from endpoint.scan.evidence import McpServerConfig
from endpoint.scan.parsers.findings import Findings

Transport = Literal["stdio", "http", "sse", "streamable_http", "builtin", "unknown"]

_TRANSPORTS: dict[str, Transport] = {
    "stdio": "stdio", "local": "stdio",
    "http": "http", "streamable-http": "http", "streamable_http": "http", "streamablehttp": "http",
    "sse": "sse",
    "builtin": "builtin", "platform": "builtin",
}  # fmt: skip

#: the keys of an entry that list the tools its agent may call (or calls without asking)
TOOL_LISTS = ("autoApprove", "alwaysAllow", "includeTools", "enabled_tools")
MAX_TOOLS = 256  # per server: a hostile file cannot make one entry a report's worth of names
MAX_TOOL_NAME = 256

_INFER = "remote"  # opencode's "remote" tries Streamable HTTP, then SSE: the URL decides


def transport_of(kind: object, *, command: str | None, url: str | None, url_transport: Transport | None = None) -> Transport:
    """The transport an entry declares with ``kind``, or the one its command or URL implies."""
    if isinstance(kind, str) and kind.strip():
        label = kind.strip().lower()
        if label in _TRANSPORTS:
            return _TRANSPORTS[label]
        if label != _INFER:
            return "unknown"
    if command is not None:
        return "stdio"
    if url is not None:
        return url_transport or remote_transport(url)
    return "unknown"


def remote_transport(url: str) -> Transport:
    try:
        path = urlsplit(url).path
    except ValueError:
        return "http"
    return "sse" if path.rstrip("/").lower().endswith("/sse") else "http"


def enabled_flag(entry: Mapping[Any, Any]) -> bool:
    """False when the entry says ``disabled: true``, ``enabled: false``, ``active: false`` (Jan) or, in
    AnythingLLM's block, ``anythingllm: {autoStart: false}``."""
    if entry.get("disabled") is True or entry.get("enabled") is False or entry.get("active") is False:
        return False
    extra = entry.get("anythingllm")
    return not (isinstance(extra, Mapping) and extra.get("autoStart") is False)


def tools_of(entry: Mapping[Any, Any]) -> tuple[str, ...]:
    """The tools an entry names in its allow or auto-approve lists, each once, in order; a list that is not
    a list of names adds nothing (the server itself is still recorded)."""
    found: dict[str, None] = {}
    for key in TOOL_LISTS:
        listed = entry.get(key)
        if isinstance(listed, list):
            found.update((t.strip(), None) for t in listed if isinstance(t, str) and 0 < len(t.strip()) <= MAX_TOOL_NAME)
    return tuple(found)[:MAX_TOOLS]


def names(value: object) -> frozenset[str]:
    """A list of server names (as in ``disabledMcpServers``), or nothing."""
    if not isinstance(value, list):
        return frozenset()
    return frozenset(v for v in value if isinstance(v, str))


def add_server(
    out: Findings,
    name: object,
    where: str,
    *,
    kind: object = None,
    command: object = None,
    args: object = None,
    url: object = None,
    env: object = None,
    env_names: object = None,
    enabled: bool = True,
    project: str | None = None,
    url_transport: Transport | None = None,
    require_target: bool = True,
    tools: tuple[str, ...] = (),
) -> None:
    """Check one entry's fields and record it, or record why it was skipped."""
    with out.entry(where):
        _add_server(out, name, where, kind=kind, command=command, args=args, url=url, env=env, env_names=env_names,
                    enabled=enabled, project=project, url_transport=url_transport, require_target=require_target,
                    tools=tools)


def _add_server(out: Findings, name: object, where: str, *, kind: object, command: object, args: object,
                url: object, env: object, env_names: object, enabled: bool, project: str | None,
                url_transport: Transport | None, require_target: bool, tools: tuple[str, ...]) -> None:
    problem = _shape_problem(command=command, args=args, url=url, env=env, env_names=env_names)
    if problem is None and require_target and not command and not url \
            and transport_of(kind, command=None, url=None) == "unknown":
        problem = "not an MCP server: no command, no url and no known transport"
    if problem is not None:
        out.invalid_server(where, problem)
        return
    cmd = command if isinstance(command, str) and command else None
    link = url if isinstance(url, str) and url else None
    keys = [str(k) for k in _listed(env)] + [k for k in _listed(env_names) if isinstance(k, str)]
    out.servers.append(McpServerConfig(
        name=str(name),
        transport=transport_of(kind, command=cmd, url=link, url_transport=url_transport),
        command=cmd,
        args=tuple(str(a) for a in _listed(args)),
        url=link,
        env_keys=tuple(dict.fromkeys(keys)),
        enabled=enabled,
        project=project,
        where=where,
        tools=tools,
    ))  # fmt: skip


def _shape_problem(*, command: object, args: object, url: object, env: object, env_names: object) -> str | None:
    if command is not None and not isinstance(command, str):
        return "command is not a string"
    if args is not None and (not isinstance(args, list) or not all(_scalar(a) for a in args)):
        return "args is not a list of strings"
    if url is not None and not isinstance(url, str):
        return "url is not a string"
    if env is not None and not isinstance(env, dict):
        return "env is not a mapping"
    if env_names is not None and not isinstance(env_names, list):
        return "the list of environment variable names is not a list"
    return None


def _listed(value: object) -> list[Any]:
    """The items of a list, or the keys of a mapping, already shape-checked; else nothing."""
    return list(value) if isinstance(value, (list, dict)) else []


def _scalar(value: object) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def standard_server(
    out: Findings,
    name: str,
    entry: object,
    where: str,
    *,
    project: str | None = None,
    url_transport: Transport | None = None,
    disabled: Collection[str] = (),
) -> None:
    """One entry of an ``mcpServers``-shaped map."""
    if not isinstance(entry, dict):
        out.invalid_server(where, "not an MCP server: the entry is not a mapping")
        return
    if "httpUrl" in entry:  # Gemini CLI: Streamable HTTP
        url, url_transport = entry["httpUrl"], "http"
    else:
        url = entry.get("url", entry.get("serverUrl"))  # serverUrl: Windsurf
    add_server(
        out, name, where,
        kind=entry.get("type", entry.get("transportType")),  # transportType: older Cline
        command=entry.get("command"), args=entry.get("args"), url=url, env=entry.get("env"),
        enabled=enabled_flag(entry) and name not in disabled, project=project, url_transport=url_transport,
        tools=tools_of(entry),
    )  # fmt: skip


def server_map(
    out: Findings,
    servers: object,
    where: str,
    *,
    project: str | None = None,
    url_transport: Transport | None = None,
    disabled: Collection[str] = (),
) -> None:
    """Every entry of an ``mcpServers``-shaped map found at ``where``; absent is fine, wrong is a warning."""

    def server(found: Findings, name: str, entry: object, pointer: str) -> None:
        standard_server(found, name, entry, pointer, project=project, url_transport=url_transport,
                        disabled=disabled)

    out.each_entry(servers, where, "mapping of servers", server)


def extract_mcp_json(document: dict[str, Any], out: Findings) -> None:
    """The ``mcp_json`` dialect: ``{"mcpServers": {...}}``."""
    server_map(out, document.get("mcpServers"), "/mcpServers")
