"""End to end: real agent tools, installed from the registries and running offline, found by a scan.

Claude Code (with mcp-server-fetch configured in its own ``~/.claude.json``, so Claude Code spawns it)
and aider run interactively under pseudo-terminals in a network namespace whose only interface is
``lo``, with fake keys, talking to a local fake provider. ``agentroster scan --json --home <HOME>``
must then report both as running coding agents, the fetch server as a running tool server whose
parent is Claude Code, and no key value anywhere: credentials only as kind and fingerprint.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import e2e_agents, sighting_with_pid

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
CREDENTIAL_FIELDS = {"kind", "fingerprint", "source", "where"}


helpers = e2e_agents()


def _scan_command() -> list[str]:
    """The installed ``agentroster`` beside this Python, else the same command line from the tree."""
    script = Path(sys.executable).with_name("agentroster")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "endpoint.cli"]


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def session() -> Iterator[Any]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to put the agents in a network namespace with only lo")
    helpers.sweep_stale_namespaces("ar-e2e-")
    tools = helpers.ensure_tools()
    with helpers.AgentSession(tools, netns=f"ar-e2e-{os.getpid()}") as running:
        yield running.start()


@pytest.fixture(scope="module")
def scan_run(session: Any) -> subprocess.CompletedProcess[str]:
    argv = [*_scan_command(), "scan", "--json", "--home", str(session.home)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, f"scan failed ({done.returncode}): {done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="module")
def scan(scan_run: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(scan_run.stdout)
    assert document["schema"] == "agentroster.scan/1"
    return document


def _key_fragments(keys: dict[str, str]) -> set[str]:
    """Each key, and 16-character slices of its random part: none may appear in any output."""
    fragments = set()
    for value in keys.values():
        fragments.add(value)
        body = value.split("FAKE", 1)[1]
        fragments.update(body[i : i + 16] for i in range(0, len(body) - 16, 8))
    return fragments


# ----------------------------------------------------------------------------- the harness itself


def _provider_paths(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [json.loads(line)["path"] for line in log.read_text().splitlines() if line.strip()]


def test_agents_run_offline_and_talk_to_the_local_provider(session: Any) -> None:
    log = session.home.parent.parent / "provider.jsonl"

    def both_called() -> bool:
        paths = _provider_paths(log)
        return any(p.startswith("/v1/messages") for p in paths) and any("/chat/completions" in p for p in paths)

    assert helpers.wait_for(both_called, 60), _provider_paths(log)
    assert session.fetch_pid in helpers.children(session.claude_pid)


# ----------------------------------------------------------------------------- what the scan must say


def test_claude_code_is_a_running_coding_agent(scan: dict[str, Any], session: Any) -> None:
    sighting = sighting_with_pid(scan, session.claude_pid)
    assert "claude" in f"{sighting['signature']} {sighting['name']}".lower()
    assert sighting["type"] == "coding"
    assert sighting["running"] is True
    assert any(s["name"] == "fetch" for s in sighting["mcp_servers"]), sighting["mcp_servers"]


def test_aider_is_a_running_coding_agent(scan: dict[str, Any], session: Any) -> None:
    sighting = sighting_with_pid(scan, session.aider_pid)
    assert "aider" in f"{sighting['signature']} {sighting['name']}".lower()
    assert sighting["type"] == "coding"
    assert sighting["running"] is True


def test_fetch_server_is_a_running_tool_server_under_claude_code(scan: dict[str, Any], session: Any) -> None:
    claude = sighting_with_pid(scan, session.claude_pid)
    fetch = sighting_with_pid(scan, session.fetch_pid)
    assert fetch["type"] == "tool_server"
    assert fetch["running"] is True
    assert "fetch" in f"{fetch['signature']} {fetch['name']}".lower()
    assert fetch["parent"] == claude["id"]


def test_no_key_value_appears_in_the_output(scan_run: subprocess.CompletedProcess[str], session: Any) -> None:
    output = scan_run.stdout + scan_run.stderr
    leaked = [f for f in _key_fragments(session.keys) if f in output]
    assert not leaked, f"{len(leaked)} fragments of fake keys in the scan output"


def test_credentials_are_reduced_to_kind_and_fingerprint(scan: dict[str, Any], session: Any) -> None:
    claude = sighting_with_pid(scan, session.claude_pid)
    aider = sighting_with_pid(scan, session.aider_pid)
    assert "anthropic" in {c["kind"] for c in claude["credentials"]}
    assert "openai" in {c["kind"] for c in aider["credentials"]}
    for sighting in scan["sightings"]:
        for credential in sighting["credentials"]:
            assert set(credential) <= CREDENTIAL_FIELDS, credential
            assert credential["kind"] and credential["fingerprint"]
            assert not any(credential["fingerprint"] in key for key in session.keys.values())
