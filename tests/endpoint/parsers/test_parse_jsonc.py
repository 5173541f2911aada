"""JSONC: comments and trailing commas are accepted where the clients accept them, strings are left alone."""

from __future__ import annotations

import pytest

from endpoint.scan.parsers import ConfigError, parse_config

TRICKY = """// leading comment
{
  /* block
     comment */
  "url": "http://example.com//path",  // a comment after a string with //
  "glob": "src/**/*.py",
  "note": "/* not a comment */ and // not one either",
  "quote": "she said \\"// hi\\"",
  "list": [1, 2, 3,],
  "nested": {"a": {"b": true,},},
}
"""


def test_comments_and_trailing_commas_are_dropped_and_strings_kept():
    document = parse_config("jsonc", TRICKY).document
    assert document == {
        "url": "http://example.com//path",
        "glob": "src/**/*.py",
        "note": "/* not a comment */ and // not one either",
        "quote": 'she said "// hi"',
        "list": [1, 2, 3],
        "nested": {"a": {"b": True}},
    }


def test_a_trailing_comma_inside_a_string_is_kept():
    assert parse_config("jsonc", '{"a": ",]", "b": ",}",}').document == {"a": ",]", "b": ",}"}


def test_a_trailing_comma_before_a_comment_and_a_brace_is_dropped():
    assert parse_config("jsonc", '{"a": 1, // last\n}').document == {"a": 1}


@pytest.mark.parametrize("dialect", ["vscode_mcp", "vscode_settings", "zed_settings", "opencode_json",
                                     "claude_settings", "gemini_settings", "amp_settings"])
def test_dialects_written_by_editors_accept_comments(dialect):
    assert parse_config(dialect, '{\n  // c\n  "x": 1,\n}\n').document == {"x": 1}


@pytest.mark.parametrize("dialect", ["json", "mcp_json", "claude_code", "crush_json"])
def test_strict_json_dialects_refuse_comments(dialect):
    with pytest.raises(ConfigError) as err:
        parse_config(dialect, '{\n  // c\n  "x": 1\n}\n')
    assert err.value.code == "syntax"
    assert err.value.detail.startswith("line 2, column 3:")


def test_error_position_counts_lines_and_columns_of_the_original_file():
    text = '{\n  /* one\n  two */ "a": 1,\n  // three\n  "b": ]\n}'
    with pytest.raises(ConfigError) as err:
        parse_config("jsonc", text)
    assert err.value.code == "syntax"
    assert err.value.detail.startswith("line 5, column 8:")


def test_an_unterminated_block_comment_is_a_syntax_error_with_its_position():
    with pytest.raises(ConfigError) as err:
        parse_config("jsonc", '{\n  "a": 1 /* runs off the end\n')
    assert (err.value.code, err.value.detail) == ("syntax", "line 2, column 10: unterminated comment")


def test_a_byte_order_mark_is_ignored():
    assert parse_config("jsonc", '\ufeff{"a": 1}').document == {"a": 1}
    assert parse_config("json", '\ufeff{"a": 1}').document == {"a": 1}


def test_an_empty_file_is_an_empty_document():
    assert parse_config("vscode_mcp", "  \n").document == {}
