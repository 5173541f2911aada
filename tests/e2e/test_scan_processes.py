"""End to end: child processes with real agents' argv and a home with real-format configs, scanned by
the real `agentroster scan --json`, the JSON checked against the contract.

The agents are stand-ins (a node script laid out where npm installs Claude Code, a Python script
where pip installs aider) because what is under test is recognition from the outside: executable
paths, command lines, environment, process tree, configs. tests/e2e/test_real_agents.py runs the
real tools.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import jsonschema
import pytest
from support import REPO, run_agentroster

pytestmark = pytest.mark.e2e

FAKE_ANTHROPIC = "sk-ant-api03-FAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE-FAKEAA"
FAKE_OPENAI = "sk-proj-FAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE"
FAKE_GITHUB = "ghp_FAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE"
NODE = shutil.which("node") or shutil.which("nodejs")

CLAUDE_CLI = """
// Stands in for Claude Code: spawns the MCP server its config declares, as Claude Code does, and waits.
const { spawn } = require("child_process");
const [server, project] = process.argv.slice(-2);
spawn(process.execPath, [server, project], {stdio: "ignore", env: {...process.env, CLAUDECODE: "1"}});
setInterval(() => {}, 1000);
"""
MCP_SERVER = "setInterval(() => {}, 1000);\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def machine(tmp_path: Path) -> dict:
    """A home with Claude Code's and aider's configs, and the installs the stand-ins run from."""
    home = tmp_path / "home" / "alice"
    project = home / "src" / "shop"
    modules = tmp_path / "usr" / "lib" / "node_modules"
    cli = _write(modules / "@anthropic-ai" / "claude-code" / "cli.js", CLAUDE_CLI)
    server = _write(modules / "@modelcontextprotocol" / "server-filesystem" / "dist" / "index.js", MCP_SERVER)
    _write(project / "README.md", "shop\n")
    _write(home / ".claude.json", json.dumps({
        "numStartups": 3,
        "mcpServers": {"filesystem": {"command": "npx",
                                      "args": ["-y", "@modelcontextprotocol/server-filesystem", str(project)]}},
        "projects": {str(project): {"allowedTools": [], "mcpServers": {
            "github": {"command": "docker", "args": ["run", "-i", "--rm", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN",
                                                     "ghcr.io/github/github-mcp-server"],
                       "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": FAKE_GITHUB}}}}},
    }))
    _write(project / ".mcp.json", json.dumps({"mcpServers": {"docs": {"type": "http",
                                                                      "url": "https://mcp.example.com/mcp"}}}))
    _write(home / ".claude" / "settings.json", json.dumps({"permissions": {"defaultMode": "bypassPermissions"}}))
    _write(project / ".aider.conf.yml", "model: gpt-4o\nyes-always: true\n")
    aider = _write(tmp_path / "venv" / "bin" / "aider", "import time\ntime.sleep(120)\n")
    agent = _write(project / "triage_bot.py", "try:\n    import openai\nexcept ImportError:\n    pass\n"
                                             "import time\ntime.sleep(120)\n")
    return {"home": home, "project": project, "cli": cli, "server": server, "aider": aider, "agent": agent}


@pytest.mark.skipif(NODE is None, reason="needs Node.js (./dev test installs Debian's nodejs)")
def test_scan_finds_running_agents_their_mcp_servers_and_an_unknown(machine, spawn):
    env = {**os.environ, "HOME": str(machine["home"]), "ANTHROPIC_API_KEY": FAKE_ANTHROPIC}
    claude = spawn([NODE, str(machine["cli"]), "--dangerously-skip-permissions", str(machine["server"]),
                    str(machine["project"])], env=env, cwd=machine["project"])
    aider = spawn(["python3", str(machine["aider"]), "--yes-always", "--model", "gpt-4o"],
                  env={**env, "OPENAI_API_KEY": FAKE_OPENAI}, cwd=machine["project"])
    bot = spawn(["python3", "triage_bot.py"], env={**os.environ, "OPENAI_API_KEY": FAKE_OPENAI},
                cwd=machine["project"])
    _wait_for_children(claude.pid)

    done = run_agentroster("scan", "--json", "--home", str(machine["home"]))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for secret in (FAKE_ANTHROPIC, FAKE_OPENAI, FAKE_GITHUB):
        assert secret not in out and secret[:24] not in out, "a credential value leaked into the scan output"
    document = json.loads(out)
    schema = json.loads((REPO / "contract" / "schema" / "scan-1.json").read_text())
    jsonschema.validate(document, schema)

    sightings = document["sightings"]
    by_pid = {p["pid"]: s for s in sightings for p in s["processes"]}
    code = by_pid[claude.pid]
    assert (code["signature"], code["type"], code["running"]) == ("claude-code", "coding", True)
    assert "autonomous" in code["flags"]
    assert str(machine["home"] / ".claude.json") in {c["path"] for c in code["configs"]}
    assert {c["kind"] for c in code["credentials"]} >= {"anthropic"}

    children = {s["name"]: s for s in sightings if s["parent"] == code["id"]}
    assert {"filesystem", "github", "docs"} <= set(children)
    fs = children["filesystem"]
    assert fs["type"] == "tool_server" and fs["running"], fs
    assert "broad_tools" in fs["flags"]
    assert "plaintext_secret" in children["github"]["flags"]
    assert "remote_tool_server" in children["docs"]["flags"]

    assert by_pid[aider.pid]["signature"] == "aider"
    assert "autonomous" in by_pid[aider.pid]["flags"]
    unknown = by_pid[bot.pid]
    assert unknown["type"] == "unknown" and unknown["signature"] is None
    assert any("openai" in e["detail"] for e in unknown["evidence"])


def _wait_for_children(pid: int, timeout: float = 10) -> None:
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if psutil.Process(pid).children():
            return
        time.sleep(0.05)
    raise AssertionError("the stand-in agent did not start its MCP server")
