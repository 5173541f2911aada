"""The shared credential scrubber: every shape a secret rides in is hidden, only that part, and the rest
of the text is left as it was; it never raises and is idempotent."""

from __future__ import annotations

import string

import planted_secrets as planted
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signatures.matching import Library
from signatures.redaction import Redactor, is_secret_name


@pytest.fixture(scope="module")
def redactor(lib: Library) -> Redactor:
    return Redactor.from_kinds(lib.credential_kinds)


def collect(redactor: Redactor, argv: list[str]) -> tuple[list[str], list[tuple[str | None, str, str]]]:
    seen: list[tuple[str | None, str, str]] = []
    out = redactor.argv(argv, lambda name, value, kind: seen.append((name, value, kind)) or kind)
    return out, seen


def test_a_key_inside_a_longer_argument_is_replaced_alone(redactor: Redactor) -> None:
    out, seen = collect(redactor, ["claude", "--print", f"env ANTHROPIC_API_KEY={planted.ANTHROPIC} make"])
    assert out == ["claude", "--print", "env ANTHROPIC_API_KEY=[REDACTED:anthropic] make"]
    assert seen == [("ANTHROPIC_API_KEY", planted.ANTHROPIC, "anthropic")]
    assert redactor.text(f"see {planted.GITHUB}, then") == "see [REDACTED:github], then"


@pytest.mark.parametrize(("arg", "expected"), [
    ("DB_PASSWORD=hunter2", "DB_PASSWORD=[REDACTED:generic]"),
    ("--client-secret=abc", "--client-secret=[REDACTED:generic]"),
    ("-Dapi.key=xyz", "-Dapi.key=[REDACTED:generic]"),
    ("GITHUB_PAT=opaque", "GITHUB_PAT=[REDACTED:github]"),
    ("password=pw host=db user=app", "password=[REDACTED:generic] host=db user=app"),
    ('{"token": "abc", "apiKey":"zz", "model": "gpt-4o"}',
     '{"token": "[REDACTED:generic]", "apiKey":"[REDACTED:generic]", "model": "gpt-4o"}'),
    ("token: abc123", "token: [REDACTED:generic]"),
])
def test_name_equals_value_is_decided_by_the_name(redactor: Redactor, arg: str, expected: str) -> None:
    assert redactor.argv([arg]) == [expected]


@pytest.mark.parametrize("argv", [
    ["--password", "s3"], ["--token", "x"], ["--api-key", "a-much-longer-opaque-value"], ["--auth", "user:pass"],
    ["-p", "x", "--secret", "y"],
])
def test_the_value_after_a_secret_flag_is_hidden_at_any_length(redactor: Redactor, argv: list[str]) -> None:
    out = redactor.argv(argv)
    assert out[-1] == "[REDACTED:generic]" and out[-2] == argv[-2]


def test_database_clients_short_password_flags(redactor: Redactor) -> None:
    assert redactor.argv(["/usr/bin/mysql", "-uroot", "-pS3cret", "db"]) == [
        "/usr/bin/mysql", "-uroot", "-p[REDACTED:generic]", "db"]
    assert redactor.argv(["mysql", "-p", "db"]) == ["mysql", "-p", "db"]  # -p alone prompts; db is the database
    assert redactor.argv(["mongosh", "-u", "app", "-p", "M0ngo"]) == ["mongosh", "-u", "app", "-p", "[REDACTED:generic]"]
    assert redactor.argv(["redis-cli", "-a", "R3dis", "ping"]) == ["redis-cli", "-a", "[REDACTED:generic]", "ping"]
    assert redactor.argv(["sh", "-c", "mariadb -pS3cret x && redis-cli -a R3dis ping"]) == [
        "sh", "-c", "mariadb -p[REDACTED:generic] x && redis-cli -a [REDACTED:generic] ping"]
    assert redactor.argv(["tar", "-pxf", "a.tar"]) == ["tar", "-pxf", "a.tar"]  # not a database client


@pytest.mark.parametrize(("arg", "expected"), [
    ("Authorization: Bearer abc.def.ghi", "Authorization: Bearer [REDACTED:generic]"),
    ("Authorization: token opaque", "Authorization: token [REDACTED:generic]"),
    ("authorization=Basic dXNlcjpwYXNz", "authorization=Basic [REDACTED:generic]"),
    ("Bearer abc", "Bearer [REDACTED:generic]"),
    ("x-api-key: k3y", "x-api-key: [REDACTED:generic]"),
    ("Cookie: session=abc; theme=dark", "Cookie: [REDACTED:generic]"),
    (f"Authorization: Bearer {planted.OPENAI}", "Authorization: Bearer [REDACTED:openai]"),
])
def test_header_arguments(redactor: Redactor, arg: str, expected: str) -> None:
    assert redactor.argv(["curl", "-H", arg]) == ["curl", "-H", expected]


def test_header_and_environment_maps(redactor: Redactor) -> None:
    out = redactor.mapping({"Authorization": "Bearer abc", "x-api-key": "k", "Accept": "application/json",
                            "GITHUB_TOKEN": "${input:token}", "DB_URL": "postgresql://a:pw@h/db", "PORT": "8080"})
    assert out == {"Authorization": "Bearer [REDACTED:generic]", "x-api-key": "[REDACTED:generic]",
                   "Accept": "application/json", "GITHUB_TOKEN": "${input:token}", "DB_URL": "postgresql://h/db",
                   "PORT": "8080"}


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://app:pw@db/prod", "postgresql://db/prod"),
    (f"https://oauth2:{planted.GITLAB}@gitlab.example.com/g/r.git", "https://gitlab.example.com/g/r.git"),
    ("redis://:pw@h:6379/0", "redis://h:6379/0"),
    (f"https://{planted.GITHUB}@github.com/o/r", "https://github.com/o/r"),
    (f"https://h.example.com/api/{planted.GITHUB}/sse", "https://h.example.com/api/[REDACTED:github]/sse"),
    ("https://mcp.zapier.com/api/mcp/s/NWQ4ZjE2YjItYTAxZC00ZmU3LWI2ZjAtOGUy/sse",
     "https://mcp.zapier.com/api/mcp/s/[REDACTED]/sse"),
    ("https://h/x?token=abc&page=2&flag", "https://h/x?token=[REDACTED:generic]&page=[REDACTED]&[REDACTED]"),
    ("https://h/cb#access_token=abc", "https://h/cb"),
    ("https://${input:home-assistant-domain}/mcp_server/sse", "https://${input:home-assistant-domain}/mcp_server/sse"),
    ("localhost:8080/mcp?key=abc", "localhost:8080/mcp?key=[REDACTED:generic]"),
])
def test_urls(redactor: Redactor, url: str, expected: str) -> None:
    assert redactor.url(url) == expected
    assert redactor.text(f"connect to {url} now") == f"connect to {expected} now"


@pytest.mark.parametrize("url", ["https://${input:home-assistant-domain}/mcp_server/sse", "http://[::1", "http://h:99999999",
                                 "http://h:port/x", "://", "https://@", "https://a@b@c:d:e/f?g=h=i&&#", "\udcff://\x00"])
def test_url_redaction_never_raises(redactor: Redactor, url: str) -> None:
    assert isinstance(redactor.url(url), str)


@pytest.mark.parametrize("argv", [
    ["npx", "-y", "@modelcontextprotocol/server-filesystem", "/home/alice/src", "C:\\Users\\bob"],
    ["llama-server", "--port", "8080", "--model", "gpt-4o", "--max-tokens=4096", "--token-file", "/etc/t"],
    ["uvx", "mcp-server-git", "--repository", "/srv/repo", "--author", "Alice <a@example.org>"],
    ["curl", "https://api.openai.com/v1/chat", "-H", "Content-Type: application/json"],
    ["docker", "run", "-p", "8080:80", "--env-file", ".env", "ghcr.io/org/image:1.2.3"],
    ["python3", "-m", "app", "--password-stdin", "--keyboard=us", "PWD=/home/a", "--auth-mode=oauth"],
])
def test_ordinary_command_lines_are_left_alone(redactor: Redactor, argv: list[str]) -> None:
    assert redactor.argv(argv) == argv


@pytest.mark.parametrize(("name", "secret"), [
    ("DB_PASSWORD", True), ("apiKey", True), ("x-api-key", True), ("Authorization", True), ("PGPASSWORD", True),
    ("client_secret", True), ("refresh_token", True), ("--token", True), ("COOKIE", True), ("db_pwd", True),
    ("max_tokens", False), ("token_file", False), ("AUTHOR", False), ("PWD", False), ("api_key_id", False),
    ("password_stdin", False), ("model", False), ("port", False), ("tokenizer", False), ("keyboard", False),
])
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_every_planted_shape_on_one_command_line(redactor: Redactor) -> None:
    out, seen = collect(redactor, planted.ARGV)
    assert planted.leaked(repr(out)) == []
    kinds = {value: kind for _, value, kind in seen}
    for value, kind in planted.KINDS.items():
        if kind is not None:
            assert kinds.get(value) == kind, value
    assert "https://mcp.example.com/s/[REDACTED]/sse?token=[REDACTED:generic]&page=[REDACTED]" in out
    assert redactor.argv(out) == out


# -- properties ------------------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
_noisy = st.text(alphabet=string.printable + "=:@/?&#[]{}$\"'-", max_size=40)
_secret = st.sampled_from([v for v, kind in planted.KINDS.items() if kind is not None])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(_text, _noisy))
def test_redaction_never_raises_and_is_idempotent(redactor: Redactor, text: str) -> None:
    once = redactor.text(text)
    assert redactor.text(once) == once
    url = redactor.url(text)
    assert redactor.url(url) == url
    argv = redactor.argv([text, text])
    assert redactor.argv(argv) == argv


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_noisy, _secret, _noisy, st.sampled_from(["", "https://", "https://h/", "https://u:", "x=", "?a=", "--key ",
                                                 "Bearer ", "Authorization: ", "cookie: ", "mysql -p"]))
def test_a_planted_key_never_survives(redactor: Redactor, before: str, secret: str, after: str, lead: str) -> None:
    text = before + lead + secret + after
    assert secret not in redactor.text(text)
    assert secret not in redactor.url(text)
    assert secret not in "".join(redactor.argv([before, lead + secret + after]))
    assert secret not in "".join(redactor.argv(["--password", secret]))


_FORMS = ["DB_PASSWORD={v}", "--password {v}", "--token={v}", "x-api-key: {v}", "Authorization: Bearer {v}",
          "https://u:{v}@h.example/x", "https://h.example/x?q={v}", "mysql -p{v} db", '"secret": "{v}"',
          "cookie: a={v}; b=c"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(_FORMS), st.text(alphabet=string.ascii_letters + string.digits + "_-.~!*%+", min_size=4,
                                        max_size=30), _noisy)
def test_a_value_held_by_a_secret_name_never_survives(redactor: Redactor, form: str, value: str, before: str) -> None:
    secret = "Zq" + value  # never part of the words around it
    text = form.format(v=secret)
    assert secret not in redactor.text(text)
    assert secret not in redactor.text(before + " " + text)
    assert secret not in " ".join(redactor.argv(["sh", "-c", text]))


def test_shapes_without_a_literal_start_are_still_found_anywhere() -> None:
    redactor = Redactor([("custom", r"[0-9a-f]{8}-KEY-[0-9a-f]{8}"), ("other", r"(?i)zz[0-9]{10}")], {"MY_VAR": "custom"})
    assert redactor.text("run 0123abcd-KEY-89abcdef now") == "run [REDACTED:custom] now"
    assert redactor.text("ZZ0123456789") == "[REDACTED:other]"
    assert redactor.argv(["MY_VAR=short"]) == ["MY_VAR=[REDACTED:custom]"]


def test_patterns_that_cannot_be_combined_do_not_stop_the_redactor() -> None:
    redactor = Redactor([("a", r"(?P<x>AAA)[0-9]{8}"), ("b", r"(?P<x>BBB)[0-9]{8}"), ("broken", r"(unclosed"),
                         ("c", r"ccc-[0-9]{8}")])
    assert redactor.text("ccc-12345678 and AAA12345678") == "[REDACTED:c] and AAA12345678"


def test_without_re_s_parse_tree_every_secret_is_still_hidden(lib: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    # A Python whose re parser has another shape is simulated by making regex_tree's one access to it fail
    # (no other way to have such a Python here): the literal-start shortcut goes, the redaction stays.
    import signatures.regex_tree as regex_tree
    from signatures.anchors import anchor_words

    def unavailable() -> object:
        raise regex_tree.ShapeUnknown("simulated")

    monkeypatch.setattr(regex_tree, "_parser", unavailable)
    anchor_words.cache_clear()
    try:
        assert anchor_words(r"[\\/]@anthropic-ai[\\/]claude-code[\\/]") is None
        out, _ = collect(Redactor.from_kinds(lib.credential_kinds), planted.ARGV)
        assert planted.leaked(repr(out)) == []
    finally:
        anchor_words.cache_clear()
