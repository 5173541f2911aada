"""The console's API client against a real collector: typed pages, keyset paging, detail, devices,
overview, and one error type per failure."""

from __future__ import annotations

import http.server
import threading

import console_support as support
import pytest

from console.app import api


@pytest.fixture
def admin(collector: support.RunningCollector):
    client = api.Client(collector.url, collector.admin, timeout=5)
    yield client
    client.close()


def test_pages_follow_the_keyset_cursor_without_repeats(admin: api.Client) -> None:
    seen: list[tuple[str, str]] = []
    pages = list(admin.iter_agents(sort="name", order="asc", page=60))
    for page in pages:
        seen.extend(a.key for a in page.data)
    assert len(pages) > 2
    assert len(seen) == len(set(seen)) == pages[0].count
    names = [a.name for page in pages for a in page.data]
    assert names == sorted(names)


def test_filters_go_to_the_collector(admin: api.Client, collector: support.RunningCollector) -> None:
    page = admin.agents({"device": collector.known_device, "type": "unknown"}, limit=50)
    assert [a.id for a in page.data] == ["known-script"] and page.count == 1
    assert page.data[0].providers == ["openai"]
    assert page.data[0].user == "zoe" and page.data[0].governed is False


def test_detail_carries_evidence_and_history(admin: api.Client, collector: support.RunningCollector) -> None:
    detail = admin.agent(collector.known_device, "known-claude")
    assert detail.agent.name == "Claude Code" and "autonomous" in detail.agent.flags
    assert detail.mcp_servers[0]["name"] == "github"
    assert detail.credentials[0]["fingerprint"].startswith("hmac-sha256:")
    assert [h.change for h in detail.history] == ["new"]


def test_devices_and_overview_are_typed(admin: api.Client) -> None:
    devices = admin.devices(limit=5)
    assert devices.count >= 13 and len(devices.data) == 5
    assert all(d.last_seen is not None and not d.stale for d in devices.data)
    overview = admin.overview()
    assert overview.sightings == sum(c.count for c in overview.by_type)
    assert overview.ungoverned + overview.governed == overview.sightings


def test_roles_are_told_apart(admin: api.Client, collector: support.RunningCollector) -> None:
    viewer = api.Client(collector.url, collector.viewer)
    try:
        assert admin.role() == "admin"
        assert viewer.role() == "viewer"
        with pytest.raises(api.Forbidden) as refused:
            viewer.put_policy(api.PolicyEdit())
        assert refused.value.status == 403 and "viewer" in refused.value.message
    finally:
        viewer.close()


def test_a_wrong_token_is_unauthorized(collector: support.RunningCollector) -> None:
    client = api.Client(collector.url, "ara_0123456789abcdef.FAKEFAKEFAKE")
    with pytest.raises(api.Unauthorized) as refused:
        client.overview()
    assert refused.value.reason == "invalid_token"
    assert "FAKEFAKE" not in repr(client) and "FAKEFAKE" not in str(refused.value)


def test_an_unknown_agent_is_not_found(admin: api.Client, collector: support.RunningCollector) -> None:
    with pytest.raises(api.NotFound):
        admin.agent(collector.known_device, "no-such-sighting")


def test_a_closed_port_is_unreachable() -> None:
    client = api.Client(f"http://127.0.0.1:{support.servers.free_port()}", "ara_x.y", timeout=2)
    with pytest.raises(api.ServerUnreachable):
        client.agents()
    with pytest.raises(api.ServerUnreachable):
        client.health()


class _NotJson(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>proxy error</html>"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_an_answer_that_is_not_json_is_a_protocol_error() -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _NotJson)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = api.Client(f"http://127.0.0.1:{server.server_address[1]}", "ara_x.y", timeout=5)
        with pytest.raises(api.ProtocolError):
            client.overview()
    finally:
        server.shutdown()
