"""Claude Code's organisation MCP policy (https://code.claude.com/docs/en/managed-mcp), as the scan applies
it: the pure rules, then a real tree with managed settings, a managed-mcp.json, user and project files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import signatures
from endpoint.scan.evidence import ConfigRecord, McpServerConfig
from endpoint.scan.homes import find_homes
from endpoint.scan.parsers.claude import McpPolicy, apply_policy, mcp_policy, url_matches
from endpoint.scan.sensors.files import FileScan

STDIO = McpServerConfig("fs", "stdio", command="npx", args=("-y", "@modelcontextprotocol/server-filesystem", "/"))
REMOTE = McpServerConfig("github", "http", url="https://api.githubcopilot.com/mcp/")


def policy(*sources: tuple[str, dict], exclusive: bool = False) -> McpPolicy:
    return mcp_policy(list(sources), exclusive=exclusive)


def test_no_policy_blocks_nothing():
    assert policy().blocks(STDIO) == "" and policy(("user", {"model": "opus"})).blocks(REMOTE) == ""


@pytest.mark.parametrize("entry", [{"serverName": "fs"},
                                   {"serverCommand": ["npx", "-y", "@modelcontextprotocol/server-filesystem", "/"]}])
def test_a_denylist_entry_of_any_scope_blocks_by_name_or_exact_command(entry):
    for source in ("managed", "user", "project"):
        assert policy((source, {"deniedMcpServers": [entry]})).blocks(STDIO) == "deniedMcpServers"
    near = {"serverCommand": ["npx", "@modelcontextprotocol/server-filesystem", "/"]}
    assert policy(("managed", {"deniedMcpServers": [near]})).blocks(STDIO) == ""


@pytest.mark.parametrize(("pattern", "url", "matched"), [
    ("https://api.githubcopilot.com/mcp/", "https://api.githubcopilot.com/mcp/", True),
    ("https://*.githubcopilot.com/*", "https://api.githubcopilot.com/mcp/", True),
    ("https://Mcp.Example.com/*", "https://mcp.example.com./api", True),  # host without case or final dot
    ("https://mcp.example.com/API", "https://mcp.example.com/api", False),  # paths keep their case
    ("*://internal.corp/*", "http://internal.corp/x", True),
    ("https://mcp.example.com/*", "https://mcp.example.com.evil.io/x", False),
])
def test_urls_match_with_wildcards(pattern, url, matched):
    assert url_matches(pattern, url) is matched


def test_an_allowlist_asks_each_kind_of_server_for_its_own_kind_of_entry():
    by_name = policy(("user", {"allowedMcpServers": [{"serverName": "fs"}, {"serverName": "github"}]}))
    assert by_name.blocks(STDIO) == "" and by_name.blocks(REMOTE) == ""
    # once the list has serverUrl entries, a remote server must match one of them; names no longer count
    with_url = policy(("user", {"allowedMcpServers": [{"serverName": "github"}, {"serverUrl": "https://x.io/*"}]}))
    assert with_url.blocks(REMOTE) == "not in allowedMcpServers"
    named_stdio = McpServerConfig("github", "stdio", command="gh-mcp")
    assert with_url.blocks(named_stdio) == ""  # no serverCommand entry: a stdio server's name still counts
    with_command = policy(("user", {"allowedMcpServers": [{"serverName": "github"}, {"serverCommand": ["uvx", "x"]}]}))
    assert with_command.blocks(named_stdio) == "not in allowedMcpServers"
    assert with_command.blocks(McpServerConfig("other", "stdio", command="uvx", args=("x",))) == ""
    assert policy(("user", {"allowedMcpServers": []})).blocks(STDIO) == "not in allowedMcpServers"


def test_a_managed_only_allowlist_ignores_the_users_own_and_the_denylist_wins():
    managed = ("managed", {"allowedMcpServers": [{"serverName": "github"}], "allowManagedMcpServersOnly": True})
    user = ("user", {"allowedMcpServers": [{"serverName": "fs"}]})
    assert policy(managed, user).blocks(STDIO) == "not in allowedMcpServers"
    assert policy(managed[0:1] + ({"allowedMcpServers": [{"serverName": "github"}]},), user).blocks(STDIO) == ""
    assert policy(managed, ("user", {"deniedMcpServers": [{"serverName": "github"}]})).blocks(REMOTE) == "deniedMcpServers"


def test_managed_mcp_json_is_exclusive_and_its_own_servers_skip_the_allowlist_unless_they_expand_variables():
    strict = policy(("managed", {"allowedMcpServers": []}), exclusive=True)
    assert strict.blocks(STDIO) == "managed-mcp.json has exclusive control"
    assert strict.blocks(STDIO, managed_file=True) == ""
    expanding = STDIO._replace(args=("-y", "server", "${HOME}/src"))
    assert strict.blocks(expanding, managed_file=True) == "not in allowedMcpServers"
    assert apply_policy([STDIO, REMOTE], strict) == [STDIO._replace(enabled=False), REMOTE._replace(enabled=False)]


def test_malformed_entries_are_ignored():
    odd = {"deniedMcpServers": ["fs", {"serverName": ""}, {"serverCommand": "npx"}, {"serverCommand": [1]}, None]}
    assert policy(("managed", odd)).blocks(STDIO) == ""
    assert policy(("managed", {"allowedMcpServers": "all"})).allowed is None


# -- on a real tree -------------------------------------------------------------------------------------


def servers(root: Path) -> dict[str, dict[str, bool]]:
    found = FileScan(signatures.load(), str(root)).run(find_homes(str(root)))
    return {r.display_path: {s.name: s.enabled for s in r.mcp_servers}
            for r in found if isinstance(r, ConfigRecord) and r.mcp_servers}


def write(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


def test_the_scan_switches_off_what_the_organisation_blocks(tmp_path: Path):
    home = tmp_path / "home" / "alice"
    write(home / ".claude.json", {"mcpServers": {
        "fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/"]},
        "notes": {"command": "uvx", "args": ["notes-mcp"]}}})
    project = home / "src" / "app"
    (project / ".git").mkdir(parents=True)
    write(project / ".mcp.json", {"mcpServers": {"tracker": {"type": "http", "url": "https://mcp.tracker.io/v1"},
                                                 "docs": {"type": "http", "url": "https://docs.corp.example/mcp"}}})
    write(tmp_path / "etc" / "claude-code" / "managed-settings.json", {"deniedMcpServers": [
        {"serverCommand": ["npx", "-y", "@modelcontextprotocol/server-filesystem", "/"]},
        {"serverUrl": "https://*.tracker.io/*"}]})
    found = servers(tmp_path)
    assert found["/home/alice/.claude.json"] == {"fs": False, "notes": True}
    assert found["/home/alice/src/app/.mcp.json"] == {"tracker": False, "docs": True}

    # the user narrows it further for themselves; a project's own settings too
    write(home / ".claude" / "settings.json", {"deniedMcpServers": [{"serverName": "notes"}]})
    write(project / ".claude" / "settings.local.json", {"deniedMcpServers": [{"serverName": "docs"}]})
    found = servers(tmp_path)
    assert found["/home/alice/.claude.json"] == {"fs": False, "notes": False}
    assert found["/home/alice/src/app/.mcp.json"] == {"tracker": False, "docs": False}


def test_a_managed_mcp_json_leaves_only_its_own_servers_running(tmp_path: Path):
    home = tmp_path / "home" / "bob"
    write(home / ".claude.json", {"mcpServers": {"notes": {"command": "uvx", "args": ["notes-mcp"]}}})
    write(tmp_path / "etc" / "claude-code" / "managed-mcp.json",
          {"mcpServers": {"company": {"type": "http", "url": "https://mcp.corp.example/mcp"},
                          "blocked": {"command": "/opt/corp/blocked-mcp"}}})
    write(tmp_path / "etc" / "claude-code" / "managed-settings.json",
          {"deniedMcpServers": [{"serverName": "blocked"}], "allowedMcpServers": []})
    found = servers(tmp_path)
    assert found["/etc/claude-code/managed-mcp.json"] == {"company": True, "blocked": False}
    assert found["/home/bob/.claude.json"] == {"notes": False}
