"""Claude Code: ``~/.claude.json`` (user and per-project MCP servers) and its ``settings.json`` files.

``~/.claude.json`` keeps user-scope servers in a top-level ``mcpServers`` map and local-scope ones
under ``projects.<dir>.mcpServers``; a project's ``disabledMcpServers`` list (written by ``/mcp``)
switches servers off for that project. Settings files select a ``model`` and may set environment
variables that move Claude Code to another model, gateway or cloud provider.

A project's ``.mcp.json`` servers run only once approved, and the approvals live in other files:
``disabledMcpjsonServers`` rejects a server, ``enabledMcpjsonServers`` or ``enableAllProjectMcpServers``
approves it, in the user's ``~/.claude/settings.json``, the project's ``.claude/settings.json`` and
``.claude/settings.local.json``, or (written by older releases, moved to ``settings.local.json`` on the
next start) the project's entry in ``~/.claude.json``. ``project_servers`` applies them: a rejected server
is reported disabled; a pending one is not, since non-interactive runs start it without asking.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from endpoint.scan.evidence import McpServerConfig
from endpoint.scan.parsers.envvars import note_env
from endpoint.scan.parsers.findings import Findings, mapping
from endpoint.scan.parsers.mcp import names, server_map
from endpoint.scan.parsers.walk import pointer


def extract_claude_code(document: dict[str, Any], out: Findings) -> None:
    """The ``claude_code`` dialect."""
    server_map(out, document.get("mcpServers"), "/mcpServers", disabled=names(document.get("disabledMcpServers")))
    projects = document.get("projects")
    if projects is not None and not isinstance(projects, dict):
        out.warn("/projects", "is not a mapping of projects; ignored")
        return
    for directory, project in (projects or {}).items():
        where = pointer("projects", str(directory))
        if not isinstance(project, dict):
            out.warn(where, "project entry is not a mapping; skipped")
            continue
        server_map(out, project.get("mcpServers"), f"{where}/mcpServers", project=str(directory),
                   disabled=names(project.get("disabledMcpServers")))  # fmt: skip


def extract_claude_settings(document: dict[str, Any], out: Findings) -> None:
    """The ``claude_settings`` dialect: ``model`` and the ``env`` block."""
    out.model(document.get("model"))
    note_env(mapping(document.get("env")), out)


# The file template of a project's shared servers, and where the approvals of its servers are kept,
# lowest precedence first: (template, dialect, source). "~" is the user's home, "{project}" the project.
MCPJSON_TEMPLATE = "{project}/.mcp.json"
APPROVAL_SOURCES: tuple[tuple[str, str, str], ...] = (
    ("~/.claude/settings.json", "claude_settings", "user"),
    ("{project}/.claude/settings.json", "claude_settings", "project"),
    ("~/.claude.json", "claude_code", "legacy"),
    ("{project}/.claude/settings.local.json", "claude_settings", "local"),
)
_NOT_IN_TOOL_NAMES = re.compile(r"[^A-Za-z0-9_-]")


class McpjsonApprovals(NamedTuple):
    """The approvals of a project's ``.mcp.json`` servers, merged over every file that holds them."""

    enabled: frozenset[str] = frozenset()  # normalised names
    disabled: frozenset[str] = frozenset()
    enable_all: bool = False
    skip_prompt: bool = False  # skipDangerousModePermissionPrompt outside the project's shared settings

    def status(self, name: str) -> str:
        """``rejected``, ``approved`` or ``pending``, in Claude Code's order: a rejection wins."""
        key = normalise_server_name(name)
        if key in self.disabled:
            return "rejected"
        if key in self.enabled or self.enable_all or self.skip_prompt:
            return "approved"
        return "pending"


def normalise_server_name(name: str) -> str:
    """A server name as Claude Code compares it: outside ``[A-Za-z0-9_-]``, each UTF-16 unit becomes ``_``."""
    return _NOT_IN_TOOL_NAMES.sub(lambda m: "__" if ord(m.group()) > 0xFFFF else "_", name)


def mcpjson_approvals(sources: Iterable[tuple[str, object]]) -> McpjsonApprovals:
    """Merge ``(source, settings)`` pairs, lowest precedence first, as Claude Code merges settings.

    Lists add up across files; for ``enableAllProjectMcpServers`` the last file that sets it decides
    (``local`` over ``legacy`` over ``project`` over ``user``). ``legacy`` is the project's entry of
    ``~/.claude.json``. Values of the wrong type are ignored, as Claude Code's schema drops them.
    """
    enabled: set[str] = set()
    disabled: set[str] = set()
    enable_all = skip_prompt = False
    for source, settings in sources:
        if not isinstance(settings, dict):
            continue
        enabled.update(normalise_server_name(n) for n in _strings(settings.get("enabledMcpjsonServers")))
        disabled.update(normalise_server_name(n) for n in _strings(settings.get("disabledMcpjsonServers")))
        if isinstance(settings.get("enableAllProjectMcpServers"), bool):
            enable_all = settings["enableAllProjectMcpServers"]
        if source != "project" and settings.get("skipDangerousModePermissionPrompt") is True:
            skip_prompt = True
    return McpjsonApprovals(frozenset(enabled), frozenset(disabled), enable_all, skip_prompt)


def legacy_project_entry(document: object, is_project: Callable[[str], bool]) -> object:
    """The entry of ``~/.claude.json``'s ``projects`` whose key ``is_project(key)`` accepts, or None."""
    projects = document.get("projects") if isinstance(document, dict) else None
    if not isinstance(projects, dict):
        return None
    return next((entry for key, entry in projects.items() if isinstance(key, str) and is_project(key)), None)


def project_servers(servers: Sequence[McpServerConfig], project: str,
                    approvals: McpjsonApprovals) -> list[McpServerConfig]:
    """A project's ``.mcp.json`` servers, each with its ``project``, and disabled when rejected.

    Only a rejection switches a server off: it blocks the server in every mode. A pending one stays
    enabled, because ``claude -p`` runs and Agent SDK sessions cannot ask and start it without approval.
    """
    return [s._replace(project=project, enabled=s.enabled and approvals.status(s.name) != "rejected")
            for s in servers]


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


# -- the organisation's MCP policy: managed-mcp.json, allowedMcpServers / deniedMcpServers -------------
# https://code.claude.com/docs/en/managed-mcp: a managed-mcp.json takes exclusive control (only its servers
# load); a server matching any deniedMcpServers entry of any settings file is blocked; when
# allowedMcpServers is set (only the managed one counts under allowManagedMcpServersOnly), a remote server
# must match a serverUrl entry (a serverName entry counts only when there is no serverUrl entry), a stdio
# one a serverCommand entry (likewise for serverName). managed-mcp.json servers skip the allowlist unless
# they use ${VAR} expansion. Commands and URLs are compared as written: Claude Code also expands ${VAR}
# in both, with the user's environment, which a static scan does not have.

_VAR = re.compile(r"\$\{[^}]*\}")


class McpPolicy(NamedTuple):
    exclusive: bool = False  # a managed-mcp.json is deployed
    denied: tuple[dict[str, Any], ...] = ()
    allowed: tuple[dict[str, Any], ...] | None = None  # None: no allowlist anywhere

    def blocks(self, server: McpServerConfig, *, managed_file: bool = False) -> str:
        """Why Claude Code would not load ``server`` (``managed_file``: it comes from managed-mcp.json), or ""."""
        if self.exclusive and not managed_file:
            return "managed-mcp.json has exclusive control"
        if any(_matches(entry, server) for entry in self.denied):
            return "deniedMcpServers"
        if self.allowed is None or (managed_file and not _uses_vars(server)):
            return ""
        remote = server.transport in ("http", "sse", "streamable_http")
        specific = "serverUrl" if remote else "serverCommand"
        usable = [e for e in self.allowed if specific in e or ("serverName" in e and not any(
            specific in a for a in self.allowed))]
        return "" if any(_matches(entry, server) for entry in usable) else "not in allowedMcpServers"


def mcp_policy(sources: Iterable[tuple[str, object]], *, exclusive: bool) -> McpPolicy:
    """Merge ``(source, settings)`` pairs (source ``managed`` for an admin's managed-settings.json)."""
    denied: list[dict[str, Any]] = []
    allowed: list[dict[str, Any]] = []
    managed_allowed: list[dict[str, Any]] | None = None
    any_allowed = managed_only = False
    for source, settings in sources:
        if not isinstance(settings, dict):
            continue
        denied.extend(_entries(settings.get("deniedMcpServers")))
        if isinstance(settings.get("allowedMcpServers"), list):
            any_allowed = True
            allowed.extend(_entries(settings["allowedMcpServers"]))
            if source == "managed":
                managed_allowed = (managed_allowed or []) + _entries(settings["allowedMcpServers"])
        if source == "managed" and settings.get("allowManagedMcpServersOnly") is True:
            managed_only = True
    if managed_only:
        return McpPolicy(exclusive, tuple(denied), tuple(managed_allowed) if managed_allowed is not None else None)
    return McpPolicy(exclusive, tuple(denied), tuple(allowed) if any_allowed else None)


def _entries(value: object) -> list[dict[str, Any]]:
    """The well-formed entries of a list: one of serverName (text), serverCommand (list of text), serverUrl."""
    out: list[dict[str, Any]] = []
    for entry in value if isinstance(value, list) else []:
        if not isinstance(entry, dict):
            continue
        name, command, url = entry.get("serverName"), entry.get("serverCommand"), entry.get("serverUrl")
        if isinstance(name, str) and name:
            out.append({"serverName": name})
        elif isinstance(command, list) and command and all(isinstance(c, str) for c in command):
            out.append({"serverCommand": tuple(command)})
        elif isinstance(url, str) and url:
            out.append({"serverUrl": url})
    return out


def _matches(entry: dict[str, Any], server: McpServerConfig) -> bool:
    if "serverName" in entry:
        return bool(server.name == entry["serverName"])
    if "serverCommand" in entry:
        return server.command is not None and (server.command, *server.args) == entry["serverCommand"]
    return server.url is not None and url_matches(entry["serverUrl"], server.url)


def url_matches(pattern: str, url: str) -> bool:
    """``pattern`` with ``*`` wildcards anywhere; the host compared without case and a trailing dot."""
    return re.fullmatch(".*".join(re.escape(p) for p in _host_folded(pattern).split("*")), _host_folded(url)) is not None


def _host_folded(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    host, slash, path = rest.partition("/")
    if host.endswith("."):
        host = host[:-1]
    elif ":" in host and host.rsplit(":", 1)[0].endswith("."):
        name, port = host.rsplit(":", 1)
        host = f"{name[:-1]}:{port}"
    return f"{scheme.lower()}://{host.lower()}{slash}{path}"


def _uses_vars(server: McpServerConfig) -> bool:
    return any(_VAR.search(v) for v in (server.command or "", server.url or "", *server.args))


def apply_policy(servers: Sequence[McpServerConfig], policy: McpPolicy, *,
                 managed_file: bool = False) -> list[McpServerConfig]:
    """``servers`` with those the policy blocks switched off."""
    if policy == McpPolicy():
        return list(servers)
    return [s._replace(enabled=False) if s.enabled and policy.blocks(s, managed_file=managed_file) else s
            for s in servers]
