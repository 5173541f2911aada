"""The tools an MCP server entry names (Cline's autoApprove, Roo Code's alwaysAllow, Gemini CLI's includeTools,
Codex's enabled_tools) reach the report as the server's ``tools``, from real configs of the corpus and from
a real scan; a server that names none keeps the shape it always had."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from endpoint.scan.parsers import parse_config
from endpoint.scan.parsers.mcp import MAX_TOOLS

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "configs"


def tools(dialect: str, text: str) -> dict[str, tuple[str, ...]]:
    parsed = parse_config(dialect, text)
    assert parsed.failures == []
    return {s.name: s.tools for s in parsed.mcp_servers}


def test_clines_auto_approve_list_names_the_tools_of_a_real_config() -> None:
    text = (CORPUS / "cline" / "251-ciubancanc-sequentialthinking.json").read_text()
    assert tools("mcp_json", text) == {"fidora": ("rolePrompt", "sequentialThinking")}


def test_roo_codes_always_allow_list_names_the_tools_of_a_real_config() -> None:
    text = (CORPUS / "roo-code" / "100-a-point-systems-ltd-ms-sql-mcp.json").read_text()
    [(name, named)] = tools("mcp_json", text).items()
    assert name == "MSSQL TEST MCP" and named[:3] == ("GetServerInfo", "ListTables", "DescribeTable")
    assert len(named) == 14


def test_gemini_include_tools_and_codex_enabled_tools_name_tools_and_exclusions_do_not() -> None:
    gemini = json.dumps({"mcpServers": {"github": {"command": "npx", "includeTools": ["create_issue", "list_prs"],
                                                   "excludeTools": ["delete_repo"]}}})
    assert tools("gemini_settings", gemini) == {"github": ("create_issue", "list_prs")}
    codex = '[mcp_servers.docs]\ncommand = "npx"\nenabled_tools = ["search", "fetch"]\ndisabled_tools = ["write"]\n'
    assert tools("codex_toml", codex) == {"docs": ("search", "fetch")}


def test_a_list_that_is_not_names_adds_no_tool_and_keeps_the_server() -> None:
    text = json.dumps({"mcpServers": {
        "odd": {"command": "npx", "autoApprove": "everything", "alwaysAllow": [1, None, {"x": 1}, "  ", "read"]},
        "many": {"command": "npx", "autoApprove": [f"t{i}" for i in range(MAX_TOOLS + 50)] + ["t1"]},
        "plain": {"command": "npx"},
    }})  # fmt: skip
    found = tools("mcp_json", text)
    assert found["odd"] == ("read",) and found["plain"] == ()
    assert len(found["many"]) == MAX_TOOLS and found["many"][:2] == ("t0", "t1")  # each once, bounded


def test_a_real_scan_reports_the_tools_and_leaves_a_server_without_tools_as_it_was(tmp_path: Path) -> None:
    settings = tmp_path / "home" / "alice" / ".cline" / "data" / "settings"
    settings.mkdir(parents=True)
    corpus = json.loads((CORPUS / "cline" / "251-ciubancanc-sequentialthinking.json").read_text())
    corpus["mcpServers"]["memory"] = {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"]}
    (settings / "cline_mcp_settings.json").write_text(json.dumps(corpus))
    env = {**os.environ, "AGENTROSTER_FINGERPRINT_KEY": "FAKE-fingerprint-key-0000"}
    done = subprocess.run([sys.executable, "-m", "endpoint.cli", "scan", "--root", str(tmp_path), "--json"],
                          capture_output=True, text=True, timeout=120, env=env, check=False)
    assert done.returncode == 0, done.stderr
    scanned = json.loads(done.stdout)
    [cline] = [s for s in scanned["sightings"] if s["signature"] == "cline"]
    servers = {m["name"]: m for m in cline["mcp_servers"]}
    assert servers["fidora"]["tools"] == ["rolePrompt", "sequentialThinking"]
    assert "tools" not in servers["memory"]
