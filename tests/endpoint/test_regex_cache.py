"""Compiled patterns kept between scans: the same patterns as ``re`` makes, read only from a file that
no one else may write, and never a reason for a scan to fail."""

from __future__ import annotations

import marshal
import os
import re
import uuid
from pathlib import Path

import pytest

from endpoint import regex_cache


def fresh(template: str) -> str:
    """A pattern ``re`` has not compiled in this process yet (its own cache would answer first)."""
    return template.replace("TAG", uuid.uuid4().hex)


def compiled_by_re(pattern: str | bytes, flags: int = 0) -> re.Pattern:
    return re._compiler.compile(pattern, flags)  # type: ignore[attr-defined]


def test_patterns_made_through_the_cache_are_the_ones_re_makes(tmp_path: Path) -> None:
    path = str(tmp_path / "cache" / "regex.marshal")
    patterns = [(fresh(r"(?P<key>TAG)-(\d+)[^\x00-\x1f\u2028]*$"), re.I | re.M), (fresh(r"TAG|\bword\b"), 0),
                (fresh(r"(?x) TAG \s+ (?P<rest>.*)").encode(), re.S)]
    with regex_cache.active(path) as cache:
        made = [re.compile(p, f) for p, f in patterns]
    assert len(cache.entries) >= len(patterns) and os.path.isfile(path)
    for (pattern, flags), got in zip(patterns, made, strict=True):
        want = compiled_by_re(pattern, flags)
        assert got == want and got.groupindex == want.groupindex and got.groups == want.groups


def test_a_later_scan_takes_its_patterns_from_the_file(tmp_path: Path) -> None:
    path = str(tmp_path / "regex.marshal")
    tag = uuid.uuid4().hex
    pattern = rf"(?P<name>{tag})(?:-\d+)?"
    with regex_cache.active(path):
        first = re.compile(pattern)
    re.purge()  # as a new process: re's own cache is empty
    calls: list[object] = []
    with regex_cache.active(path) as cache:
        original = cache._compile
        cache._compile = lambda *a: calls.append(a) or original(*a)  # type: ignore[misc]
        again = re.compile(pattern)
    assert calls == [] and again == first and again.groupindex == {"name": 1}
    match = again.match(f"{tag}-7")
    assert match is not None and match["name"] == tag and match.end() == len(tag) + 2


def test_re_compiles_as_usual_once_the_block_ends(tmp_path: Path) -> None:
    before = re._compiler.compile  # type: ignore[attr-defined]
    with regex_cache.active(str(tmp_path / "r.marshal")):
        assert re._compiler.compile is not before  # type: ignore[attr-defined]
    assert re._compiler.compile is before  # type: ignore[attr-defined]


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="ownership is a POSIX notion")
def test_a_file_others_may_write_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "regex.marshal"
    pattern = fresh("TAG")
    with regex_cache.active(str(path)):
        re.compile(pattern)
    re.purge()
    path.chmod(0o666)
    cache = regex_cache.RegexCache(str(path))
    cache.load()
    assert cache.entries == {}
    path.chmod(0o600)
    tmp_path.chmod(0o777)
    try:
        cache.load()
        assert cache.entries == {}
    finally:
        tmp_path.chmod(0o700)
    cache.load()
    assert (False, pattern, 0) in cache.entries


def test_a_damaged_file_only_means_compiling_again(tmp_path: Path) -> None:
    path = tmp_path / "regex.marshal"
    pattern = fresh(r"TAG(\d+)")
    for junk in (b"", b"\x00garbage", marshal.dumps(["not", "a", "dict"]),
                 marshal.dumps({"format": regex_cache.FORMAT, "entries": {(False, pattern, 0): (0, [1, 2, 3], 0, {}, ())}}),
                 marshal.dumps({"format": regex_cache.FORMAT, "entries": {(False, pattern, 0): "nonsense"}})):
        path.write_bytes(junk)
        path.chmod(0o600)
        re.purge()
        with regex_cache.active(str(path)):
            got = re.compile(pattern)  # invalid code is refused by sre, and the pattern compiled afresh
        assert got == compiled_by_re(pattern) and got.match(pattern[:32] + "42")
    doc = marshal.loads(path.read_bytes())
    assert doc["format"] == regex_cache.FORMAT and (False, pattern, 0) in doc["entries"]  # repaired


def test_another_pythons_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "regex.marshal"
    pattern = fresh("TAG")
    path.write_bytes(marshal.dumps({"format": "agentroster.regex-cache/1 python 0 sre 0",
                                    "entries": {(False, pattern, 0): (0, [0], 0, {}, ())}}))
    path.chmod(0o600)
    cache = regex_cache.RegexCache(str(path))
    cache.load()
    assert cache.entries == {}


def test_no_folder_for_the_cache_leaves_the_scan_alone(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with regex_cache.active(str(blocker / "sub" / "regex.marshal")):
        assert re.compile(fresh("TAG")).pattern
    with regex_cache.active(None):
        assert re.compile(fresh("TAG")).pattern


def test_a_scan_keeps_no_pattern_made_from_what_it_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What the scan reads is hostile and may hold secrets: the kept patterns must come from the code alone.
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1]))
    try:
        from factories import build_homes
    finally:
        sys.path.pop(0)
    from endpoint.cli import main

    manifest = build_homes(tmp_path / "image", homes=3, seed=7)
    monkeypatch.setenv("AGENTROSTER_CACHE_DIR", str(tmp_path / "cache"))
    re.purge()
    assert main(["scan", "--json", "--no-processes", "--root", str(manifest.root), "-o", str(tmp_path / "out.json")]) == 0
    cache = regex_cache.RegexCache(regex_cache.default_path())
    cache.load()
    assert cache.entries  # the scan compiled patterns (re's own cache was emptied) and kept them
    kept = [p if isinstance(p, str) else p.decode("latin-1") for _, p, _ in cache.entries]
    assert manifest.secrets and not [p for p in kept for s in manifest.secrets if s in p]
    assert not [p for p in kept if str(tmp_path) in p or "FAKE" in p]
