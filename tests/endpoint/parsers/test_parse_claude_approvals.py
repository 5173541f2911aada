"""Claude Code's project servers: ``.mcp.json`` entries enabled only as the approvals in its other files say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import run_agentroster

from endpoint.scan.evidence import McpServerConfig
from endpoint.scan.parsers import claude, parse_config

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "configs"


def approvals(*sources: tuple[str, object]) -> claude.McpjsonApprovals:
    return claude.mcpjson_approvals(sources)


def test_a_server_no_file_approves_is_pending():
    assert approvals(("user", {}), ("local", None)).status("docs") == "pending"


@pytest.mark.parametrize("source", ["user", "project", "legacy", "local"])
def test_an_enabled_list_in_any_file_approves(source):
    assert approvals((source, {"enabledMcpjsonServers": ["docs"]})).status("docs") == "approved"


@pytest.mark.parametrize("source", ["user", "project", "legacy", "local"])
def test_enable_all_in_any_file_approves_every_server(source):
    found = approvals((source, {"enableAllProjectMcpServers": True}))
    assert (found.status("docs"), found.status("anything")) == ("approved", "approved")


def test_a_rejection_in_one_file_wins_over_an_approval_in_another():
    found = approvals(("user", {"disabledMcpjsonServers": ["tools"]}),
                      ("local", {"enabledMcpjsonServers": ["tools"], "enableAllProjectMcpServers": True}))
    assert found.status("tools") == "rejected"
    assert found.status("docs") == "approved"


def test_enable_all_is_decided_by_the_most_specific_file_that_sets_it():
    assert approvals(("user", {"enableAllProjectMcpServers": True}),
                     ("local", {"enableAllProjectMcpServers": False})).status("docs") == "pending"
    assert approvals(("legacy", {"enableAllProjectMcpServers": True}),
                     ("local", {"model": "opus"})).status("docs") == "approved"


def test_names_compare_as_claude_code_normalises_them():
    found = approvals(("local", {"enabledMcpjsonServers": ["my.server"], "disabledMcpjsonServers": ["team docs"]}))
    assert found.status("my_server") == "approved"
    assert found.status("team_docs") == "rejected"
    assert claude.normalise_server_name("a\U0001f600b") == "a__b"  # one "_" per UTF-16 unit


def test_skipping_the_dangerous_mode_prompt_approves_unless_the_project_itself_says_so():
    assert approvals(("user", {"skipDangerousModePermissionPrompt": True})).status("docs") == "approved"
    assert approvals(("project", {"skipDangerousModePermissionPrompt": True})).status("docs") == "pending"


def test_wrong_typed_values_are_ignored():
    found = approvals(("user", {"enabledMcpjsonServers": "docs", "disabledMcpjsonServers": [1, None, "x"],
                                "enableAllProjectMcpServers": "yes"}), ("project", ["not", "a", "mapping"]))
    assert (found.status("docs"), found.status("x")) == ("pending", "rejected")


def test_project_servers_carry_their_project_and_only_a_rejection_disables_them():
    parsed = parse_config("mcp_json", json.dumps({"mcpServers": {
        "docs": {"url": "https://docs.example.com/mcp"}, "tools": {"command": "tools-mcp"},
        "draft": {"command": "draft-mcp"}, "off": {"command": "off-mcp", "disabled": True}}}))
    found = claude.project_servers(parsed.mcp_servers, "/home/alice/src/api", approvals(
        ("user", {"disabledMcpjsonServers": ["tools"]}), ("local", {"enabledMcpjsonServers": ["docs", "tools", "off"]})))
    assert [(s.name, s.enabled, s.project) for s in found] == [
        ("docs", True, "/home/alice/src/api"),  # approved
        ("tools", False, "/home/alice/src/api"),  # rejected: blocked in every mode
        ("draft", True, "/home/alice/src/api"),  # pending: `claude -p` starts it without asking
        ("off", False, "/home/alice/src/api")]  # switched off in the entry itself
    assert all(isinstance(s, McpServerConfig) and s.where for s in found)


def test_the_real_format_samples_reject_and_approve_across_files():
    def document(rel: str, dialect: str) -> object:
        path = SAMPLES / rel
        return parse_config(dialect, path.read_text(encoding="utf-8"), path=str(path)).document

    legacy = claude.legacy_project_entry(document("claude-code/.claude.json", "claude_code"),
                                         lambda key: key == "/home/alice/src/api")
    found = approvals(("user", document("claude-code/settings.json", "claude_settings")), ("legacy", legacy))
    servers = claude.project_servers(parse_config("mcp_json", (SAMPLES / "claude-code/project/.mcp.json").read_text(
        encoding="utf-8")).mcp_servers, "/home/alice/src/api", found)
    assert [(s.name, found.status(s.name), s.enabled) for s in servers] == [
        ("shared-docs", "approved", True), ("shared-tools", "rejected", False)]


def test_the_legacy_entry_is_the_one_of_this_project():
    document = {"projects": {"/home/alice/src/web": {"enabledMcpjsonServers": ["web"]},
                             "/home/alice/src/api": {"enabledMcpjsonServers": ["api"]}, 7: {}}}
    assert claude.legacy_project_entry(document, lambda key: key == "/home/alice/src/api") == {
        "enabledMcpjsonServers": ["api"]}
    assert claude.legacy_project_entry(document, lambda key: key == "/elsewhere") is None
    assert claude.legacy_project_entry({"projects": []}, lambda key: True) is None


# -- the files sensor joins the files of one user and project (a real scan of a tree) ---------------------

def _write(path: Path, document: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document if isinstance(document, str) else json.dumps(document))


def _servers(root: Path) -> dict[tuple[str, str], tuple[bool, str | None]]:
    done = run_agentroster("scan", "--json", "--root", str(root))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    agent = next(s for s in report["sightings"] if s["signature"] == "claude-code")
    return {(m["source"], m["name"]): (m["enabled"], m["project"]) for m in agent["mcp_servers"]}


@pytest.mark.timeout(120)
def test_a_scan_applies_the_approvals_of_every_file_to_each_project(tmp_path):
    home = tmp_path / "home" / "alice"
    servers = {"mcpServers": {"docs": {"url": "https://docs.example.com/mcp"}, "tools": {"command": "tools-mcp"},
                              "draft": {"command": "draft-mcp"}}}
    _write(home / "src" / "api" / ".mcp.json", servers)
    _write(home / "src" / "web" / ".mcp.json", servers)
    _write(home / ".claude" / "settings.json", {"disabledMcpjsonServers": ["tools"]})
    _write(home / "src" / "api" / ".claude" / "settings.local.json", {"enabledMcpjsonServers": ["tools", "draft"]})
    _write(home / "src" / "web" / ".claude" / "settings.json",
           "{\n  // shared\n  \"enableAllProjectMcpServers\": true,\n  \"disabledMcpjsonServers\": [\"draft\"],\n}")
    _write(home / ".claude.json", {"projects": {"/home/alice/src/api": {"disabledMcpjsonServers": ["docs"]},
                                                "/home/alice/src/other": {"disabledMcpjsonServers": ["draft"]}}})

    api, web = "/home/alice/src/api", "/home/alice/src/web"
    assert _servers(tmp_path) == {
        (f"{api}/.mcp.json", "docs"): (False, api),  # rejected in ~/.claude.json, written by an older release
        (f"{api}/.mcp.json", "tools"): (False, api),  # rejected by the user's settings: that wins
        (f"{api}/.mcp.json", "draft"): (True, api),  # another project's rejection is not this one's
        (f"{web}/.mcp.json", "docs"): (True, web),
        (f"{web}/.mcp.json", "tools"): (False, web),
        (f"{web}/.mcp.json", "draft"): (False, web),  # the project's shared settings reject it
    }


@pytest.mark.timeout(120)
def test_a_broken_settings_file_is_reported_once_and_the_others_still_apply(tmp_path):
    home = tmp_path / "home" / "alice"
    _write(home / "src" / "api" / ".mcp.json", {"mcpServers": {"docs": {"command": "docs-mcp"},
                                                               "tools": {"command": "tools-mcp"}}})
    _write(home / "src" / "api" / ".claude" / "settings.local.json", '{"disabledMcpjsonServers": ["docs"')
    _write(home / ".claude" / "settings.json", {"disabledMcpjsonServers": ["tools"]})
    done = run_agentroster("scan", "--json", "--root", str(tmp_path))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    agent = next(s for s in report["sightings"] if s["signature"] == "claude-code")
    assert sorted((m["name"], m["enabled"]) for m in agent["mcp_servers"]) == [("docs", True), ("tools", False)]
    broken = [e for e in report["errors"] if e["where"].endswith("settings.local.json")]
    assert len(broken) == 1 and broken[0]["error"] == "syntax"
