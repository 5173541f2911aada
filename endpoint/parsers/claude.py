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

from endpoint.evidence import McpServerConfig
from endpoint.parsers.envvars import note_env
from endpoint.parsers.findings import Findings, mapping
from endpoint.parsers.mcp import names, server_map
from endpoint.parsers.walk import pointer


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
