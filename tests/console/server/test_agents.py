"""GET /api/v1/agents and /api/v1/agents/{device}/{id}: server-side filters, sorting, keyset pages."""

from __future__ import annotations

import fleet
import pytest

KEY = "hmac-sha256:" + "c" * 32


@pytest.fixture
def roster(device):
    """A device with five varied sightings; returns (device, {name: sighting})."""
    made = {
        "Claude Code": fleet.sighting(name="Claude Code", signature="claude-code", user="alice", confidence=0.9,
                                      providers=("anthropic",), fingerprints=(KEY,), flags=("autonomous",)),
        "Aider": fleet.sighting(name="Aider", signature="aider", user="bob", confidence=0.7, providers=("openai",)),
        "filesystem": fleet.sighting(name="filesystem", signature="mcp-filesystem", type="tool_server",
                                     user="alice", confidence=0.8, flags=("broad_tools",)),
        "Ollama": fleet.sighting(name="Ollama", signature="ollama", type="runtime", user=None, confidence=0.95),
        "python3 report.py": fleet.sighting(name="python3 report.py", signature=None, type="unknown", user="bob",
                                            confidence=0.4, providers=("openai",)),
    }
    device.snapshot(*made.values())
    return device, made


def names(device, **params) -> list[str]:
    return sorted(a["name"] for a in device.agents(**params))


@pytest.mark.parametrize(("params", "expected"), [
    ({"type": "runtime"}, ["Ollama"]),
    ({"flag": "broad_tools"}, ["filesystem"]),
    ({"flag": "personal_credential"}, ["Claude Code"]),
    ({"governed": "false"}, ["Aider", "Claude Code", "Ollama", "filesystem", "python3 report.py"]),
    ({"governed": "true"}, []),
    ({"user": "bob"}, ["Aider", "python3 report.py"]),
    ({"user": ""}, ["Ollama"]),
    ({"provider": "openai"}, ["Aider", "python3 report.py"]),
    ({"signature": "aider"}, ["Aider"]),
    ({"q": "CLAUDE"}, ["Claude Code"]),
    ({"q": "alice"}, ["Claude Code", "filesystem"]),
    ({"type": "coding", "user": "alice"}, ["Claude Code"]),
])  # fmt: skip
def test_filters_apply_on_the_server(roster, params, expected) -> None:
    device, _ = roster
    assert names(device, **params) == expected


def test_free_text_searches_the_hostname(roster) -> None:
    device, made = roster
    hostname = device.doc["hostname"]
    assert len(device.agents(q=hostname[-8:])) == len(made)


@pytest.mark.parametrize("text", ["' OR 1=1 --", "%", "_", "\\", "'; DROP TABLE sighting; --"])
def test_sql_looking_filters_are_taken_literally(roster, text) -> None:
    device, _ = roster
    for param in ("q", "user", "signature", "provider"):
        assert device.agents(**{param: text}) == [], param


def test_percent_and_underscore_match_themselves(device) -> None:
    device.snapshot(fleet.sighting(name="50%_off"), fleet.sighting(name="50 xoff"))
    assert names(device, q="%_") == ["50%_off"]


def test_the_list_carries_flags_governance_and_providers(roster) -> None:
    device, _ = roster
    claude = [a for a in device.agents() if a["name"] == "Claude Code"][0]
    assert claude["governed"] is False
    assert claude["flags"] == ["autonomous", "personal_credential", "unregistered", "unsanctioned_provider"]
    assert claude["providers"] == ["anthropic"] and claude["user"] == "alice"


def test_a_machine_wide_install_has_no_user(roster) -> None:
    device, _ = roster
    assert [a["user"] for a in device.agents(type="runtime")] == [None]


@pytest.mark.parametrize("sort", ["name", "type", "user", "device", "last_seen", "first_seen", "confidence"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_keyset_pages_add_up_to_the_sorted_list(roster, sort, order) -> None:
    device, made = roster
    collector = device.collector
    whole = collector.agents(device=device.device_id, sort=sort, order=order, limit=500)["data"]
    paged, cursor = [], None
    while True:
        params = {"device": device.device_id, "sort": sort, "order": order, "limit": 2}
        page = collector.agents(**params, **({"cursor": cursor} if cursor else {}))
        assert page["count"] == (len(made) if cursor is None else None)  # counted on the first page only
        paged += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [a["id"] for a in paged] == [a["id"] for a in whole]


def test_sorting_by_confidence_orders_the_values(roster) -> None:
    device, _ = roster
    values = [a["confidence"] for a in device.agents(sort="confidence", order="asc")]
    assert values == sorted(values)


def test_a_cursor_from_another_sort_is_refused(roster) -> None:
    device, _ = roster
    cursor = device.collector.agents(device=device.device_id, sort="name", limit=1)["next_cursor"]
    answer = device.collector.get("/api/v1/agents", sort="user", cursor=cursor)
    assert (answer.status_code, fleet.reason(answer)) == (400, "invalid_cursor")


@pytest.mark.parametrize("cursor", ["garbage", "W10", "eyJhIjoxfQ", "!!!"])
def test_a_forged_cursor_is_refused(collector, cursor) -> None:
    answer = collector.get("/api/v1/agents", cursor=cursor)
    assert (answer.status_code, fleet.reason(answer)) == (400, "invalid_cursor")


@pytest.mark.parametrize("params", [{"limit": 501}, {"limit": 0}, {"order": "up"},
                                    {"type": "robot"}, {"flag": "nice"}, {"governed": "maybe"}])
def test_invalid_parameters_are_refused_with_a_reason(collector, params) -> None:
    answer = collector.get("/api/v1/agents", **params)
    assert (answer.status_code, fleet.reason(answer)) == (422, "invalid_request")


def test_the_detail_has_everything_the_console_shows(roster) -> None:
    device, made = roster
    agent = made["Claude Code"]
    detail = device.collector.get(f"/api/v1/agents/{device.device_id}/{agent['id']}").json()
    for key in ("evidence", "processes", "configs", "mcp_servers", "endpoints", "credentials", "history"):
        assert key in detail
    assert detail["credentials"][0]["fingerprint"] == KEY
    assert detail["endpoints"][0]["provider"] == "anthropic"
    assert detail["history"][0]["change"] == "new"


def test_an_unknown_sighting_is_not_found(device) -> None:
    answer = device.collector.get(f"/api/v1/agents/{device.device_id}/nope")
    assert (answer.status_code, fleet.reason(answer)) == (404, "sighting_not_found")


def test_a_viewer_reads_the_roster(roster) -> None:
    device, made = roster
    answer = device.collector.get("/api/v1/agents", token=device.collector.viewer, device=device.device_id)
    assert answer.json()["count"] == len(made)


def test_a_device_token_cannot_read_the_roster(roster) -> None:
    device, _ = roster
    answer = device.collector.get("/api/v1/agents", token=device.key)
    assert (answer.status_code, fleet.reason(answer)) == (403, "device_token_not_allowed")
    detail = device.collector.get(f"/api/v1/agents/{device.device_id}/x", token=device.key)
    assert detail.status_code == 403
