"""End to end: no credential value in any output. Every planted secret shape (tests/planted_secrets.py) in
configs, MCP server declarations and real processes' command lines, through the real `agentroster scan
--json`, a real `agentroster daemon --once` reporting to a real collector, and a hand-built report that skips
the endpoint's redaction (the collector's own scrubbing); the collector's SQLite files are read as bytes."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import planted_secrets as planted
import pytest
from support import TESTS, run_agentroster, sighting_with_pid

sys.path.append(str(TESTS / "console" / "server"))
import fleet
import servers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

ORG_KEY = {"AGENTROSTER_FINGERPRINT_KEY": "test-org-key-not-a-secret"}
REMOTE_URL = (f"https://deploy:{planted.DB_PASSWORD}@mcp.example.com/s/{planted.PATH_KEY}/sse"
              f"?token={planted.QUERY_TOKEN}&key={planted.GOOGLE}")


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A machine image whose user keeps every planted secret in her agents' configs."""
    root = tmp_path / "root"
    home = root / "home" / "alice"
    _write(home / ".claude.json", {"mcpServers": {
        "leaky-args": {"command": "npx", "args": ["-y", "@acme/mcp-server", *planted.ARGV],
                       "env": {"OPENAI_API_KEY": planted.OPENAI, "DB_PASSWORD": planted.DB_PASSWORD}},
        "github": {"command": "docker", "args": ["run", "-i", "--rm", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN",
                                                 "ghcr.io/github/github-mcp-server"],
                   "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": planted.GITHUB}},
        "remote": {"type": "http", "url": REMOTE_URL,
                   "headers": {"Authorization": f"Bearer {planted.BEARER}", "x-api-key": planted.API_HEADER,
                               "Cookie": f"session={planted.COOKIE}"}},
        "db": {"command": "mysql", "args": ["-uroot", f"-p{planted.MYSQL_PASSWORD}", "prod"]},
        "odd-command": {"command": f"SERVICE_TOKEN={planted.BEARER}"},  # quoted in the evidence of its match
        "java": {"command": "java", "args": [f"-Dapi.key={planted.JAVA_PROP}", "-jar", "server.jar",
                                             f"--aws={planted.AWS}", "--anthropic-key", planted.ANTHROPIC]},
    }})
    _write(home / ".config" / "Code" / "User" / "mcp.json", {
        "inputs": [{"id": "home-assistant-domain", "type": "promptString"}],
        "servers": {
            "home-assistant": {"type": "sse", "url": "https://${input:home-assistant-domain}/mcp_server/sse"},
            "gitlab": {"type": "http", "url": f"https://oauth2:{planted.GITLAB}@gitlab.example.com/api/mcp",
                       "headers": {"PRIVATE-TOKEN": planted.GITLAB}},
            "redis": {"command": "redis-cli", "args": ["-a", planted.REDIS_PASSWORD, "--password", planted.SHORT_PASSWORD]},
            "fetch": {"command": "uvx", "args": ["mcp-server-fetch"]},
        }})
    return root


def _credential_kinds(document: dict[str, Any]) -> set[str]:
    return {c["kind"] for s in document["sightings"] for c in s["credentials"] if c["fingerprint"]}


def test_scan_of_a_tree_shows_no_planted_secret_and_fingerprints_the_known_kinds(tree: Path) -> None:
    done = run_agentroster("scan", "--json", "--root", str(tree), env={**os.environ, **ORG_KEY})
    assert done.returncode == 0, done.stderr
    assert planted.leaked(done.stdout + done.stderr) == []
    document = json.loads(done.stdout)
    servers_by_name = {m["name"]: m for s in document["sightings"] for m in s["mcp_servers"]}
    assert {"leaky-args", "github", "remote", "db", "java", "home-assistant", "gitlab", "redis", "fetch"} <= set(
        servers_by_name)
    # the ${input:…} host is kept as written, and no longer stops the scan
    assert servers_by_name["home-assistant"]["url"] == "https://${input:home-assistant-domain}/mcp_server/sse"
    assert servers_by_name["remote"]["url"] == (
        "https://mcp.example.com/s/[REDACTED]/sse?token=[REDACTED:generic]&key=[REDACTED:google]")
    assert servers_by_name["db"]["args"] == ["-uroot", "-p[REDACTED:generic]", "prod"]
    assert "--print" in servers_by_name["leaky-args"]["args"]  # what is no secret stays
    details = [e["detail"] for s in document["sightings"] for e in s["evidence"]]
    assert "declared MCP server command 'service_token=[REDACTED:generic]'" in details, details
    kinds = {kind for value, kind in planted.KINDS.items() if kind is not None}
    assert kinds <= _credential_kinds(document), _credential_kinds(document)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_running_processes_command_lines_are_redacted(tmp_path: Path, spawn: Any) -> None:
    home = tmp_path / "home" / "alice"
    aider = tmp_path / "venv" / "bin" / "aider"
    aider.parent.mkdir(parents=True)
    aider.write_text("import time\ntime.sleep(120)\n")
    home.mkdir(parents=True)
    proc = spawn(["python3", str(aider), "--model", "gpt-4o", *planted.ARGV], env={**os.environ, "HOME": str(home)})
    unknown = spawn(["python3", "-c", "import time; time.sleep(120)", "https://api.openai.com/v1/chat",
                     f"--api-key={planted.OPENAI}", f"postgresql://app:{planted.DB_PASSWORD}@db/prod"])
    time.sleep(0.5)
    done = run_agentroster("scan", "--json", "--home", str(home), env={**os.environ, **ORG_KEY})
    assert done.returncode == 0, done.stderr
    assert planted.leaked(done.stdout + done.stderr) == []
    document = json.loads(done.stdout)
    sighting = sighting_with_pid(document, proc.pid)
    cmdline = next(p["cmdline"] for p in sighting["processes"] if p["pid"] == proc.pid)
    assert cmdline[1:4] == [str(aider), "--model", "gpt-4o"]
    assert "env ANTHROPIC_API_KEY=[REDACTED:anthropic] make" in cmdline
    assert {"anthropic", "openai", "github", "google", "aws"} <= {c["kind"] for c in sighting["credentials"]}
    other = sighting_with_pid(document, unknown.pid)
    assert "--api-key=[REDACTED:openai]" in next(p["cmdline"] for p in other["processes"] if p["pid"] == unknown.pid)


# -- the collector ---------------------------------------------------------------------------------


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[tuple[servers.CollectorProcess, dict[str, str], Path]]:
    db = tmp_path / "collector.sqlite3"
    url = f"sqlite:///{db}"
    tokens = servers.provision(url)
    process = servers.CollectorProcess(url, log=tmp_path / "server.log").start()
    yield process, tokens, db
    process.stop()


def _stored_bytes(db: Path) -> str:
    """Everything the collector's SQLite database holds on disk, the write-ahead log included."""
    data = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    return data.decode("latin-1")


def _leaky_sighting() -> dict[str, Any]:
    """A sighting as an old or altered endpoint could send it: every planted value in clear."""
    return fleet.sighting(
        name="leaky", pid=4242,
        processes=[{"pid": 4242, "ppid": 1, "name": "node", "exe": "/usr/bin/node", "cmdline": ["node", *planted.ARGV],
                    "user": "alice", "started": 1_700_000_000.0}],
        mcp_servers=[{"name": "remote", "transport": "http", "command": f"env GITHUB_TOKEN={planted.GITHUB} node",
                      "args": planted.ARGV, "url": REMOTE_URL, "source": "/home/alice/.claude.json", "enabled": True,
                      "project": None}],
        credentials=[{"kind": "openai", "fingerprint": "hmac-sha256:" + "0" * 32, "source": "env",
                      "where": f"pid 4242 env OPENAI_API_KEY {planted.OPENAI}"}],
        evidence=[{"kind": "process", "rule": "process.cmdline", "detail": f"pid 4242: node --token {planted.BEARER}"},
                  {"kind": "config", "rule": "files.user", "detail": f"x-api-key: {planted.API_HEADER}"}],
    )


def test_the_collector_stores_no_planted_secret_from_a_report_that_skipped_redaction(collector: Any) -> None:
    process, tokens, db = collector
    host = f"host:leak-{uuid.uuid4().hex[:8]}"
    enrolled = httpx.post(process.base_url + "/api/v1/enroll", json={
        "enroll_secret": tokens["enroll_secret"], "host_identifier": host, "device": fleet.device_doc(host)},
        timeout=30)
    assert enrolled.status_code == 200, enrolled.text
    key = enrolled.json()["device_key"]
    # a sighting with nothing to scrub but a key in a credential's where (which names variables, not values)
    quiet = fleet.sighting(name="quiet", credentials=[{
        "kind": "github", "fingerprint": "hmac-sha256:" + "1" * 32, "source": "config",
        "where": f"/home/alice/.claude.json#/mcpServers/gh/env/{planted.GITHUB}"}])
    report = fleet.report(fleet.device_doc(host), kind="snapshot", upserts=[_leaky_sighting(), quiet],
                          status={"sensors": {"network": f"limited: password={planted.SHORT_PASSWORD}"}})
    assert planted.leaked(json.dumps(report)) != []  # the report does carry them
    answer = httpx.post(process.base_url + "/api/v1/reports", json=report, headers={"authorization": f"Bearer {key}"},
                        timeout=30)
    assert answer.status_code == 200, answer.text
    stored = httpx.get(process.base_url + "/api/v1/agents", params={"device": enrolled.json()["device_id"]},
                       headers={"authorization": f"Bearer {tokens['admin']}"}, timeout=30).json()["data"]
    assert sorted(s["name"] for s in stored) == ["leaky", "quiet"]
    on_disk = _stored_bytes(db)
    assert "[REDACTED:anthropic]" in on_disk  # the sighting is there, scrubbed
    assert planted.leaked(on_disk) == []


def test_a_daemon_report_leaves_no_planted_secret_in_the_collectors_database(collector: Any, tree: Path,
                                                                              tmp_path: Path) -> None:
    process, tokens, db = collector
    secret = tmp_path / "enroll-secret"
    secret.write_text(tokens["enroll_secret"])
    secret.chmod(0o600)
    done = run_agentroster("daemon", "--once", "--collector", process.base_url, "--enroll-secret-file", str(secret),
                           "--data-dir", str(tmp_path / "data"), "--root", str(tree),
                           env={**os.environ, **ORG_KEY, "AGENTROSTER_SENSORS": "files"}, timeout=180)
    assert done.returncode == 0, done.stderr
    assert planted.leaked(done.stdout + done.stderr) == []
    on_disk = _stored_bytes(db)
    for name in ("leaky-args", "remote", "db", "java", "home-assistant", "gitlab", "redis", "fetch"):
        assert f'"name":"{name}"' in on_disk, name  # every server arrived, the ${input:…} one too
    assert planted.leaked(on_disk) == []
    daemon_state = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("*") if p.is_file()).decode("latin-1")
    assert planted.leaked(daemon_state) == []
