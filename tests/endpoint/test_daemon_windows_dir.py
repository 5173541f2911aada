"""Windows: a junction or symbolic link planted at C:\\ProgramData\\agentroster before the first start is
refused before icacls changes anything and before the daemon writes through it.

What runs here: the decision (``link_problem``, and the lock's ``data_dir_problem``) on real ``os.lstat``
results of this machine's filesystem (a real folder, a real symbolic link to a folder, a real file), and
``restrict_data_dir`` over a real symbolic link with a runner that records the icacls command lines
instead of running them (icacls exists on Windows only).

What does not run here: ``os.lstat`` of a real NTFS junction. Python documents that it reports a junction
as a folder whose ``st_file_attributes`` hold FILE_ATTRIBUTE_REPARSE_POINT (``st_reparse_tag`` the mount
point tag), and a symbolic link with S_IFLNK; those two results are built by hand below, with the
attribute values of the Windows SDK, and given to the same functions.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from endpoint.service import _acl_windows as acl
from endpoint.service.instance_lock import data_dir_problem

IO_REPARSE_TAG_MOUNT_POINT = 0xA0000003  # a junction's reparse tag (winnt.h)
# Built by hand (not from this machine, which has no NTFS): what os.lstat gives on Windows for a junction
# and for a plain folder under C:\ProgramData.
WINDOWS_JUNCTION = SimpleNamespace(st_mode=stat.S_IFDIR | 0o777, st_uid=0,
                                   st_file_attributes=stat.FILE_ATTRIBUTE_DIRECTORY | stat.FILE_ATTRIBUTE_REPARSE_POINT,
                                   st_reparse_tag=IO_REPARSE_TAG_MOUNT_POINT)
WINDOWS_FOLDER = SimpleNamespace(st_mode=stat.S_IFDIR | 0o777, st_uid=0, st_file_attributes=stat.FILE_ATTRIBUTE_DIRECTORY,
                                 st_reparse_tag=0)


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Path, Path]:
    """A folder the planter controls, and the data dir's name made a link to it."""
    target = tmp_path / "Users" / "mallory" / "catch"
    target.mkdir(parents=True)
    link = tmp_path / "ProgramData" / "agentroster"
    link.parent.mkdir()
    link.symlink_to(target, target_is_directory=True)
    return link, target


def test_a_real_folder_is_taken(tmp_path: Path) -> None:
    folder = tmp_path / "agentroster"
    folder.mkdir()
    assert acl.link_problem(os.lstat(folder)) is None
    assert data_dir_problem(os.lstat(folder), owner=None) is None


def test_a_real_symbolic_link_to_a_folder_is_refused(planted: tuple[Path, Path]) -> None:
    link, _target = planted
    assert os.path.isdir(link)  # through the link it looks like the folder: only lstat tells
    why = acl.link_problem(os.lstat(link))
    assert why is not None and why.startswith("it is a junction or a symbolic link")
    assert "rmdir removes a link, not its target" in why
    assert data_dir_problem(os.lstat(link), owner=None) == "it is a symbolic link (or another kind of link), not a folder"


def test_a_real_file_in_its_place_is_refused(tmp_path: Path) -> None:
    stray = tmp_path / "agentroster"
    stray.write_text("")
    assert acl.link_problem(os.lstat(stray)) == "it is not a folder: remove it and start the service again"


def test_a_junction_as_windows_reports_it_is_refused_and_a_plain_folder_is_not() -> None:
    why = acl.link_problem(WINDOWS_JUNCTION)
    assert why is not None and "junction" in why
    assert acl.link_problem(WINDOWS_FOLDER) is None
    assert data_dir_problem(WINDOWS_JUNCTION, owner=None) == "it is a symbolic link (or another kind of link), not a folder"  # type: ignore[arg-type]
    assert data_dir_problem(WINDOWS_FOLDER, owner=None) is None  # type: ignore[arg-type]


def test_icacls_is_not_run_through_a_planted_link(planted: tuple[Path, Path]) -> None:
    link, target = planted
    ran: list[list[str]] = []

    def record(argv: object) -> tuple[int, str]:  # icacls exists on Windows only: the command lines are kept
        ran.append(list(argv))  # type: ignore[call-overload]
        return 0, ""

    with pytest.raises(PermissionError) as info:
        acl.restrict_data_dir(str(link), record, env={})
    assert str(info.value).startswith(f"{link}: refused: it is a junction or a symbolic link")
    assert ran == []  # no owner, no ACL changed through the link
    assert list(target.iterdir()) == []


def test_a_real_folder_gets_its_acl_and_is_looked_at_again_after(tmp_path: Path) -> None:
    folder = tmp_path / "agentroster"
    folder.mkdir()
    ran: list[list[str]] = []

    def swap_after_the_last(argv: object) -> tuple[int, str]:  # records, and on the last command a link replaces the folder
        ran.append(list(argv))  # type: ignore[call-overload]
        if len(ran) == 3:
            folder.rmdir()
            folder.symlink_to(tmp_path, target_is_directory=True)
        return 0, ""

    with pytest.raises(PermissionError, match="refused: it is a junction or a symbolic link"):
        acl.restrict_data_dir(str(folder), swap_after_the_last, env={})
    assert [argv[2] for argv in ran] == ["/setowner", "/reset", "/inheritance:r"]


def test_a_hard_link_or_a_folder_in_place_of_the_service_log_is_refused(tmp_path: Path) -> None:
    from endpoint.service import winservice

    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("theirs\n")
    data = tmp_path / "data"
    data.mkdir()
    os.link(elsewhere, data / "daemon.log")  # a user's file, given a second name before the dir was closed
    with pytest.raises(OSError, match=r"is a link or no file the service made \(it has 2 names"):
        winservice.file_log_handler(data)
    assert elsewhere.read_text() == "theirs\n"
    (data / "daemon.log").unlink()
    (data / "daemon.log").mkdir()
    with pytest.raises(OSError, match="it is not a regular file"):
        winservice.file_log_handler(data)
