"""console.governance: governed or not, and the collector's flags, from the org policy (pure)."""

from __future__ import annotations

from console.governance import COLLECTOR_FLAGS, Policy, assess, fingerprints_of, providers_of

KEY = "hmac-sha256:" + "a" * 32
POLICY = Policy.of(signatures=["copilot"], providers=["anthropic"], fingerprints=[KEY])


def test_an_unsanctioned_signature_is_unregistered_and_ungoverned() -> None:
    verdict = assess("claude-code", [], [], [], POLICY)
    assert verdict.governed is False
    assert "unregistered" in verdict.flags


def test_a_sanctioned_signature_is_governed() -> None:
    verdict = assess("copilot", [], [], [], POLICY)
    assert verdict.governed is True
    assert "unregistered" not in verdict.flags


def test_an_unknown_agent_is_never_governed() -> None:
    assert assess(None, [], [], [], POLICY).governed is False


def test_a_provider_off_the_allow_list_is_flagged() -> None:
    assert "unsanctioned_provider" in assess("copilot", ["openai"], [], [], POLICY).flags


def test_a_provider_on_the_allow_list_is_not_flagged() -> None:
    assert "unsanctioned_provider" not in assess("copilot", ["anthropic"], [], [], POLICY).flags


def test_a_key_that_is_not_corporate_is_a_personal_credential() -> None:
    other = "hmac-sha256:" + "b" * 32
    assert "personal_credential" in assess("copilot", [], [other], [], POLICY).flags


def test_a_corporate_key_is_not_flagged() -> None:
    assert "personal_credential" not in assess("copilot", [], [KEY], [], POLICY).flags


def test_an_empty_policy_sanctions_nothing() -> None:
    verdict = assess("copilot", ["anthropic"], [KEY], [], Policy())
    assert set(verdict.flags) == {"unregistered", "unsanctioned_provider", "personal_credential"}


def test_collector_flags_sent_by_a_device_are_recomputed() -> None:
    verdict = assess("copilot", [], [], ["unregistered", "pending", "drift", "personal_credential"], POLICY)
    assert not set(verdict.flags) & COLLECTOR_FLAGS


def test_endpoint_flags_are_kept_and_sorted() -> None:
    verdict = assess("copilot", [], [], ["broad_tools", "autonomous"], POLICY)
    assert verdict.flags == ("autonomous", "broad_tools")


def test_providers_are_read_from_endpoints_once_each() -> None:
    endpoints = [{"provider": "openai"}, {"provider": None}, {"provider": "anthropic"}, {"provider": "openai"}]
    assert providers_of(endpoints) == ["anthropic", "openai"]


def test_fingerprints_are_read_from_credentials_once_each() -> None:
    assert fingerprints_of([{"fingerprint": KEY}, {"fingerprint": KEY}]) == [KEY]
