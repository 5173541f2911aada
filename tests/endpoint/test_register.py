"""The pure parts of `agentroster register`: who may register what, ids, prefill, the collector's limits,
the local ledger of registrations, and how refusals read. The command against a real collector is in
tests/e2e/test_register_e2e.py."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from endpoint.service.registration import cli, collector, errors, ledger, mine, policy
from endpoint.service.reporter import CollectorUnreachable


def sighting(sid: str = "bc1805872a42667fe96e", *, user: str | None = "alice", **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": sid, "name": "Claude Code", "type": "coding", "user": user, "parent": None,
                           "endpoints": [], "credentials": [], "mcp_servers": [], "flags": []}
    doc.update(extra)
    return doc


def fields(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sighting_id": "bc1805872a42667fe96e", "owner": "alice@example.com",
                            "purpose": "refactors the billing service", "business_process": "",
                            "providers": ["anthropic"], "tools": ["github"], "data_systems": [],
                            "autonomy": "supervised"}
    base.update(overrides)
    return base


# -- who registers -------------------------------------------------------------------------------------


def test_root_under_sudo_acts_for_the_user_who_ran_sudo():
    who = policy.registrant_of(euid=0, login="root", env={"SUDO_USER": "alice"})
    assert who == policy.Registrant("alice", any_user=False, via_sudo=True)


def test_root_itself_may_register_any_sighting():
    assert policy.registrant_of(euid=0, login="root", env={}).any_user
    assert policy.registrant_of(euid=0, login="root", env={"SUDO_USER": "root"}).any_user


def test_a_normal_user_is_themselves():
    assert policy.registrant_of(euid=1000, login="bob", env={"SUDO_USER": "alice"}) == policy.Registrant("bob", False)


def test_a_user_may_register_only_their_own_sighting():
    alice = policy.Registrant("alice", any_user=False)
    policy.may_register(sighting(user="alice"), alice)
    with pytest.raises(errors.NotYours, match="belongs to bob"):
        policy.may_register(sighting(user="bob"), alice)


def test_a_machine_wide_sighting_is_for_root_only():
    with pytest.raises(errors.NotYours, match="machine-wide"):
        policy.may_register(sighting(user=None), policy.Registrant("alice", any_user=False))
    policy.may_register(sighting(user=None), policy.Registrant("root", any_user=True))


def test_user_names_fold_case_only_where_the_os_does():
    alice = policy.Registrant("Alice", any_user=False)
    with pytest.raises(errors.NotYours):
        policy.may_register(sighting(user="alice"), alice)
    policy.may_register(sighting(user="alice"), alice, fold_case=True)


def test_an_unknown_user_owns_nothing():
    with pytest.raises(errors.NotYours):
        policy.may_register(sighting(user="alice"), policy.Registrant(None, any_user=False))


def test_the_list_shows_only_the_users_own_sightings():
    all_ = [sighting("a1", user="alice"), sighting("b1", user="bob"), sighting("m1", user=None)]
    assert [s["id"] for s in policy.visible_to(all_, policy.Registrant("alice", False))] == ["a1"]
    assert len(policy.visible_to(all_, policy.Registrant("root", True))) == 3


# -- ids -----------------------------------------------------------------------------------------------


def test_an_id_resolves_by_exact_id_or_unique_prefix():
    items = [sighting("bc1805872a42667fe96e"), sighting("bc19aaaa00000000000f"), sighting("0bce12177b4c")]
    assert policy.resolve("BC1805872A42667FE96E", items)["id"] == "bc1805872a42667fe96e"
    assert policy.resolve("bc18", items)["id"] == "bc1805872a42667fe96e"
    with pytest.raises(errors.UnknownSighting, match="matches 2"):
        policy.resolve("bc1805", [*items, sighting("bc1805ffffffffffffff")])
    with pytest.raises(errors.UnknownSighting, match="at least 4"):
        policy.resolve("bc", items)
    with pytest.raises(errors.UnknownSighting, match="no such agent"):
        policy.resolve("ffff", items)


def test_short_ids_grow_until_they_are_unique():
    ids = ["aaaaaaaaaa11", "aaaaaaaaaa22", "bbbbbbbbbbbb"]
    shorts = policy.short_ids(ids, width=4)
    assert shorts == {"aaaaaaaaaa11": "aaaaaaaaaa1", "aaaaaaaaaa22": "aaaaaaaaaa2", "bbbbbbbbbbbb": "bbbb"}
    assert len(set(shorts.values())) == 3


# -- prefill and overrides -----------------------------------------------------------------------------


def test_prefill_takes_providers_tools_and_autonomy_from_the_evidence():
    s = sighting(endpoints=[{"host": "api.anthropic.com", "provider": "anthropic"}, {"host": "x", "provider": None}],
                 credentials=[{"kind": "openai"}, {"kind": "github"}],
                 mcp_servers=[{"name": "github"}, {"name": "playwright"}, {"name": "github"}],
                 flags=["autonomous", "broad_tools"])
    got = policy.prefill(s, provider_ids=["anthropic", "openai"])
    assert got == {"providers": ["anthropic", "openai"], "tools": ["github", "playwright"], "autonomy": "autonomous"}


def test_prefill_of_a_supervised_agent_without_evidence_is_empty():
    assert policy.prefill(sighting()) == {"providers": [], "tools": [], "autonomy": "supervised"}


def test_flags_override_what_was_prefilled():
    pre = {"providers": ["anthropic"], "tools": ["github"], "autonomy": "autonomous"}
    got = policy.declaration(sighting(), pre, owner="a@example.com", purpose="p", providers=["openai"], tools=[],
                          data_systems=["crm"], autonomy="supervised")
    assert (got["providers"], got["tools"], got["data_systems"], got["autonomy"]) == (["openai"], [], ["crm"],
                                                                                      "supervised")
    kept = policy.declaration(sighting(), pre, owner="a@example.com", purpose="p")
    assert (kept["providers"], kept["tools"], kept["autonomy"]) == (["anthropic"], ["github"], "autonomous")


# -- the collector's limits ----------------------------------------------------------------------------


def test_the_local_limits_are_the_collectors():
    from console.server.models import RegistrationCreate
    from contract.validation import REGISTRATION_REQUEST

    def shape(schema: dict[str, Any]) -> dict[str, Any]:
        props = {k: {kk: vv for kk, vv in v.items() if kk not in ("title", "description")}
                 for k, v in schema["properties"].items()}
        return {"properties": props, "required": sorted(schema["required"]),
                "extra": schema.get("additionalProperties")}

    assert shape(REGISTRATION_REQUEST.json_schema()) == shape(RegistrationCreate.model_json_schema())


def test_a_valid_registration_is_stripped_and_kept():
    got = policy.validate(fields(owner="  alice@example.com ", providers=[" anthropic "]))
    assert got["owner"] == "alice@example.com" and got["providers"] == ["anthropic"]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"owner": None}, "--owner required"),
    ({"owner": "", "purpose": "  "}, "--owner and --purpose required"),
    ({"owner": "a" * 257}, "--owner: too long (at most 256 characters)"),
    ({"purpose": "p" * 4001}, "--purpose: too long (at most 4000 characters)"),
    ({"business_process": "b" * 1001}, "--business-process: too long"),
    ({"purpose": "has a \x00 in it"}, "--purpose: must not contain a NUL"),
    ({"providers": ["ok", " "]}, "--provider #2: must not be empty"),
    ({"tools": ["t" * 129]}, "--tool #1: too long (at most 128 characters)"),
    ({"data_systems": [f"s{i}" for i in range(101)]}, "--data-system: too many (at most 100)"),
    ({"autonomy": "yolo"}, "--autonomy: must be one of"),
])
def test_bad_input_is_refused_naming_the_flag(overrides: dict[str, Any], message: str):
    with pytest.raises(errors.InvalidRegistration) as caught:
        policy.validate(fields(**overrides))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_several_problems_are_counted():
    with pytest.raises(errors.InvalidRegistration, match=r"and 2 more problems"):
        policy.validate(fields(owner="a" * 300, tools=[""], autonomy="x"))


# -- prompts -------------------------------------------------------------------------------------------


def test_prompts_ask_for_what_is_missing_then_confirm():
    answers = iter(["", "alice@example.com", "reviews pull requests", "software delivery", "y"])
    asked: list[str] = []
    said: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return next(answers)

    got = fields(owner=None, purpose=None)
    assert cli.ask_missing(got, ask, said.append)
    assert (got["owner"], got["purpose"], got["business_process"]) == ("alice@example.com", "reviews pull requests",
                                                                       "software delivery")
    assert asked[0] == asked[1] and asked[0].startswith("Owner")  # an empty answer asks again
    assert "providers:        anthropic" in said[0]


def test_declining_at_the_prompt_sends_nothing():
    answers = iter(["", "n"])
    assert not cli.ask_missing(fields(), lambda _p: next(answers), lambda _s: None)


# -- the list ------------------------------------------------------------------------------------------


def test_the_list_puts_children_under_parents_and_shows_what_was_sent():
    parent = sighting("aaaa1111bbbb2222cccc", name="Claude Code")
    child = sighting("dddd3333", name="github", type="tool_server", parent="aaaa1111bbbb2222cccc")
    text = cli.render_list([child, parent], {"dddd3333": {"id": 7, "created_at": "2026-11-29T10:00:00Z"}},
                           policy.Registrant("alice", False))
    lines = text.splitlines()
    assert lines[0].startswith("2 agents (alice's)")
    assert lines[2].split()[:2] == ["aaaa1111", "Claude"] and lines[2].rstrip().endswith("no")
    assert "└ github" in lines[3] and lines[3].rstrip().endswith("#7 sent 2026-11-29")


def test_the_list_shows_the_collectors_status_when_it_answered():
    mine, other = sighting("aaaa1111bbbb2222cccc"), sighting("ffff9999", name="Aider")
    sent = {"aaaa1111bbbb2222cccc": {"id": 3, "created_at": "2026-11-29T10:00:00Z"},
              "ffff9999": {"id": 4, "created_at": "2026-11-29T10:00:00Z"}}
    text = cli.render_list([mine, other], sent, policy.Registrant("alice", False),
                           {"aaaa1111bbbb2222cccc": {"id": 5, "status": "approved"}})
    rows = {line.split()[0]: line for line in text.splitlines()[2:4]}
    assert rows["aaaa1111"].endswith("#5 approved")
    assert rows["ffff9999"].endswith("no")  # sent from here once, but not at this collector
    assert "status at the collector" in text and "sent from this machine" not in text
    fallback = cli.render_list([mine], sent, policy.Registrant("alice", False), None)
    assert fallback.splitlines()[2].endswith("#3 sent 2026-11-29") and "could not be asked" in fallback


def test_the_newest_registration_of_each_sighting_wins_and_bad_rows_are_skipped():
    rows = [{"id": 2, "sighting_id": "s1", "status": "superseded"}, {"id": 9, "sighting_id": "s1", "status": "pending"},
            {"id": 4, "sighting_id": "s2", "status": "rejected\x1b[2J"}, {"id": "7", "sighting_id": "s3", "status": "x"},
            "garbage", {"id": 8, "sighting_id": None, "status": "approved"}, {"id": 1, "sighting_id": "s2"}]
    newest = collector.newest_by_sighting(rows)
    assert {k: (v["id"], v["status"]) for k, v in newest.items()} == {"s1": (9, "pending"), "s2": (4, "rejected\x1b[2J")}
    text = cli.render_list([sighting("s2000000")], {}, policy.Registrant("alice", False),
                           {"s2000000": newest["s2"]})
    assert "\x1b" not in text


def test_names_from_config_files_cannot_drive_the_terminal():
    hostile = sighting("eeee4444", name="evil\x1b]0;pwned\x07\x1b[2J", user="alice\r")
    text = cli.render_list([hostile], {}, policy.Registrant("root", True))
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text and "evil?]0;pwned?" in text
    with pytest.raises(errors.NotYours) as caught:
        policy.may_register(hostile, policy.Registrant("bob", False))
    assert "\x1b" not in str(caught.value) and "\r" not in str(caught.value)


def test_an_empty_list_says_so():
    assert "no agents of alice" in cli.render_list([], {}, policy.Registrant("alice", False))


# -- the ledger ----------------------------------------------------------------------------------------


URL = "https://collector.example.org:8443"


def test_the_ledger_round_trips_for_its_collector_only():
    data = ledger.ledger_document({"s1": {"id": 3, "status": "pending"}}, URL + "/")
    assert ledger.parse_ledger(data, URL) == {"s1": {"id": 3, "status": "pending"}}
    assert ledger.parse_ledger(data, "https://other.example.org") == {}


@pytest.mark.parametrize("data", [b"", b"\xff\xfe", b"[]", b'{"schema": "x"}', b"{" * 5000,
                                  json.dumps({"schema": ledger.LEDGER_SCHEMA, "collector_url": URL,
                                              "registrations": {"s": {"id": "1"}, "t": 5}}).encode()])
def test_a_broken_ledger_reads_as_empty(data: bytes):
    assert ledger.parse_ledger(data, URL) == {}


def state_in(tmp_path: Path) -> ledger.DeviceState:
    return ledger.DeviceState(tmp_path, [], URL, "dev1")


def test_the_ledger_file_is_private_and_rewritten_whole(tmp_path: Path):
    state = state_in(tmp_path)
    state.remember("s1", {"id": 1, "status": "pending", "created_at": "2026-11-29T10:00:00Z", "owner": "a"})
    state.remember("s2", {"id": 2, "status": "pending", "created_at": "2026-11-29T10:00:01Z", "owner": "a"})
    assert set(state.ledger()) == {"s1", "s2"}
    assert (state.ledger_path.stat().st_mode & 0o777) == 0o600
    assert not list(tmp_path.glob("*.tmp"))


def test_a_ledger_that_is_a_symlink_or_a_fifo_or_huge_is_not_read(tmp_path: Path):
    state = state_in(tmp_path)
    real = tmp_path / "elsewhere.json"
    real.write_bytes(ledger.ledger_document({"s1": {"id": 1}}, URL))
    state.ledger_path.symlink_to(real)
    assert state.ledger() == {}
    state.ledger_path.unlink()
    os.mkfifo(state.ledger_path)
    assert state.ledger() == {}  # and does not block
    state.ledger_path.unlink()
    state.ledger_path.write_bytes(b" " * (ledger.LEDGER_MAX_BYTES + 1))
    assert state.ledger() == {}


def test_no_key_means_not_enrolled(tmp_path: Path):
    with pytest.raises(errors.NotEnrolled, match="not enrolled"):
        state_in(tmp_path).device_key()
    (tmp_path / "device.key").write_text("ard_FAKEFAKE\n")
    with pytest.raises(errors.NotEnrolled):  # a key, but no collector noted in the state: not enrolled either
        ledger.DeviceState(tmp_path, [], None, None).device_key()
    assert state_in(tmp_path).device_key() == "ard_FAKEFAKE"


def test_a_missing_state_is_a_clear_error(tmp_path: Path):
    with pytest.raises(errors.StateUnavailable, match="no state yet"):
        ledger.DeviceState.read(tmp_path / "nowhere")


# -- the collector's answers ---------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "body", "expected"), [
    (404, {"detail": {"reason": "sighting_not_found", "sighting_id": "x"}}, "does not know this agent yet"),
    (401, {"detail": {"reason": "invalid_device_key", "reenroll": True}}, "refused this device's key"),
    (422, {"detail": {"reason": "invalid_request", "errors": [{"loc": ["body", "owner"], "msg": "too long"}]}},
     "refused (422 invalid_request): --owner: too long"),
    (409, {"detail": {"reason": "something_new"}}, "refused (409 something_new)"),
    (400, "not json", "refused (400 http 400)"),
])
def test_refusals_read_as_one_line_with_the_reason(status: int, body: Any, expected: str):
    line = collector.refusal(status, body)
    assert expected in line and "\n" not in line


def answering(status: int, content: bytes) -> httpx.MockTransport:
    """The collector replaced by a function: for answers a real collector gives only when broken."""
    return httpx.MockTransport(lambda request: httpx.Response(status, content=content))


def test_a_busy_or_broken_collector_is_unreachable_not_a_refusal():
    request = policy.validate(fields())
    for transport in (answering(503, b"{}"), answering(429, b""), answering(201, b"<html>")):
        with pytest.raises(CollectorUnreachable):
            collector.send(request, collector_url=URL, key="ard_FAKE", ca_bundle=None, transport=transport)


def test_the_device_key_goes_in_the_header_and_never_in_an_error():
    seen: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(403, json={"detail": {"reason": "not_a_device_key"}})

    with pytest.raises(errors.RegistrationRefused) as caught:
        collector.send(policy.validate(fields()), collector_url=URL, key="ard_FAKEKEY", ca_bundle=None,
                 transport=httpx.MockTransport(refuse))
    assert seen[0].headers["authorization"] == "Bearer ard_FAKEKEY"
    assert json.loads(seen[0].content)["sighting_id"] == "bc1805872a42667fe96e"
    assert "ard_FAKEKEY" not in str(caught.value)


def test_a_missing_or_bad_ca_bundle_is_named(tmp_path: Path):
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate")
    for bundle in (tmp_path / "missing.pem", junk):
        with pytest.raises(CollectorUnreachable, match="CA bundle"):
            collector.send(policy.validate(fields()), collector_url=URL, key="ard_FAKE", ca_bundle=bundle)


def test_an_approval_due_for_review_reads_as_review_due_and_its_inbox_item_says_so() -> None:
    rows = [{"id": 3, "sighting_id": "s1", "status": "approved", "review_due": True},
            {"id": 4, "sighting_id": "s2", "status": "approved", "review_due": False},
            {"id": 5, "sighting_id": "s3", "status": "rejected", "review_due": True}]
    newest = collector.newest_by_sighting(rows)
    assert {k: v["status"] for k, v in newest.items()} == {"s1": "review_due", "s2": "approved", "s3": "rejected"}
    review = mine.message_line({"id": 7, "kind": "review", "sighting_name": "Claude Code",
                                "text": "it needs re-attesting by 2027-01-01"})
    assert review == "#7 new: your registration of Claude Code is due for review: it needs re-attesting by 2027-01-01"
    nudge = mine.message_line({"id": 8, "kind": "remind", "sighting_name": "Aider", "read_at": 1.0})
    assert nudge == "#8 IT asks you to register Aider"
