"""Claude Code: ``~/.claude.json`` (user and per-project MCP servers) and its ``settings.json`` files.

``~/.claude.json`` keeps user-scope servers in a top-level ``mcpServers`` map and local-scope ones
under ``projects.<dir>.mcpServers``; a project's ``disabledMcpServers`` list (written by ``/mcp``)
switches servers off for that project. Settings files select a ``model`` and may set environment
variables that move Claude Code to another model, gateway or cloud provider.
"""

from __future__ import annotations

from typing import Any

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
