"""POST /api/v1/enroll: the enroll secret buys a device key; re-enrolling replaces it; revoked stays out."""

from __future__ import annotations

import fleet


def enroll_body(collector, host: str, secret: str | None = None) -> dict:
    return {"enroll_secret": secret or collector.enroll_secret, "host_identifier": host,
            "device": fleet.device_doc(host)}


def test_enrolling_gives_a_device_key_that_reports(device) -> None:
    assert device.key.startswith("ard_")
    assert device.snapshot(fleet.sighting())["applied"] is True


def test_a_wrong_enroll_secret_is_refused_and_nothing_stored(collector) -> None:
    host = "host:wrong-secret"
    answer = collector.http.post("/api/v1/enroll", json=enroll_body(collector, host, "are_not-the-secret"))
    assert (answer.status_code, fleet.reason(answer)) == (401, "invalid_enroll_secret")
    devices = collector.get("/api/v1/devices", limit=500).json()["data"]
    assert host not in [d["host_identifier"] for d in devices]


def test_the_host_identifier_must_be_the_device_id(collector) -> None:
    body = enroll_body(collector, "host:a")
    body["device"]["id"] = "host:b"
    answer = collector.http.post("/api/v1/enroll", json=body)
    assert (answer.status_code, fleet.reason(answer)) == (422, "host_identifier_mismatch")


def test_enrolling_again_replaces_the_key(device, enroll) -> None:
    again = enroll(device.host_identifier)
    assert again.device_id == device.device_id and again.key != device.key
    old = device.send(device.report("snapshot"))
    assert old.status_code == 401
    assert old.json()["detail"] == {"reason": "invalid_device_key", "reenroll": True}
    assert again.send(again.report("snapshot")).json()["applied"] is True


def test_a_rotated_secret_stops_working(own_collector) -> None:
    rotated = own_collector.http.post("/api/v1/admin/enroll-secret", headers=own_collector.as_admin())
    assert rotated.status_code == 201
    old = own_collector.http.post("/api/v1/enroll", json=enroll_body(own_collector, "host:late"))
    assert (old.status_code, fleet.reason(old)) == (401, "invalid_enroll_secret")
    new = own_collector.http.post("/api/v1/enroll", json=enroll_body(own_collector, "host:late",
                                                                    rotated.json()["enroll_secret"]))
    assert new.status_code == 200


def test_a_revoked_device_cannot_report_nor_enroll_again(device) -> None:
    collector = device.collector
    revoked = collector.http.post(f"/api/v1/devices/{device.device_id}/revoke", headers=collector.as_admin())
    assert revoked.json()["revoked"] is True
    assert device.send(device.report("snapshot")).json()["detail"]["reason"] == "invalid_device_key"
    again = collector.http.post("/api/v1/enroll", json=enroll_body(collector, device.host_identifier))
    assert (again.status_code, fleet.reason(again)) == (403, "device_revoked")


def test_invalid_json_is_refused(collector) -> None:
    answer = collector.http.post("/api/v1/enroll", content=b"{nope", headers={"content-type": "application/json"})
    assert (answer.status_code, fleet.reason(answer)) == (400, "invalid_json")


def test_a_schema_violation_is_refused_without_echoing_the_secret(collector) -> None:
    body = enroll_body(collector, "host:x")
    body["enroll_secret"] = "s" * 600  # over the contract's 512
    answer = collector.http.post("/api/v1/enroll", json=body)
    assert (answer.status_code, fleet.reason(answer)) == (422, "invalid_request")
    assert "s" * 600 not in answer.text


def test_an_oversized_enroll_body_is_refused(collector) -> None:
    answer = collector.http.post("/api/v1/enroll", content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                                 headers={"content-type": "application/json"})
    assert (answer.status_code, fleet.reason(answer)) == (413, "body_too_large")


def test_after_enrolling_again_the_first_report_must_be_a_snapshot(device, enroll) -> None:
    device.snapshot(fleet.sighting())
    again = enroll(device.host_identifier)
    again.seq = device.seq
    assert again.send(again.report("delta", [fleet.sighting()])).json()["need_snapshot"] is True
    again.epoch, again.seq = "e1", 0
    assert again.snapshot(fleet.sighting())["applied"] is True
