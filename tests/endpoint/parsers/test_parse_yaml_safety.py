"""YAML is read with the safe loader only: no object tags, no alias or merge-key blow-ups."""

from __future__ import annotations

import pytest

from endpoint.scan.parsers import ConfigError, parse_config, walk


def billion_laughs(levels: int) -> str:
    """Each level is a list of nine aliases of the level below: 9**levels leaves if expanded."""
    text = 'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for n in range(1, levels + 1):
        text += f"l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * 9) + "]\n"
    return text


@pytest.mark.parametrize("tag", [
    "!!python/object/apply:os.system ['echo FAKE']",
    "!!python/object:__main__.Evil {cmd: FAKE}",
    "!!python/name:os.system",
    "!!python/module:os",
    "!FAKEcustom value",
])  # fmt: skip
@pytest.mark.parametrize("dialect", ["yaml", "goose_yaml", "aider_yaml", "continue_config"])
def test_a_tag_the_safe_loader_does_not_know_is_unsafe_yaml(dialect, tag):
    with pytest.raises(ConfigError) as err:
        parse_config(dialect, f"model: gpt-4o\nextra: {tag}\n")
    assert err.value.code == "unsafe_yaml"
    assert err.value.detail == "line 2, column 8: tag not allowed by the safe loader"
    assert "FAKE" not in str(err.value)


def test_standard_tags_still_load():
    parsed = parse_config("yaml", "a: !!str 1\nb: !!int '2'\nc: !!binary aGk=\n")
    assert parsed.document == {"a": "1", "b": 2, "c": b"hi"}


@pytest.mark.timeout(30)  # unbounded, 2**30 leaves would never finish
def test_alias_bomb_parses_and_walks_in_bounded_time():
    parsed = parse_config("yaml", billion_laughs(30))
    leaves = list(walk(parsed.document))
    assert len(leaves) == 9  # each shared list is visited once, wherever it is referenced
    assert all(value == "lol" for _, _, value in leaves)


@pytest.mark.timeout(30)
def test_alias_bomb_inside_a_dialect_is_harmless():
    text = billion_laughs(20) + "extensions:\n  bomb: *l20\n"
    parsed = parse_config("goose_yaml", text)
    assert parsed.mcp_servers == []
    assert [(f.where, f.error) for f in parsed.failures] == [("/extensions/bomb", "invalid_server")]


@pytest.mark.timeout(30)  # 2**2000 merged keys if the budget did not stop it
def test_nested_merge_keys_beyond_the_budget_are_unsafe_yaml():
    lines = ["m0: &m0 {k0: v}"]
    lines += [f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: v}}" for i in range(1, 2_000)]
    with pytest.raises(ConfigError) as err:
        parse_config("yaml", "\n".join(lines))
    assert err.value.code == "unsafe_yaml"


def test_ordinary_merge_keys_work():
    text = "base: &base {cmd: npx, timeout: 300}\nextensions:\n  gh:\n    <<: *base\n    type: stdio\n    args: [x]\n"
    parsed = parse_config("goose_yaml", text)
    assert [(s.name, s.transport, s.command, s.args) for s in parsed.mcp_servers] == [("gh", "stdio", "npx", ("x",))]


def test_an_alias_that_contains_itself_is_refused():
    with pytest.raises(ConfigError) as err:
        parse_config("yaml", "a: &a [1, *a]\n")
    assert err.value.code == "unsafe_yaml"


def test_more_than_one_document_is_a_syntax_error():
    with pytest.raises(ConfigError) as err:
        parse_config("yaml", "a: 1\n---\nb: 2\n")
    assert err.value.code == "syntax"


def test_scalars_resolve_exactly_as_the_safe_loader_resolves_them():
    import yaml

    text = """
    int: 42
    neg: -7
    octal: 0o17
    hex: 0x1f
    float: 1.5
    exp: 1e3
    inf: .inf
    yes_word: yes
    true_word: True
    off: off
    null_word: null
    tilde: ~
    empty:
    date: 2001-12-14
    stamp: 2001-12-14t21:59:43.10-05:00
    quoted_int: "42"
    single: 'true'
    plain: hello world
    url: https://example.com:8080/x
    version: 1.2.3
    starts_with_digit: 3abc
    key with spaces: value
    list: [1, "2", three, null]
    nested: {a: 1, b: [x, {c: d}]}
    """
    text = "\n".join(line[4:] for line in text.splitlines())
    assert parse_config("yaml", text).document == yaml.safe_load(text)
