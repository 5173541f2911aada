"""Credentials are reduced to kind and keyed fingerprint; values never survive."""

from __future__ import annotations

from dataclasses import dataclass

from endpoint.scan import credentials


@dataclass
class Kind:
    id: str


def classify(name, value):
    """A stand-in for the signature library's classifier: enough to test the reduction itself."""
    if value.startswith("sk-ant-"):
        return Kind("anthropic")
    if value.startswith("sk-"):
        return Kind("openai")
    if name and name.upper().endswith("API_KEY"):
        return Kind("generic")
    return None


def test_fingerprint_is_keyed_and_stable():
    a = credentials.fingerprint("sk-FAKE-0000000000000000", key=b"org-1")
    assert a == credentials.fingerprint("sk-FAKE-0000000000000000", key=b"org-1")
    assert a != credentials.fingerprint("sk-FAKE-0000000000000000", key=b"org-2")
    assert a.startswith("hmac-sha256:") and "FAKE" not in a


def test_fingerprint_is_the_standard_hmac_sha256_for_keys_of_every_length():
    # Computed without OpenSSL; it must stay the same HMAC that the org registers its keys' fingerprints with.
    import hashlib
    import hmac

    for key in (b"", b"org", b"k" * 64, b"k" * 65, bytes(range(256)) * 2):
        for message in (b"", b"sk-FAKE-0000000000000000", "sk-\udcff\u00e9".encode("utf-8", "surrogatepass")):
            assert credentials.hmac_sha256(key, message) == hmac.new(key, message, hashlib.sha256).hexdigest()
    value = "sk-FAKE-0000000000000000"
    expected = hmac.new(b"org-1", value.encode(), hashlib.sha256).hexdigest()[:32]
    assert credentials.fingerprint(value, key=b"org-1") == "hmac-sha256:" + expected
    assert credentials.fingerprint(value, key=b"org-1") == "hmac-sha256:" + expected  # the cached key state is unchanged


def test_env_values_become_fingerprints():
    found = credentials.from_env({"OPENAI_API_KEY": "sk-proj-FAKEFAKEFAKEFAKE", "PATH": "/usr/bin"},
                                 classify, where="pid 7 env")
    assert [(c.kind, c.source, c.where) for c in found] == [("openai", "env", "pid 7 env OPENAI_API_KEY")]
    assert "FAKE" not in repr(found)


def test_redacts_keys_in_argv_in_every_form():
    argv = ["aider", "--openai-api-key", "sk-FAKEFAKEFAKEFAKE1", "--anthropic-api-key=sk-ant-FAKEFAKEFAKE2",
            "--token", "opaque-FAKE-token-value", "--model", "gpt-4o"]
    out, found = credentials.redact_argv(argv, classify, where="pid 1")
    assert out == ["aider", "--openai-api-key", "[REDACTED:openai]", "--anthropic-api-key=[REDACTED:anthropic]",
                   "--token", "[REDACTED:generic]", "--model", "gpt-4o"]
    assert sorted(c.kind for c in found) == ["anthropic", "generic", "openai"]
    assert "FAKE" not in repr(found) + repr(out)


def test_document_leaves_are_scanned_with_their_pointer():
    leaves = [("/mcpServers/gh/env/OPENAI_API_KEY", "OPENAI_API_KEY", "sk-FAKEFAKEFAKE"), ("/x", "x", 3)]
    found = credentials.from_leaves(leaves, classify, where="/home/a/.cursor/mcp.json")
    assert [c.where for c in found] == ["/home/a/.cursor/mcp.json#/mcpServers/gh/env/OPENAI_API_KEY"]


def _library_classify():
    import signatures

    return signatures.load().credential_kind


def test_every_hidden_value_of_a_known_kind_is_fingerprinted_by_the_library():
    import planted_secrets as planted

    out, found = credentials.redact_argv(planted.ARGV, _library_classify(), where="pid 9", key=b"org")
    assert planted.leaked(repr(out) + repr(found)) == []
    kinds = [c.kind for c in found]
    for kind in ("anthropic", "openai", "github", "google", "aws"):
        assert kind in kinds, kinds
    assert {c.fingerprint for c in found if c.kind == "anthropic"} == {
        credentials.fingerprint(planted.ANTHROPIC, key=b"org")}
    assert all(c.source == "cmdline" and c.where == "pid 9 argv" for c in found)


def test_a_value_only_its_flag_calls_secret_is_generic_from_8_characters():
    out, found = credentials.redact_argv(["tool", "--password", "s3cr3t", "--token", "opaque-value-1"],
                                         _library_classify(), where="pid 3", key=b"org")
    assert out == ["tool", "--password", "[REDACTED:generic]", "--token", "[REDACTED:generic]"]
    assert [(c.kind, c.fingerprint) for c in found] == [("generic", credentials.fingerprint("opaque-value-1",
                                                                                             key=b"org"))]


def test_url_userinfo_and_query_keys_become_fingerprints():
    import planted_secrets as planted

    argv = [f"https://x:{planted.GITHUB}@h.example/p?key={planted.GOOGLE}"]
    out, found = credentials.redact_argv(argv, _library_classify(), where="mcp args", key=b"org")
    assert out == ["https://h.example/p?key=[REDACTED:google]"]
    assert sorted(c.kind for c in found) == ["github", "google"]


def test_header_map_values_are_fingerprinted_without_their_scheme():
    import planted_secrets as planted

    leaves = [("/mcpServers/r/headers/Authorization", "Authorization", f"Bearer {planted.OPENAI}"),
              ("/mcpServers/r/headers/x-api-key", "x-api-key", "opaque-header-value"),
              ("/mcpServers/r/headers/Accept", "Accept", "application/json")]
    found = credentials.from_leaves(leaves, _library_classify(), where="/home/a/.claude.json", key=b"org")
    assert [(c.kind, c.fingerprint) for c in found] == [
        ("openai", credentials.fingerprint(planted.OPENAI, key=b"org")),
        ("generic", credentials.fingerprint("opaque-header-value", key=b"org"))]
