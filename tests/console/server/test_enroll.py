"""POST /api/v1/enroll: the enroll secret buys a device key; re-enrolling replaces it; revoked stays out."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import fleet
from conftest import start_collector


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


def test_enrolling_again_with_the_key_replaces_the_key(device, enroll) -> None:
    again = enroll(device.host_identifier, proof=device.key)
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
    again = enroll(device.host_identifier, proof=device.key)
    again.seq = device.seq
    assert again.send(again.report("delta", [fleet.sighting()])).json()["need_snapshot"] is True
    again.epoch, again.seq = "e1", 0
    assert again.snapshot(fleet.sighting())["applied"] is True


def test_the_enroll_secret_alone_cannot_take_over_a_device(device, enroll) -> None:
    device.snapshot(fleet.sighting(name="Claude Code"), fleet.sighting(name="Codex CLI", signature="codex"))
    intruder = enroll(device.host_identifier)  # the org's enroll secret, but not the device's key
    assert intruder.device_id != device.device_id
    assert intruder.snapshot()["applied"] is True  # an empty snapshot: "nothing runs here"
    assert device.send(device.report("delta", [])).json()["applied"] is True  # the real key still works
    assert sorted(a["name"] for a in device.agents()) == ["Claude Code", "Codex CLI"]
    assert all(not a.get("gone") for a in device.agents())
    rows = {d["id"]: d for d in device.collector.get("/api/v1/devices", limit=500).json()["data"]}
    assert rows[intruder.device_id]["identity_conflict"] == device.device_id
    assert rows[device.device_id]["identity_conflict"] is None


def test_a_conflicting_device_is_shown_and_an_admin_can_accept_it(device, enroll) -> None:
    collector = device.collector
    device.snapshot(fleet.sighting(name="Claude Code"))
    intruder = enroll(device.host_identifier)
    again = enroll(device.host_identifier, proof=intruder.key)  # its own key: the same conflicting device
    assert again.device_id == intruder.device_id
    assert intruder.send(intruder.report("snapshot")).status_code == 401  # that key was replaced
    viewer = collector.http.post(f"/api/v1/devices/{again.device_id}/accept-identity", headers=collector.as_viewer())
    assert viewer.status_code == 403
    not_one = collector.http.post(f"/api/v1/devices/{device.device_id}/accept-identity", headers=collector.as_admin())
    assert (not_one.status_code, fleet.reason(not_one)) == (404, "no_identity_conflict")
    accepted = collector.http.post(f"/api/v1/devices/{again.device_id}/accept-identity", headers=collector.as_admin())
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["identity_conflict"], accepted.json()["host_identifier"]) == (None, device.host_identifier)
    assert device.send(device.report("delta", [])).json()["detail"]["reason"] == "invalid_device_key"
    assert again.snapshot(fleet.sighting(name="Aider", signature="aider"))["applied"] is True
    rows = {d["id"]: d for d in collector.get("/api/v1/devices", limit=500).json()["data"]}
    assert rows[device.device_id]["revoked"] is True and rows[again.device_id]["revoked"] is False
    # the accepted device now holds the identity: enrolling again needs its key
    assert enroll(device.host_identifier, proof=again.key).device_id == again.device_id


def test_a_host_identifier_with_the_conflict_mark_is_refused(collector) -> None:
    answer = collector.http.post("/api/v1/enroll", json=enroll_body(collector, "host:a|identity-conflict|b"))
    assert (answer.status_code, fleet.reason(answer)) == (422, "invalid_host_identifier")


def test_the_answer_carries_the_organisations_fingerprint_key(collector, enroll) -> None:
    first = collector.http.post("/api/v1/enroll", json=enroll_body(collector, "host:fp-1")).json()
    second = collector.http.post("/api/v1/enroll", json=enroll_body(collector, "host:fp-2")).json()
    assert len(first["fingerprint_key"]) >= 40 and first["fingerprint_key"] == second["fingerprint_key"]
    assert first["identity_conflict"] is False


def test_enrollments_from_one_address_are_rate_limited(new_database, tmp_path) -> None:
    collector = start_collector(new_database(), tmp_path, "--enroll-rate", "0.01", "--enroll-burst", "3")
    try:
        answers = [collector.http.post("/api/v1/enroll", json=enroll_body(collector, f"host:rl-{i}", "are_wrong"))
                   for i in range(4)]
        assert [a.status_code for a in answers] == [401, 401, 401, 429]
        assert fleet.reason(answers[3]) == "too_many_enrollments"
        assert int(answers[3].headers["retry-after"]) >= 1
        # the right secret waits too: the budget is the address's, spent or not
        right = collector.http.post("/api/v1/enroll", json=enroll_body(collector, "host:rl-ok"))
        assert right.status_code == 429
    finally:
        collector.process.stop()


def test_failed_token_checks_from_one_address_are_rate_limited(new_database, tmp_path) -> None:
    collector = start_collector(new_database(), tmp_path, "--auth-failure-rate", "0.01", "--auth-failure-burst", "3")
    try:
        bad_admin = {"authorization": "Bearer ara_0123456789abcdef.not-the-secret"}
        bad_device = {"authorization": "Bearer ard_0123456789abcdef.not-the-secret"}
        codes = [collector.http.get("/api/v1/devices", headers=bad_admin).status_code for _ in range(3)]
        assert codes == [401, 401, 401]
        blocked = collector.http.get("/api/v1/devices", headers=bad_admin)
        assert (blocked.status_code, fleet.reason(blocked)) == (429, "too_many_failed_tokens")
        assert int(blocked.headers["retry-after"]) >= 1
        report = collector.http.post("/api/v1/reports", json={}, headers=bad_device)
        assert report.status_code == 429
        # even a good token waits once the address is over its budget: guessing gains nothing
        assert collector.http.get("/api/v1/devices", headers=collector.as_admin()).status_code == 429
    finally:
        collector.process.stop()


def test_wrong_enroll_secrets_count_as_failed_checks(new_database, tmp_path) -> None:
    collector = start_collector(new_database(), tmp_path, "--auth-failure-rate", "0.01", "--auth-failure-burst", "2")
    try:
        codes = [collector.http.post("/api/v1/enroll", json=enroll_body(collector, f"host:g-{i}", "are_guess")
                                     ).status_code for i in range(3)]
        assert codes == [401, 401, 429]
        bad_admin = {"authorization": "Bearer ara_0123456789abcdef.not-the-secret"}
        assert collector.http.get("/api/v1/devices", headers=bad_admin).status_code == 429
    finally:
        collector.process.stop()


def test_device_key_failures_count_too(new_database, tmp_path) -> None:
    collector = start_collector(new_database(), tmp_path, "--auth-failure-rate", "0.01", "--auth-failure-burst", "2")
    try:
        bad_device = {"authorization": "Bearer ard_0123456789abcdef.not-the-secret"}
        codes = [collector.http.post("/api/v1/reports", json={}, headers=bad_device).status_code for _ in range(3)]
        assert codes == [401, 401, 429]
    finally:
        collector.process.stop()


def test_a_wrong_secret_is_answered_while_another_process_holds_the_write_lock(tmp_path) -> None:
    database = tmp_path / "c.sqlite3"
    collector = start_collector(f"sqlite:///{database}", tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(database) + ".lock"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        wrong = collector.http.post("/api/v1/enroll", json=enroll_body(collector, "host:locked", "are_wrong"),
                                    timeout=5)
        assert (wrong.status_code, fleet.reason(wrong)) == (401, "invalid_enroll_secret")
        assert time.monotonic() - started < 2.0
    finally:
        holder.kill()
        holder.wait()
        collector.process.stop()
    assert Path(str(database) + ".lock").exists()


# a child process that takes the collector's SQLite write lock (flock on <database>.lock) and holds it
HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"""
