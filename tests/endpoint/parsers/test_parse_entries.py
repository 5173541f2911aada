"""MCP server entries: disabled ones are marked, wrong-shaped ones become warnings, transports are normalised."""

from __future__ import annotations

import json

import pytest

from endpoint.scan.parsers import parse_config


def names(parsed) -> list[tuple[str, bool]]:
    return [(s.name, s.enabled) for s in parsed.mcp_servers]


def mcp_json(servers: dict) -> str:
    return json.dumps({"mcpServers": servers})


def test_disabled_servers_are_marked_not_dropped():
    parsed = parse_config("mcp_json", mcp_json({
        "on": {"command": "a"}, "off": {"command": "b", "disabled": True}, "toggled": {"command": "c", "enabled": False},
        "explicit": {"command": "d", "disabled": False},
    }))  # fmt: skip
    assert names(parsed) == [("on", True), ("off", False), ("toggled", False), ("explicit", True)]


def test_jan_and_anythingllm_switches_mark_servers_off():
    parsed = parse_config("mcp_json", mcp_json({
        "jan-off": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem"], "active": False},
        "jan-on": {"command": "npx", "active": True},
        "allm-off": {"command": "uvx", "anythingllm": {"autoStart": False}},
        "allm-on": {"command": "uvx", "anythingllm": {"autoStart": True}},
    }))  # fmt: skip
    assert names(parsed) == [("jan-off", False), ("jan-on", True), ("allm-off", False), ("allm-on", True)]


def test_wrong_shaped_entries_become_invalid_server_errors_and_the_others_still_parse():
    parsed = parse_config("mcp_json", mcp_json({
        "good": {"command": "npx", "args": ["-y", "pkg"]},
        "not-a-mapping": ["npx", "pkg"],
        "bad-command": {"command": {"path": "npx", "token": "sk-FAKE-0000"}},
        "bad-args": {"command": "npx", "args": "-y pkg"},
        "nested-args": {"command": "npx", "args": [["-y"]]},
        "bad-url": {"url": 8080},
        "bad-env": {"command": "npx", "env": ["TOKEN=sk-FAKE-0000"]},
        "empty": {},
        "also-good": {"url": "https://example.com/mcp"},
    }))  # fmt: skip
    assert names(parsed) == [("good", True), ("also-good", True)]
    assert parsed.warnings == []
    assert [(f.where, f.error, f.detail) for f in parsed.failures] == [
        ("/mcpServers/not-a-mapping", "invalid_server", "not an MCP server: the entry is not a mapping"),
        ("/mcpServers/bad-command", "invalid_server", "command is not a string"),
        ("/mcpServers/bad-args", "invalid_server", "args is not a list of strings"),
        ("/mcpServers/nested-args", "invalid_server", "args is not a list of strings"),
        ("/mcpServers/bad-url", "invalid_server", "url is not a string"),
        ("/mcpServers/bad-env", "invalid_server", "env is not a mapping"),
        ("/mcpServers/empty", "invalid_server", "not an MCP server: no command, no url and no known transport"),
    ]
    assert not any("FAKE" in f.detail for f in parsed.failures)


def test_a_server_map_of_the_wrong_shape_is_one_warning():
    parsed = parse_config("mcp_json", '{"mcpServers": [{"command": "npx"}]}')
    assert (parsed.mcp_servers, parsed.warnings) == ([], ["/mcpServers: is not a mapping of servers; ignored"])


@pytest.mark.parametrize(("entry", "transport"), [
    ({"command": "npx"}, "stdio"),
    ({"type": "stdio", "command": "npx"}, "stdio"),
    ({"url": "https://x.example/mcp"}, "http"),
    ({"url": "https://x.example/sse"}, "sse"),
    ({"url": "https://x.example/v1/sse/"}, "sse"),
    ({"url": "https://x.example/mcp?transport=sse"}, "http"),
    ({"serverUrl": "https://x.example/mcp"}, "http"),
    ({"httpUrl": "https://x.example/sse"}, "http"),
    ({"type": "http", "url": "https://x.example/sse"}, "http"),
    ({"type": "sse", "url": "https://x.example/mcp"}, "sse"),
    ({"type": "streamable-http", "url": "https://x.example/mcp"}, "http"),
    ({"type": "streamableHttp", "url": "https://x.example/mcp"}, "http"),
    ({"transportType": "sse", "url": "https://x.example/mcp"}, "sse"),
    ({"type": "websocket", "url": "wss://x.example/mcp"}, "unknown"),
])  # fmt: skip
def test_transports_are_normalised(entry, transport):
    parsed = parse_config("mcp_json", mcp_json({"s": entry}))
    assert parsed.mcp_servers[0].transport == transport


def test_env_keys_are_names_only():
    parsed = parse_config("mcp_json", mcp_json({"s": {"command": "x", "env": {"TOKEN": "sk-FAKE-0000", "N": 1}}}))
    assert parsed.mcp_servers[0].env_keys == ("TOKEN", "N")
    assert "FAKE" not in repr(parsed.mcp_servers)


def test_numeric_args_are_kept_as_text():
    parsed = parse_config("mcp_json", mcp_json({"s": {"command": "x", "args": ["--port", 8080, 1.5]}}))
    assert parsed.mcp_servers[0].args == ("--port", "8080", "1.5")


def test_claude_code_marks_a_projects_disabled_servers_only_in_that_project():
    document = {
        "mcpServers": {"user-wide": {"command": "a"}},
        "projects": {
            "/p1": {"mcpServers": {"db": {"command": "b"}}, "disabledMcpServers": ["db", "user-wide"]},
            "/p2": {"mcpServers": {"db": {"command": "b"}}},
            "/p3": "not a mapping",
        },
    }
    parsed = parse_config("claude_code", json.dumps(document))
    assert [(s.name, s.project, s.enabled) for s in parsed.mcp_servers] == [
        ("user-wide", None, True), ("db", "/p1", False), ("db", "/p2", True),
    ]
    assert parsed.warnings == ["/projects/~1p3: project entry is not a mapping; skipped"]


def test_gemini_allow_and_exclude_lists_switch_servers_off():
    document = {"mcp": {"allowed": ["a", "b"], "excluded": ["b"]},
                "mcpServers": {"a": {"command": "x"}, "b": {"command": "y"}, "c": {"command": "z"}}}
    assert names(parse_config("gemini_settings", json.dumps(document))) == [("a", True), ("b", False), ("c", False)]


def test_gemini_lists_name_servers_exactly_not_by_pattern():
    # Gemini CLI and Qwen Code test membership with Array.includes: no globs, and case counts.
    document = {"mcp": {"allowed": ["git*", "Db", "web"], "excluded": ["we?"]},
                "mcpServers": {"github": {"command": "x"}, "db": {"command": "y"}, "web": {"command": "z"}}}
    assert names(parse_config("gemini_settings", json.dumps(document))) == [
        ("github", False), ("db", False), ("web", True),
    ]


def test_gemini_older_flat_lists_and_model_string():
    document = {"excludeMCPServers": ["b"], "model": "gemini-2.5-flash",
                "mcpServers": {"a": {"command": "x"}, "b": {"command": "y"}}}
    parsed = parse_config("gemini_settings", json.dumps(document))
    assert (names(parsed), parsed.models) == ([("a", True), ("b", False)], ["gemini-2.5-flash"])


def test_opencode_nested_servers_and_toggles():
    document = {"mcp": {"servers": {
        "local": {"type": "local", "command": ["npx", "-y", "pkg"]},
        "org-default": {"enabled": False},
        "bad": {"type": "local", "command": [1, 2]},
    }}}  # fmt: skip
    parsed = parse_config("opencode_json", json.dumps(document))
    assert [(s.name, s.command, s.args, s.where) for s in parsed.mcp_servers] == [
        ("local", "npx", ("-y", "pkg"), "/mcp/servers/local")]
    assert [(f.where, f.error, f.detail) for f in parsed.failures] == [
        ("/mcp/servers/bad", "invalid_server", "command is not a list of strings")]


def test_zed_extension_server_disabled():
    document = {"context_servers": {"ext": {"source": "extension", "enabled": False, "settings": {}}}}
    parsed = parse_config("zed_settings", json.dumps(document))
    assert [(s.name, s.transport, s.enabled) for s in parsed.mcp_servers] == [("ext", "builtin", False)]


def test_goose_wrong_shaped_extension_is_an_invalid_server():
    text = "extensions:\n  good:\n    type: stdio\n    cmd: uvx\n    args: [pkg]\n  bad:\n    type: stdio\n    cmd: [uvx]\n"
    parsed = parse_config("goose_yaml", text)
    assert names(parsed) == [("good", True)]
    assert [(f.where, f.error, f.detail) for f in parsed.failures] == [
        ("/extensions/bad", "invalid_server", "command is not a string")]


def test_continue_unnamed_server_takes_a_readable_name():
    text = "mcpServers:\n  - command: npx\n    args: ['-y', '@scope/server-x']\n  - type: sse\n    url: https://h.example/sse\n"
    parsed = parse_config("continue_config", text)
    assert [s.name for s in parsed.mcp_servers] == ["@scope/server-x", "h.example"]


def test_codex_server_table_of_the_wrong_shape_is_a_warning():
    text = 'mcp_servers = "none"\nmodel = "o3"\n'
    parsed = parse_config("codex_toml", text)
    assert (parsed.mcp_servers, parsed.models) == ([], ["o3"])
    assert parsed.warnings == ["/mcp_servers: is not a table of servers; ignored"]


def test_dotenv_bad_lines_are_warnings_without_contents():
    parsed = parse_config("dotenv", "GOOD=1\nthis line holds sk-FAKE-0000\nexport ALSO=2\n")
    assert parsed.document == {"GOOD": "1", "ALSO": "2"}
    assert parsed.warnings == ["line 2: not a KEY=VALUE assignment; skipped"]


def test_aider_single_values_and_provider_names_without_keys():
    parsed = parse_config("aider_yaml", "model: gpt-4o\napi-key: deepseek=sk-FAKE-0000\nset-env: OLLAMA_API_BASE=http://h:11434\n")
    assert (parsed.models, parsed.providers, parsed.base_urls) == (["gpt-4o"], ["deepseek"], ["http://h:11434"])
    assert "FAKE" not in repr((parsed.models, parsed.providers, parsed.base_urls))


def test_vertex_switch_names_a_provider():
    parsed = parse_config("claude_settings", '{"env": {"CLAUDE_CODE_USE_VERTEX": "true", "CLAUDE_CODE_USE_BEDROCK": "0"}}')
    assert parsed.providers == ["vertex"]


def test_dotenv_quotes_exports_comments_and_multiline_values():
    text = ('export A=1\nB="x\\ny" # comment\nC=\'raw \\n\' \nD=v # comment\nE=a#b\n'
            'F="multi\nline" # tail\nG=after\n  H = " spaced "\n')
    assert parse_config("dotenv", text).document == {
        "A": "1", "B": "x\ny", "C": "raw \\n", "D": "v", "E": "a#b", "F": "multi\nline", "G": "after", "H": " spaced ",
    }
