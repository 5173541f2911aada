"""Credentials are reduced to kind and keyed fingerprint; values never survive."""

from __future__ import annotations

from dataclasses import dataclass

from endpoint import credentials


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
