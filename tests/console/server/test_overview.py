"""GET /api/v1/overview: the fleet in numbers, counted by the database."""

from __future__ import annotations

import time

import fleet

from console.server import trend
from console.server.db import Database


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


def test_a_new_collector_starts_its_ungoverned_trend(own_collector) -> None:
    trend = own_collector.get("/api/v1/overview").json()["trend"]
    assert len(trend) == 1 and trend[0]["ungoverned"] == 0
    assert trend[0]["at"].endswith(":00:00Z") or trend[0]["at"].endswith(":00:00+00:00")  # the hour's start


def test_the_trend_counts_the_ungoverned_sightings_of_each_hour(own_collector, enroll_on) -> None:
    device = enroll_on(own_collector)
    made = [fleet.sighting(), fleet.sighting(signature="ollama", type="runtime"), fleet.sighting()]
    device.snapshot(*made)
    own_collector.http.post(f"/api/v1/agents/{device.device_id}/{made[0]['id']}/actions",
                            json={"action": "false_positive"}, headers=own_collector.as_admin())
    own_collector.http.put("/api/v1/policy", json={"sanctioned_signatures": ["ollama"]},
                           headers=own_collector.as_admin())
    db = Database(own_collector.database_url, pool_size=1)
    try:
        now = time.time()
        assert trend.record(db, now - 5 * trend.HOUR) == (1, 2)  # one ungoverned, one governed, one hidden
        assert trend.record(db, now) == (1, 2)
        assert trend.record(db, now) == (1, 2)  # the same hour again: rewritten, not added
        trend.record(db, now - 31 * 24 * trend.HOUR)  # too old to be shown
    finally:
        db.dispose()
    points = own_collector.get("/api/v1/overview").json()["trend"]
    assert [p["ungoverned"] for p in points][-2:] == [1, 1] and len(points) <= 3
    times = [p["at"] for p in points]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_the_overview_counts_the_devices_whose_last_scan_was_incomplete(own_collector, enroll_on) -> None:
    broken, fine, mended = enroll_on(own_collector), enroll_on(own_collector), enroll_on(own_collector)
    fine.snapshot(fleet.sighting())
    broken.send(broken.report("snapshot", [fleet.sighting()], status={"units_failed": 2, "degraded": ["files"]}))
    mended.send(mended.report("snapshot", [fleet.sighting()], status={"degraded": ["network"]}))
    assert own_collector.get("/api/v1/overview").json()["incomplete_devices"] == 2
    mended.send(mended.report("heartbeat", status={"units_failed": 0, "degraded": []}))
    listed = own_collector.get("/api/v1/devices", incomplete="true", limit=500).json()
    assert own_collector.get("/api/v1/overview").json()["incomplete_devices"] == listed["count"] == 1
