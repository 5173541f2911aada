"""GET /api/v1/devices and revoking: staleness, sighting counts, last status; admins only revoke."""

from __future__ import annotations

import fleet


def find(collector, device_id: str) -> dict:
    data = collector.get("/api/v1/devices", limit=500).json()["data"]
    return next(d for d in data if d["id"] == device_id)


def test_a_device_lists_its_identity_and_sighting_count(device) -> None:
    device.snapshot(fleet.sighting(), fleet.sighting())
    found = find(device.collector, device.device_id)
    assert found["hostname"] == device.doc["hostname"] and found["os"] == "linux"
    assert found["agentroster_version"] == "0.1.0"
    assert found["sightings"] == 2


def test_a_device_that_never_reported_is_stale(device) -> None:
    assert find(device.collector, device.device_id)["stale"] is True


def test_a_device_that_reported_is_fresh(device) -> None:
    device.snapshot()
    assert find(device.collector, device.device_id)["stale"] is False


def test_stale_filters_the_list(device) -> None:
    ids = [d["id"] for d in device.collector.get("/api/v1/devices", stale="true", limit=500).json()["data"]]
    assert device.device_id in ids
    device.snapshot()
    ids = [d["id"] for d in device.collector.get("/api/v1/devices", stale="false", limit=500).json()["data"]]
    assert device.device_id in ids


def test_a_viewer_cannot_revoke(device) -> None:
    answer = device.collector.http.post(f"/api/v1/devices/{device.device_id}/revoke",
                                        headers=device.collector.as_viewer())
    assert (answer.status_code, fleet.reason(answer)) == (403, "admin_role_required")
    assert device.snapshot()["applied"] is True


def test_revoking_an_unknown_device_is_not_found(collector) -> None:
    answer = collector.http.post("/api/v1/devices/nope/revoke", headers=collector.as_admin())
    assert (answer.status_code, fleet.reason(answer)) == (404, "device_not_found")


def test_a_device_token_cannot_list_devices(device) -> None:
    answer = device.collector.get("/api/v1/devices", token=device.key)
    assert (answer.status_code, fleet.reason(answer)) == (403, "device_token_not_allowed")


def test_the_last_reports_health_is_kept_and_incomplete_filters_the_list(device, enroll) -> None:
    other = enroll()
    other.snapshot(fleet.sighting())
    status = {"units_failed": 2, "degraded": ["files", "fingerprint"], "sensors": {"files": "ok"}}
    answer = device.send(device.report("snapshot", [fleet.sighting()], status=status))
    assert answer.status_code == 200, answer.text
    found = find(device.collector, device.device_id)
    assert found["status"]["units_failed"] == 2 and found["status"]["degraded"] == ["files", "fingerprint"]
    incomplete = [d["id"] for d in device.collector.get("/api/v1/devices", incomplete="true", limit=500).json()["data"]]
    complete = [d["id"] for d in device.collector.get("/api/v1/devices", incomplete="false", limit=500).json()["data"]]
    assert device.device_id in incomplete and other.device_id not in incomplete
    assert other.device_id in complete and device.device_id not in complete
    # the next report's scan was complete: the device leaves the filter
    device.send(device.report("heartbeat", status={"units_failed": 0, "degraded": []}))
    incomplete = [d["id"] for d in device.collector.get("/api/v1/devices", incomplete="true", limit=500).json()["data"]]
    assert device.device_id not in incomplete


def test_a_health_out_of_bounds_is_refused(device) -> None:
    for status in ({"units_failed": -1}, {"units_failed": 2**63}, {"degraded": ["files"] * 5},
                   {"degraded": ["<b>disk</b>"]}):
        answer = device.send(device.report("snapshot", [], status=status))
        assert answer.status_code == 422, (status, answer.text)
