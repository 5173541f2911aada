"""End to end: intent over time. A real `agentroster server` on 127.0.0.1 (SQLite file) and a real
`agentroster daemon --once` reporting tmp homes; alice registers her agent with `agentroster register`,
an admin approves it over HTTP; then her config gains an MCP server reaching a payroll database, the
daemon reports again, and the collector holds a drift event with exactly that difference and when it
began. The admin accepts it and the agent is governed again. (A new provider needs the network sensor;
the collector-side test of provider + MCP server together is tests/console/server/test_timeline.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from factories import build_homes
from support import AGENTROSTER, TESTS

sys.path.append(str(TESTS / "console" / "server"))
import servers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

ENV = {"AGENTROSTER_SENSORS": "files", "AGENTROSTER_LOG_LEVEL": "info"}
PAYROLL = {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-postgres",
                                      "postgresql://db.internal:5432/payroll"]}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **ENV, **(env or {})}
    if not env or "SUDO_USER" not in env:
        full.pop("SUDO_USER", None)
    return subprocess.run([AGENTROSTER, *args], capture_output=True, text=True, timeout=120, env=full,
                          stdin=subprocess.DEVNULL)


def config_of(sighting: dict[str, Any], root: Path) -> Path | None:
    """The JSON config with a top-level ``mcpServers`` that declares this sighting's servers, on the tmp machine."""
    for config in sighting["configs"]:
        for path in (Path(config["path"]), root / config["path"].lstrip("/")):
            if path.is_file() and str(path).startswith(str(root)) and path.suffix == ".json":
                try:
                    doc = json.loads(path.read_text())
                except ValueError:
                    continue
                if isinstance(doc, dict) and isinstance(doc.get("mcpServers"), dict) and doc["mcpServers"]:
                    return path
    return None


def test_a_new_mcp_server_is_a_drift_event_with_its_start_and_accepting_it_governs_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/collector.sqlite3"
    tokens = servers.provision(url)
    collector = servers.CollectorProcess(url, log=tmp_path / "server.log").start()
    admin = {"authorization": f"Bearer {tokens['admin']}"}
    http = httpx.Client(base_url=collector.base_url, headers=admin, timeout=30)
    try:
        secret = tmp_path / "enroll-secret"
        secret.write_text(tokens["enroll_secret"] + "\n")
        secret.chmod(0o600)
        root, data = tmp_path / "root", tmp_path / "data"
        build_homes(root, homes=2)
        daemon = ("daemon", "--once", "--collector", collector.base_url, "--enroll-secret-file", str(secret),
                  "--data-dir", str(data), "--root", str(root))
        done = run(*daemon)
        assert done.returncode == 0, done.stderr

        roster = http.get("/api/v1/agents", params={"limit": 500}).json()["data"]
        target, config = next((a, c) for a in roster if a["user"] == "alice" and not a.get("parent")
                              for c in [config_of(http.get(f"/api/v1/agents/{a['device_id']}/{a['id']}").json(), root)]
                              if c is not None)
        device_id, sighting_id = target["device_id"], target["id"]
        done = run("register", "--data-dir", str(data), sighting_id, "--owner", "alice@example.com", "--purpose",
                   "refactors the billing service", "--data-system", "git", env={"SUDO_USER": "alice"})
        assert done.returncode == 0, done.stderr
        [registration] = http.get("/api/v1/registrations", params={"sighting": sighting_id}).json()["data"]
        assert http.post(f"/api/v1/registrations/{registration['id']}/approve", json={"note": "ok"}).status_code == 200
        shown = http.get(f"/api/v1/agents/{device_id}/{sighting_id}").json()
        assert shown["governed"] is True, shown["flags"]

        doc = json.loads(config.read_text())
        doc["mcpServers"]["payroll-db"] = PAYROLL
        config.write_text(json.dumps(doc, indent=2) + "\n")
        began = time.time()
        done = run(*daemon)
        assert done.returncode == 0, done.stderr

        timeline = http.get(f"/api/v1/agents/{device_id}/{sighting_id}/timeline").json()
        [event] = timeline["events"]
        # the daemon reports the new server inside the agent and as a tool server child of it: both on the root
        spawned = [a["id"] for a in http.get("/api/v1/agents", params={"limit": 500}).json()["data"]
                   if a["name"] == "payroll-db" and a["id"] != sighting_id]
        assert event["added"] == {"providers": [], "mcp_servers": ["payroll-db"], "tools": [],
                                  "systems": ["postgresql://db.internal/payroll"], "autonomy": False, "via": spawned}
        assert event["status"] == "open"
        assert began - 1 <= datetime.fromisoformat(event["began_at"]).timestamp() <= time.time() + 1
        facts = {(f["kind"], f["value"]) for f in timeline["facts"] if f["gone_at"] is None}
        assert {("mcp_server", "payroll-db"), ("system", "postgresql://db.internal/payroll")} <= facts
        assert http.get(f"/api/v1/agents/{device_id}/{sighting_id}").json()["governed"] is False

        answer = http.post(f"/api/v1/agents/{device_id}/{sighting_id}/drift/{event['id']}/accept")
        assert answer.status_code == 200, answer.text
        assert http.get(f"/api/v1/agents/{device_id}/{sighting_id}").json()["governed"] is True
        declared = http.get("/api/v1/registrations", params={"sighting": sighting_id}).json()["data"][0]
        assert "payroll-db" in declared["tools"] and "postgresql://db.internal/payroll" in declared["data_systems"]
    finally:
        http.close()
        collector.stop()
