"""POST /api/v1/reports on a real collector: exactly once, in order, snapshots and deltas, history."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import fleet
import httpx


def test_a_snapshot_is_applied_and_its_sightings_listed(device) -> None:
    ack = device.snapshot(fleet.sighting(name="Claude Code"), fleet.sighting(name="Aider"))
    assert ack == {"seq": 1, "applied": True, "duplicate": False, "need_snapshot": False, "reason": ""}
    assert sorted(a["name"] for a in device.agents()) == ["Aider", "Claude Code"]


def test_a_retried_report_is_a_duplicate_and_changes_nothing(device) -> None:
    device.snapshot(fleet.sighting(name="Claude Code"))
    report = device.report("delta", [fleet.sighting(name="Codex CLI")])
    assert device.send(report).json()["applied"] is True
    before = device.agents()
    again = device.send(report).json()
    assert (again["applied"], again["duplicate"], again["seq"]) == (False, True, 2)
    assert device.agents() == before


def test_a_gap_is_not_applied_and_asks_for_a_snapshot(device) -> None:
    device.snapshot(fleet.sighting(name="Claude Code"))
    ack = device.send(device.report("delta", [fleet.sighting(name="Aider")], seq=5)).json()
    assert (ack["applied"], ack["need_snapshot"], ack["seq"]) == (False, True, 1)
    assert [a["name"] for a in device.agents()] == ["Claude Code"]


def test_reports_out_of_order_are_each_applied_once_in_order(device) -> None:
    device.snapshot(fleet.sighting(name="Claude Code"))
    second = device.report("delta", [fleet.sighting(name="Aider")])
    third = device.report("delta", [fleet.sighting(name="Goose")])
    assert device.send(third).json()["need_snapshot"] is True
    assert device.send(second).json()["applied"] is True
    assert device.send(third).json()["applied"] is True
    assert device.send(second).json()["duplicate"] is True
    assert sorted(a["name"] for a in device.agents()) == ["Aider", "Claude Code", "Goose"]


def test_a_delta_in_a_new_epoch_asks_for_a_snapshot(device) -> None:
    device.snapshot(fleet.sighting())
    device.epoch, device.seq = "e2", 0
    ack = device.send(device.report("delta", [fleet.sighting()])).json()
    assert (ack["applied"], ack["need_snapshot"]) == (False, True)


def test_a_replay_from_an_earlier_epoch_changes_nothing(device) -> None:
    old = device.report("snapshot", [fleet.sighting(name="Old")])
    device.send(old)
    device.epoch, device.seq = "e2", 0
    device.snapshot(fleet.sighting(name="New"))
    assert device.send(old).json()["duplicate"] is True
    assert [a["name"] for a in device.agents()] == ["New"]


def test_a_snapshot_marks_the_missing_sightings_gone(device) -> None:
    kept, dropped = fleet.sighting(name="Kept"), fleet.sighting(name="Dropped")
    device.snapshot(kept, dropped)
    device.snapshot(kept)
    assert [a["name"] for a in device.agents()] == ["Kept"]
    assert [a["name"] for a in device.agents(state="gone")] == ["Dropped"]


def test_a_delta_removes_sightings_by_id(device) -> None:
    first, second = fleet.sighting(name="First"), fleet.sighting(name="Second")
    device.snapshot(first, second)
    assert device.send(device.report("delta", [], removed=[first["id"]])).json()["applied"]
    assert [a["name"] for a in device.agents()] == ["Second"]


def test_history_records_new_changed_and_gone_with_their_seq(device) -> None:
    agent = fleet.sighting(name="Claude Code", running=True)
    device.snapshot(agent)
    device.send(device.report("delta", [{**agent, "running": False, "processes": []}]))
    device.send(device.report("delta", [], removed=[agent["id"]]))
    detail = device.collector.get(f"/api/v1/agents/{device.device_id}/{agent['id']}").json()
    changes = [(h["change"], h["seq"]) for h in reversed(detail["history"])]
    assert changes == [("new", 1), ("changed", 2), ("gone", 3)]
    assert set(detail["history"][1]["fields"]) == {"running", "processes"}


def test_an_unchanged_resend_adds_no_history(device) -> None:
    agent = fleet.sighting(name="Claude Code")
    device.snapshot(agent)
    device.send(device.report("delta", [agent]))
    detail = device.collector.get(f"/api/v1/agents/{device.device_id}/{agent['id']}").json()
    assert [h["change"] for h in detail["history"]] == ["new"]


def test_a_returning_sighting_is_new_again(device) -> None:
    agent = fleet.sighting()
    device.snapshot(agent)
    device.snapshot()
    device.snapshot(agent)
    assert [a["id"] for a in device.agents()] == [agent["id"]]


def test_the_device_status_and_last_seen_are_stored(device) -> None:
    status = {"spool": "warning", "spool_reports": 12, "shedding": True, "sensors": {"network": "off"}}
    device.send(device.report("snapshot", [], status=status))
    found = [d for d in device.collector.get("/api/v1/devices", limit=500).json()["data"]
             if d["id"] == device.device_id][0]
    assert found["status"]["spool"] == "warning" and found["status"]["shedding"] is True
    assert found["status"]["sensors"] == {"network": "off"}
    assert found["last_seen"] is not None and found["stale"] is False


def test_a_report_about_another_device_is_refused(enroll) -> None:
    mine, other = enroll(), enroll()
    answer = mine.send(other.report("snapshot", [fleet.sighting()]))
    assert (answer.status_code, fleet.reason(answer)) == (403, "device_mismatch")
    assert other.agents() == [] and mine.agents() == []


def test_the_same_report_sent_at_once_is_applied_once(device) -> None:
    device.snapshot(fleet.sighting())
    report = device.report("delta", [fleet.sighting(name="Once")])
    with ThreadPoolExecutor(6) as pool:
        acks = [a.json() for a in pool.map(lambda _: device.send(report), range(6))]
    assert sum(a["applied"] for a in acks) == 1
    assert sum(a["duplicate"] for a in acks) == 5


def test_a_device_past_its_burst_is_rate_limited(device) -> None:
    device.snapshot()
    answers = [device.send(device.report("heartbeat")) for _ in range(70)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited, "70 reports at once should exceed a burst of 50"
    assert fleet.reason(limited[0]) == "rate_limited"
    assert int(limited[0].headers["retry-after"]) >= 1


def test_a_chunked_body_over_the_cap_is_refused(device) -> None:
    def chunks():
        yield b'{"schema": "agentroster.report/1", "upserts": ['
        for _ in range(9 * 1024):
            yield b'"' + b"x" * 1020 + b'",'
        yield b"]}"

    answer = device.collector.http.post("/api/v1/reports", content=chunks(), headers=device.headers())
    assert (answer.status_code, fleet.reason(answer)) == (413, "body_too_large")


def test_a_declared_length_over_the_cap_is_refused_unread(device) -> None:
    body = b"{" + b" " * (8 * 1024 * 1024 + 10) + b"}"
    answer = device.collector.http.post("/api/v1/reports", content=body,
                                        headers={**device.headers(), "content-type": "application/json"})
    assert (answer.status_code, fleet.reason(answer)) == (413, "body_too_large")


def test_invalid_json_is_refused_and_nothing_stored(device) -> None:
    answer = device.collector.http.post("/api/v1/reports", content=b'{"schema": ', headers=device.headers())
    assert (answer.status_code, fleet.reason(answer)) == (400, "invalid_json")
    assert device.agents() == []


def test_a_schema_violation_is_refused_with_the_errors(device) -> None:
    report = device.report("snapshot", [fleet.sighting(type="robot")])
    answer = device.send(report)
    assert (answer.status_code, fleet.reason(answer)) == (422, "invalid_report")
    assert any("type" in e["loc"] for e in answer.json()["detail"]["errors"])
    assert device.agents() == []


def test_a_sighting_id_no_index_can_hold_is_refused(device) -> None:
    answer = device.send(device.report("snapshot", [fleet.sighting(id="x" * 500)]))
    assert (answer.status_code, fleet.reason(answer)) == (422, "invalid_sighting_id")


def test_a_nul_character_is_refused(device) -> None:
    answer = device.send(device.report("snapshot", [fleet.sighting(name="bad\x00name")]))
    assert (answer.status_code, fleet.reason(answer)) == (422, "invalid_field")
    assert device.agents() == []


def test_a_report_without_a_token_asks_to_enroll(collector) -> None:
    answer = collector.http.post("/api/v1/reports", json={})
    assert answer.status_code == 401
    assert answer.json()["detail"] == {"reason": "missing_token", "reenroll": True}


def test_an_unknown_device_key_asks_to_enroll_again(device) -> None:
    answer = device.send(device.report("snapshot"), key="ard_0123456789abcdef.not-a-real-secret")
    assert answer.status_code == 401
    assert answer.json()["detail"] == {"reason": "invalid_device_key", "reenroll": True}


def test_an_admin_token_cannot_send_reports(device) -> None:
    answer = device.send(device.report("snapshot"), key=device.collector.admin)
    assert (answer.status_code, fleet.reason(answer)) == (403, "not_a_device_key")


def test_a_report_survives_a_collector_restart_and_its_retry_is_applied_once(own_collector, enroll_on) -> None:
    device = enroll_on(own_collector)
    device.snapshot(fleet.sighting(name="Before"))
    report = device.report("delta", [fleet.sighting(name="During")])
    assert device.send(report).json()["applied"] is True
    own_collector.restart()  # the device did not get the ack, say, and retries
    device.collector = own_collector
    assert device.send(report).json()["duplicate"] is True
    detail = own_collector.get(f"/api/v1/agents/{device.device_id}/{report['upserts'][0]['id']}").json()
    assert [h["change"] for h in detail["history"]] == ["new"]


def test_a_report_cut_off_by_a_crash_is_applied_once_when_retried(own_collector, enroll_on) -> None:
    device = enroll_on(own_collector)
    device.snapshot()
    report = device.report("delta", [fleet.sighting(name=f"Agent {i}") for i in range(300)])
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(device.send, report)
        own_collector.process.stop(9)  # SIGKILL while the report is in flight (or just done)
        try:
            pending.result()
        except httpx.HTTPError:
            pass
    own_collector.restart()
    device.collector = own_collector
    ack = device.send(report).json()
    assert ack["applied"] or ack["duplicate"]
    assert len(device.agents()) == 300
    assert device.send(report).json()["duplicate"] is True


def names(device, state: str = "present") -> list[str]:
    return sorted(a["name"] for a in device.agents(state=state))


def test_a_snapshot_in_parts_marks_gone_only_what_no_part_carried(device) -> None:
    old = fleet.sighting(id="old-agent", name="Old")
    kept = fleet.sighting(id="kept-agent", name="Kept")
    device.snapshot(old, kept)
    parts = [[fleet.sighting(id="a", name="A"), kept], [fleet.sighting(id="b", name="B")], [fleet.sighting(id="c", name="C")]]
    for number, upserts in enumerate(parts, start=1):
        ack = device.send(device.report("snapshot", upserts, part=number, parts=len(parts))).json()
        assert ack["applied"] is True, ack
        if number < len(parts):  # the snapshot is not whole yet: nothing is gone
            assert "Old" in names(device)
    assert names(device) == ["A", "B", "C", "Kept"]
    assert names(device, "gone") == ["Old"]
    detail = device.collector.get(f"/api/v1/agents/{device.device_id}/old-agent").json()
    assert [h["change"] for h in detail["history"]].count("gone") == 1


def test_a_later_part_without_the_part_before_asks_for_a_snapshot(device) -> None:
    device.snapshot(fleet.sighting(id="x", name="X"))
    skipped = device.report("snapshot", [fleet.sighting(id="a", name="A")], part=1, parts=3)
    assert skipped["seq"] == 2
    ack = device.send(device.report("snapshot", [fleet.sighting(id="b", name="B")], part=2, parts=3)).json()
    assert (ack["applied"], ack["need_snapshot"]) == (False, True), ack
    # nor does a part follow a finished snapshot
    whole = device.report("snapshot", [fleet.sighting(id="y", name="Y")], seq=4)
    assert device.send(whole).json()["applied"] is True
    ack = device.send(device.report("snapshot", [fleet.sighting(id="z", name="Z")], seq=5, part=2, parts=2)).json()
    assert ack["need_snapshot"] is True
    assert names(device) == ["Y"]


def test_a_replayed_part_is_a_duplicate(device) -> None:
    first = device.report("snapshot", [fleet.sighting(id="a", name="A")], part=1, parts=2)
    assert device.send(first).json()["applied"] is True
    assert device.send(first).json()["duplicate"] is True
    assert device.send(device.report("snapshot", [fleet.sighting(id="b", name="B")], part=2, parts=2)).json()["applied"]
    assert names(device) == ["A", "B"]


def test_parts_of_anything_but_a_snapshot_are_refused(device) -> None:
    device.snapshot(fleet.sighting(name="Claude Code"))
    for report in (device.report("delta", [fleet.sighting(name="Aider")], part=1, parts=2),
                   device.report("snapshot", [fleet.sighting(name="Aider")], part=3, parts=2)):
        answer = device.send(report)
        assert answer.status_code == 422 and fleet.reason(answer) == "invalid_parts", answer.text
    assert names(device) == ["Claude Code"]
