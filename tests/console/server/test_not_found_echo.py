"""A 404 for an unknown sighting says "no such agent" and names the id sent only when it has the shape of
an id (hex digits, bounded): a careless client that put a key in ``sighting_id`` does not get it back,
from ``POST /agents/actions``, ``POST /inbox/questions`` or a device's ``POST /registrations``. On a real
collector (SQLite and PostgreSQL)."""

from __future__ import annotations

import fleet
import pytest

pytestmark = pytest.mark.timeout(120)

KEY_SHAPED = "arsk_FAKE-api-key-0000-do-not-echo"  # an obviously fake key, sent where an id belongs
HEX = "abc123" * 5


def refused(answer, sent: str) -> dict:
    assert answer.status_code == 404, answer.text
    assert sent not in answer.text
    detail = answer.json()["detail"]
    assert detail["reason"] == "sighting_not_found" and detail["message"].startswith("No such agent: ")
    return dict(detail)


def test_a_bulk_action_names_an_unknown_id_and_never_a_key(collector, device) -> None:
    made = fleet.sighting()
    device.snapshot(made)
    for sent in (KEY_SHAPED, "f" * 65):  # not hex, or too long for an id
        answer = collector.http.post("/api/v1/agents/actions", headers=collector.as_admin(), json={
            "targets": [{"device_id": device.device_id, "sighting_id": sent}], "action": "approve"})
        detail = refused(answer, sent)
        assert "sighting_id" not in detail and "not an id" in detail["message"]
    answer = collector.http.post("/api/v1/agents/actions", headers=collector.as_admin(), json={
        "targets": [{"device_id": device.device_id, "sighting_id": HEX}], "action": "approve"})
    assert answer.status_code == 404 and answer.json()["detail"]["sighting_id"] == HEX
    assert f"sighting {HEX} is not known" in answer.json()["detail"]["message"]


def test_a_question_about_an_unknown_sighting_never_echoes_a_key(collector, device) -> None:
    answer = collector.http.post("/api/v1/inbox/questions", headers=collector.as_admin(), json={
        "device_id": device.device_id, "sighting_id": KEY_SHAPED, "question": "which data systems?"})
    assert "sighting_id" not in refused(answer, KEY_SHAPED)


def test_a_registration_of_an_unknown_sighting_never_echoes_a_key(device) -> None:
    body = {"sighting_id": KEY_SHAPED, "owner": "alice@example.com", "purpose": "reviews pull requests"}
    answer = device.collector.http.post("/api/v1/registrations", json=body, headers=device.headers())
    detail = refused(answer, KEY_SHAPED)
    assert "sighting_id" not in detail and "on this device" in detail["message"]
