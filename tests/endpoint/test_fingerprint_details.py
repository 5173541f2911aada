"""The engine asks for a process's details (environment, credentials) only where they can matter."""

from __future__ import annotations

import signatures
from endpoint.scan.engine import Engine
from endpoint.scan.evidence import Credential, ProcessRecord

CLAUDE = ["node", "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js"]


def proc(pid: int, ppid: int, argv: list[str], exe: str = "") -> ProcessRecord:
    exe = exe or argv[0]
    return ProcessRecord(pid=pid, ppid=ppid, name=exe.rsplit("/", 1)[-1][:15], exe=exe, cmdline=list(argv),
                         user="alice", uid=1000, create_time=0.0)


def machine() -> list[ProcessRecord]:
    return [
        proc(10, 1, ["-bash"], "/usr/bin/bash"),
        proc(20, 10, CLAUDE, "/usr/bin/node"),  # an agent
        proc(30, 20, ["/bin/sh", "-c", "ls"]),  # below the agent
        proc(31, 30, ["/usr/bin/ls"]),  # further below
        proc(40, 1, ["python3", "/srv/report.py"], "/usr/bin/python3.12"),  # an interpreter: maybe an unknown agent
        proc(50, 1, ["/usr/sbin/cron", "-f"]),  # nothing to do with agents
        proc(60, 1, ["/usr/bin/curl", "https://example.org"]),  # named by a network record
    ]


def test_details_are_read_for_agents_their_subtrees_interpreters_and_named_pids() -> None:
    asked: list[int] = []
    engine = Engine(signatures.load(), device_id="d", platform="linux")
    engine.add_processes(machine(), read_details=lambda p: asked.append(p.pid), details_for={60})
    assert sorted(asked) == [20, 30, 31, 40, 60]


def test_details_are_in_before_processes_are_placed() -> None:
    def details(record: ProcessRecord) -> None:
        if record.pid == 20:
            record.credentials.append(Credential("anthropic", "hmac-sha256:00", "env", "pid 20 env ANTHROPIC_API_KEY"))

    engine = Engine(signatures.load(), device_id="d", platform="linux")
    engine.add_processes(machine(), read_details=details)
    (code,) = [s for s in engine.result("now") if s["signature"] == "claude-code"]
    assert [c["kind"] for c in code["credentials"]] == ["anthropic"]


def test_without_a_reader_records_are_taken_as_they_come() -> None:
    engine = Engine(signatures.load(), device_id="d", platform="linux")
    engine.add_processes(machine())
    assert any(s["signature"] == "claude-code" for s in engine.result("now"))


def test_network_calls_land_on_agents_and_only_provider_calls_make_unknowns() -> None:
    from endpoint.scan.evidence import NetworkRecord

    engine = Engine(signatures.load(), device_id="d", platform="linux")
    engine.add_processes(machine())
    engine.add_network([
        NetworkRecord(host="api.openai.com", port=443, via="sni", ts=1.0, pid=40, provider="openai"),
        NetworkRecord(host="example.org", port=443, via="sni", ts=2.0, pid=60),  # curl: not an agent
        NetworkRecord(host="github.com", port=443, via="sni", ts=3.0, pid=31),  # below Claude Code
        NetworkRecord(host="api.mistral.ai", port=443, via="dns", ts=4.0, provider="mistral"),  # no pid
    ])
    found = engine.result("now")
    by_endpoint = {e["host"]: s for s in found for e in s["endpoints"]}
    assert by_endpoint["api.openai.com"]["type"] == "unknown"
    assert by_endpoint["api.openai.com"]["processes"][0]["pid"] == 40
    assert by_endpoint["github.com"]["signature"] == "claude-code"
    assert by_endpoint["api.mistral.ai"]["name"] == "unattributed calls to mistral"
    assert "example.org" not in by_endpoint
    assert not any(p["pid"] == 60 for s in found for p in s["processes"])


def test_a_sighting_name_fits_the_collectors_indexed_text() -> None:
    from console.server.ingest import MAX_TEXT
    from endpoint.scan.engine.registry import MAX_NAME, short_text

    assert MAX_NAME == MAX_TEXT
    assert short_text("fetch") == "fetch"
    assert short_text("a\x00b") == "a\ufffdb"
    cut = short_text("x" * 5000)
    assert len(cut) == MAX_NAME and cut.endswith("…")
