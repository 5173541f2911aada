"""What the daemon writes as root in its data dir, read as a local user would attack it: a data dir others
could write in before the first start (links named like its state files left inside), and a link left
in place of the device key's temporary file.

Real folders, links and files, a real ``agentroster daemon --once`` child process, a real Inventory.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support import AGENTROSTER

from endpoint.service.instance_lock import InstanceLock, RefusedLockFile
from endpoint.service.inventory import KEY_FILE, STATE_FILE, Inventory

if sys.platform == "win32":  # pragma: no cover - POSIX modes and links; Windows: test_daemon_windows_dir.py
    pytest.skip("POSIX modes and links", allow_module_level=True)

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root: the daemon's data dir is root's")
FAKE_DEVICE_KEY = "FAKE-device-key-0000"


@pytest.fixture
def precious(tmp_path: Path) -> Path:
    path = tmp_path / "passwd"
    path.write_text("root:x:0:0:root:/root:/bin/bash\n")
    path.chmod(0o644)
    return path


@needs_root
@pytest.mark.parametrize("mode", [0o777, 0o733, 0o770], ids=oct)
def test_a_data_dir_others_could_write_in_is_refused_with_what_they_left(tmp_path: Path, precious: Path,
                                                                         mode: int) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(mode)  # as a careless `mkdir -m 777` before the package: anyone may leave things there
    for name in (STATE_FILE, STATE_FILE + "-wal", KEY_FILE + ".tmp"):
        (data / name).symlink_to(precious)
    (tmp_path / "root").mkdir()
    done = subprocess.run([AGENTROSTER, "daemon", "--once", "--data-dir", str(data), "--root", str(tmp_path / "root")],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env={**os.environ, "AGENTROSTER_SENSORS": "files"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"agentroster daemon: {data}: refused: others could write in it (mode {mode:04o}), so what it holds may "
        f"not be the daemon's: look at it, then chmod 700 it. Someone other than the daemon may have put it "
        f"there: look at it, remove it (as root: rm -r {data}) or mend it, and start the daemon again"]
    assert precious.read_text() == "root:x:0:0:root:/root:/bin/bash\n"
    assert stat.S_IMODE(precious.stat().st_mode) == 0o644
    assert stat.S_IMODE(data.stat().st_mode) == mode  # left as found, for whoever looks at it


def test_a_data_dir_only_its_owner_can_write_is_made_0700_and_taken(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    InstanceLock(data).acquire().release()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


def test_a_link_left_in_place_of_the_keys_temporary_file_is_not_written_through(tmp_path: Path,
                                                                                 precious: Path) -> None:
    inventory = Inventory(tmp_path / "data")
    try:
        (tmp_path / "data" / (KEY_FILE + ".tmp")).symlink_to(precious)
        inventory.save_enrollment(FAKE_DEVICE_KEY, device_id="d1", collector_url="https://collector.example")
        assert precious.read_text() == "root:x:0:0:root:/root:/bin/bash\n"
        key = tmp_path / "data" / KEY_FILE
        st = os.lstat(key)
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_nlink == 1
        assert inventory.device_key() == FAKE_DEVICE_KEY
        assert not (tmp_path / "data" / (KEY_FILE + ".tmp")).exists()
    finally:
        inventory.close()


@needs_root
def test_refused_before_the_data_dir_is_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)
    with pytest.raises(RefusedLockFile, match=r"others could write in it \(mode 0777\)"):
        InstanceLock(data).acquire()
    assert sorted(os.listdir(data)) == []  # no lock file made in it
