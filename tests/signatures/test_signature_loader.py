"""Loading packs: every error names its file and line; the cache is a pure speed-up."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import signatures
from signatures import loader
from signatures.errors import SignatureError
from signatures.launchers import ProcessFacts
from signatures.loader import load_files

Write = Callable[[str, str], Path]

GOOD = """
pack: test
signatures:
  - id: demo-agent
    name: Demo agent
    vendor: Demo
    type: coding
    status: stable
    references: [https://example.org/docs]
    process:
      names: [demo-agent]
    providers: [openai]
    cases:
      match:
        - {process: "/usr/bin/demo-agent --go"}
      no_match:
        - {process: "/usr/bin/other"}
"""


def problems(paths: list[Path]) -> list[str]:
    with pytest.raises(SignatureError) as caught:
        load_files(paths)
    return caught.value.problems


def test_a_good_pack_loads(write: Write) -> None:
    lib = load_files([write("good.yaml", GOOD)])
    assert [s.id for s in lib.signatures] == ["demo-agent"]
    assert lib.match_process(signatures.ProcessFacts("demo-agent", "/usr/bin/demo-agent", ["demo-agent"]))


def test_bad_yaml_names_file_and_line(write: Write) -> None:
    path = write("bad.yaml", GOOD.replace("    vendor: Demo", "    vendor: [Demo"))
    (problem,) = problems([path])
    assert problem.startswith(f"{path}:") and "bad YAML" in problem
    assert int(problem.split(":")[1]) >= 6


def test_unknown_field_points_at_its_line(write: Write) -> None:
    path = write("unknown.yaml", GOOD.replace("    process:\n", "    procss: {}\n    process:\n"))
    (problem,) = problems([path])
    assert problem == f"{path}:9: unknown field 'procss'"


def test_missing_field_points_at_the_signature(write: Write) -> None:
    path = write("missing.yaml", GOOD.replace("    vendor: Demo\n", ""))
    (problem,) = problems([path])
    assert problem == f"{path}:3: missing field 'vendor'"


def test_bad_regex_points_at_the_pattern(write: Write) -> None:
    path = write("regex.yaml", GOOD.replace("      names: [demo-agent]\n",
                                            "      names: [demo-agent]\n      cmdline:\n        - 'demo(['\n"))
    (problem,) = problems([path])
    assert problem.startswith(f"{path}:12: signatures[0].process.cmdline[0]: bad regular expression")


def test_bad_credential_pattern_is_an_error_not_a_crash(write: Write, tmp_path: Path) -> None:
    catalog = write("providers.yaml", """
        providers: [{id: openai, name: OpenAI, hosts: [api.openai.com]}]
        credentials:
          - id: broken
            name: Broken
            patterns: ['sk-(']
        """)
    with pytest.raises(SignatureError) as caught:
        load_files([write("good.yaml", GOOD)], catalog)
    assert caught.value.problems[0].startswith(f"{catalog}:5:")


def test_duplicate_ids_across_packs(write: Write) -> None:
    first, second = write("a.yaml", GOOD), write("b.yaml", GOOD.replace("pack: test", "pack: other"))
    (problem,) = problems([first, second])
    assert problem == f"{second}:3: duplicate signature id 'demo-agent' (first at {first}:3)"


def test_duplicate_yaml_key(write: Write) -> None:
    path = write("dupkey.yaml", GOOD.replace("    vendor: Demo\n", "    vendor: Demo\n    vendor: Other\n"))
    (problem,) = problems([path])
    assert problem == f"{path}:6: duplicate key 'vendor'"


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['true']", "!!python/name:os.system", "!custom x"])
def test_unsafe_yaml_tags_are_refused(write: Write, tag: str) -> None:
    path = write("unsafe.yaml", GOOD.replace("    vendor: Demo", f"    vendor: {tag}"))
    (problem,) = problems([path])
    assert problem.startswith(f"{path}:5:")
    assert "unsupported YAML tag" in problem or "bad YAML" in problem


def test_merge_keys_are_refused(write: Write) -> None:
    path = write("merge.yaml", GOOD.replace("    process:\n", "    extra: &x {a: 1}\n    more:\n      <<: *x\n"
                                                              "    process:\n"))
    assert any("merge keys" in p for p in problems([path]))


def test_unknown_provider_reference(write: Write) -> None:
    path = write("prov.yaml", GOOD.replace("providers: [openai]", "providers: [openai, nosuch]"))
    (problem,) = problems([path])
    assert problem == f"{path}:11: unknown provider 'nosuch'"


def test_a_pattern_without_an_anchor_word_is_refused(write: Write) -> None:
    path = write("anchor.yaml", GOOD.replace("      names: [demo-agent]\n",
                                             "      names: [demo-agent]\n      exe: ['.*']\n"))
    (problem,) = problems([path])
    assert problem.startswith(f"{path}:11: process.exe: pattern '.*' needs a whole literal word")


def test_stable_signature_needs_both_kinds_of_case(write: Write) -> None:
    path = write("nocase.yaml", GOOD.replace('        - {process: "/usr/bin/other"}\n', "        []\n")
                 .replace("      no_match:\n        []", "      no_match: []"))
    (problem,) = problems([path])
    assert "at least one match and one no_match case" in problem and problem.startswith(f"{path}:3:")


def test_every_file_reports_its_own_problems(write: Write) -> None:
    a = write("a.yaml", GOOD.replace("    vendor: Demo\n", ""))
    b = write("b.yaml", GOOD.replace("id: demo-agent", "id: Demo Agent"))
    found = problems([a, b])
    assert [p.split(":")[0] for p in found] == [str(a), str(b)]


def test_check_reports_failing_cases_with_their_line(write: Write) -> None:
    path = write("failing.yaml", GOOD.replace('"/usr/bin/other"', '"/usr/bin/demo-agent"'))
    assert signatures.check([path]) == [
        f"{path}:16: demo-agent: no_match case process '/usr/bin/demo-agent' matched"]


def test_check_of_a_clean_pack_is_empty(write: Write) -> None:
    assert signatures.check([write("good.yaml", GOOD)]) == []


def test_check_returns_schema_problems_too(write: Write) -> None:
    path = write("bad.yaml", GOOD.replace("type: coding", "type: robot"))
    (problem,) = signatures.check([path])
    assert problem.startswith(f"{path}:6: signatures[0].type: Input should be")


def test_cache_round_trip_gives_the_same_library(write: Write, tmp_path: Path) -> None:
    packs = [write("good.yaml", GOOD)]
    cache = tmp_path / "cache"
    first = load_files(packs, cache_dir=cache)
    (cached,) = cache.glob("signatures-*.json")
    second = load_files(packs, cache_dir=cache)
    assert second.signatures == first.signatures
    assert second.providers == first.providers and second.credential_kinds == first.credential_kinds
    assert second.anchors() == first.anchors()
    assert cached.stat().st_mode & 0o077 == 0


def test_cache_follows_the_pack_contents(write: Write, tmp_path: Path) -> None:
    path = write("good.yaml", GOOD)
    cache = tmp_path / "cache"
    load_files([path], cache_dir=cache)
    path.write_text(path.read_text().replace("name: Demo agent", "name: Renamed agent"))
    assert load_files([path], cache_dir=cache).signatures[0].name == "Renamed agent"


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_a_cache_others_can_write_is_ignored(write: Write, tmp_path: Path) -> None:
    path = write("good.yaml", GOOD)
    cache = tmp_path / "cache"
    load_files([path], cache_dir=cache)
    (cached,) = cache.glob("signatures-*.json")
    cached.write_text(cached.read_text().replace("Demo agent", "Tampered agent"))
    cached.chmod(0o666)
    assert load_files([path], cache_dir=cache).signatures[0].name == "Demo agent"


def test_a_damaged_cache_is_only_a_slower_start(write: Write, tmp_path: Path) -> None:
    path = write("good.yaml", GOOD)
    cache = tmp_path / "cache"
    load_files([path], cache_dir=cache)
    (cached,) = cache.glob("signatures-*.json")
    cached.write_text("{not json")
    assert load_files([path], cache_dir=cache).signatures[0].id == "demo-agent"


def test_cache_dir_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AGENTROSTER_CACHE_DIR", str(tmp_path))
    assert loader.default_cache_dir() == tmp_path
    monkeypatch.setenv("AGENTROSTER_CACHE_DIR", "")
    assert loader.default_cache_dir() is None


def test_load_is_cached_per_process() -> None:
    assert signatures.load() is signatures.load()


ANCHORED = GOOD.replace("      names: [demo-agent]\n", "      cmdline: ['demo_serve\\s+--watch']\n").replace(
    '"/usr/bin/demo-agent --go"', '"python3 -m demo_serve --watch"')
SERVING = ProcessFacts(name="python3", exe="/usr/bin/python3", cmdline=["python3", "-m", "demo_serve", "--watch"])


def test_a_change_to_the_anchor_code_is_a_new_cache(write: Write, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # The key's code digest is pointed at copies of the modules that derive cached values, to edit one.
    code = tmp_path / "code"
    code.mkdir()
    monkeypatch.setattr(loader, "DERIVING_CODE", tuple(Path(shutil.copy(p, code / p.name)) for p in loader.DERIVING_CODE))
    path = write("anchored.yaml", ANCHORED)
    cache = tmp_path / "cache"
    assert [m.signature.id for m in load_files([path], cache_dir=cache).match_process(SERVING)] == ["demo-agent"]
    (cached,) = cache.glob("signatures-*.json")
    # What an older anchor code could have kept: a word the process never holds, so a missed detection.
    doc = json.loads(cached.read_text())
    doc["anchors"] = {pattern: ["wordnoprocessholds"] for pattern in doc["anchors"]}
    cached.write_text(json.dumps(doc))
    assert load_files([path], cache_dir=cache).match_process(SERVING) == []  # the same code: the cache is used
    anchors = code / "anchors.py"
    anchors.write_text(anchors.read_text() + "\n# how anchor words are read has changed\n")
    loader.code_digest.cache_clear()  # what a new process (the changed code's first run) starts with
    assert [m.signature.id for m in load_files([path], cache_dir=cache).match_process(SERVING)] == ["demo-agent"]
    assert not cached.exists()


def test_the_cache_key_follows_the_package_and_python_versions(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write("good.yaml", GOOD)
    key = loader._cache_key([path], loader.CATALOG_PATH)
    monkeypatch.setattr(loader, "__version__", "9.9.9")
    other_package = loader._cache_key([path], loader.CATALOG_PATH)
    monkeypatch.undo()
    monkeypatch.setattr(sys, "version", "3.99.0 (elsewhere)")
    other_python = loader._cache_key([path], loader.CATALOG_PATH)
    assert None not in (key, other_package, other_python)
    assert len({key, other_package, other_python}) == 3


def test_the_code_digest_without_its_sources_means_no_cache(write: Write, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "DERIVING_CODE", (tmp_path / "gone.py",))
    cache = tmp_path / "cache"
    assert load_files([write("good.yaml", GOOD)], cache_dir=cache).signatures[0].id == "demo-agent"
    assert not list(cache.glob("signatures-*.json"))
