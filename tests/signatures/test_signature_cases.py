"""Every case of every shipped signature and credential kind, one test each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import signatures
from endpoint.scan.path_cases import path_found
from signatures.cases import GENERIC_IDS, case_facts, run_credential_cases, run_signature_cases
from signatures.matching import Library

LIB = signatures.load()


@pytest.mark.parametrize("sig", LIB.signatures, ids=[s.id for s in LIB.signatures])
def test_signature_cases_pass(lib: Library, sig: signatures.runtime.Signature) -> None:
    # path cases through the file sensor's own search (the signatures package cannot import it)
    assert run_signature_cases(lib, sig, path_found) == []


@pytest.mark.parametrize("kind", LIB.credential_kinds, ids=[k.id for k in LIB.credential_kinds])
def test_credential_kind_cases_pass(lib: Library, kind: signatures.runtime.CredentialKind) -> None:
    assert kind.cases.match and kind.cases.no_match
    assert run_credential_cases(lib, kind) == []


def test_shipped_packs_check_clean() -> None:
    assert signatures.check(path_found=path_found) == []


def test_process_cases_are_not_claimed_by_another_specific_signature(lib: Library) -> None:
    clashes = []
    for sig in lib.signatures:
        for case in sig.cases.match:
            if case.process is None:
                continue
            script = case.script
            found = [m.signature.id for m in lib.match_process(case_facts(case), lambda _, s=script: s)]
            others = [i for i in found if i not in (sig.id, *GENERIC_IDS)]
            if others:
                clashes.append((sig.id, case.process, others))
    assert clashes == []


def test_catalogue_size_and_quality(lib: Library) -> None:
    stable = [s for s in lib.signatures if s.status == "stable"]
    assert len(stable) >= 50
    assert all(s.references and s.cases.match and s.cases.no_match for s in stable)
    types = {s.type for s in stable}
    assert {"coding", "in_product", "enterprise", "runtime", "tool_server"} <= types
    remote = [p for p in lib.providers if not p.local]
    assert len(remote) >= 25 and all(p.hosts and p.references for p in remote)
    local = {p.id: p.ports for p in lib.providers if p.local}
    assert local["ollama"] == [11434] and local["lm-studio"] == [1234] and local["jan"] == [1337]


def test_tool_servers_that_reach_broadly_say_so(lib: Library) -> None:
    assert lib.by_id["mcp-filesystem"].risk.write and "filesystem" in lib.by_id["mcp-filesystem"].risk.reaches
    assert "shell" in lib.by_id["mcp-desktop-commander"].risk.reaches
    assert "browser" in lib.by_id["mcp-playwright"].risk.reaches
    assert "database" in lib.by_id["mcp-sqlite"].risk.reaches and lib.by_id["mcp-sqlite"].risk.write
    assert lib.by_id["mcp-time"].risk.reaches == []


SENSED = """
pack: test
signatures:
  - id: demo-agent
    name: Demo agent
    vendor: Demo
    type: coding
    status: stable
    references: [https://example.org/docs]
    files:
      - {path: "~/.demo/config.json", dialect: json}
      - {path: "%APPDATA%/*/Demo/config.json", dialect: json, platforms: [windows]}
    cases:
      match:
        - {path: "~/.demo/config.json"}
        - {path: "%APPDATA%/Code/Demo/config.json"}
        - {path: "~/.Demo/config.json"}
      no_match:
        - {path: "~/.demo/other.json"}
"""


def test_a_path_case_runs_through_the_file_sensor(write: Callable[[str, str], Path]) -> None:
    # "~/.Demo" fits the template's letters but not the file sensor's search on a case-sensitive disk
    pack = write("sensed.yaml", SENSED)
    assert signatures.check([pack], path_found=path_found) == [
        f"{pack}:16: demo-agent: match case path '~/.Demo/config.json' did not match"]
