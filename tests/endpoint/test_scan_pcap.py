"""`agentroster scan --pcap FILE`: the calls in a capture become endpoints on sightings."""

from __future__ import annotations

import json

from network_factories import client_hello, dns_exchange, tcp_frame
from scapy.utils import wrpcap
from support import run_agentroster


def test_scan_pcap_reports_provider_calls(tmp_path):
    capture = tmp_path / "calls.pcap"
    packets = [*dns_exchange("api.anthropic.com", ["203.0.113.7"]),
               tcp_frame(client_hello("api.openai.com"), dport=443)]
    wrpcap(str(capture), packets)
    done = run_agentroster("scan", "--json", "--no-processes", "--no-files", "--pcap", str(capture))
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    endpoints = {(e["host"], e["via"], e["provider"]) for s in document["sightings"] for e in s["endpoints"]}
    assert ("api.openai.com", "sni", "openai") in endpoints
    assert ("api.anthropic.com", "dns", "anthropic") in endpoints
    assert all(s["type"] == "unknown" for s in document["sightings"])


def test_scan_pcap_of_a_non_capture_is_an_error_not_a_crash(tmp_path):
    bogus = tmp_path / "not.pcap"
    bogus.write_text("hello")
    done = run_agentroster("scan", "--json", "--no-processes", "--no-files", "--pcap", str(bogus))
    assert done.returncode == 0, done.stderr
    errors = json.loads(done.stdout)["errors"]
    assert [e["error"] for e in errors] == ["pcap"]


def test_a_call_to_a_declared_mcp_server_url_is_a_tool_endpoint(tmp_path):
    home = tmp_path / "root" / "home" / "alice"
    (home / ".cursor").mkdir(parents=True)
    (home / ".cursor" / "mcp.json").write_text(json.dumps({"mcpServers": {
        "tickets": {"url": "https://mcp.tickets.example:8443/mcp"},
        "elsewhere": {"url": "https://mcp.other.example/mcp"},
    }}))
    capture = tmp_path / "calls.pcap"
    wrpcap(str(capture), [tcp_frame(client_hello("mcp.tickets.example"), dport=8443),
                          tcp_frame(client_hello("mcp.tickets.example"), dport=8443, sport=40001),
                          tcp_frame(client_hello("unrelated.example"), dport=443)])
    done = run_agentroster("scan", "--json", "--no-processes", "--no-walk", "--root", str(tmp_path / "root"),
                           "--pcap", str(capture))
    assert done.returncode == 0, done.stderr
    tools = {s["name"]: s for s in json.loads(done.stdout)["sightings"] if s["type"] == "tool_server"}
    called = tools["tickets"]
    assert [(e["host"], e["port"], e["via"], e["provider"], e["count"]) for e in called["endpoints"]] == [
        ("mcp.tickets.example", 8443, "sni", None, 2)]
    assert any(e["rule"] == "network.mcp_url" for e in called["evidence"])
    assert tools["elsewhere"]["endpoints"] == []
