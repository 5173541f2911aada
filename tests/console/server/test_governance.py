"""console.governance: governed or not, the collector's flags and their reasons, from the org policy, an
admin's approval and a registration; flag explanations and the type of a sighting (pure, no I/O)."""

from __future__ import annotations

import pytest

from console.governance import (
    Declaration,
    Policy,
    Standing,
    assess,
    classify,
    explain,
    fingerprints_of,
    providers_of,
    risky_tools,
    sent_flags,
    tools_of,
)
from contract.scan import COLLECTOR_FLAGS, Flag

KEY = "hmac-sha256:" + "a" * 32
POLICY = Policy.of(signatures=["copilot"], providers=["anthropic"], fingerprints=[KEY])


def test_an_unsanctioned_signature_is_unregistered_and_ungoverned() -> None:
    verdict = assess("claude-code", [], [], [], POLICY)
    assert verdict.governed is False
    assert "unregistered" in verdict.flags
    assert verdict.reason("unregistered") == "the policy does not sanction claude-code, and nobody registered it"
    assert assess(None, [], [], [], POLICY).reason("unregistered").startswith("no signature the policy could sanction")


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


# -- approvals and registrations ------------------------------------------------------------------------

DECLARED = Declaration.of(providers=["anthropic"], tools=["github"], autonomous=False)


def test_an_approved_sighting_is_governed_without_a_policy() -> None:
    verdict = assess("aider", ["anthropic"], [], [], Policy(), Standing(approval=DECLARED), ["github"])
    assert verdict.governed is True
    assert not {"unregistered", "pending", "drift"} & set(verdict.flags)


def test_an_approved_unknown_agent_is_governed() -> None:
    assert assess(None, [], [], [], Policy(), Standing(approval=Declaration())).governed is True


def test_a_pending_registration_flags_pending_instead_of_unregistered() -> None:
    verdict = assess("aider", [], [], [], Policy(), Standing(registration="pending"))
    assert verdict.governed is False
    assert "pending" in verdict.flags and "unregistered" not in verdict.flags


def test_a_pending_registration_of_a_sanctioned_signature_is_not_flagged() -> None:
    verdict = assess("copilot", [], [], [], POLICY, Standing(registration="pending"))
    assert verdict.governed is True and "pending" not in verdict.flags


def test_an_approved_registration_governs_what_it_declares() -> None:
    standing = Standing(registration="approved", declaration=DECLARED)
    verdict = assess("aider", ["anthropic"], [], [], Policy(), standing, ["github"])
    assert verdict.governed is True and verdict.flags == ("unsanctioned_provider",)


@pytest.mark.parametrize(("providers", "tools", "device_flags", "reason"), [
    (["anthropic", "openai"], ["github"], [], "calls openai, not declared"),
    (["anthropic"], ["github", "slack"], [], "uses MCP server slack, not declared"),
    (["anthropic"], ["github"], ["autonomous"], "runs autonomously, declared supervised"),
    (["openai"], ["slack"], [], "calls openai, not declared; uses MCP server slack, not declared"),
])  # fmt: skip
def test_doing_more_than_the_registration_declares_is_drift(providers, tools, device_flags, reason) -> None:
    standing = Standing(registration="approved", declaration=DECLARED)
    verdict = assess("aider", providers, [], device_flags, Policy(), standing, tools)
    assert verdict.governed is False and "drift" in verdict.flags
    assert verdict.reason("drift") == reason


def test_drift_from_an_approval_is_measured_against_what_it_did_then() -> None:
    verdict = assess("aider", ["anthropic", "openai"], [], [], Policy(), Standing(approval=DECLARED), ["github"])
    assert verdict.governed is False
    assert verdict.reason("drift") == "calls openai, not seen when approved"


def test_drift_makes_a_policy_sanctioned_agent_ungoverned_too() -> None:
    standing = Standing(registration="approved", declaration=DECLARED)
    assert assess("copilot", ["openai"], [], [], POLICY, standing).governed is False


def test_a_declared_autonomous_agent_may_run_autonomously() -> None:
    standing = Standing(registration="approved", declaration=Declaration.of(autonomous=True))
    assert assess("aider", [], [], ["autonomous"], Policy(), standing).governed is True


def test_a_pending_registration_is_not_checked_for_drift() -> None:
    verdict = assess("aider", ["openai"], [], [], Policy(), Standing(registration="pending", declaration=DECLARED))
    assert "drift" not in verdict.flags


def test_every_collector_flag_comes_with_a_reason() -> None:
    verdict = assess(None, ["openai"], ["hmac-sha256:" + "e" * 32], [], Policy())
    assert {f for f, _ in verdict.reasons} == set(verdict.flags) & COLLECTOR_FLAGS
    assert verdict.reason("unsanctioned_provider") == "calls openai, not on the allow-list"
    assert verdict.reason("personal_credential") == "uses 1 key that is not corporate"


def test_tools_are_the_names_of_mcp_servers_once_each() -> None:
    assert tools_of([{"name": "slack"}, {"name": "github"}, {"name": "slack"}, {"name": None}]) == ["github", "slack"]


# -- explanations -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", Flag.__args__)
def test_every_flag_has_a_human_explanation(flag) -> None:
    text = explain(flag)
    assert text.endswith(".") and len(text) > 30 and flag not in text


def test_an_unknown_flag_still_gets_a_sentence() -> None:
    assert explain("new_flag") == "Flagged new flag."


# -- classification -----------------------------------------------------------------------------------------


def sighting(**fields) -> dict:
    base = {"signature": None, "name": "python3 agent.py", "type": "unknown", "parent": None, "processes": [],
            "configs": [], "mcp_servers": [], "endpoints": []}
    return {**base, **fields}


def endpoint(provider: str | None, host: str = "api.example.com") -> dict:
    return {"host": host, "port": 443, "provider": provider, "via": "sni"}


def test_a_known_agent_takes_its_type_from_its_signature() -> None:
    assert classify(sighting(signature="claude-code", name="Claude Code", type="coding")) == \
        ("coding", "matches the Claude Code signature (claude-code)")


def test_an_enterprise_agent_is_explained_by_its_framework_not_its_project_name() -> None:
    project = {"root": "/srv/invoice-triage", "entry": "app.worker", "framework": "langgraph"}
    assert classify(sighting(signature="langchain", name="app.worker in /srv/invoice-triage", type="enterprise",
                             project=project)) == \
        ("enterprise", "runs app.worker on langgraph (langchain signature)")


def test_an_unknown_agent_calling_a_provider_says_so() -> None:
    assert classify(sighting(endpoints=[endpoint("openai")])) == ("unknown", "unknown agent calling openai")


def test_an_unknown_agent_calling_a_local_model() -> None:
    assert classify(sighting(endpoints=[endpoint("ollama", "127.0.0.1")])) == \
        ("unknown", "unknown agent calling the local model ollama")


def test_an_unknown_agent_spawning_mcp_servers_says_which() -> None:
    assert classify(sighting(mcp_servers=[{"name": "github"}, {"name": "fetch"}])) == \
        ("unknown", "unknown agent spawning MCP servers fetch, github")


def test_an_llm_caller_reaching_business_systems_is_enterprise() -> None:
    kind, reason = classify(sighting(endpoints=[endpoint("openai")], mcp_servers=[{"name": "salesforce"},
                                                                                 {"name": "slack"}]))
    assert (kind, reason) == ("enterprise", "calling openai and reaches salesforce, slack")


def test_a_long_lived_process_reaching_business_systems_is_enterprise() -> None:
    found = sighting(mcp_servers=[{"name": "postgres"}], processes=[{"started": 1_000.0}])
    assert classify(found, now=1_000.0 + 7 * 3600) == ("enterprise", "long-lived, runs unattended and reaches postgres")
    assert classify(found, now=1_000.0 + 60)[0] == "unknown"


def test_an_llm_caller_inside_a_repository_is_coding() -> None:
    found = sighting(endpoints=[endpoint("anthropic")], configs=[{"path": "/src/app/.mcp.json", "scope": "project"}])
    assert classify(found) == ("coding", "calling anthropic from inside a code repository")


def test_many_providers_are_summed_up() -> None:
    found = sighting(endpoints=[endpoint(p) for p in ("a", "b", "c", "d", "e")])
    assert classify(found)[1] == "unknown agent calling a, b, c and 2 more"


def test_a_sighting_with_nothing_to_go_on_is_unknown() -> None:
    assert classify(sighting()) == ("unknown", "talks to an LLM or tool endpoint but matches no signature")


# -- risky-tool patterns ----------------------------------------------------------------------------

SERVERS = [
    {"name": "shell", "command": "/usr/local/bin/mcp-shell", "args": []},
    {"name": "db", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-postgres", "postgres://x"]},
    {"name": "Notes", "command": "uvx", "args": ["notes-mcp"]},
    {"name": "remote", "url": "https://tools.example.com/mcp"},
]


@pytest.mark.parametrize(("patterns", "expected"), [
    ([], []),
    (["shell"], ["shell"]),
    (["*SHELL*"], ["shell"]),  # case-insensitive, on the command too
    (["npx *server-postgres*"], ["db"]),  # the command line: command and arguments
    (["notes"], ["Notes"]),
    (["*"], ["Notes", "db", "remote", "shell"]),
    (["git*", "fs"], []),
])  # fmt: skip
def test_risky_tool_patterns_match_names_commands_and_command_lines(patterns, expected) -> None:
    assert risky_tools(SERVERS, patterns) == expected


def test_a_risky_tool_makes_a_sighting_broad_tools_with_a_reason() -> None:
    verdict = assess("claude-code", [], [], [], POLICY, risky=["shell"])
    assert "broad_tools" in verdict.flags and "shell" in verdict.reason("broad_tools")
    assert "broad_tools" not in assess("claude-code", [], [], [], POLICY).flags


def test_a_malformed_mcp_server_entry_matches_nothing() -> None:
    assert risky_tools([{"name": None, "command": 3, "args": [None, 1]}, {}], ["*"]) == []


def test_a_server_turned_off_in_its_config_is_never_a_risky_tool() -> None:
    servers = [{"name": "shell", "command": "/opt/mcp-shell", "args": [], "enabled": False},
               {"name": "shell2", "command": "/opt/mcp-shell", "args": [], "enabled": True}]
    assert risky_tools(servers, ["*shell*"]) == ["shell2"]


def test_many_patterns_match_as_each_would_alone() -> None:
    patterns = [f"tool-{i}-*" for i in range(500)] + ["*server-postgres*", "[!a-z]otes"]
    assert risky_tools(SERVERS, patterns) == ["db"]
    assert risky_tools(SERVERS, [*patterns, "?otes"]) == ["Notes", "db"]


@pytest.mark.timeout(30)
def test_a_pattern_of_many_stars_against_a_long_command_line_ends() -> None:
    server = {"name": "x", "command": "a" * 5000, "args": ["a" * 5000]}
    assert risky_tools([server], ["*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b"]) == []


def test_the_flags_a_device_sent_are_read_from_the_stored_detail() -> None:
    stored = ["broad_tools", "unregistered"]
    assert sent_flags({"device_flags": []}, stored) == []  # the collector added broad_tools
    assert sent_flags({"device_flags": ["broad_tools"]}, stored) == ["broad_tools"]
    assert sent_flags({}, stored) == ["broad_tools"]  # stored before the device's flags were kept apart
    assert sent_flags({"device_flags": "broad_tools"}, ["autonomous"]) == ["autonomous"]  # not a list: ignored
