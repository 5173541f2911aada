"""The engine is told whose home the scan runs in (it reads no environment): a declared server given
that home, like one given ``/`` or ``~``, reaches every file there."""

from __future__ import annotations

import pytest

import signatures
from endpoint.scan.engine import Engine
from endpoint.scan.evidence import ConfigRecord, McpServerConfig


def tool_flags(home: str, folder: str) -> list[str]:
    server = McpServerConfig(name="files", transport="stdio", command="npx",
                             args=("-y", "@modelcontextprotocol/server-everything", folder), where="/mcpServers/files")
    config = ConfigRecord(path="/home/alice/.cursor/mcp.json", display_path="/home/alice/.cursor/mcp.json",
                          signature="cursor", dialect="mcp_json", scope="user", user="alice", mcp_servers=[server])
    engine = Engine(signatures.load(), device_id="d", platform="linux", home=home)
    engine.add_configs([config])
    (tool,) = [s for s in engine.result("now") if s["type"] == "tool_server"]
    return tool["flags"]


@pytest.mark.parametrize("folder", ["/", "~", "/srv/scan-home"])
def test_a_server_given_a_whole_home_or_disk_reaches_broadly(folder: str) -> None:
    assert tool_flags("/srv/scan-home", folder) == ["broad_tools"]


def test_the_home_is_the_one_passed_in_not_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/srv/scan-home")
    assert tool_flags("", "/srv/scan-home") == []
    assert tool_flags("/srv/other", "/srv/scan-home") == []
