"""The one rule for trusted files, on real files: who owns them, who else may write or read them, and
what a reader refuses (symlinks, FIFOs, files over the cap). The callers (the signatures cache,
``safeio.read_private``, managed settings) keep their own tests; these hold the rule itself."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from endpoint.scan.safeio import read_private
from signatures.trusted_files import Untrusted, is_trusted, me, me_or_root, problem, read_trusted

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root to give files to another owner or group")
OTHER_UID = 54321  # no such user: only root can give a file to them
OTHER_GID = 54321


def _file(tmp_path: Path, mode: int, data: bytes = b"content", name: str = "f") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize(("mode", "private", "expected"), [
    (0o644, False, None),
    (0o600, True, None),
    (0o646, False, "world_writable"),
    (0o640, True, "exposed"),
    (0o604, True, "exposed"),
])
def test_the_mode_rule(tmp_path: Path, mode: int, private: bool, expected: str | None) -> None:
    st = _file(tmp_path, mode).stat()
    assert problem(st, me_or_root(), private=private) == expected


def test_group_write_is_refused_unless_the_group_is_roots(tmp_path: Path) -> None:
    path = _file(tmp_path, 0o664)
    st = path.stat()
    expected_when_allowed = None if st.st_gid == 0 else "group_writable"
    assert problem(st, me_or_root()) == expected_when_allowed
    assert problem(st, me_or_root(), root_group_may_write=False) == "group_writable"


@needs_root
def test_a_group_other_than_roots_may_not_write(tmp_path: Path) -> None:
    path = _file(tmp_path, 0o664)
    os.chown(path, 0, OTHER_GID)
    assert problem(path.stat(), {0}) == "group_writable"
    os.chown(path, 0, 0)
    assert problem(path.stat(), {0}) is None


@needs_root
def test_another_owner_is_refused_before_anything_else(tmp_path: Path) -> None:
    path = _file(tmp_path, 0o666)
    os.chown(path, OTHER_UID, OTHER_GID)
    assert problem(path.stat(), me_or_root()) == "owner"
    assert not is_trusted(path, me_or_root())
    with pytest.raises(Untrusted) as caught:
        read_trusted(path, me_or_root(), limit=100)
    assert caught.value.code == "owner" and caught.value.st is not None
    assert caught.value.st.st_uid == OTHER_UID


def test_is_trusted_needs_the_file_to_exist(tmp_path: Path) -> None:
    assert not is_trusted(tmp_path / "missing", {me()})
    assert is_trusted(_file(tmp_path, 0o600), {me()})


def test_read_trusted_reads_a_good_file_whole(tmp_path: Path) -> None:
    assert read_trusted(_file(tmp_path, 0o600, b"x" * 100), me_or_root(), limit=100, private=True) == b"x" * 100


@pytest.mark.parametrize(("make", "code"), [
    (lambda d: d / "missing", "not_found"),
    (lambda d: _file(d, 0o600, b"x" * 101), "too_large"),
    (lambda d: _file(d, 0o644), "exposed"),
])
def test_read_trusted_refuses(tmp_path: Path, make: object, code: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(Untrusted) as caught:
        read_trusted(path, me_or_root(), limit=100, private=True)
    assert caught.value.code == code


def test_read_trusted_never_follows_a_symlink(tmp_path: Path) -> None:
    target = _file(tmp_path, 0o600)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(Untrusted) as caught:
        read_trusted(link, me_or_root(), limit=100)
    assert caught.value.code == "unopenable"
    assert is_trusted(link, me_or_root())  # the predicate looks through links; the reader never does


def test_read_trusted_does_not_block_on_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(Untrusted) as caught:
        read_trusted(fifo, me_or_root(), limit=100)
    assert caught.value.code == "not_regular"


def test_read_private_goes_by_the_same_rule(tmp_path: Path) -> None:
    assert read_private(_file(tmp_path, 0o600, b"install:FAKE\n", "ok")) == "install:FAKE"
    assert read_private(_file(tmp_path, 0o640, b"install:FAKE\n", "exposed")) is None
    assert read_private(_file(tmp_path, 0o602, b"install:FAKE\n", "writable")) is None
