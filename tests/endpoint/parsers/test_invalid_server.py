"""A server entry that declares no server (no command, no url, no known transport) is one ``errors[]``
entry ``invalid_server`` naming the file and entry, never dropped silently; a Codex table that only
overrides another layer's server (``enabled = false``) is not an error."""

from __future__ import annotations

import json
from pathlib import Path

import corpus_support as cs
import pytest
from support import run_agentroster

from endpoint.scan.parsers import parse_config

CORPUS = {f.path.name.split("-")[0]: f for f in cs.load_corpus()}


def scan_placed(tmp_path: Path, *numbers: str) -> tuple[dict[str, object], dict[str, Path]]:
    """The real ``agentroster scan --json --root`` over the given corpus files, each in a home of its own."""
    root = tmp_path / "root"
    placed = {n: cs.place(CORPUS[n], root, f"u{n}") for n in numbers}
    done = run_agentroster("scan", "--json", "--root", str(root), "--no-processes")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), {n: Path("/") / p.relative_to(root) for n, p in placed.items()}


def test_corpus_entries_that_are_not_servers_are_errors_and_codex_overrides_are_not(tmp_path: Path) -> None:
    document, shown = scan_placed(tmp_path, "059", "141", "232")
    invalid = sorted((e["where"], e["detail"]) for e in document["errors"] if e["error"] == "invalid_server")
    assert invalid == [
        # {"link": "https://mcp.supabase.com/mcp"}: a link to read, not a server to run
        (f"{shown['059']}#/mcpServers/supabase", "not an MCP server: no command, no url and no known transport"),
        # {"transport": {"type": "http", "url": …}}: the server is nested where no client reads it
        (f"{shown['141']}#/mcpServers/figma", "not an MCP server: no command, no url and no known transport"),
    ]
    servers = {(s["name"], m["source"]) for s in document["sightings"] for m in s["mcp_servers"]}
    assert ("github", str(shown["059"])) in servers  # its neighbour with a url is a server as before
    assert ("chrome-devtools", str(shown["141"])) in servers
    # 232's "[mcp_servers.notion] enabled = false" only switches off a server another layer defines
    assert not [e for e in document["errors"] if e["where"].startswith(str(shown["232"]))]


@pytest.mark.parametrize(("dialect", "text", "where"), [
    ("mcp_json", '{"mcpServers": {"a": "npx server"}}', "/mcpServers/a"),
    ("mcp_json", '{"mcpServers": {"a": {"link": "https://example.org"}}}', "/mcpServers/a"),
    ("mcp_json", '{"mcpServers": {"a": {"command": ["npx"]}}}', "/mcpServers/a"),
    ("mcp_json", '{"mcpServers": {"a": {"type": "carrier-pigeon", "link": "https://example.org"}}}', "/mcpServers/a"),
    ("codex_toml", 'mcp_servers = {a = "npx server"}', "/mcp_servers/a"),
    ("codex_toml", '[mcp_servers.a]\nlink = "https://example.org"', "/mcp_servers/a"),
    ("zed_settings", '{"context_servers": {"a": []}}', "/context_servers/a"),
    ("opencode_json", '{"mcp": {"a": {"type": "local", "command": [1]}}}', "/mcp/a"),
])
def test_an_entry_that_is_not_a_server_is_one_invalid_server_failure(dialect: str, text: str, where: str) -> None:
    parsed = parse_config(dialect, text, path="/home/alice/config")
    assert parsed.mcp_servers == []
    assert [(f.where, f.error) for f in parsed.failures] == [(where, "invalid_server")]


def test_an_entry_with_a_known_transport_and_nothing_else_is_still_read_as_before() -> None:
    parsed = parse_config("mcp_json", '{"mcpServers": {"a": {"type": "stdio"}}}', path="/home/alice/.cursor/mcp.json")
    assert [(s.name, s.transport) for s in parsed.mcp_servers] == [("a", "stdio")] and parsed.failures == []


@pytest.mark.parametrize("table", ["enabled = false", "enabled_tools = ['search']\ntool_timeout_sec = 30"])
def test_a_codex_table_that_only_overrides_is_silent(table: str) -> None:
    parsed = parse_config("codex_toml", f"[mcp_servers.notion]\n{table}\n", path="/home/alice/.codex/config.toml")
    assert parsed.mcp_servers == [] and parsed.failures == []
