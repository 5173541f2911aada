"""The data dir's lock file and the data dir itself, as a local user could plant them before the daemon
first runs: a hard link, a symbolic link, a FIFO, a folder, someone else's file; a data dir that is a
link or someone else's folder. Each is refused with one error that says what to do, the daemon does not
start, and the file or folder the plant pointed at is left as it was.

Real files, links, FIFOs and owners (``chown`` needs root, as CI runs these tests), and a real
``agentroster daemon`` child process for the command's exit code and message.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support import AGENTROSTER

from endpoint.service.instance_lock import (
    LOCK_FILE,
    InstanceLock,
    RefusedLockFile,
    data_dir_problem,
    written_file_problem,
)

if sys.platform == "win32":  # pragma: no cover - POSIX owners and links; Windows: test_daemon_windows_dir.py
    pytest.skip("POSIX owners, FIFOs and hard links", allow_module_level=True)

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root: giving a file to another user is chown's")
NOBODY = 65534
PRECIOUS = "root:$6$FAKE-hash-0000:19000:0:99999:7:::\n"


@pytest.fixture
def precious(tmp_path: Path) -> Path:
    """What a planted link points at: a file only root may write (a stand-in for /etc/shadow)."""
    path = tmp_path / "shadow"
    path.write_text(PRECIOUS)
    path.chmod(0o640)
    return path


def plant_hard_link(lock: Path, precious: Path) -> None:
    os.link(precious, lock)


def plant_symlink(lock: Path, precious: Path) -> None:
    lock.symlink_to(precious)


def plant_dangling_symlink(lock: Path, precious: Path) -> None:
    lock.symlink_to(precious.with_name("made-by-root"))


def plant_fifo(lock: Path, _precious: Path) -> None:
    os.mkfifo(lock, 0o666)


def plant_folder(lock: Path, _precious: Path) -> None:
    lock.mkdir()


def plant_foreign_file(lock: Path, _precious: Path) -> None:
    lock.write_text("4242\n")
    lock.chmod(0o666)
    os.chown(lock, NOBODY, NOBODY)


PLANTS: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "hard link": (plant_hard_link, "it has 2 names (hard links)"),
    "symlink": (plant_symlink, "it is a symbolic link"),
    "dangling symlink": (plant_dangling_symlink, "it is a symbolic link"),
    "fifo": (plant_fifo, "it is not a regular file"),
    "folder": (plant_folder, "it is not a regular file"),
    "someone else's file": (plant_foreign_file, f"it belongs to uid {NOBODY}"),
}


@needs_root
@pytest.mark.parametrize("kind", list(PLANTS))
def test_a_planted_lock_file_is_refused_and_nothing_is_written_through_it(tmp_path: Path, precious: Path,
                                                                          kind: str) -> None:
    plant, why = PLANTS[kind]
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    lock = data / LOCK_FILE
    plant(lock, precious)
    with pytest.raises(RefusedLockFile) as info:
        InstanceLock(data).acquire()
    message = str(info.value)
    assert message.startswith(f"{lock}: refused: {why}") and f"rm -r {lock}" in message
    assert info.value.code == "refused_lock_file"
    assert precious.read_text() == PRECIOUS and stat.S_IMODE(precious.stat().st_mode) == 0o640
    assert not precious.with_name("made-by-root").exists()  # a dangling link did not create its target


@needs_root
def test_the_daemon_does_not_start_over_a_planted_hard_link(tmp_path: Path, precious: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    os.link(precious, data / LOCK_FILE)
    (tmp_path / "root").mkdir()
    done = subprocess.run([AGENTROSTER, "daemon", "--data-dir", str(data), "--root", str(tmp_path / "root")],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env={**os.environ, "AGENTROSTER_SENSORS": "files"})
    assert done.returncode == 2  # the unit's RestartPreventExitStatus: a restart cannot mend it
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"agentroster daemon: {data / LOCK_FILE}: refused: it has 2 names")
    assert precious.read_text() == PRECIOUS
    assert sorted(p.name for p in data.iterdir()) == [LOCK_FILE]  # no state was made: it did not start


@needs_root
def test_a_data_dir_that_is_a_link_is_refused_before_anything_is_changed_through_it(tmp_path: Path) -> None:
    target = tmp_path / "etc-like"
    target.mkdir(mode=0o755)
    (tmp_path / "data").symlink_to(target)
    with pytest.raises(RefusedLockFile, match="it is a symbolic link"):
        InstanceLock(tmp_path / "data").acquire()
    assert stat.S_IMODE(target.stat().st_mode) == 0o755  # not made 0700 through the link
    assert list(target.iterdir()) == []


@needs_root
def test_a_data_dir_made_by_another_user_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    os.chown(data, NOBODY, NOBODY)
    with pytest.raises(RefusedLockFile, match=f"it belongs to uid {NOBODY}, not to uid 0"):
        InstanceLock(data).acquire()
    assert list(data.iterdir()) == []


def test_the_lock_the_daemon_made_is_taken_again(tmp_path: Path) -> None:
    first = InstanceLock(tmp_path / "data").acquire()
    first.release()
    again = InstanceLock(tmp_path / "data").acquire()
    try:
        st = os.lstat(tmp_path / "data" / LOCK_FILE)
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_nlink == 1
        assert written_file_problem(st, owner=os.geteuid()) is None
        assert data_dir_problem(os.lstat(tmp_path / "data"), owner=os.geteuid()) is None
    finally:
        again.release()


def test_the_decisions_on_real_stat_results(tmp_path: Path) -> None:
    regular = tmp_path / "f"
    regular.write_text("1\n")
    link = tmp_path / "l"
    link.symlink_to(regular)
    me = os.geteuid()
    assert written_file_problem(os.lstat(regular), owner=me) is None
    assert written_file_problem(os.lstat(regular), owner=me + 1) == f"it belongs to uid {me}, not to uid {me + 1} that runs the daemon"
    assert written_file_problem(os.lstat(regular), owner=None) is None  # Windows: the ACL decides who owns it
    assert written_file_problem(os.lstat(link), owner=me) == "it is a symbolic link (or another kind of link)"
    assert data_dir_problem(os.lstat(regular), owner=me) == "it is not a folder"
    assert data_dir_problem(os.lstat(tmp_path), owner=me) is None


@needs_root
@pytest.mark.parametrize(("mode", "owner", "why"), [
    (0o777, 0, "can be written by anyone"),
    (0o775, 0, f"can be written by its group (gid {NOBODY})"),
    (0o755, NOBODY, f"belongs to uid {NOBODY}"),
    (0o1777, NOBODY, f"belongs to uid {NOBODY}"),  # sticky, but its owner may still rename what is in it
])
def test_a_data_dir_below_a_folder_others_can_write_is_refused(tmp_path: Path, mode: int, owner: int, why: str) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chown(shared, owner, NOBODY)
    shared.chmod(mode)
    with pytest.raises(RefusedLockFile) as info:
        InstanceLock(shared / "agentroster").acquire()
    assert str(info.value) == (f"{shared / 'agentroster'}: refused: {shared}, a folder above it, {why}: whoever can "
                               "write that folder can put another data dir in its place. Use a data dir whose "
                               "folders only root can write (the default is)")
    assert list(shared.iterdir()) == []  # refused before the data dir was made


@needs_root
def test_a_link_in_a_folder_others_can_write_is_refused_though_it_leads_to_roots(tmp_path: Path) -> None:
    roots = tmp_path / "var-lib"
    roots.mkdir(mode=0o755)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone may point the link elsewhere
    (shared / "lib").symlink_to(roots)
    with pytest.raises(RefusedLockFile, match=f"{shared}, a folder above it, can be written by anyone"):
        InstanceLock(shared / "lib" / "agentroster").acquire()


def test_a_data_dir_below_a_sticky_folder_root_owns_is_taken(tmp_path: Path) -> None:
    sticky = tmp_path / "tmp-like"
    sticky.mkdir()
    sticky.chmod(0o1777)  # as /tmp: no one else may rename or remove the daemon's folder there
    InstanceLock(sticky / "agentroster").acquire().release()
