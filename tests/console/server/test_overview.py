"""GET /api/v1/overview: the fleet in numbers, counted by the database."""

from __future__ import annotations

import fleet


def test_the_overview_counts_the_fleet(own_collector, enroll_on) -> None:
    first, second = enroll_on(own_collector), enroll_on(own_collector)
    first.snapshot(fleet.sighting(type="coding", providers=("anthropic",)),
                   fleet.sighting(type="runtime", signature="ollama"))
    second.snapshot(fleet.sighting(type="coding", providers=("anthropic", "openai")))
    own_collector.http.put("/api/v1/policy", json={"sanctioned_signatures": ["ollama"]},
                           headers=own_collector.as_admin())
    overview = own_collector.get("/api/v1/overview", token=own_collector.viewer).json()
    assert overview["sightings"] == 3 and overview["devices"] == 2 and overview["new_last_day"] == 3
    assert {c["key"]: c["count"] for c in overview["by_type"]} == {"coding": 2, "runtime": 1}
    assert {c["key"]: c["count"] for c in overview["by_governed"]} == {"governed": 1, "ungoverned": 2}
    assert overview["top_providers"][0] == {"key": "anthropic", "count": 2}
    assert [d["count"] for d in overview["top_ungoverned_devices"]] == [1, 1]


def test_gone_sightings_are_not_counted(own_collector, enroll_on) -> None:
    device = enroll_on(own_collector)
    device.snapshot(fleet.sighting(), fleet.sighting())
    device.snapshot()
    assert own_collector.get("/api/v1/overview").json()["sightings"] == 0
