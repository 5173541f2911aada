"""A refused request's answer never sends back what the client sent, and holds no validation library's
wording: a 422 carries the collector's sentence (``message``) and, per error, only where (``loc``), what
kind (``type``) and a length's or range's bound (``ctx``, a number from the API's schema). A key pasted where a field name goes (an extra field, a dict's key) is among what
is never repeated, in ``loc`` or in the sentence. Every route family: ingest (enroll, reports), agents
and their actions, policy, inbox, registrations. Real collectors on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import fleet
import pytest
from conftest import Collector, Device

pytestmark = pytest.mark.timeout(120)

SECRET = "sk-ant-FAKE0000000000000000000000000000000000000000"  # an obviously fake key, in a hostile body
SECRET_PARTS = (SECRET, "FAKE0000000000")  # nor any recognisable part of it


def report(device: Device, **change: Any) -> dict[str, Any]:
    document = device.report("snapshot", [fleet.sighting()])
    document.update(change)
    return document


def cases(device: Device) -> list[tuple[str, str, str, Any]]:
    """(who, method, path, body): each a body that breaks its route's schema and holds the fake key."""
    target = {"device_id": device.device_id, "sighting_id": "s1"}
    return [
        # ingest
        ("enroll", "POST", "/api/v1/enroll", {"enroll_secret": "FAKE-enroll-secret-0000", "host_identifier": "h",
                                             "device": fleet.device_doc("h"), SECRET: 1}),
        ("enroll", "POST", "/api/v1/enroll", {"enroll_secret": ["FAKE-enroll-secret-0000", SECRET],
                                             "host_identifier": "h", "device": fleet.device_doc("h")}),
        ("device", "POST", "/api/v1/reports", report(device, **{SECRET: True})),
        ("device", "POST", "/api/v1/reports", report(device, sensors={SECRET: 5})),
        ("device", "POST", "/api/v1/reports", report(device, seq=SECRET)),
        # agents and their actions
        ("admin", "POST", "/api/v1/agents/actions", {"action": "note", "note": "x", "targets": [target],
                                                     SECRET: "x"}),
        ("admin", "POST", "/api/v1/agents/actions", {"action": SECRET, "targets": [target]}),
        ("admin", "POST", "/api/v1/agents/actions/filter", {"action": "note", "note": "x",
                                                            "filter": {"type": ["coding"], SECRET: "x"}}),
        ("admin", "POST", f"/api/v1/agents/{device.device_id}/s1/actions", {"action": "note", "note": {SECRET: 1}}),
        # policy
        ("admin", "PUT", "/api/v1/policy", {"sanctioned_signatures": [], SECRET: ["x"]}),
        ("admin", "PUT", "/api/v1/policy", {"group_approvals": [{"signature": "claude-code", "users": ["a"],
                                                                 SECRET: 1}]}),
        ("admin", "POST", "/api/v1/policy/preview", {"sanctioned_providers": {SECRET: 1}}),
        # inbox
        ("admin", "POST", "/api/v1/inbox/questions", {**target, "question": "Still in use?", SECRET: 1}),
        ("admin", "POST", "/api/v1/inbox/questions", {**target, "question": [SECRET]}),
        # registrations
        ("device", "POST", "/api/v1/registrations", {"sighting_id": "s1", "owner": "alice", "purpose": "x",
                                                     SECRET: "x"}),
        ("device", "POST", "/api/v1/registrations", {"sighting_id": "s1", "owner": "alice", "purpose": "x",
                                                     "autonomy": SECRET}),
        ("admin", "POST", "/api/v1/registrations/1/reject", {"note": "x", SECRET: 1}),
    ]


def test_a_422_never_repeats_what_was_sent_nor_the_validation_librarys_words(collector: Collector,
                                                                            enroll: Any) -> None:
    device: Device = enroll()
    tokens = {"admin": collector.admin, "device": device.key}
    for who, method, path, body in cases(device):
        headers = {"authorization": f"Bearer {tokens[who]}"} if who in tokens else {}
        answer = collector.http.request(method, path, json=body, headers=headers)
        said = (method, path, answer.status_code, answer.text)
        assert answer.status_code == 422, said
        assert not any(part in answer.text for part in SECRET_PARTS), said
        detail = answer.json()["detail"]
        assert isinstance(detail["message"], str) and detail["message"].endswith("."), said
        assert detail["errors"] and all(set(e) - {"ctx"} == {"loc", "type"} for e in detail["errors"]), said
        # a length's or range's bound, from the API's schema, is all of pydantic's context that is kept
        assert all(type(n) is int for e in detail["errors"] for n in e.get("ctx", {}).values()), said
        assert "Input should" not in answer.text and "Field required" not in answer.text, said


def other_refusals(device: Device) -> list[tuple[str, str, Any]]:
    """Requests of the right shape the collector refuses for what they name: the fake key where an id, a
    sort or a cursor goes. (A 404 for an action's target names the ids sent, so that the console can say
    which agent is gone: those are not among these.)"""
    return [
        ("PUT", "/api/v1/policy", {"sanctioned_signatures": [SECRET]}),
        ("PUT", "/api/v1/policy", {"sanctioned_providers": [SECRET, "sk-ant-api03-" + "FAKEkey0" * 11 + "AA"]}),
        ("PUT", "/api/v1/policy", {"group_approvals": [{"signature": SECRET, "users": ["alice"]}]}),
        ("POST", "/api/v1/policy/preview", {"sanctioned_signatures": ["a0123456789abcdef0123456789abcdef"]}),
        ("GET", f"/api/v1/agents/{device.device_id}/{SECRET}", None),
        ("GET", "/api/v1/agents", {"sort": SECRET}),
        ("GET", "/api/v1/agents", {"cursor": SECRET}),
    ]


def test_a_refusal_never_repeats_a_key_sent_where_an_id_goes(collector: Collector, enroll: Any) -> None:
    device: Device = enroll()
    for method, path, body in other_refusals(device):
        if method == "GET":
            answer = collector.http.get(path, params=body, headers=collector.as_admin())
        else:
            answer = collector.http.request(method, path, json=body, headers=collector.as_admin())
        said = (method, path, answer.status_code, answer.text)
        assert 400 <= answer.status_code < 500, said
        assert not any(part in answer.text for part in (*SECRET_PARTS, "FAKEkey0", "0123456789abcdef")), said
        assert isinstance(answer.json()["detail"]["reason"], str), said


def test_an_unknown_id_that_reads_as_a_typo_or_a_name_is_named_in_the_refusal(collector: Collector) -> None:
    answer = collector.http.put("/api/v1/policy", headers=collector.as_admin(),
                                json={"sanctioned_signatures": ["claude-cod", SECRET]})
    detail = answer.json()["detail"]
    assert (answer.status_code, detail["reason"]) == (422, "unknown_ids")
    assert detail["unknown_signatures"] == ["claude-cod", "[not shown: it may be a key]"]
    assert "claude-cod, [not shown: it may be a key]" in detail["message"]


def test_a_field_a_request_does_not_take_is_named_when_its_name_is_a_field_of_the_api(collector: Collector) -> None:
    answer = collector.http.put("/api/v1/policy", headers=collector.as_admin(),
                                json={"sanctioned_signatures": [], "hostname": "x"})  # a field, but not here
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail["errors"] == [{"loc": ["body", "hostname"], "type": "extra_forbidden"}]
    assert detail["message"] == "Hostname is not something this request takes: leave it out."
    unnamed = collector.http.put("/api/v1/policy", headers=collector.as_admin(),
                                 json={"sanctioned_signatures": [], "colour-of-the-sky": "x"}).json()["detail"]
    assert unnamed["errors"] == [{"loc": ["body", "*"], "type": "extra_forbidden"}]
    assert unnamed["message"] == "A field the request holds is not something this request takes: leave it out."


def test_the_endpoint_tells_its_user_the_collectors_sentence_for_a_refused_registration(collector: Collector,
                                                                                         enroll: Any) -> None:
    from endpoint.service.registration import collector as registration

    device: Device = enroll()
    answer = collector.http.post("/api/v1/registrations", headers={"authorization": f"Bearer {device.key}"},
                                 json={"sighting_id": "s1", "owner": "a" * 300, "purpose": "x"})
    assert answer.status_code == 422, answer.text
    line = registration.refusal(422, answer.json())
    assert line.startswith("refused (422 invalid_request): --owner: ") and "at most" in line, line
