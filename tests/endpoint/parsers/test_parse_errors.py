"""Broken, truncated, hostile or deep input: a ConfigError with a code, and never a quote of the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from endpoint.scan.parsers import ConfigError, parse_config

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "configs"

TEXT_SAMPLES = [  # (sample, dialect): formats where cutting the file short always breaks it
    ("claude-desktop/claude_desktop_config.json", "mcp_json"),
    ("cursor/mcp.json", "mcp_json"),
    ("cline/cline_mcp_settings.json", "mcp_json"),
    ("claude-code/.claude.json", "claude_code"),
    ("claude-code/settings.json", "claude_settings"),
    ("vscode/mcp.json", "vscode_mcp"),
    ("vscode/settings.json", "vscode_settings"),
    ("zed/settings.json", "zed_settings"),
    ("codex/config.toml", "codex_toml"),
    ("gemini-cli/settings.json", "gemini_settings"),
    ("continue/config.json", "continue_config"),
    ("opencode/opencode.jsonc", "opencode_json"),
    ("crush/crush.json", "crush_json"),
    ("amp/settings.json", "amp_settings"),
]


def error_of(dialect: str, text: str, path: str = "") -> ConfigError:
    with pytest.raises(ConfigError) as err:
        parse_config(dialect, text, path=path)
    return err.value


@pytest.mark.parametrize(("rel", "dialect"), TEXT_SAMPLES)
def test_truncated_sample_is_a_syntax_error_that_does_not_quote_the_secret(rel, dialect):
    path = SAMPLES / rel
    text = path.read_text(encoding="utf-8")
    # Cut right after the first fake secret starts, so that the error sits on the secret's line.
    cut = text.index("FAKE") + len("FAKE") if "FAKE" in text else len(text) // 2
    err = error_of(dialect, text[:cut], str(path))
    assert err.code == "syntax"
    assert err.detail.startswith(("line ", "end of file"))
    assert "FAKE" not in str(err)


@pytest.mark.parametrize(("dialect", "text"), [
    ("json", '{"token": "sk-FAKE-0000", "b": }'),
    ("jsonc", '{"token": "sk-FAKE-0000" "b": 1}'),
    ("mcp_json", '{"mcpServers": {"x": {"env": {"KEY": "sk-FAKE-0000\n"}}}}'),
    ("yaml", 'token: "sk-FAKE-0000\nother: 1\n'),
    ("yaml", "token: sk-FAKE-0000\n  - not: [valid\n"),
    ("yaml", "token: [sk-FAKE-0000\n"),
    ("yaml", "token: *sk-FAKE-0000\n"),
    ("yaml", "a: 1\n\tb: sk-FAKE-0000\n"),
    ("goose_yaml", "extensions:\n  gh:\n    envs: {TOKEN: 'sk-FAKE-0000}\n"),
    ("aider_yaml", 'openai-api-key: "sk-FAKE-0000\n'),
    ("toml", 'token = "sk-FAKE-0000\n'),
    ("toml", "token = sk-FAKE-0000\n"),
    ("codex_toml", '[mcp_servers.gh.env]\nTOKEN = "sk-FAKE-0000\n'),
    ("dotenv", 'TOKEN="sk-FAKE-0000\nOTHER=1\n'),
    ("dotenv", "TOKEN='sk-FAKE-0000\n"),
    ("continue_config", "models:\n  - apiKey: 'sk-FAKE-0000\n"),
])  # fmt: skip
def test_broken_file_of_each_format_is_a_syntax_error_without_its_contents(dialect, text):
    err = error_of(dialect, text)
    assert err.code == "syntax"
    assert "FAKE" not in str(err)
    assert "sk-" not in err.detail


def test_continue_picks_json_or_yaml_by_the_file_name():
    json_text = '{"models": [{"provider": "ollama", "model": "llama3"}], // c\n}'
    yaml_text = "models:\n  - provider: ollama\n    model: llama3\n"
    assert parse_config("continue_config", json_text, path="/h/.continue/config.json").models == ["llama3"]
    assert parse_config("continue_config", yaml_text, path="/h/.continue/config.yaml").models == ["llama3"]
    assert parse_config("continue_config", yaml_text).models == ["llama3"]  # config.yaml is the default
    assert error_of("continue_config", yaml_text, "/h/.continue/config.json").code == "syntax"


def test_ten_thousand_deep_json_is_too_deep():
    assert error_of("json", "[" * 10_000 + "]" * 10_000).code == "too_deep"
    assert error_of("mcp_json", '{"a":' * 10_000 + "1" + "}" * 10_000).code == "too_deep"


@pytest.mark.parametrize(("dialect", "deep"), [
    ("jsonc", "[" * 10_000 + "]" * 10_000),
    ("yaml", "[" * 10_000 + "]" * 10_000),
    ("yaml", "".join(" " * i + "- \n" for i in range(5_000))),
    ("toml", "a = " + "[" * 10_000 + "]" * 10_000),
])  # fmt: skip
def test_deep_documents_of_other_formats_are_too_deep(dialect, deep):
    assert error_of(dialect, deep).code == "too_deep"


def test_nesting_is_capped_at_64_levels_below_what_the_parsers_allow():
    parse_config("json", "[" * 64 + "]" * 64)
    err = error_of("json", "[" * 65 + "]" * 65)
    assert (err.code, err.detail) == ("too_deep", "nested deeper than 64 levels")


def test_a_number_past_the_digit_limit_is_a_syntax_error():
    assert error_of("json", '{"n": ' + "9" * 5_000 + "}").code == "syntax"
    assert error_of("yaml", "n: " + "9" * 5_000).code == "syntax"


@pytest.mark.parametrize(("dialect", "text", "shape"), [
    ("mcp_json", "[1, 2]", "a list"),
    ("claude_code", '"sk-FAKE-0000"', "a string"),
    ("goose_yaml", "- a\n- b\n", "a list"),
    ("aider_yaml", "just text", "a string"),
    ("zed_settings", "42", "a scalar"),
])  # fmt: skip
def test_a_dialect_that_needs_a_mapping_refuses_another_top_level(dialect, text, shape):
    err = error_of(dialect, text)
    assert (err.code, err.detail) == ("shape", f"the top level is {shape}, not a mapping")


def test_plain_formats_take_any_top_level():
    assert parse_config("json", "[1, 2]").document == [1, 2]
    assert parse_config("yaml", "text").document == "text"


@pytest.mark.parametrize("dialect", ["none", "xml", ""])
def test_an_unknown_dialect_is_refused(dialect):
    assert error_of(dialect, "{}").code == "unknown_dialect"


@pytest.mark.parametrize(("dialect", "text"), [
    ("json", ""), ("yaml", ""), ("yaml", "# only a comment\n"), ("toml", ""), ("dotenv", ""),
    ("mcp_json", "\n"), ("goose_yaml", ""),
])  # fmt: skip
def test_an_empty_file_is_an_empty_document(dialect, text):
    parsed = parse_config(dialect, text)
    assert (parsed.document, parsed.mcp_servers, parsed.warnings) == ({}, [], [])


@pytest.mark.parametrize(("dialect", "text"), [
    ("dotenv", 'A="' + "x\n" * 200_000),
    ("jsonc", '{"a": "' + "x // y " * 100_000),
    ("jsonc", "{" + '"k": 1, ' * 100_000 + "/*"),
    ("yaml", "a: '" + "x " * 200_000),
])  # fmt: skip
@pytest.mark.timeout(30)  # a parser that backtracks quadratically on these would not finish
def test_a_large_broken_file_fails_in_bounded_time(dialect, text):
    assert error_of(dialect, text).code == "syntax"
