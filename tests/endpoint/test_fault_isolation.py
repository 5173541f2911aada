"""Fault isolation: a bug that raises on one unit of input (a file, a server entry, a process, a network
record, a sighting) is one ``internal`` errors[] entry naming that unit, and everything else is reported.

The bugs are injected with pytest's monkeypatch into one real function, raising for ONE unit only (a
mock of that function's behaviour for that unit, said here as the brief asks): what is under test is
that the scan around it survives. The homes, files, processes and the CLI are real.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from support import run_agentroster

from endpoint.scan import faults
from endpoint.scan.engine import attribution, declarations, placement, registry
from endpoint.scan.evidence import NetworkRecord
from endpoint.scan.parsers import DIALECTS
from endpoint.scan.parsers import mcp as mcp_parser
from endpoint.scan.run import ScanOptions, scan

FAKE_GITHUB = "ghp_FAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE"
GOOD_PER_FILE = 100
CURSOR = "/home/alice/.cursor/mcp.json"
WINDSURF = "/home/alice/.codeium/windsurf/mcp_config.json"
VSCODE = "/home/alice/.config/Code/User/mcp.json"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _servers(prefix: str) -> dict[str, dict[str, object]]:
    return {f"{prefix}-{i}": {"command": "npx", "args": ["-y", f"@example/{prefix}-server-{i}"]}
            for i in range(GOOD_PER_FILE)}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """alice's home: 200 good servers in Cursor's and Windsurf's files, and VS Code's file with the
    ``${input:…}`` URL of issue 9 beside one good server."""
    home = tmp_path / "home" / "alice"
    _write(home / ".cursor" / "mcp.json", json.dumps({"mcpServers": _servers("cursor")}))
    _write(home / ".codeium" / "windsurf" / "mcp_config.json", json.dumps({"mcpServers": _servers("windsurf")}))
    _write(home / ".config" / "Code" / "User" / "mcp.json", json.dumps({
        "inputs": [{"id": "home-assistant-domain", "type": "promptString", "description": "domain"}],
        "servers": {"home-assistant": {"type": "sse", "url": "https://${input:home-assistant-domain}/mcp_server/sse"},
                    "gh": {"command": "docker", "args": ["run", "-i", "ghcr.io/github/github-mcp-server"],
                           "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": FAKE_GITHUB}}}}))
    return tmp_path


def _tool_names(document: dict) -> set[str]:
    return {s["name"] for s in document["sightings"] if s["type"] == "tool_server"}


def _good_present(document: dict) -> None:
    names = _tool_names(document)
    for prefix in ("cursor", "windsurf"):
        missing = [i for i in range(GOOD_PER_FILE) if f"{prefix}-{i}" not in names]
        assert not missing, f"{prefix} servers missing: {missing[:5]}"


def _internal(document: dict) -> list[dict]:
    """The internal errors but the ``${input:…}`` URL's own (until redact_url takes it: another fix)."""
    return [e for e in document["errors"] if e["error"] == "internal"
            and e["where"] != f"{VSCODE}#/servers/home-assistant"]


def test_the_input_variable_url_of_issue_9_does_not_stop_the_scan(root: Path):
    """The real file of issue 9 through the real CLI: exit 0 and every other server reported (this
    exited 1 with a traceback and printed nothing before the engine isolated each server entry)."""
    done = run_agentroster("scan", "--root", str(root), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    document = json.loads(done.stdout)
    _good_present(document)
    assert "gh" in _tool_names(document)
    internal = [e for e in document["errors"] if e["error"] == "internal"]
    for error in internal:  # if the URL still breaks something, it is that one entry and nothing more
        assert error["where"] == f"{VSCODE}#/servers/home-assistant"
    assert FAKE_GITHUB not in done.stdout


def test_a_parser_that_raises_on_one_file_is_one_error(root: Path, monkeypatch: pytest.MonkeyPatch):
    spec = DIALECTS["vscode_mcp"]
    extract = spec.extract
    assert extract is not None

    def broken(document: dict, out) -> None:  # the mock: a parser bug on this one file
        if out.path == VSCODE:
            raise RuntimeError("parser bug")
        extract(document, out)

    monkeypatch.setitem(DIALECTS, "vscode_mcp", spec._replace(extract=broken))
    document = scan(ScanOptions(root=str(root), processes=False))
    _good_present(document)
    [error] = _internal(document)
    assert error["where"] == VSCODE
    assert error["detail"].startswith("RuntimeError in broken (test_fault_isolation.py") is False  # not our code
    assert error["detail"].startswith("RuntimeError") and "parser bug" in error["detail"]


def test_a_parser_that_raises_on_one_server_entry_skips_only_that_entry(root: Path, monkeypatch: pytest.MonkeyPatch):
    real = mcp_parser.enabled_flag

    def broken(entry) -> bool:  # the mock: reading this one entry of Cursor's file fails
        if entry.get("args") == ["-y", "@example/cursor-server-7"]:
            raise KeyError(FAKE_GITHUB)  # an exception whose message is a credential: never reported
        return real(entry)

    monkeypatch.setattr(mcp_parser, "enabled_flag", broken)
    document = scan(ScanOptions(root=str(root), processes=False))
    [error] = _internal(document)
    assert error["where"] == f"{CURSOR}#/mcpServers/cursor-7"
    assert error["detail"].startswith("KeyError")
    names = _tool_names(document)
    assert "cursor-7" not in names
    assert len(names & {f"{p}-{i}" for p in ("cursor", "windsurf") for i in range(GOOD_PER_FILE)}) \
        == 2 * GOOD_PER_FILE - 1
    assert FAKE_GITHUB not in json.dumps(document)


def test_the_engine_raising_on_one_declared_server_is_one_error(root: Path, monkeypatch: pytest.MonkeyPatch):
    real = declarations.redact_url

    def broken(url: str) -> str:  # the mock: the redact_url crash of issue 9, kept after its fix
        if "${input:" in url:
            raise ValueError(f"Port could not be cast to integer value as '{url}'")
        return real(url)

    monkeypatch.setattr(declarations, "redact_url", broken)
    document = scan(ScanOptions(root=str(root), processes=False))
    _good_present(document)
    assert "gh" in _tool_names(document)
    [error] = [e for e in document["errors"] if e["error"] == "internal"]
    assert error["where"] == f"{VSCODE}#/servers/home-assistant"
    assert error["detail"].startswith("ValueError in _mcp_dict (") and ".py:" in error["detail"]
    assert "${input" not in error["detail"]  # the quoted input is not copied into the report


def test_one_sighting_whose_to_dict_raises_is_one_error(root: Path, monkeypatch: pytest.MonkeyPatch):
    real = registry.Sighting.to_dict

    def broken(self: registry.Sighting, seen_at: str) -> dict:  # the mock: encoding fails for one sighting
        if self.name == "windsurf-42":
            raise TypeError("cannot encode")
        return real(self, seen_at)

    monkeypatch.setattr(registry.Sighting, "to_dict", broken)
    document = scan(ScanOptions(root=str(root), processes=False))
    names = _tool_names(document)
    assert "windsurf-42" not in names
    assert len(names & {f"{p}-{i}" for p in ("cursor", "windsurf") for i in range(GOOD_PER_FILE)}) \
        == 2 * GOOD_PER_FILE - 1
    [error] = _internal(document)
    assert error["where"].startswith("sighting ")
    assert faults.sensor_of(error["where"]) == "fingerprint"


def test_one_network_record_that_raises_is_one_error(root: Path, monkeypatch: pytest.MonkeyPatch):
    real = attribution.add_endpoint

    def broken(sighting: registry.Sighting, rec: NetworkRecord) -> None:  # the mock: one packet's bug
        if rec.host == "api.anthropic.com":
            raise OverflowError("bad packet")
        real(sighting, rec)

    monkeypatch.setattr(attribution, "add_endpoint", broken)
    now = time.time()
    network = [NetworkRecord("api.anthropic.com", 443, "sni", now, provider="anthropic"),
               NetworkRecord("api.openai.com", 443, "sni", now, provider="openai")]
    document = scan(ScanOptions(root=str(root), processes=False, network=network))
    _good_present(document)
    [error] = _internal(document)
    assert error["where"] == "network api.anthropic.com:443"
    hosts = {e["host"] for s in document["sightings"] for e in s["endpoints"]}
    assert hosts == {"api.openai.com"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_one_process_that_raises_is_one_error(tmp_path: Path, spawn, monkeypatch: pytest.MonkeyPatch):
    aider = tmp_path / "venv" / "bin" / "aider"
    _write(aider, "import time\ntime.sleep(60)\n")
    first = spawn([sys.executable, str(aider), "--model", "gpt-4o"])
    second = spawn([sys.executable, str(aider), "--model", "gpt-4o-mini"], cwd=tmp_path)
    time.sleep(0.5)
    real = placement.Placement.place_process

    def broken(self: placement.Placement, proc, match) -> None:  # the mock: placing this one process fails
        if proc.pid == first.pid:
            raise AttributeError("process bug")
        real(self, proc, match)

    monkeypatch.setattr(placement.Placement, "place_process", broken)
    document = scan(ScanOptions(files=False, aside=False))
    pids = {p["pid"] for s in document["sightings"] for p in s["processes"]}
    assert second.pid in pids and first.pid not in pids
    assert [e["where"] for e in _internal(document)] == [f"pid {first.pid}"]


def test_describe_keeps_no_quoted_input_and_no_traceback():
    try:
        {}[FAKE_GITHUB]
    except KeyError as exc:
        text = faults.describe(exc)
    assert text.startswith("KeyError in test_describe") is False  # a test's frame is not agentroster's code
    assert FAKE_GITHUB not in text and "Traceback" not in text
    assert faults.describe(ValueError("x" * 5000)).startswith("ValueError")
    assert len(faults.describe(ValueError("a b " * 5000))) < 200
